"""labelImg CreateML JSON -> COCO core.

A file is a list of ``{"image": name, "annotations": [{"label": ...,
"coordinates": {"x", "y", "width", "height"}}]}`` where ``x, y`` is the box
*centre* in pixels. Apple's older spelling ``imagefilename`` / ``annotation``
is accepted too. The format stores no image size: it is read from the image
(beside the JSON or under ``--image-root``).
"""

from __future__ import annotations

import math
from pathlib import Path

from annot.errors import ParseError
from annot.geometry import BoxMode, box_to_xywh
from annot.model import DatasetBuilder, ImageDraft
from annot.options import ConvertOptions
from annot.paths import find_image
from annot.report import Report

from .boxes import box_instances, fit_box
from .discovery import find_files, load_json, read_image_size, size_fits


def read(inputs: list[Path], opts: ConvertOptions, report: Report):
    builder = DatasetBuilder(opts.labels)
    known = set(opts.labels) if opts.labels is not None else None
    for path, _root in find_files(inputs, (".json",)):
        try:
            opts.limits.json_file(path)
            doc = load_json(path)
        except ParseError as e:  # over the memory budget
            report.error(e.path, e.item, e.reason)
            continue
        except (OSError, ValueError) as e:
            report.error(path, None, f"cannot read JSON: {e}")
            continue
        if not isinstance(doc, list):
            report.error(path, None, "not a CreateML file: expected a list of images")
            continue
        for k, entry in enumerate(doc):
            draft = _read_entry(path, k, entry, opts.image_root, known, report, opts.limits.max_pixels)
            if draft is not None:
                builder.add(draft)
    return builder.build()


def _read_entry(path: Path, k: int, entry, image_root, known, report: Report, max_pixels: int | None = None):
    item = f"[{k}]"
    name = entry.get("image", entry.get("imagefilename")) if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name:
        report.error(path, item, "missing 'image' (or 'imagefilename')")
        return None
    image = find_image(name, [image_root, path.parent, path.parent / "images"])
    if image is None:
        report.error(path, item, f"image {name!r} not found (CreateML stores no size; use --image-root)")
        return None
    size = read_image_size(image, path, item, report)
    if size is None:
        return None
    width, height = size
    if not size_fits(width, height, path, item, report, max_pixels):
        return None
    anns = entry.get("annotations", entry.get("annotation")) or []
    if not isinstance(anns, list):
        report.error(path, item, "'annotations' is not a list")
        return None
    boxes = []
    for j, a in enumerate(anns):
        where = f"{item}.annotations[{j}]"
        c = a.get("coordinates") if isinstance(a, dict) else None
        label = a.get("label") if isinstance(a, dict) else None
        try:
            vals = [float(c[t]) for t in ("x", "y", "width", "height")]
        except (TypeError, KeyError, ValueError):
            report.error(path, where, "coordinates need numeric x, y, width, height")
            continue
        if not isinstance(label, str) or not label:
            report.error(path, where, "missing label")
            continue
        if known is not None and label not in known:
            report.error(path, where, f"label {label!r} is not in the labels file")
            continue
        if not all(math.isfinite(v) for v in vals) or vals[2] <= 0 or vals[3] <= 0:
            report.error(path, where, f"bad box {vals}")
            continue
        box = fit_box(box_to_xywh(vals, BoxMode.CXCYWH), width, height, path, where, report)
        if box is not None:
            boxes.append((label, box, 0, where))
    return ImageDraft(name, width, height, box_instances(boxes, width, height, path, report),
                       {"source": str(path)})
