"""Axis-aligned boxes as COCO instances (the labelImg formats' only geometry).

A box becomes its 4-corner polygon as ``segmentation`` so that mask-based
tools and COCOeval's ``segm`` mode see the same region; ``area`` is the
polygon's pixel count (for integer corners exactly ``w * h``).
"""

from __future__ import annotations

from annot.geometry import polygon_areas, rectangle_polygon
from annot.model import Instance


def clip_box(xywh: list[float], width: int, height: int) -> list[float]:
    x, y, w, h = xywh
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    return [x0, y0, x1 - x0, y1 - y0]


def box_instances(boxes: list[tuple[str, list[float], int]], width: int, height: int) -> list[Instance]:
    """``boxes`` = ``(label, [x, y, w, h], iscrowd)``, already in COCO pixels."""
    polys = [[rectangle_polygon(*b)] for _, b, _ in boxes]
    areas = polygon_areas(polys, height, width)
    return [
        Instance(label, list(b), area, p, crowd)
        for (label, b, crowd), p, area in zip(boxes, polys, areas)
    ]
