"""Training: does annot's data pipeline keep the model busy, and what does
cpu-tiny learn from scratch in 5, 10 and 20 minutes?

    python benchmarks/train.py throughput [--steps 30] [--image-size 256] [--repeat 3]
    python benchmarks/train.py pennfudan [--minutes 5 10 20] [--seeds 0]
    python benchmarks/train.py shapes [--minutes 5] [--seeds 0 1 2]

``throughput``: training images/s of annot's loop (``annot.training``:
CocoInstances decoding COCO masks, the one-cycle Trainer) against a plain
torchvision training loop on the same Penn-Fudan images, the same model
(cpu-tiny) and the same batches (the loop of torchvision's detection
tutorial: PIL images, masks from the PedMasks PNGs, SGD); both interleaved,
``--repeat`` rounds. Goal (issue 18): annot >= 0.95x the plain loop.

``pennfudan``: Penn-Fudan's 170 images, the first 120 (sorted by name) to
train, the last 50 to test; cpu-tiny from random weights. For each time
budget the epochs that fit it are set from a measured epoch (one-cycle needs
the length up front), the last epoch is tested (segm and bbox AP, AP50 with
pycocotools), against the same network untrained. Goal: segm AP50 >= 0.30 in
20 minutes.

``shapes``: the synthetic shapes set (examples/shapes.py, 300 train / 100
test images, 128 px), the same measurement. Goal: segm AP >= 0.5 in 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from annot.training.data import CocoInstances, collate  # noqa: E402
from annot.training.loop import Recipe, Trainer  # noqa: E402
from annot.training.predictions import evaluate_model  # noqa: E402
from annot.training.recipe import ModelConfig, preset  # noqa: E402

PENNFUDAN = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "PennFudanPed"


def cpu_tiny(classes, image_size: int, channels: int | None = None) -> ModelConfig:
    p = preset("cpu-tiny")
    return ModelConfig(classes=classes, backbone=p["backbone"], norm=p["norm"], channels=channels or p["channels"],
                       min_stride=p["min_stride"], image_size=image_size, heads=dict(p["heads"]))


# later epochs are slower than the first (more positive RoIs reach the mask head as the model learns): the
# first epoch x this is what an epoch costs on average (shapes, cpu-tiny, 2026-12-01: 1.16 and 1.21 measured)
SLOWER_LATER = 1.2


def pennfudan_split():
    from pennfudan import pennfudan_coco

    doc = pennfudan_coco(PENNFUDAN)
    ids = [im["id"] for im in doc["images"]]
    return _subset(doc, set(ids[:120])), _subset(doc, set(ids[120:]))


def _subset(doc, ids):
    return {**doc, "images": [im for im in doc["images"] if im["id"] in ids],
            "annotations": [a for a in doc["annotations"] if a["image_id"] in ids]}


# -- throughput ------------------------------------------------------------------------------------------


class PlainPennFudan(torch.utils.data.Dataset):
    """torchvision's detection tutorial dataset: the PNG, the instance masks from PedMasks."""

    def __init__(self, root: Path, names: list[str]):
        self.root, self.names = root, names

    def __len__(self):
        return len(self.names)

    def __getitem__(self, k):
        name = self.names[k]
        img = np.asarray(Image.open(self.root / "PNGImages" / name).convert("RGB"))
        mask = np.asarray(Image.open(self.root / "PedMasks" / name.replace(".png", "_mask.png")))
        ids = np.unique(mask)[1:]
        masks = mask == ids[:, None, None]
        boxes = []
        for m in masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        return (torch.from_numpy(img).permute(2, 0, 1).float() / 255,
                {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.ones(len(ids), dtype=torch.int64),
                 "masks": torch.from_numpy(masks.astype(np.uint8))})


def plain_loop(model, dataset, order, batch_size: int) -> float:
    """The tutorial's loop; returns images/s."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate)
    opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9, weight_decay=1e-4)
    model.train()
    start = time.perf_counter()
    for images, targets in loader:
        loss = sum(model(list(images), list(targets)).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return len(order) / (time.perf_counter() - start)


def annot_loop(model, dataset, n: int, batch_size: int, seed: int) -> float:
    trainer = Trainer(model, dataset, Recipe(epochs=1, batch_size=batch_size, max_lr=0.005, seed=seed),
                      Path("/tmp/annot-bench-train"), order=lambda _n, s, e: list(range(n)))
    trainer.save = lambda: None  # the loop's cost, not the checkpoint's
    start = time.perf_counter()
    trainer.run()
    return n / (time.perf_counter() - start)


def throughput(args) -> None:
    train_doc, _ = pennfudan_split()
    n = args.steps * args.batch_size
    names = [Path(im["file_name"]).name for im in train_doc["images"]][:n]
    ids = {im["id"] for im in train_doc["images"] if Path(im["file_name"]).name in names}
    ours = CocoInstances(_subset(train_doc, ids), PENNFUDAN, ["pedestrian"])
    plain = PlainPennFudan(PENNFUDAN, names)
    config = cpu_tiny(["pedestrian"], args.image_size)
    rates = {"plain": [], "annot": []}
    for r in range(args.repeat):
        for which in (("plain", "annot") if r % 2 == 0 else ("annot", "plain")):
            torch.manual_seed(r)
            model = config.build()  # one scale: the same work for both loops
            rate = plain_loop(model, plain, list(range(n)), args.batch_size) if which == "plain" else \
                annot_loop(model, ours, n, args.batch_size, r)
            rates[which].append(rate)
            print(f"round {r + 1} {which:5}: {rate:.2f} images/s", flush=True)
    plain_rate, annot_rate = (float(np.median(rates[k])) for k in ("plain", "annot"))
    print(f"\nmedian of {args.repeat}: plain torchvision loop {plain_rate:.2f} images/s, annot {annot_rate:.2f} "
          f"images/s: {annot_rate / plain_rate:.3f}x (goal >= 0.95x)")


# -- learning against time -------------------------------------------------------------------------------


def learn(train_doc, test_doc, root: Path, classes, image_size: int, minutes: list[float], seeds: list[int],
          batch_size: int, max_lr: float, optimizer: str = "sgd", weight_decay: float = 1e-4,
          channels: int | None = None, heads: dict | None = None, clip: float | None = None) -> None:
    config = cpu_tiny(classes, image_size, channels)
    config = replace(config, heads={**config.heads, **(heads or {})})
    steps = math.ceil(len(train_doc["images"]) / batch_size)
    # the time of one epoch, measured (the first steps of a throwaway run)
    torch.manual_seed(0)
    probe = Trainer(config.build(train_scales=True), CocoInstances(train_doc, root, classes, flip=0.5),
                    Recipe(epochs=1, batch_size=batch_size, max_lr=max_lr / 10), Path("/tmp/annot-bench-train"))
    probe.save = lambda: None
    start = time.perf_counter()
    probe.run()
    epoch_s = time.perf_counter() - start
    print(f"one epoch ({len(train_doc['images'])} images, {steps} steps): {epoch_s:.1f} s", flush=True)
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        untrained = evaluate_model(config.build(), classes, test_doc, root)
        rows.append((seed, 0, 0, 0.0, untrained.coco["segm"]["AP"], untrained.coco["segm"]["AP50"],
                     untrained.coco["bbox"]["AP"], untrained.coco["bbox"]["AP50"]))
        print(f"seed {seed} untrained: segm AP {rows[-1][4]:.3f} AP50 {rows[-1][5]:.3f}", flush=True)
        for budget in minutes:
            epochs = max(1, int(budget * 60 / (epoch_s * SLOWER_LATER)))
            torch.manual_seed(seed)
            trainer = Trainer(config.build(train_scales=True),
                              CocoInstances(train_doc, root, classes, flip=0.5, seed=seed),
                              Recipe(epochs=epochs, batch_size=batch_size, max_lr=max_lr, seed=seed,
                                     optimizer=optimizer, weight_decay=weight_decay, clip_grad_norm=clip),
                              Path("/tmp/annot-bench-train"))
            trainer.save = lambda: None
            start = time.perf_counter()
            trainer.run()
            took = time.perf_counter() - start
            ev = evaluate_model(trainer.model, classes, test_doc, root)
            rows.append((seed, budget, epochs, took, ev.coco["segm"]["AP"], ev.coco["segm"]["AP50"],
                         ev.coco["bbox"]["AP"], ev.coco["bbox"]["AP50"]))
            print(f"seed {seed} {budget:g} min ({epochs} epochs, trained {took / 60:.1f} min): segm AP "
                  f"{rows[-1][4]:.3f} AP50 {rows[-1][5]:.3f}, bbox AP {rows[-1][6]:.3f} AP50 {rows[-1][7]:.3f}",
                  flush=True)
    print("\n| seed | budget | epochs | trained | segm AP | segm AP50 | bbox AP | bbox AP50 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seed, budget, epochs, took, *aps in rows:
        label = "untrained" if budget == 0 else f"{budget:g} min"
        print(f"| {seed} | {label} | {epochs} | {took / 60:.1f} min | " + " | ".join(f"{a:.3f}" for a in aps) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--steps", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--image-size", type=int, default=256)
    t.add_argument("--repeat", type=int, default=3)
    tiny = preset("cpu-tiny")
    for name, size in (("pennfudan", 256), ("shapes", 128)):
        p = sub.add_parser(name)
        p.add_argument("--minutes", type=float, nargs="+", default=[5, 10, 20] if name == "pennfudan" else [5])
        p.add_argument("--seeds", type=int, nargs="+", default=[0])
        p.add_argument("--batch-size", type=int, default=4)
        p.add_argument("--image-size", type=int, default=size)
        p.add_argument("--max-lr", type=float, default=tiny["max_lr"])
        p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
        p.add_argument("--channels", type=int, default=None, help="FPN and head width [default: cpu-tiny's]")
        p.add_argument("--weight-decay", type=float, default=1e-4)
        p.add_argument("--heads", type=json.loads, default={}, help="torchvision MaskRCNN options over cpu-tiny's, "
                                                                   "as JSON")
        p.add_argument("--clip", type=float, default=tiny["clip_grad_norm"], help="gradient norm clipping")
    args = ap.parse_args()
    print("options:", vars(args), flush=True)
    torch.set_num_threads(torch.get_num_threads())
    if args.what == "throughput":
        throughput(args)
    elif args.what == "pennfudan":
        train_doc, test_doc = pennfudan_split()
        learn(train_doc, test_doc, PENNFUDAN, ["pedestrian"], args.image_size, args.minutes, args.seeds,
              args.batch_size, args.max_lr, args.optimizer, args.weight_decay, args.channels, args.heads, args.clip)
    else:
        import tempfile

        from shapes import shapes_coco

        root = Path(tempfile.mkdtemp(prefix="annot-shapes-"))
        train_doc = shapes_coco(root / "train", 300, 128, seed=0)
        test_doc = shapes_coco(root / "test", 100, 128, seed=1)
        # one root: the file names differ by folder
        for doc, folder in ((train_doc, "train"), (test_doc, "test")):
            for im in doc["images"]:
                im["file_name"] = f"{folder}/{im['file_name']}"
        learn(train_doc, test_doc, root, ["square", "disc", "triangle"], args.image_size, args.minutes,
              args.seeds, args.batch_size, args.max_lr, args.optimizer, args.weight_decay, args.channels, args.heads, args.clip)


if __name__ == "__main__":
    main()
