"""Batch prediction throughput: ``annot predict --model maskrcnn`` against a plain loop; SAM latencies.

    python benchmarks/predict.py [--images N] [--backbone B] [--device cpu|cuda] [--batch-size N]
                                 [--repeat 3] [--score-threshold 0.5] [--no-sam]

Both sides use the same seeded random weights (nothing can be downloaded here;
timings do not depend on the weights, only the detection count does, which is
printed) and the same Penn-Fudan photos:

- plain loop: the torchvision model called on one image at a time in fp32,
  each image decoded with PIL inside the loop, outputs moved to the CPU;
- ``annot predict`` in-process: ``--format coco`` (masks RLE-encoded, JSON
  written atomically), DataLoader decoding workers, batches, autocast per
  ``--precision``.

Both timings include loading the checkpoint. Median of ``--repeat`` runs,
the two sides alternating. On a GPU annot runs in fp32 and in bf16 (goal:
>= 2x the plain loop). Then SAM (``benchmarks/sam.py``): encoder ms/image,
decoder ms/click, cached click ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from annot.cli import main as annot_main
from annot.plugins.maskrcnn import build

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sam as sam_bench  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "PennFudanPed"


def plain_loop(checkpoint: Path, paths: list[Path], device: str) -> None:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = build(state["backbone"], len(state["classes"]) + 1)  # a plain torchvision MaskRCNN
    model.load_state_dict(state["model"])
    model.eval().to(device)
    with torch.inference_mode():
        for p in paths:
            image = to_tensor(Image.open(p).convert("RGB")).to(device)
            out = model([image])[0]
            _ = {k: v.cpu() for k, v in out.items()}  # what a script does with the results: bring them back


def annot_predict(checkpoint: Path, folder: Path, out: Path, device: str, batch: int, precision: str,
                  threshold: float) -> None:
    code = annot_main(["predict", "--model", "maskrcnn", "--checkpoint", str(checkpoint), str(folder), "-o", str(out),
                       "--format", "coco", "--overwrite", "-q", "--device", device, "--batch-size", str(batch),
                       "--precision", precision, "--score-threshold", str(threshold)])
    if code:
        raise SystemExit(f"annot predict failed ({code})")


def timed(f) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    f()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> int:
    gpu = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT)
    ap.add_argument("--images", type=int, default=170 if gpu else 12)
    ap.add_argument("--backbone", default="resnet50_fpn_v2" if gpu else "mobilenet_v3_large_fpn")
    ap.add_argument("--device", default="cuda" if gpu else "cpu")
    ap.add_argument("--batch-size", type=int, default=8 if gpu else 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--score-threshold", type=float, default=0.5)
    ap.add_argument("--no-sam", action="store_true")
    ap.add_argument("--sam-images", type=int, default=2 if gpu else 1)
    args = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))

    paths = sorted((args.root / "PNGImages").glob("*.png"))[: args.images]
    if not paths:
        raise SystemExit(f"no images under {args.root}/PNGImages")
    work = Path(tempfile.mkdtemp(prefix="annot-predict-bench-"))
    folder = work / "images"
    folder.mkdir()
    for p in paths:
        (folder / p.name).symlink_to(p.resolve())
    torch.manual_seed(0)
    checkpoint = work / "random.pt"
    torch.save({"model": build(args.backbone, 2).state_dict(), "classes": ["pedestrian"], "backbone": args.backbone},
               checkpoint)

    sides = {"plain loop, fp32, 1 image per call": lambda: plain_loop(checkpoint, paths, args.device)}
    precisions = ["fp32", "bf16"] if args.device == "cuda" else ["fp32"]
    for prec in precisions:
        sides[f"annot predict, {prec}, batch {args.batch_size}"] = (
            lambda prec=prec: annot_predict(checkpoint, folder, work / f"{prec}.json", args.device, args.batch_size,
                                            prec, args.score_threshold))
    for f in sides.values():  # warm-up: CUDA context, cuDNN autotuning, page cache
        f()
    times = {k: [] for k in sides}
    for _ in range(args.repeat):
        for k, f in sides.items():
            times[k].append(timed(f))

    n = len(paths)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"Mask R-CNN {args.backbone} (random weights) on {name}: {n} Penn-Fudan images, median of {args.repeat}")
    base = n / statistics.median(times[next(iter(sides))])
    for k, ts in times.items():
        rate = n / statistics.median(ts)
        print(f"  {k:40} {rate:8.2f} img/s  {rate / base:5.2f}x")
    dets = len(orjson.loads((work / f"{precisions[-1]}.json").read_bytes()))
    print(f"  detections kept (score >= {args.score_threshold}): {dets / n:.1f} per image")

    if not args.no_sam:
        print()
        r = sam_bench.measure("vit_b", None, args.device, clicks=20, images=args.sam_images)
        sam_bench.report(r, "vit_b", args.device, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
