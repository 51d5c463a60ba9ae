"""SAM latency: encoder per image, decoder per click, and a cached click through annot.

    python benchmarks/sam.py [--model-type vit_b] [--checkpoint PATH] [--device cpu|cuda] [--clicks 20]

Without a checkpoint the model has random weights: timings are the same, the
masks meaningless. Compares ``SamPlugin.predict`` on an image whose embedding
is cached (what every click after the first costs in annot: the image's key,
the cached embedding to the device, the decoder) against the bare
``SamPredictor.predict`` decoder call on the same prompt, its image already
set. Goal: <= 1.2x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from segment_anything import SamPredictor, sam_model_registry

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


def measure(model_type: str = "vit_b", checkpoint: str | None = None, device: str = "cpu", clicks: int = 20,
            images: int = 2, precision: str = "auto") -> dict:
    """Median ms: encoder per image, bare decoder per click, cached click through annot."""
    sam = sam_model_registry[model_type](checkpoint=checkpoint)
    plugin = SamPlugin()
    plugin.load(sam=sam, device=device, precision=precision)
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(images + 1)]
    plugin.embed(pictures.pop())  # warm-up (CUDA context, cuBLAS/cuDNN set-up): not timed, not counted
    plugin.encoder_calls = 0
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    for im in pictures:
        plugin.embed(im)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    enc = (time.perf_counter() - t) * 1000 / len(pictures)
    prompt = Prompt(box=[200, 150, 120, 160], positive=[(260, 230)])
    plugin.predict([pictures[0]], [[prompt]])  # warms up
    reference = SamPredictor(plugin.sam)
    reference.set_image(pictures[0])
    bare = ms(lambda: reference.predict(point_coords=np.array([[260, 230]], np.float32), point_labels=np.array([1]),
                                        box=np.array([200, 150, 320, 310], np.float32), multimask_output=True), clicks)
    cached = ms(lambda: plugin.predict([pictures[0]], [[prompt]]), clicks)
    return {"encoder": enc, "bare": bare, "cached": cached, "encoder_calls": plugin.encoder_calls,
            "images": images, "clicks": clicks + 1}


def report(r: dict, model_type: str, device: str, checkpoint: str | None, precision: str = "auto") -> None:
    print(f"SAM {model_type} on {device} ({'checkpoint' if checkpoint else 'random weights'}, encoder precision "
          f"{precision}), 640x480 images")
    print(f"  encoder           {r['encoder']:9.1f} ms/image")
    print(f"  decoder (bare)    {r['bare']:9.1f} ms/click")
    print(f"  cached click      {r['cached']:9.1f} ms/click  = {r['cached'] / r['bare']:.2f}x the bare decoder "
          "(goal <= 1.2x)")
    print(f"  encoder calls: {r['encoder_calls']} for {r['images']} images and {r['clicks']} clicks")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-type", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--images", type=int, default=2)
    args = ap.parse_args()
    r = measure(args.model_type, args.checkpoint, args.device, args.clicks, args.images, args.precision)
    report(r, args.model_type, args.device, args.checkpoint, args.precision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
