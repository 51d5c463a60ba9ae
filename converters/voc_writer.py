"""COCO core -> labelImg Pascal VOC XML, one file per image.

Boxes are written in the convention chosen with ``--pixel-convention``
(``continuous``, labelImg's, by default; ``voc1`` for the official 1-based
inclusive one). Integral coordinates are written as ints, others as floats,
so nothing is rounded away. Crowd regions are written as ``difficult=1``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from annot.geometry import BoxMode, xywh_to_box
from annot.io import atomic_dir
from annot.model import Dataset, Image
from annot.options import ConvertOptions
from annot.paths import OutputNames
from annot.report import Report


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def to_xml(img: Image, anns, names, mode: BoxMode) -> ET.Element:
    root = ET.Element("annotation")
    path = Path(img.file_name)
    ET.SubElement(root, "folder").text = path.parent.name
    ET.SubElement(root, "filename").text = path.name
    ET.SubElement(root, "path").text = img.file_name
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "Unknown"
    size = ET.SubElement(root, "size")
    for tag, v in (("width", img.width), ("height", img.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(root, "segmented").text = "0"
    for a in anns:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = names[a.category_id]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "1" if a.iscrowd else "0"
        bb = ET.SubElement(obj, "bndbox")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), xywh_to_box(a.bbox, mode)):
            ET.SubElement(bb, tag).text = _num(v)
    ET.indent(root, "\t")
    return root


def write(ds: Dataset, out: Path, opts: ConvertOptions, report: Report) -> list[Path]:
    mode = BoxMode.VOC1 if opts.pixel_convention == "voc1" else BoxMode.XYXY
    names = ds.category_names()
    with atomic_dir(out, opts.overwrite) as tmp:
        files = OutputNames(tmp, ".xml")
        for img, anns in ds.per_image():
            target = files.path(img.file_name)
            target.parent.mkdir(parents=True, exist_ok=True)
            ET.ElementTree(to_xml(img, anns, names, mode)).write(target, encoding="utf-8", xml_declaration=False)
    return [Path(out)]
