"""Small models built and trained inside the tests (no weights can be downloaded here).

A Mask R-CNN trained for a few steps on synthetic squares and discs gives
real, if poor, detections: enough to check that predictions carry their class
distributions and survive every output format. Its scores are low, so tests
predict with a score threshold of 0.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from annot.plugins.maskrcnn import build

CLASSES = ["square", "disc"]
SIZE = 96


def scene(rng, size: int = SIZE):
    """(RGB image, torchvision target) with one square and one disc."""
    image = np.full((size, size, 3), 40, np.uint8)
    masks, labels = [], []
    yy, xx = np.mgrid[:size, :size]
    for k in range(2):
        cx, cy, r = int(rng.integers(20, size - 20)), int(rng.integers(20, size - 20)), int(rng.integers(8, 16))
        m = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if k else ((abs(yy - cy) <= r) & (abs(xx - cx) <= r))
        image[m] = (220, 60, 60) if k else (60, 220, 60)
        masks.append(m)
        labels.append(k + 1)
    boxes = [[xx[m].min(), yy[m].min(), xx[m].max() + 1, yy[m].max() + 1] for m in masks]
    return image, {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels),
                   "masks": torch.tensor(np.stack(masks), dtype=torch.uint8)}


def train_maskrcnn(steps: int = 12, seed: int = 0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build("mobilenet_v3_large_fpn", len(CLASSES) + 1, min_size=SIZE, max_size=SIZE)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(steps):
        batch = [scene(rng) for _ in range(2)]
        losses = model([torch.as_tensor(im).permute(2, 0, 1).float() / 255 for im, _ in batch],
                       [t for _, t in batch])
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    return model.eval()


def save_checkpoint(model, path, classes=CLASSES) -> None:
    torch.save({"model": model.state_dict(), "classes": list(classes), "backbone": "mobilenet_v3_large_fpn",
                "min_size": SIZE, "max_size": SIZE}, path)


def write_scenes(folder, n: int, seed: int = 1) -> list:
    """``n`` scene PNGs in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        image, _ = scene(rng)
        paths.append(folder / f"scene{k:02d}.png")
        Image.fromarray(image).save(paths[-1])
    return paths
