"""SAM latency: encoder per image, decoder per click, and a cached click through annot.

    python benchmarks/sam.py [--model-type vit_b] [--checkpoint PATH] [--device cpu|cuda] [--clicks 20]

Without a checkpoint the model has random weights: timings are the same, the
masks meaningless. Compares ``SamPlugin.predict`` on an image whose embedding
is cached (what every click after the first costs in annot) against the bare
``SamPredictor.predict`` decoder call on the same prompt. Goal: <= 1.2x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from segment_anything import sam_model_registry

from annot.plugins.predictor import Prompt
from annot.plugins.sam import SamPlugin


def ms(f, n: int) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-type", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--images", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    sam = sam_model_registry[args.model_type](checkpoint=args.checkpoint)
    plugin = SamPlugin()
    plugin.load(sam=sam, device=args.device)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(args.images)]
    t = time.perf_counter()
    for im in images:
        plugin.embed(im)
    enc = (time.perf_counter() - t) * 1000 / len(images)
    prompt = Prompt(box=[200, 150, 120, 160], positive=[(260, 230)])
    plugin.predict([images[0]], [[prompt]])  # sets the image; warms up
    bare = ms(lambda: plugin.predictor.predict(point_coords=np.array([[260, 230]], np.float32),
                                               point_labels=np.array([1]),
                                               box=np.array([200, 150, 320, 310], np.float32),
                                               multimask_output=True), args.clicks)
    cached = ms(lambda: plugin.predict([images[0]], [[prompt]]), args.clicks)
    print(f"SAM {args.model_type} on {args.device} ({'checkpoint' if args.checkpoint else 'random weights'}), "
          f"640x480 images")
    print(f"  encoder           {enc:9.1f} ms/image")
    print(f"  decoder (bare)    {bare:9.1f} ms/click")
    print(f"  cached click      {cached:9.1f} ms/click  = {cached / bare:.2f}x the bare decoder (goal <= 1.2x)")
    print(f"  encoder calls: {plugin.encoder_calls} for {len(images)} images and {args.clicks + 1} clicks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
