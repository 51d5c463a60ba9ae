"""labelImg Pascal VOC XML -> COCO core.

``--pixel-convention continuous`` (default) reads ``xmin..xmax`` as
continuous coordinates, which is what labelImg writes: a box drawn from pixel
corner 81 to 522 is stored as 81 and 522, COCO ``x=81, w=441``.
``--pixel-convention voc1`` reads the official PASCAL VOC convention, 1-based
inclusive pixel indices: ``x = xmin - 1``, ``w = xmax - xmin + 1``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from functools import partial
from pathlib import Path

from annot.geometry import BoxMode, box_to_xywh
from annot.model import DatasetBuilder, ImageDraft
from annot.options import ConvertOptions
from annot.parallel import map_files
from annot.paths import find_image
from annot.report import Report
from annot.values import is_side

from .boxes import box_instances, fit_box
from .discovery import find_files, read_image_size, size_fits


def read(inputs: list[Path], opts: ConvertOptions, report: Report):
    if opts.pixel_convention not in ("continuous", "voc1"):
        from annot.errors import UnknownName

        raise UnknownName("pixel convention", opts.pixel_convention, ["continuous", "voc1"])
    job = partial(
        read_file,
        mode=BoxMode.VOC1 if opts.pixel_convention == "voc1" else BoxMode.XYXY,
        labels=frozenset(opts.labels) if opts.labels is not None else None,
        on_error=opts.on_error,
        difficult_as_crowd=opts.difficult_as_crowd,
        image_root=opts.image_root,
        max_pixels=opts.limits.max_pixels,
    )
    builder = DatasetBuilder(opts.labels)
    for draft, rep in map_files(job, find_files(inputs, (".xml",)), opts.jobs, "voc", opts.quiet):
        report.merge(rep)
        if draft is not None:
            builder.add(draft)
    return builder.build()


def _num(el, tag: str) -> float | None:
    node = el.find(tag)
    if node is None or node.text is None or not node.text.strip():
        return None
    v = float(node.text.strip())
    return v if math.isfinite(v) else None


def _flag(el, tag: str) -> int:
    """``<difficult/>`` and ``<difficult></difficult>`` mean 0."""
    node = el.find(tag)
    text = (node.text or "").strip() if node is not None else ""
    if not text:
        return 0
    if not math.isfinite(float(text)):
        raise ValueError(f"<{tag}> is {text!r}")
    return int(float(text) != 0)


def read_file(
    file_and_root,
    mode: BoxMode = BoxMode.XYXY,
    labels=None,
    on_error: str = "fail",
    difficult_as_crowd: bool = False,
    image_root: Path | None = None,
    max_pixels: int | None = None,
):
    path, root = file_and_root
    rep = Report(on_error)
    try:
        tree = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        rep.error(path, None, f"cannot read XML: {e}")
        return None, rep
    if tree.tag != "annotation":
        rep.error(path, None, f"not a VOC annotation (root element <{tree.tag}>)")
        return None, rep
    file_name = (tree.findtext("filename") or "").strip() or path.with_suffix(".jpg").name
    size = tree.find("size")
    width = height = None
    try:
        if size is not None:
            width, height = _num(size, "width"), _num(size, "height")
    except ValueError as e:
        rep.error(path, "size", f"bad number: {e}")
        return None, rep
    if not (is_side(width) and is_side(height)):
        img = find_image(
            file_name,
            [image_root, path.parent, path.parent.parent / "JPEGImages", path.parent.parent / "images"],
        )
        if img is None:
            rep.error(path, "size", f"no <size> and image {file_name!r} not found (use --image-root)")
            return None, rep
        size = read_image_size(img, path, "size", rep)
        if size is None:
            return None, rep
        width, height = size
    width, height = int(width), int(height)
    if not size_fits(width, height, path, "size", rep, max_pixels):
        return None, rep

    boxes = []
    for i, obj in enumerate(tree.findall("object")):
        item = f"object[{i}]"
        label = (obj.findtext("name") or "").strip()
        if not label:
            rep.error(path, item, "missing <name>")
            continue
        if labels is not None and label not in labels:
            rep.error(path, item, f"label {label!r} is not in the labels file")
            continue
        bb = obj.find("bndbox")
        if bb is None:
            rep.error(path, item, "missing <bndbox>")
            continue
        try:
            coords = [_num(bb, t) for t in ("xmin", "ymin", "xmax", "ymax")]
            difficult = _flag(obj, "difficult")
        except ValueError as e:
            rep.error(path, item, f"bad number: {e}")
            continue
        if any(c is None for c in coords):
            rep.error(path, item, "bndbox needs xmin, ymin, xmax, ymax")
            continue
        xywh = box_to_xywh(coords, mode)
        if xywh[2] <= 0 or xywh[3] <= 0:
            rep.error(path, item, f"empty box {coords}")
            continue
        clipped = fit_box(xywh, width, height, path, item, rep)
        if clipped is None:
            continue
        boxes.append((label, clipped, 1 if (difficult and difficult_as_crowd) else 0, item))
    return ImageDraft(file_name, width, height, box_instances(boxes, width, height, path, rep),
                      {"source": str(path)}), rep
