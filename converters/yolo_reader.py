"""labelImg YOLO txt (+ ``classes.txt``) and YOLO segmentation -> COCO core.

A line ``c cx cy w h`` is a box, ``c x1 y1 x2 y2 x3 y3 ...`` (three points or
more) a polygon; all coordinates are fractions of the *displayed* image (EXIF
orientation applied, as Ultralytics does), so every label file needs its
image. Images are looked for beside the txt, in the ``images/`` twin of a
``labels/`` folder, and under ``--image-root``. Class names come from
``--labels``, else the nearest ``classes.txt`` / ``obj.names`` above the file;
category id = class index + 1.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

from annot.errors import AnnotError
from annot.geometry import BoxMode, box_to_xywh, polygons_bbox, rectangle_polygon
from annot.images import IMAGE_SUFFIXES
from annot.model import DatasetBuilder, ImageDraft
from annot.options import ConvertOptions
from annot.parallel import map_files
from annot.report import Report

from .boxes import fit_box, polygon_instances
from .discovery import find_files, read_image_size, relative_name, size_fits

CLASS_FILES = ("classes.txt", "obj.names")
NOT_LABEL_FILES = {"classes.txt", "predefined_classes.txt", "train.txt", "val.txt", "test.txt", "readme.txt"}


def read_class_names(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]


def find_class_file(start: Path, stop: Path) -> Path | None:
    d = start
    for _ in range(4):
        for name in CLASS_FILES:
            if (d / name).is_file():
                return d / name
        if d == stop.parent or d.parent == d:
            break
        d = d.parent
    return None


def read(inputs: list[Path], opts: ConvertOptions, report: Report):
    files = [
        (f, r) for f, r in find_files(inputs, (".txt",)) if f.name.lower() not in NOT_LABEL_FILES
    ]
    names = opts.labels
    if names is None:
        cls_file = find_class_file(files[0][0].parent, files[0][1]) if files else None
        if cls_file is None:
            raise AnnotError(f"{inputs[0]}: no YOLO label files (.txt beside classes.txt)" if not files else
                             f"{inputs[0]}: no classes.txt or obj.names found; pass --labels FILE")
        names = read_class_names(cls_file)
    job = partial(read_file, names=tuple(names), on_error=opts.on_error, image_root=opts.image_root,
                  max_pixels=opts.limits.max_pixels)
    builder = DatasetBuilder(names)
    for draft, rep in map_files(job, files, opts.jobs, "yolo", opts.quiet):
        report.merge(rep)
        if draft is not None:
            builder.add(draft)
    return builder.build()


def find_image_for(label_file: Path, root: Path, image_root: Path | None) -> Path | None:
    d = label_file.parent
    dirs = [d]
    parts = d.parts
    if "labels" in parts:  # Ultralytics: .../labels/train/x.txt <-> .../images/train/x.jpg
        k = len(parts) - 1 - parts[::-1].index("labels")
        dirs.append(Path(*parts[:k], "images", *parts[k + 1 :]))
    dirs += [d.parent / "images", d.parent / "Images", d.parent / "JPEGImages"]
    if image_root is not None:
        dirs += [Path(image_root) / d.relative_to(root), Path(image_root)]
    for cand_dir in dirs:
        for suffix in IMAGE_SUFFIXES:
            for s in (suffix, suffix.upper()):
                p = cand_dir / (label_file.stem + s)
                if p.is_file():
                    return p
    return None


def read_file(file_and_root, names: tuple[str, ...] = (), on_error="fail", image_root=None, max_pixels=None):
    path, root = file_and_root
    rep = Report(on_error)
    image = find_image_for(path, root, image_root)
    if image is None:
        rep.error(path, None, "no image with the same name found (sizes come from the image; use --image-root)")
        return None, rep
    size = read_image_size(image, path, None, rep)
    if size is None:
        return None, rep
    width, height = size
    if not size_fits(width, height, path, None, rep, max_pixels):
        return None, rep
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        rep.error(path, None, f"cannot read: {e}")
        return None, rep
    shapes: list[tuple[str, list[float], list[float], int, str]] = []  # (label, polygon, bbox, 0, item) in line order
    for n, line in enumerate(lines, start=1):
        item = f"line {n}"
        fields = line.split()
        if not fields:
            continue
        try:
            cls = int(fields[0])
            vals = [float(v) for v in fields[1:]]
        except ValueError:
            rep.error(path, item, f"not numbers: {line.strip()!r}")
            continue
        if not 0 <= cls < len(names):
            rep.error(path, item, f"class {cls} out of range (0..{len(names) - 1} in the class list)")
            continue
        if not all(math.isfinite(v) for v in vals):
            rep.error(path, item, "non-finite coordinate")
            continue
        label = names[cls]
        if len(vals) == 4:
            xywh = box_to_xywh(vals, BoxMode.CXCYWH_REL, width, height)
            if xywh[2] <= 0 or xywh[3] <= 0:
                rep.error(path, item, "empty box")
                continue
            xywh = fit_box(xywh, width, height, path, item, rep)
            if xywh is None:
                continue
            shapes.append((label, rectangle_polygon(*xywh), xywh, 0, item))
        elif len(vals) >= 6 and len(vals) % 2 == 0:
            if min(vals) < 0 or max(vals) > 1:
                rep.warn("points outside the image clipped to its border", f"{path}:{item}")
            pts = [min(max(v, 0.0), 1.0) * (width if k % 2 == 0 else height) for k, v in enumerate(vals)]
            shapes.append((label, pts, polygons_bbox([pts]), 0, item))
        else:
            rep.error(path, item, f"{len(vals)} coordinates: expected 4 (box) or an even number >= 6 (polygon)")
    instances = polygon_instances(shapes, width, height, path, rep)
    base = image_root if image_root is not None and image.is_relative_to(image_root) else root
    return ImageDraft(relative_name(image, base), width, height, instances, {"source": str(path)}), rep
