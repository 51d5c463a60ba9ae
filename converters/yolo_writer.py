"""COCO core -> YOLO txt (labelImg / Ultralytics) + ``classes.txt``.

OUT mirrors the images' file names with ``.txt`` label files; class index =
category id - 1. Detect or segment is decided per dataset: when any instance
has a shape other than its box (a polygon or a mask) every line is a polygon
(Ultralytics does not mix the two), else every line is ``c cx cy w h``. Masks
are traced to outer polygons (holes are lost: counted warning); crowd regions
are not written (YOLO has no "ignore").
"""

from __future__ import annotations

from pathlib import Path

from annot.geometry import (
    BOX_DECODE_BYTES,
    BoxMode,
    rectangle_of,
    rectangle_polygon,
    traced_polygons,
    xywh_to_box,
)
from annot.io import atomic_dir
from annot.model import Annotation, Dataset
from annot.options import ConvertOptions
from annot.paths import OutputNames
from annot.report import Report


def is_segmentation(ds: Dataset) -> bool:
    for a in ds.annotations:
        seg = a.segmentation
        if isinstance(seg, dict):
            return True
        if seg and (len(seg) > 1 or (r := rectangle_of(seg[0])) is None or r[4] != 0.0):
            return True
    return False


def write(ds: Dataset, out: Path, opts: ConvertOptions, report: Report) -> list[Path]:
    segment = is_segmentation(ds)
    index = {c.id: k for k, c in enumerate(ds.categories)}
    with atomic_dir(out, opts.overwrite) as tmp:
        files = OutputNames(tmp, ".txt")
        (tmp / "classes.txt").write_text("".join(c.name + "\n" for c in ds.categories), encoding="utf-8")
        for img, anns in ds.per_image():
            lines = []
            for a in anns:
                if a.iscrowd:
                    report.warn("crowd region not written (YOLO has no ignore regions)", img.file_name)
                    continue
                lines += _lines(a, index[a.category_id], img, segment, opts, report)
            target = files.path(img.file_name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
    return [Path(out)]


def _fmt(v: float) -> str:
    return f"{v:.6f}"


def _lines(a: Annotation, cls: int, img, segment: bool, opts: ConvertOptions, report: Report) -> list[str]:
    W, H = img.width, img.height
    if not segment:
        return [" ".join([str(cls), *map(_fmt, xywh_to_box(a.bbox, BoxMode.CXCYWH_REL, W, H))])]
    seg = a.segmentation
    if isinstance(seg, dict):
        opts.limits.allocation(a.bbox[2] * a.bbox[3] * BOX_DECODE_BYTES, "decoding this mask in its box",
                               img.file_name, f"annotation {a.id}")
        polys = traced_polygons(seg, H, W, opts.simplify)
        report.warn("masks traced to outer polygons (holes dropped)", f"annotation {a.id}")
    else:
        polys = seg or [rectangle_polygon(*a.bbox)]
    if len(polys) > 1:
        report.warn("instance with several polygons written as several lines", f"annotation {a.id}")
    return [
        " ".join([str(cls), *(_fmt(v / (W if i % 2 == 0 else H)) for i, v in enumerate(p))]) for p in polys
    ]
