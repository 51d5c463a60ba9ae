"""How far Mask R-CNN predictions move between devices and precisions.

    python benchmarks/agreement.py [--root PennFudanPed] [--images 8] [--backbone B] [--threshold 0.3]

The same seeded random weights and Penn-Fudan photos are run through
``MaskRCNNPredictor`` on the CPU in fp32 (the reference) and, on a GPU, in
fp32 (TF32 convolutions, PyTorch's default) and bf16 autocast. For each
reference detection the box of the same label with the highest IoU is its
match when that IoU exceeds 0.9; the script prints how many matched, the score
differences and the mask IoU of the matched pairs. Random weights give scores
bunched together, so small numeric differences reorder them: this measures
numeric agreement, not accuracy.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from annot.plugins.images import load_scaled
from annot.plugins.maskrcnn import MaskRCNNPredictor, build

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "PennFudanPed"


def predictions(model, images, device: str, precision: str, threshold: float):
    p = MaskRCNNPredictor()
    p.load(model=model, classes=["pedestrian"], device=device, score_threshold=threshold, precision=precision)
    return [p.predict([im])[0] for im in images]


def compare(ref, got) -> str:
    total = matched = 0
    score_diff, mask_iou = [], []
    for a, b in zip(ref, got):
        total += len(a.labels)
        if not len(a.labels) or not len(b.labels):
            continue
        iou = box_iou(torch.from_numpy(a.xyxy), torch.from_numpy(b.xyxy))
        same = torch.tensor([[la == lb for lb in b.labels] for la in a.labels])
        best, j = torch.where(same, iou, torch.zeros_like(iou)).max(1)
        for i in torch.nonzero(best > 0.9).flatten().tolist():
            k = int(j[i])
            matched += 1
            score_diff.append(abs(float(a.confidence[i]) - float(b.confidence[k])))
            union = (a.mask[i] | b.mask[k]).sum()
            mask_iou.append((a.mask[i] & b.mask[k]).sum() / max(union, 1))
    if not matched:
        return f"0/{total} reference detections matched"
    return (f"{matched}/{total} reference detections matched (box IoU > 0.9); score |diff| median "
            f"{np.median(score_diff):.1e}, max {np.max(score_diff):.1e}; mask IoU median {np.median(mask_iou):.4f}, "
            f"min {np.min(mask_iou):.4f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--backbone", default="resnet50_fpn_v2")
    ap.add_argument("--threshold", type=float, default=0.3)
    args = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    paths = sorted((args.root / "PNGImages").glob("*.png"))[: args.images]
    if not paths:
        raise SystemExit(f"no images under {args.root}/PNGImages")
    images = [load_scaled(p, 2048)[0] for p in paths]
    torch.manual_seed(0)
    model = build(args.backbone, 2)
    ref = predictions(model, images, "cpu", "fp32", args.threshold)
    print(f"Mask R-CNN {args.backbone} (random weights), {len(images)} Penn-Fudan images, score >= {args.threshold}; "
          "reference: CPU fp32")
    others = [("cpu", "bf16")] if not torch.cuda.is_available() else [("cuda", "fp32"), ("cuda", "bf16")]
    for device, precision in others:
        print(f"  {device} {precision:5} {compare(ref, predictions(model, images, device, precision, args.threshold))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
