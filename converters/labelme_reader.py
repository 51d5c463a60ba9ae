"""labelme JSON (3.x to 7.x) -> COCO core.

One labelme file is one image. Shapes become instances:

=================== ==========================================================
polygon             polygon (>= 3 points)
rectangle           4-corner polygon; the two corners may come in any order
circle              inscribed polygon, chord error <= 1 px
oriented_rectangle  its 4 corners as a polygon
mask                base64 PNG placed at int(x1), int(y1) (labelme's own rule)
point, line, ...    not instances: skipped and counted
=================== ==========================================================

Shapes with the same ``(label, group_id)`` form one instance with several
polygons (or one RLE when a mask is among them).
"""

from __future__ import annotations

import base64
import io
import math
import os
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import numpy as np

from annot.errors import ParseError
from annot.geometry import (
    BOX_DECODE_BYTES,
    circle_polygon,
    mask_instance,
    polygons_rle,
    rle_bbox,
    rle_box_mask,
)
from annot.images import IMAGE_SUFFIXES, embedded_image, image_size, pixel_limit
from annot.limits import Limits, polygon_bytes
from annot.model import IGNORE_LABEL, DatasetBuilder, ImageDraft, Instance
from annot.options import ConvertOptions
from annot.parallel import map_batches
from annot.paths import confined, confined_name, find_image
from annot.report import Report
from annot.values import is_side

from .columns import Columns, ImageEntries, PolygonEntry, columns_of_images, read_then_measure
from .discovery import find_file_names, parse_json, read_bytes, relative_name, size_fits

NON_INSTANCE_SHAPES = {"point", "points", "line", "linestrip"}


class MaskPiece(NamedTuple):
    """A mask shape's pixels, clipped to the image: ``crop`` with its top-left pixel at (x, y)."""

    x: int
    y: int
    crop: np.ndarray  # bool


_PLAIN_SHAPES = frozenset({"polygon", "rectangle", "circle", "oriented_rectangle"})


class _PlainShape(msgspec.Struct):
    """The fields of a shape that is an instance outline, typed: msgspec
    checks them while it parses (points are pairs of finite numbers)."""

    label: str
    points: list[tuple[float, float]]
    group_id: int | str | None = None
    shape_type: str | None = None


class _PlainFile(msgspec.Struct):
    """A labelme file whose shapes all fit :class:`_PlainShape`; the image
    fields stay untyped, :func:`_image_of` checks them."""

    shapes: list[_PlainShape]
    imagePath: Any = None
    imageData: Any = None
    imageWidth: Any = None
    imageHeight: Any = None

    def header(self) -> dict:
        return {"imagePath": self.imagePath, "imageData": self.imageData,
                "imageWidth": self.imageWidth, "imageHeight": self.imageHeight}


_parse_plain = msgspec.json.Decoder(_PlainFile).decode


def read(inputs: list[Path], opts: ConvertOptions, report: Report):
    files = find_file_names(inputs, (".json",))
    job = partial(
        read_files,
        labels=frozenset(opts.labels) if opts.labels is not None else None,
        on_error=opts.on_error,
        ignore_as_crowd=opts.ignore_as_crowd,
        extract_dir=opts.extract_images,
        image_root=opts.image_root,
        render=opts.render_json,
        limits=opts.limits,
    )
    builder = DatasetBuilder(opts.labels)
    for parsed, rep in map_batches(job, files, opts.jobs, "labelme", opts.quiet):
        report.merge(rep)
        if parsed is not None:
            draft, columns = parsed
            columns.add_to(builder, draft)
    return builder.build()


Parsed = tuple[tuple[ImageDraft, Columns] | None, Report]


def read_files(batch: list[tuple[str | Path, Path]], render: bool = False, **options) -> list[Parsed]:
    """One result per ``(file, root)`` in ``batch``: the file's image and
    instance columns (None when the file is skipped) and its Report. Each
    file is parsed on its own, their shapes measured together
    (columns_of_images). ``options``: those of :func:`_entries_of`."""
    return read_then_measure(batch, partial(_entries_of, **options), partial(_measured, render=render))


def _measured(parsed: list[tuple[ImageDraft | None, ImageEntries]], render: bool) -> list[Parsed]:
    columns = iter(columns_of_images([im for draft, im in parsed if draft is not None], render))
    return [((draft, next(columns)) if draft is not None else None, im.rep) for draft, im in parsed]


def _entries_of(
    file_and_root: tuple[str | Path, Path],
    labels: frozenset[str] | None = None,
    on_error: str = "fail",
    ignore_as_crowd: bool = False,
    extract_dir: Path | None = None,
    image_root: Path | None = None,
    limits: Limits | None = None,
) -> tuple[ImageDraft | None, ImageEntries]:
    """The file's image and its instances as entries (no image when it is skipped)."""
    path, root = file_and_root
    limits = limits or Limits.default()
    rep = Report(on_error)
    skipped = None, ImageEntries([], 0, 0, path, rep)
    try:
        data = read_bytes(path, lambda size: limits.json_file(path, size))
    except OSError as e:
        rep.error(path, None, f"cannot read JSON: {e}")
        return skipped
    except ParseError as e:  # over the memory budget
        rep.error(e.path, e.item, e.reason)
        return skipped
    try:  # the common case, parsed and type-checked in one pass
        plain = _parse_plain(data)
        doc = plain.header()
    except (ValueError, RecursionError):  # masks, points, bad values, GB18030, deep nesting: plain JSON
        plain = None
        try:
            doc = parse_json(data)
        except ValueError as e:
            rep.error(path, None, f"cannot read JSON: {e}")
            return skipped
        if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
            rep.error(path, None, "not a labelme file: no 'shapes' list")
            return skipped

    image = _image_of(path, root, doc, rep, extract_dir, image_root, limits)
    if image is None:
        return skipped
    if isinstance(doc.get("flags"), dict) and any(doc["flags"].values()):
        rep.warn("labelme image flags (classification) not converted: COCO instances have no image labels", str(path))
    draft, width, height = image

    entries = _plain_entries(plain.shapes, labels) if plain is not None else None
    if entries is None:
        shapes = doc["shapes"] if plain is None else parse_json(data)["shapes"]
        entries = _checked_entries(shapes, path, rep, width, height, labels, ignore_as_crowd, limits)
    return draft, ImageEntries(entries, width, height, path, rep, limits.max_memory)


def _plain_entries(shapes: list[_PlainShape], labels: frozenset[str] | None) -> list[PolygonEntry] | None:
    """The instances of a file whose shapes are all polygons, rectangles,
    circles or oriented rectangles with valid geometry and known labels: the
    common case, without per-shape checks and messages. None when any shape
    needs them (:func:`_checked_entries` then reads the file, with the same
    result for valid shapes)."""
    groups: dict[object, PolygonEntry] = {}
    for i, s in enumerate(shapes):
        label, kind = s.label, s.shape_type or "polygon"
        if not label or label == IGNORE_LABEL or kind not in _PLAIN_SHAPES:
            return None
        if labels is not None and label not in labels:
            return None
        flat = list(chain.from_iterable(s.points))
        if kind != "polygon" or len(flat) < 6:
            flat = _polygon_of(kind, flat)
            if isinstance(flat, str):
                return None
        gid = s.group_id
        key = i if gid is None else (label, gid)
        entry = groups.get(key)
        if entry is None:
            groups[key] = PolygonEntry(label, [flat], [f"shape[{i}]"])
        else:
            entry.polys.append(flat)
            entry.items.append(f"shape[{i}]")
    return list(groups.values())


def _polygon_of(kind: str, flat: list[float]) -> list[float] | str:
    """The polygon of a polygon, rectangle (2 or 4 corners in any order),
    circle or oriented rectangle, or the reason it has none."""
    n = len(flat) // 2
    if kind == "rectangle":
        if n == 2:  # what labelme writes: two opposite corners
            x0, y0, x1, y1 = flat
            x0, x1 = (x0, x1) if x0 <= x1 else (x1, x0)
            y0, y1 = (y0, y1) if y0 <= y1 else (y1, y0)
        elif n == 4:
            xs, ys = flat[0::2], flat[1::2]
            x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        else:
            return f"rectangle has {n} points, needs 2 corners"
        if x1 <= x0 or y1 <= y0:
            return "rectangle has zero width or height"
        return [x0, y0, x1, y0, x1, y1, x0, y1]
    if kind == "circle":
        if n != 2:
            return f"circle has {n} points, needs centre and a point on it"
        cx, cy, px, py = flat
        r = math.hypot(px - cx, py - cy)
        return circle_polygon(cx, cy, r) if r != 0 else "circle has zero radius"
    if kind == "oriented_rectangle":
        return flat if n == 4 else f"oriented_rectangle has {n} points, needs 4"
    return flat if n >= 3 else f"polygon has {n} point(s), needs at least 3"


def _checked_entries(shapes: list, path: Path, rep: Report, width: int, height: int,
                     labels: frozenset[str] | None, ignore_as_crowd: bool, limits: Limits) -> list:
    """Every shape checked, with a message for each invalid or skipped one."""
    # Group shapes into instances: key -> [label, [(item, polygon)], [mask]]
    groups: dict[object, list] = {}
    for i, shape in enumerate(shapes):
        item = f"shape[{i}]"
        parsed = _parse_shape(shape, item, path, rep, width, height, limits)
        if parsed is None:
            continue
        label, kind, geom = parsed
        if label == IGNORE_LABEL and not ignore_as_crowd:
            rep.warn("__ignore__ shape dropped (use --ignore-as-crowd to keep it)", f"{path}:{item}")
            continue
        if labels is not None and label != IGNORE_LABEL and label not in labels:
            rep.error(path, item, f"label {label!r} is not in the labels file")
            continue
        gid = shape.get("group_id")
        if gid is not None and not isinstance(gid, (int, float, str)):
            rep.error(path, item, f"group_id must be a number or null, not {type(gid).__name__}")
            continue
        key = (label, gid) if gid is not None else i
        g = groups.get(key)
        if g is None:
            g = groups[key] = [label, [], []]
        if kind == "polygon":
            g[1].append((item, geom))
        else:
            g[2].append(geom)
    entries = []
    for label, items_polys, masks in groups.values():
        if not masks and label != IGNORE_LABEL:
            entries.append(PolygonEntry(label, [p for _, p in items_polys], [it for it, _ in items_polys]))
            continue
        # masks cannot become polygons without loss; crowd regions are RLE in COCO.
        # Measured in the box the group spans, never at the image's size.
        pieces = [p for p in masks if p.crop.size]
        boxes = [(p.x, p.y, p.x + p.crop.shape[1], p.y + p.crop.shape[0]) for p in pieces]
        polys_rle = None
        if items_polys:
            item = items_polys[0][0]
            try:
                for _, poly in items_polys:
                    limits.allocation(polygon_bytes(poly), "rasterising this polygon", path, item)
            except ParseError as e:
                rep.error(e.path, e.item, e.reason)
                continue
            polys_rle = polygons_rle([p for _, p in items_polys], height, width)
            x, y, w, h = rle_bbox(polys_rle)
            if w and h:
                boxes.append((x, y, x + w, y + h))
        x0, y0 = min((b[0] for b in boxes), default=0), min((b[1] for b in boxes), default=0)
        x1, y1 = max((b[2] for b in boxes), default=0), max((b[3] for b in boxes), default=0)
        try:
            limits.allocation((x1 - x0) * (y1 - y0) * BOX_DECODE_BYTES, "measuring this mask group", path,
                              None)
        except ParseError as e:
            rep.error(e.path, e.item, e.reason)
            continue
        m, origin = np.zeros((y1 - y0, x1 - x0), bool), (x0, y0)
        if polys_rle is not None and boxes:
            m |= rle_box_mask(polys_rle, (x0, y0, x1, y1))
        for p in pieces:
            y, x = p.y - origin[1], p.x - origin[0]
            m[y : y + p.crop.shape[0], x : x + p.crop.shape[1]] |= p.crop
        rle, bbox, area = mask_instance(m, origin, (height, width))
        if area == 0:
            rep.warn("empty mask shape skipped", str(path))
            continue
        entries.append(Instance(label, bbox, area, rle, 1 if label == IGNORE_LABEL else 0))
    return entries


def _flat_points(shape: dict, item: str, path: Path, rep: Report) -> list[float] | None:
    """The shape's points flattened to ``[x0, y0, x1, y1, ...]``, or None after rep.error."""
    pts = shape.get("points")
    try:
        flat = [float(v) for p in pts for v in p]
    except (TypeError, ValueError):
        flat = None
    if not flat or len(flat) != 2 * len(pts):
        rep.error(path, item, "'points' must be a non-empty list of [x, y] number pairs")
        return None
    if not math.isfinite(sum(flat)):
        rep.error(path, item, "'points' holds a non-finite number")
        return None
    return flat


def _parse_shape(shape, item: str, path: Path, rep: Report, width: int, height: int, limits: Limits):
    """(label, "polygon"|"mask", flat polygon list | MaskPiece) or None."""
    if not isinstance(shape, dict):
        rep.error(path, item, "shape is not an object")
        return None
    label = shape.get("label")
    if not isinstance(label, str) or not label:
        rep.error(path, item, "missing label")
        return None
    kind = shape.get("shape_type") or "polygon"
    if not isinstance(kind, str):
        rep.error(path, item, f"shape_type must be a string, not {type(kind).__name__}")
        return None
    if kind in NON_INSTANCE_SHAPES:
        rep.warn(f"{kind} shape skipped (not an instance)", f"{path}:{item}")
        return None
    flat = _flat_points(shape, item, path, rep)
    if flat is None:
        return None
    if kind in _PLAIN_SHAPES:
        poly = _polygon_of(kind, flat)
        if isinstance(poly, str):
            rep.error(path, item, poly)
            return None
        return label, "polygon", poly
    if kind == "mask":
        mask = _mask_of(shape, flat, item, path, rep, width, height, limits)
        return None if mask is None else (label, "mask", mask)
    rep.error(path, item, f"unknown shape_type {kind!r}")
    return None


def _image_of(path: Path, root: Path, doc: dict, rep: Report, extract_dir: Path | None, image_root: Path | None,
              limits: Limits):
    """ImageDraft with file name and displayed size, or None after rep.error."""
    raw_ref = doc.get("imagePath") or ""
    if not isinstance(raw_ref, str):
        rep.error(path, "imagePath", f"must be a string, not {type(raw_ref).__name__}")
        return None
    ref = raw_ref.replace("\\", "/")
    if ref.startswith("/") or ref[1:3] == ":/":  # POSIX, UNC (\\\\host) or drive-letter absolute path
        rep.warn("absolute imagePath: using its file name", str(path))
        ref = ref.rsplit("/", 1)[-1]
    image_data = doc.get("imageData") or None
    embedded = None
    folder = os.path.dirname(path)
    if ref and os.path.splitext(ref)[1].lower() in IMAGE_SUFFIXES:
        file_name = relative_name(os.path.join(folder, ref), root)
        # read only inside the input folder (paths.py): "../images/x.png" from an annotations/ folder
        # given alone is looked for under --image-root instead
        image_file = confined_name(root, file_name)
        if image_file is None and image_root is None:
            rep.warn("imagePath outside the input folder not read (pass --image-root)", f"{path}: {raw_ref!r}")
    else:
        image_file = None
        if image_data is None:
            rep.error(path, "imagePath", f"no usable imagePath ({raw_ref!r}) and no imageData")
            return None
        try:
            embedded = embedded_image(image_data)
        except Exception as e:
            rep.error(path, "imagePath", f"cannot decode embedded image: {e}")
            return None
        file_name = relative_name(os.path.splitext(path)[0] + embedded[1], root)

    width, height = doc.get("imageWidth"), doc.get("imageHeight")
    stored = is_side(width) and is_side(height)
    header = None
    if image_root is not None and (image_file is None or not os.path.isfile(image_file)):
        image_file = find_image(ref, [image_root]) or image_file
    if image_file is not None and os.path.isfile(image_file):
        try:
            header = image_size(image_file)
        except OSError as e:
            rep.warn("unreadable image file", f"{image_file}: {e}")
    if header is None and image_data is not None:
        try:
            embedded = embedded or embedded_image(image_data)
            header = embedded[2]
        except Exception as e:
            rep.error(path, "imageData", f"cannot decode embedded image: {e}")
            return None
    if stored:
        if header is not None and (width, height) != header[:2]:
            why = " (EXIF orientation)" if (width, height) == header[2:] else ""
            rep.warn(
                "stored image size differs from the displayed image size",
                f"{path}: stored {width}x{height}, image {header[0]}x{header[1]}{why}",
            )
    elif header is not None:
        width, height = header[0], header[1]
    else:
        rep.error(path, "imagePath", f"image size unknown: no imageWidth/imageHeight and {ref!r} not found (use --image-root)")
        return None
    if not size_fits(int(width), int(height), path, None, rep, limits.max_pixels):
        return None

    if extract_dir is not None and image_data is not None:
        target = confined(extract_dir, file_name)
        if target is None:
            rep.error(path, "imagePath", f"{raw_ref!r} leads outside --extract-images {extract_dir} (image names are "
                                         "relative to the input folder: convert from a folder that holds the images)")
            return None
        data = embedded[0] if embedded else base64.b64decode(image_data)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return ImageDraft(file_name, int(width), int(height), extra={"source": str(path)}), width, height


def _mask_of(shape, pts: list[float], item, path, rep: Report, width: int, height: int, limits: Limits):
    b64 = shape.get("mask")
    if not isinstance(b64, str) or not b64:
        rep.error(path, item, "mask shape without 'mask' data")
        return None
    from PIL import Image

    try:
        with pixel_limit(None), Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            mw, mh = im.size  # from the header: a PNG can declare billions of pixels in a few bytes
            if mw * mh > width * height:
                rep.error(path, item, f"mask PNG is {mw}x{mh}, larger than its {width}x{height} image")
                return None
            limits.allocation(mw * mh * 3, f"decoding a {mw}x{mh} mask PNG", path, item)
            crop = np.asarray(im.convert("L")) > 0
    except ParseError as e:  # over the memory budget
        rep.error(e.path, e.item, e.reason)
        return None
    except Exception as e:
        rep.error(path, item, f"cannot decode mask PNG: {e}")
        return None
    x0, y0 = int(min(pts[0::2])), int(min(pts[1::2]))
    h, w = crop.shape
    ys, xs = slice(max(y0, 0), min(y0 + h, height)), slice(max(x0, 0), min(x0 + w, width))
    if ys.start >= ys.stop or xs.start >= xs.stop:  # entirely outside the image
        return MaskPiece(0, 0, np.zeros((0, 0), bool))
    return MaskPiece(xs.start, ys.start, crop[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0])
