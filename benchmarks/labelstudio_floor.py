"""The floor under ``annot convert labelstudio coco``: the work no converter
that gives pycocotools areas can skip, and nothing else.

    python benchmarks/labelstudio_floor.py EXPORT.json [--jobs N]

Run as its own process (start-up counted, as for annot): annot's split of the
export and its pool of forked workers; each worker parses its tasks, turns
every region from percent into pixels (rotated boxes rotated) and rasterises
them with pycocotools ``frPyObjects`` + ``area``. No checks, no bboxes, no
categories, no output: what annot does on top of this is what this floor
leaves out. ``benchmarks/convert.py`` times it beside annot and the SDK.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pycocotools import mask as mask_utils

from annot.converters.discovery import load_json_items, parse_item
from annot.geometry import rectangle_polygon, rle_areas, rotated_rectangle
from annot.parallel import map_shared


def rasterise(items: list, start: int, stop: int) -> list[None]:
    """Parse ``items[start:stop]`` and rasterise their regions; one None per task."""
    by_size: dict[tuple[int, int], list] = {}  # pycocotools rasterises one image size per call
    for k in range(start, stop):
        for r in parse_item(items[k])["annotations"][0]["result"]:
            w, h, v = r["original_width"], r["original_height"], r["value"]
            polys = by_size.setdefault((h, w), [])
            if r["type"] == "polygonlabels":
                sx, sy = w / 100, h / 100
                polys.append([c for x, y in v["points"] for c in (x * sx, y * sy)])
            else:
                box = (v["x"] * w / 100, v["y"] * h / 100, v["width"] * w / 100, v["height"] * h / 100)
                rot = v.get("rotation") or 0
                polys.append(rotated_rectangle(*box, rot) if rot else rectangle_polygon(*box))
    for (h, w), polys in by_size.items():
        rle_areas(mask_utils.frPyObjects(polys, h, w))
    return [None] * (stop - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export", type=Path)
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args()
    items = load_json_items(args.export)
    done = sum(1 for _ in map_shared(rasterise, items, args.jobs, quiet=True))
    assert done == len(items)


if __name__ == "__main__":
    main()
