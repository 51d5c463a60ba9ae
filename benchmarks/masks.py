"""Mask -> COCO RLE, bbox and area: ``annot.geometry.mask_instance`` against pycocotools.

    python benchmarks/masks.py [--masks 100] [--height 400] [--width 550] [--repeat 7]

What ``annot predict`` does for every detection: a full-image boolean mask
becomes a compressed RLE with its bbox and pixel area. The baseline is the
pycocotools path (``encode`` of the whole mask in Fortran order, then
``area`` and ``toBbox``). Seeded ellipses of two size ranges, each set checked
to give identical RLE strings, bboxes and areas before timing; median of
``--repeat``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from pycocotools import mask as mask_utils

from annot.geometry import mask_instance


def pycocotools_instance(mask: np.ndarray):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = float(mask_utils.area(rle))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    rle["counts"] = rle["counts"].decode("ascii")
    return rle, bbox, area


def ellipses(rng, n: int, h: int, w: int, max_w: int, max_h: int) -> np.ndarray:
    masks = np.zeros((n, h, w), bool)
    for m in masks:
        bw, bh = int(rng.integers(10, max_w)), int(rng.integers(20, max_h))
        x0, y0 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        yy, xx = np.mgrid[:bh, :bw]
        m[y0 : y0 + bh, x0 : x0 + bw] = ((xx + 0.5 - bw / 2) / (bw / 2)) ** 2 + ((yy + 0.5 - bh / 2) / (bh / 2)) ** 2 <= 1
    return masks


def median_ms(f, masks, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for m in masks:
            f(m)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--masks", type=int, default=100)
    ap.add_argument("--height", type=int, default=400)
    ap.add_argument("--width", type=int, default=550)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    h, w = args.height, args.width
    rng = np.random.default_rng(0)
    print(f"{args.masks} masks of {h}x{w}, median of {args.repeat}")
    for name, max_w, max_h in [("objects up to 1/4 of the width", w // 4, h // 2), ("objects up to the whole image", w, h)]:
        masks = ellipses(rng, args.masks, h, w, max_w, max_h)
        for m in masks:
            ours, ref = mask_instance(m), pycocotools_instance(m)
            if (ours[0]["counts"], ours[1], ours[2]) != (ref[0]["counts"], ref[1], ref[2]):
                raise SystemExit("mask_instance disagrees with pycocotools")
        base, annot = median_ms(pycocotools_instance, masks, args.repeat), median_ms(mask_instance, masks, args.repeat)
        print(f"  {name:32} pycocotools {base:7.1f} ms   annot {annot:7.1f} ms   {base / annot:4.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
