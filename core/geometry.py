"""Coordinate conventions and geometry, named once.

All of annot works in COCO's convention: 0-based *continuous* pixel
coordinates, ``(0, 0)`` is the top-left corner of the top-left pixel and a box
``[x, y, w, h]`` covering pixels ``0..9`` is ``[0, 0, 10, 10]``. Other tools'
conventions are converted at the edges with :func:`box_to_xywh` and
:func:`xywh_to_box`; nothing else in the code base does box arithmetic.

Areas and mask bboxes come from pycocotools so that they agree with COCOeval.
"""

from __future__ import annotations

import math
from enum import Enum
from functools import lru_cache

import numpy as np
from pycocotools import mask as mask_utils


class BoxMode(Enum):
    XYWH = "xywh"  # COCO: top-left corner + size, pixels
    XYXY = "xyxy"  # two corners, pixels (labelImg VOC as it writes, labelme rectangle)
    VOC1 = "voc1"  # official PASCAL VOC: 1-based inclusive pixel indices
    CXCYWH_REL = "cxcywh_rel"  # YOLO: centre + size, fractions of the image
    CXCYWH = "cxcywh"  # CreateML: centre + size, pixels
    XYWH_PERCENT = "xywh_percent"  # Label Studio: top-left + size, percent of the image


def box_to_xywh(box, mode: BoxMode, width: float = 0, height: float = 0) -> list[float]:
    a, b, c, d = (float(v) for v in box)
    if mode is BoxMode.XYWH:
        return [a, b, c, d]
    if mode is BoxMode.XYXY:
        x0, x1 = min(a, c), max(a, c)
        y0, y1 = min(b, d), max(b, d)
        return [x0, y0, x1 - x0, y1 - y0]
    if mode is BoxMode.VOC1:
        # pixel indices xmin..xmax inclusive, counted from 1
        return [a - 1, b - 1, c - a + 1, d - b + 1]
    if mode is BoxMode.CXCYWH_REL:
        w, h = c * width, d * height
        return [a * width - w / 2, b * height - h / 2, w, h]
    if mode is BoxMode.CXCYWH:
        return [a - c / 2, b - d / 2, c, d]
    if mode is BoxMode.XYWH_PERCENT:
        return [a * width / 100, b * height / 100, c * width / 100, d * height / 100]
    raise ValueError(mode)


def xywh_to_box(box, mode: BoxMode, width: float = 0, height: float = 0) -> list[float]:
    x, y, w, h = (float(v) for v in box)
    if mode is BoxMode.XYWH:
        return [x, y, w, h]
    if mode is BoxMode.XYXY:
        return [x, y, x + w, y + h]
    if mode is BoxMode.VOC1:
        return [x + 1, y + 1, x + w, y + h]
    if mode is BoxMode.CXCYWH_REL:
        return [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height]
    if mode is BoxMode.CXCYWH:
        return [x + w / 2, y + h / 2, w, h]
    if mode is BoxMode.XYWH_PERCENT:
        return [x * 100 / width, y * 100 / height, w * 100 / width, h * 100 / height]
    raise ValueError(mode)


# --- polygons -----------------------------------------------------------------


def rectangle_polygon(x: float, y: float, w: float, h: float) -> list[float]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def rotated_rectangle(x: float, y: float, w: float, h: float, degrees: float) -> list[float]:
    """Corners of a ``w x h`` box whose top-left corner is ``(x, y)``, rotated
    clockwise on screen (y points down) by ``degrees`` about that corner.

    This is Label Studio's rectangle: it stores the rotated top-left corner and
    the unrotated size; all in pixels here (rotating in percent space would
    shear the box on non-square images).
    """
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    out = []
    for dx, dy in ((0.0, 0.0), (w, 0.0), (w, h), (0.0, h)):
        out += [x + dx * c - dy * s, y + dx * s + dy * c]
    return out


def rectangle_of(poly: list[float], tol: float = 1e-6) -> tuple[float, float, float, float, float] | None:
    """Inverse of :func:`rotated_rectangle`: ``(x, y, w, h, degrees)`` when the
    4-point polygon is a rectangle (any rotation), else None. The first point
    is the anchor corner and ``degrees`` in ``[0, 360)`` the direction of the
    edge leaving it clockwise, so Label Studio boxes come back exactly as they
    were drawn. An axis-aligned rectangle is returned with 0 and its top-left
    corner whatever the point order."""
    if len(poly) != 8:
        return None
    # Plain floats: on 8 numbers numpy's per-call cost is ten times the arithmetic.
    p = [(float(poly[k]), float(poly[k + 1])) for k in (0, 2, 4, 6)]
    e = _edges(p)
    lengths = [math.hypot(dx, dy) for dx, dy in e]
    scale = max(max(lengths), 1.0)
    if min(lengths) <= tol * scale:
        return None
    nxt = e[1:] + e[:1]
    if (max(abs(a[0] * b[0] + a[1] * b[1]) for a, b in zip(e, nxt)) > tol * scale * scale
            or abs(lengths[0] - lengths[2]) > tol * scale):
        return None
    if all(abs(dx) <= tol * scale or abs(dy) <= tol * scale for dx, dy in e):
        xs, ys = [x for x, _ in p], [y for _, y in p]
        x0, y0 = min(xs), min(ys)
        return x0, y0, max(xs) - x0, max(ys) - y0, 0.0
    # Make the corner order clockwise on screen, keeping the first point first:
    # it is the corner the rectangle is anchored at (Label Studio's x, y).
    if sum(a[0] * b[1] - a[1] * b[0] for a, b in zip(e, nxt)) < 0:
        p = [p[0], p[3], p[2], p[1]]
        e = _edges(p)
    (wx, wy), (hx, hy) = e[0], e[1]
    return p[0][0], p[0][1], math.hypot(wx, wy), math.hypot(hx, hy), math.degrees(math.atan2(wy, wx)) % 360.0


def _edges(p: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x1 - x0, y1 - y0) for (x0, y0), (x1, y1) in zip(p, p[1:] + p[:1])]


MAX_CIRCLE_VERTICES = 8192  # keeps the 1 px bound up to r ~ 13.6 million px, far beyond any image


def circle_polygon(cx: float, cy: float, r: float, max_error: float = 1.0) -> list[float]:
    """Inscribed regular polygon whose chords stay within ``max_error`` px of the
    circle. The vertex count is a multiple of 4 so the four extreme points are
    vertices and the polygon's bbox is exactly the circle's."""
    r = abs(r)
    if r <= max_error:
        n = 8
    else:
        step = math.acos(1.0 - max_error / r)  # 0 once max_error / r is below float precision
        n = max(8, math.ceil(math.pi / step)) if step > 0 else MAX_CIRCLE_VERTICES
    n = min(4 * math.ceil(n / 4), MAX_CIRCLE_VERTICES)
    return (_unit_circle(n) * r + (cx, cy)).ravel().tolist()


@lru_cache(maxsize=256)
def _unit_circle(n: int) -> np.ndarray:
    t = np.arange(n) * (2 * math.pi / n)
    return np.stack([np.cos(t), np.sin(t)], 1)


def polygons_bbox(polys) -> list[float]:
    """Envelope ``[x, y, w, h]`` of flat polygons (lists or 1-D arrays)."""
    if all(type(p) is list for p in polys):  # what readers hold: min/max beat numpy's call cost
        x0, y0 = min(min(p[0::2]) for p in polys), min(min(p[1::2]) for p in polys)
        x1, y1 = max(max(p[0::2]) for p in polys), max(max(p[1::2]) for p in polys)
        return [float(x0), float(y0), float(x1) - x0, float(y1) - y0]
    a = np.asarray(polys[0], dtype=np.float64) if len(polys) == 1 else np.concatenate(
        [np.asarray(p, dtype=np.float64) for p in polys])
    xs, ys = a[0::2], a[1::2]
    x0, y0 = float(xs.min()), float(ys.min())
    return [x0, y0, float(xs.max()) - x0, float(ys.max()) - y0]


def polygon_areas(groups: list[list], height: int, width: int) -> list[float]:
    """Pixel areas (pycocotools rasterisation) of several instances at once.

    ``groups[i]`` is the list of polygons of instance i; polygons of one
    instance are merged (union) before counting. One pycocotools call per
    image keeps this on the fast path.
    """
    flat = [p for g in groups for p in g]
    if not flat:
        return []
    rles = mask_utils.frPyObjects(flat, height, width)
    if len(flat) > len(groups):
        merged, k = [], 0
        for g in groups:
            n = len(g)
            merged.append(rles[k] if n == 1 else mask_utils.merge(rles[k : k + n], intersect=False))
            k += n
        rles = merged
    return rle_areas(rles)


# pycocotools 2.0.x ``area`` sizes its output with ``np.array((n,), dtype=np.uint8)``,
# which NumPy 2 refuses for n > 255 (OverflowError): more RLEs go in slices.
_AREA_SLICE = 255


def rle_areas(rles: list) -> list[float]:
    """``mask_utils.area`` of a list of RLEs, any length, as floats."""
    return [float(a) for k in range(0, len(rles), _AREA_SLICE) for a in mask_utils.area(rles[k : k + _AREA_SLICE])]


# --- masks and RLE ------------------------------------------------------------


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a 2-D mask, ``counts`` as str (JSON-ready)."""
    # pycocotools wants Fortran order uint8
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def rle_area_bbox(rle: dict) -> tuple[float, list[float]]:
    r = _rle_bytes(rle)
    return float(mask_utils.area(r)), [float(v) for v in mask_utils.toBbox(r)]


def _rle_bytes(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        h, w = rle["size"]
        return mask_utils.frPyObjects(rle, h, w)
    if isinstance(counts, str):
        return {"size": rle["size"], "counts": counts.encode("ascii")}
    return rle


def compress_rle(rle: dict) -> dict:
    r = _rle_bytes(rle)
    return {"size": list(r["size"]), "counts": r["counts"].decode("ascii")}


def rle_counts(rle: dict) -> np.ndarray:
    """The run lengths of an RLE (compressed string or list), as int64,
    decoded without pycocotools (which trusts them: counts that sum past
    height x width make its decoder write past its buffer).

    The compressed format (pycocotools' ``rleToString``): each count is a
    run of 6-bit characters offset by 48, 5 value bits each, bit 0x20 "more
    follows", bit 0x10 of the last the sign; from the fourth count on, the
    value is a difference to the count two places before.
    """
    counts = rle["counts"]
    if isinstance(counts, list):
        return np.asarray(counts, dtype=np.int64)
    raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    c = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if not len(c):
        return np.zeros(0, np.int64)
    if c.min() < 0 or c.max() > 63:
        raise ValueError("RLE counts string has characters outside pycocotools' alphabet")
    last = (c & 0x20) == 0
    if not last[-1]:
        raise ValueError("RLE counts string ends in the middle of a count")
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    length = ends - starts + 1
    if length.max() > 7:  # 35 bits: more than any count of a 2^32-pixel image needs
        raise ValueError("RLE counts string has a count longer than 7 characters")
    k = np.arange(len(c)) - np.repeat(starts, length)
    values = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    negative = (c[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * length[negative])
    out = values.copy()
    out[1::2] = np.cumsum(values[1::2])  # counts[m] += counts[m - 2] from m = 3 on
    out[2::2] = np.cumsum(values[2::2])
    return out


def rle_problem(rle: dict) -> str | None:
    """Why an RLE cannot be trusted to pycocotools, or None: its counts must
    be non-negative and sum to exactly height x width."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle_counts(rle)
    except (ValueError, TypeError, KeyError, UnicodeEncodeError, OverflowError) as e:
        return f"bad RLE: {e}"
    if len(counts) and counts.min() < 0:
        return "bad RLE: a negative run length"
    total = int(counts.sum())
    if total != h * w:
        return f"RLE counts sum to {total:,} pixels, not height x width = {h * w:,}"
    return None


def rle_box_mask(rle: dict, box: tuple[int, int, int, int]) -> np.ndarray:
    """The part of an RLE's mask inside ``box`` = (x0, y0, x1, y1), as a
    boolean (y1 - y0, x1 - x0) array: only that region is ever allocated
    (a 10x10 square on a 60,000 x 60,000 image costs 100 pixels, not 3.6
    GB). The runs are split at column boundaries (COCO RLE is column-major)
    and each piece inside the box marks its rows."""
    h = int(rle["size"][0])
    x0, y0, x1, y1 = box
    H, W = y1 - y0, x1 - x0
    counts = rle_counts(rle)
    ends = np.cumsum(counts)
    s, e = (ends - counts)[1::2], ends[1::2]  # foreground runs: [start, end) in column-major positions
    s, e = np.maximum(s, x0 * h), np.minimum(e, x1 * h)
    keep = e > s
    s, e = s[keep], e[keep]
    c0, c1 = s // h, (e - 1) // h
    n = c1 - c0 + 1
    col = np.repeat(c0, n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
    r0 = np.clip(np.maximum(np.repeat(s, n), col * h) - col * h, y0, y1) - y0
    r1 = np.clip(np.minimum(np.repeat(e, n), (col + 1) * h) - col * h, y0, y1) - y0
    ok = r1 > r0
    diff = np.zeros(W * H + 1, np.int32)
    base = (col[ok] - x0) * H
    np.add.at(diff, base + r0[ok], 1)
    np.add.at(diff, base + r1[ok], -1)
    return (np.cumsum(diff[:-1]) > 0).reshape(W, H).T


def polygons_rle(polys: list, height: int, width: int) -> dict:
    """One RLE (bytes counts) of the union of polygons, as pycocotools rasterises them."""
    return mask_utils.merge(mask_utils.frPyObjects([list(map(float, p)) for p in polys], height, width),
                            intersect=False)


def rle_bbox(rle: dict) -> tuple[int, int, int, int]:
    """An RLE mask's bounding box as whole pixels (x, y, w, h); zeros when empty."""
    x, y, w, h = (int(round(v)) for v in mask_utils.toBbox(_rle_bytes(rle)))
    return x, y, w, h


def mask_in_box(seg, height: int, width: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(the mask of polygons or an RLE inside its bounding box, (x, y) of the
    box's top-left pixel in the image). Never allocates the full image: an
    RLE is decoded in its box only; polygons are rasterised to an RLE first.
    An empty segmentation gives a (0, 0) mask."""
    if isinstance(seg, dict):
        rle = _rle_bytes(seg)
    else:
        polys = [p for p in seg if len(p) >= 6]
        if not polys:
            return np.zeros((0, 0), bool), (0, 0)
        rle = polygons_rle(polys, height, width)
    x, y, w, h = rle_bbox(rle)
    if w <= 0 or h <= 0:
        return np.zeros((0, 0), bool), (0, 0)
    return rle_box_mask(rle, (x, y, x + w, y + h)), (x, y)


def traced_polygons(seg, height: int, width: int, tolerance: float) -> list[list[float]]:
    """The outer contours of a segmentation's mask as COCO polygons, traced in
    the mask's bounding box only (see :func:`mask_in_box`)."""
    crop, (x, y) = mask_in_box(seg, height, width)
    if not crop.size:
        return []
    return [[v + (x if i % 2 == 0 else y) for i, v in enumerate(p)] for p in mask_to_polygons(crop, tolerance)]


# bytes per pixel of a mask's box that mask_in_box allocates (int32 marks, int64 running sum, bool)
BOX_DECODE_BYTES = 13


def segmentation_to_mask(seg, height: int, width: int) -> np.ndarray:
    """Binary mask (uint8, HxW) of polygons or RLE."""
    if isinstance(seg, dict):
        return mask_utils.decode(_rle_bytes(seg))
    polys = [p for p in seg if len(p) >= 6]
    if not polys:
        return np.zeros((height, width), np.uint8)
    rles = mask_utils.frPyObjects(polys, height, width)
    return mask_utils.decode(mask_utils.merge(rles, intersect=False))


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0) -> list[list[float]]:
    """Outer contours of a mask as COCO polygons (holes are not representable).

    Vertices lie on pixel corners (OpenCV traces pixel centres; shifting by
    half a pixel outward is not done: a traced polygon rasterises back to the
    same pixels under pycocotools within the boundary pixels).
    """
    import cv2

    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    out = []
    for c in contours:
        if tolerance > 0:
            c = cv2.approxPolyDP(c, tolerance, True)
        pts = c.reshape(-1, 2).astype(float)
        if len(pts) >= 3:
            out.append(pts.ravel().tolist())
    return out


def mask_instance(mask: np.ndarray, origin: tuple[int, int] = (0, 0),
                  size: tuple[int, int] | None = None) -> tuple[dict, list[float], float]:
    """(compressed RLE, bbox, area) of a 2-D mask (non-zero = inside), the same
    as pycocotools ``encode``, ``toBbox`` and ``area`` give.

    ``mask`` may be a region of a larger image, lying inside it: its top-left
    pixel at ``origin`` = (x, y) of an image of ``size`` = (height, width);
    the full-size mask is then never made. By default the mask is the image.

    A detection's mask covers a small part of its image, so instead of copying
    the whole image into Fortran order for ``encode``, the runs are found in the
    mask's bounding box only: every place where a column's value changes, as a
    position in the column-major image, sorted; run lengths are the gaps
    between them (a test compares with pycocotools on random and edge-case
    masks).
    """
    h, w = size or mask.shape
    ox, oy = origin
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(cols):
        counts, bbox, area = [h * w], [0.0, 0.0, 0.0, 0.0], 0
    else:
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        rows = np.flatnonzero(mask[:, c0:c1].any(axis=1))
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        box = mask[r0:r1, c0:c1].astype(bool, copy=False)
        # change (k, j): pixel (r0 + k, c0 + j) differs from the one above it (outside the box: background)
        changes = np.concatenate([box[:1], box[1:] != box[:-1], box[-1:]])
        k, j = np.divmod(np.flatnonzero(changes), c1 - c0)
        starts = np.sort((j + (c0 + ox)) * h + (k + (r0 + oy)))
        # the end of a column and the top of the next are one position: a run leaving at the bottom of
        # a column and one entering at the top of the next are the same run (both changes cancel)
        same = starts[1:] == starts[:-1]
        if same.any():
            keep = np.ones(len(starts), bool)
            keep[1:] &= ~same
            keep[:-1] &= ~same
            starts = starts[keep]
        ends = np.empty(len(starts) + 1, starts.dtype)
        ends[:-1], ends[-1] = starts, h * w
        counts = np.diff(ends, prepend=0).tolist()
        if counts[-1] == 0:  # the last pixel is inside: the last run is a foreground run
            counts.pop()
        area = int(np.count_nonzero(box))
        bbox = [float(c0 + ox), float(r0 + oy), float(c1 - c0), float(r1 - r0)]
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}, bbox, float(area)
