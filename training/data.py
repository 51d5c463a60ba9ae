"""A COCO dataset as torchvision's detection models take it for training.

Each item is ``(image, target)``: the image a float tensor ``3 x H x W`` in
[0, 1] (RGB, EXIF orientation applied: the pixels annotations refer to), the
target a dict of ``boxes`` (``N x 4``, x1 y1 x2 y2), ``labels`` (``N``, 1-based:
0 is the background, as torchvision counts), ``masks`` (``N x H x W`` uint8)
and ``image_id``. Decisions, as detectron2's dataset mapper makes them:

- **Crowd regions** are left out of the targets: torchvision's Mask R-CNN
  has no "ignore" regions, and a crowd mask taught as one object is wrong.
- **Images without instances** stay, with empty targets: negatives teach the
  model what is not an object.
- Instances whose box covers no pixel are left out (torchvision refuses
  boxes of zero width or height).
- **Horizontal flip** (``flip=0.5`` for training) is decided per (seed,
  epoch, index), not by a global random state, so a resumed run and a
  DataLoader worker see the same flips as an uninterrupted single process.
  Scale jitter is the model's: torchvision's transform picks one of several
  ``min_size`` values per batch while training.

Image files are found under ``image_root`` through annot's path rule
(a ``file_name`` never leads out of it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from annot.geometry import segmentation_to_mask
from annot.paths import require_confined
from annot.plugins.images import load_rgb


class CocoInstances(torch.utils.data.Dataset):
    def __init__(self, doc: dict, image_root: Path, classes: list[str] | None = None, flip: float = 0.0,
                 seed: int = 0):
        names = {c["id"]: c["name"] for c in doc["categories"]}
        self.classes = list(classes) if classes is not None else [names[i] for i in sorted(names)]
        label_of_name = {n: k for k, n in enumerate(self.classes, start=1)}
        self.label_of = {cid: label_of_name[n] for cid, n in names.items() if n in label_of_name}
        self.images = sorted(doc["images"], key=lambda im: im["id"])
        self.anns: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        for a in doc["annotations"]:
            if not a.get("iscrowd") and a["category_id"] in self.label_of and a["image_id"] in self.anns:
                self.anns[a["image_id"]].append(a)
        self.image_root, self.flip, self.seed, self.epoch = Path(image_root), flip, seed, 0

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the flips are drawn for (call before each epoch, as with a DistributedSampler)."""
        self.epoch = epoch

    def classes_of(self, index: int) -> set[int]:
        """The labels (1-based) of an image's instances, without decoding it."""
        return {self.label_of[a["category_id"]] for a in self.anns[self.images[index]["id"]]}

    def __getitem__(self, index: int):
        im = self.images[index]
        path = require_confined(self.image_root, im["file_name"], "the dataset", f"images[{index}].file_name")
        pixels = load_rgb(path)
        h, w = pixels.shape[:2]
        if (h, w) != (im["height"], im["width"]):
            raise ValueError(f"{path}: {w}x{h}, the dataset says {im['width']}x{im['height']}")
        boxes, labels, masks = [], [], []
        for a in self.anns[im["id"]]:
            m = segmentation_to_mask(a["segmentation"], h, w) if a.get("segmentation") else None
            if m is not None and m.any():
                ys, xs = np.nonzero(m)
                box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            else:  # a box-only instance: its box filled as the mask
                x, y, bw, bh = a["bbox"]
                box = [x, y, x + bw, y + bh]
                m = np.zeros((h, w), np.uint8)
                m[int(y) : int(np.ceil(y + bh)), int(x) : int(np.ceil(x + bw))] = 1
            if box[2] - box[0] < 1 or box[3] - box[1] < 1 or not m.any():
                continue
            boxes.append(box)
            labels.append(self.label_of[a["category_id"]])
            masks.append(m)
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "masks": torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.uint8),
            "image_id": im["id"],
        }
        if self.flip and np.random.default_rng([self.seed, self.epoch, index]).random() < self.flip:
            image, target = _hflip(image, target, w)
        return image, target


def _hflip(image: torch.Tensor, target: dict, width: int):
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes, "masks": target["masks"].flip(-1)}


def collate(batch):
    """A list of (image, target) pairs -> (images, targets), as detection models take them."""
    return tuple(zip(*batch))


def class_balanced_weights(dataset: CocoInstances) -> list[float]:
    """Sampling weights for ``--balance``: an image weighs as its rarest
    class, ``1 / (images with that class)``; an image without instances
    weighs ``1 / (all images)``, so negatives keep a share."""
    counts: dict[int, int] = {}
    per_image = [dataset.classes_of(k) for k in range(len(dataset))]
    for classes in per_image:
        for c in classes:
            counts[c] = counts.get(c, 0) + 1
    n = max(len(dataset), 1)
    return [max((1 / counts[c] for c in classes), default=1 / n) for classes in per_image]
