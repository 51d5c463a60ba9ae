"""COCO core -> labelme JSON files, for reviewing labels in labelme.

One ``<file_name stem>.json`` per image under OUT (sub-folders of file_name
kept). Axis-aligned rectangles become ``rectangle`` shapes, other polygons
``polygon`` shapes (several polygons of one instance share a ``group_id``),
RLE masks ``mask`` shapes (PNG of the mask's bounding box, placed the way
labelme places it), crowd regions ``__ignore__`` shapes. ``imagePath`` is the
image's file name (put the images beside the JSON files), or its path
relative to the JSON when ``--image-root`` says where images are.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from annot.geometry import BOX_DECODE_BYTES, mask_in_box, rectangle_of
from annot.io import atomic_dir, dumps_json
from annot.limits import Limits
from annot.model import IGNORE_LABEL, Annotation, Dataset, Image
from annot.options import ConvertOptions
from annot.paths import OutputNames
from annot.report import Report

LABELME_VERSION = "5.3.1"  # the file format labelme 5.x/6.x reads


def write(ds: Dataset, out: Path, opts: ConvertOptions, report: Report) -> list[Path]:
    names = ds.category_names()
    with atomic_dir(out, opts.overwrite) as tmp:
        files = OutputNames(tmp, ".json")
        for img, anns in ds.per_image():
            target = files.path(img.file_name)
            target.parent.mkdir(parents=True, exist_ok=True)
            doc = to_labelme(img, anns, names, out / target.relative_to(tmp), opts.image_root, report, opts.limits)
            target.write_bytes(dumps_json(doc, indent=True))
    return [Path(out)]


def to_labelme(img: Image, anns: list[Annotation], names, json_path: Path, image_root, report: Report,
               limits: Limits) -> dict:
    if image_root is not None:
        image_path = os.path.relpath(Path(image_root) / img.file_name, json_path.parent).replace(os.sep, "/")
    else:
        image_path = Path(img.file_name).name
    shapes, crowd_seen = [], set()
    group = 0
    for a in anns:
        label = names[a.category_id]
        if a.iscrowd:
            key = repr(a.segmentation)
            if key in crowd_seen:  # one region per category in COCO, one shape in labelme
                continue
            crowd_seen.add(key)
            label = IGNORE_LABEL
        if a.keypoints:
            report.warn("keypoints not written to labelme", f"{img.file_name}:annotation {a.id}")
        seg = a.segmentation
        if isinstance(seg, dict):
            limits.allocation(a.bbox[2] * a.bbox[3] * BOX_DECODE_BYTES, "decoding this mask in its box",
                              img.file_name, f"annotation {a.id}")
            shapes.append(_mask_shape(label, *mask_in_box(seg, img.height, img.width)))
            continue
        polys = seg or []
        gid = None
        if len(polys) > 1:
            group += 1
            gid = group
        if not polys:
            x, y, w, h = a.bbox
            shapes.append(_shape(label, [[x, y], [x + w, y + h]], "rectangle", gid))
        for p in polys:
            rect = rectangle_of(p)
            if rect is not None and rect[4] == 0.0:
                x, y, w, h, _ = rect
                shapes.append(_shape(label, [[x, y], [x + w, y + h]], "rectangle", gid))
            else:
                shapes.append(_shape(label, [[p[i], p[i + 1]] for i in range(0, len(p), 2)], "polygon", gid))
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": img.height,
        "imageWidth": img.width,
    }


def _shape(label, points, kind, group_id=None, mask=None) -> dict:
    return {"label": label, "points": points, "group_id": group_id, "description": "", "shape_type": kind,
            "flags": {}, "mask": mask}


def _mask_shape(label: str, box: np.ndarray, origin: tuple[int, int]) -> dict:
    """A labelme mask shape of a mask given in its bounding box, whose top-left pixel is ``origin``."""
    x0, y0 = origin
    y1, x1 = y0 + box.shape[0] - 1, x0 + box.shape[1] - 1
    crop = box.astype(np.uint8) * 255
    buf = io.BytesIO()
    PILImage.fromarray(crop, mode="L").convert("1").save(buf, format="PNG")
    # labelme places the crop at (int(x0), int(y0)) spanning to (x1, y1) inclusive
    return _shape(label, [[float(x0), float(y0)], [float(x1), float(y1)]], "mask",
                  mask=base64.b64encode(buf.getvalue()).decode("ascii"))
