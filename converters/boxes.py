"""Axis-aligned boxes as COCO instances (the labelImg formats' only geometry).

A box becomes its 4-corner polygon as ``segmentation`` so that mask-based
tools and COCOeval's ``segm`` mode see the same region; ``area`` is the
polygon's pixel count (for integer corners exactly ``w * h``). YOLO
segmentation polygons are measured the same way.
"""

from __future__ import annotations

from annot.geometry import polygon_areas, rectangle_polygon
from annot.model import Instance
from annot.report import Report


def clip_box(xywh: list[float], width: int, height: int) -> list[float]:
    x, y, w, h = xywh
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    return [x0, y0, x1 - x0, y1 - y0]


def fit_box(xywh: list[float], width: int, height: int, path, item: str, rep: Report) -> list[float] | None:
    """The box clipped to the image (counted as a warning when it had to be),
    or None after an error when no part of it lies inside the image."""
    clipped = clip_box(xywh, width, height)
    if clipped == xywh:
        return clipped
    # boxes made from relative coordinates land a rounding error past the border (68.99999999999999 + 193
    # against 262): not worth a warning
    if all(abs(a - b) <= 1e-6 * max(width, height) for a, b in zip(clipped, xywh)):
        return clipped
    if clipped[2] <= 0 or clipped[3] <= 0:
        rep.error(path, item, f"box {xywh} lies outside the {width}x{height} image")
        return None
    rep.warn("boxes outside the image clipped to its border", f"{path}:{item}")
    return clipped


def box_instances(boxes: list[tuple[str, list[float], int, str]], width: int, height: int, path,
                  rep: Report) -> list[Instance]:
    """``boxes`` = ``(label, [x, y, w, h], iscrowd, item)``, already in COCO
    pixels and inside the image."""
    return polygon_instances([(label, rectangle_polygon(*b), list(b), crowd, item) for label, b, crowd, item in boxes],
                             width, height, path, rep)


def polygon_instances(shapes: list[tuple[str, list[float], list[float], int, str]], width: int, height: int, path,
                      rep: Report) -> list[Instance]:
    """``shapes`` = ``(label, flat polygon, bbox, iscrowd, item)``, measured
    with one pycocotools call. A shape that covers no pixel (a sliver between
    pixel centres, collinear points) is an error for its item."""
    areas = polygon_areas([[p] for _, p, _, _, _ in shapes], height, width)
    out = []
    for (label, poly, bbox, crowd, item), area in zip(shapes, areas):
        if area <= 0 or bbox[2] <= 0 or bbox[3] <= 0:
            rep.error(path, item, "shape covers no pixel inside the image")
            continue
        out.append(Instance(label, bbox, area, [poly], crowd))
    return out
