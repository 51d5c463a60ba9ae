"""Batch prediction: decode in DataLoader workers, predict in batches, keep going.

Images are decoded (EXIF, odd modes, huge-image downscaling) by
:func:`~annot.plugins.images.load_scaled` inside ``torch.utils.data``
workers, so the model never waits on JPEG decoding; batches reach the model as
lists (images keep their own sizes). Prompts (boxes, points) are given in
displayed-image pixels and scaled with the image; masks come back at the
displayed size.

One bad image never aborts the run: an unreadable file is reported by its
worker; when the model fails on a batch, the batch is retried image by image so
only the image that fails is reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from annot.detections import MASK_LOGITS, MASK_UNCERTAINTY, Detections, resize_mask
from annot.errors import AnnotError
from annot.model import Instance

from .images import load_scaled
from .inputs import InputImage
from .predictor import Prompt


@dataclass
class Decoded:
    item: InputImage
    image: np.ndarray | None  # model-sized RGB
    size: tuple[int, int] | None  # displayed (height, width)
    error: str | None = None


@dataclass
class Predicted:
    item: InputImage
    size: tuple[int, int] | None
    instances: list[Instance] | None
    error: str | None = None
    columns: dict[str, tuple[str, ...]] | None = None  # names of the columns of 2-D extras (class_probs)
    empty: int = 0  # detections whose mask came out empty, left out


class _Files(Dataset):
    def __init__(self, items: list[InputImage], max_side: int | None):
        self.items, self.max_side = items, max_side

    def __len__(self):
        return len(self.items)

    def __getitem__(self, k):
        item = self.items[k]
        try:
            image, size = load_scaled(item.path, self.max_side)
        except AnnotError as e:
            return item, None, None, str(e)
        return item, torch.from_numpy(np.ascontiguousarray(image)), size, None  # tensors cross in shared memory


def decoded_batches(items: list[InputImage], batch_size: int, workers: int, max_side: int | None,
                    pin_memory: bool = False) -> Iterator[list[Decoded]]:
    loader = DataLoader(_Files(items, max_side), batch_size=batch_size, num_workers=workers, collate_fn=list,
                        prefetch_factor=2 if workers else None, pin_memory=pin_memory)
    for batch in loader:
        yield [Decoded(it, None if im is None else im.numpy(), size, err) for it, im, size, err in batch]


def scale_prompt(p: Prompt, sx: float, sy: float, size: tuple[int, int]) -> Prompt:
    """``p`` on the image scaled by (sx, sy) to ``size`` = (height, width)."""
    if sx == sy == 1.0:
        return p
    return replace(p, box=None if p.box is None else [p.box[0] * sx, p.box[1] * sy, p.box[2] * sx, p.box[3] * sy],
                   positive=[(x * sx, y * sy) for x, y in p.positive],
                   negative=[(x * sx, y * sy) for x, y in p.negative],
                   mask=None if p.mask is None else resize_mask(p.mask, size))


class BatchPredictor:
    """``predictor`` (and an optional box-prompted ``refiner``) over files.

    ``prompts``: image name -> its prompts (prompt-driven models); an image
    without prompts yields no instances.
    """

    def __init__(self, predictor, refiner=None, prompts: dict[str, list[Prompt]] | None = None,
                 batch_size: int = 4, workers: int = 2, max_side: int | None = 2048, pin_memory: bool = False):
        self.predictor, self.refiner, self.prompts = predictor, refiner, prompts
        self.batch_size, self.workers, self.max_side, self.pin_memory = batch_size, workers, max_side, pin_memory

    def run(self, items: list[InputImage]) -> Iterator[Predicted]:
        for batch in decoded_batches(items, self.batch_size, self.workers, self.max_side, self.pin_memory):
            good = [d for d in batch if d.error is None]
            for d in batch:
                if d.error is not None:
                    yield Predicted(d.item, None, None, d.error)
            if good:
                yield from self._predict(good)

    def _predict(self, batch: list[Decoded]) -> list[Predicted]:
        try:
            prompts = None if self.prompts is None else [self._prompts(d) for d in batch]
            dets = self._model([d.image for d in batch], prompts)
        except Exception as e:
            if len(batch) > 1:  # find the image that fails; the others still count
                return [p for d in batch for p in self._predict([d])]
            return [Predicted(batch[0].item, batch[0].size, None,
                              f"{batch[0].item.path}: model failed: {type(e).__name__}: {e}")]
        out = []
        for d, det in zip(batch, dets):
            instances = det.to_instances(d.size)
            out.append(Predicted(d.item, d.size, instances, columns=det.columns, empty=len(det) - len(instances)))
        return out

    def _prompts(self, d: Decoded) -> list[Prompt]:
        sx, sy = d.image.shape[1] / d.size[1], d.image.shape[0] / d.size[0]
        return [scale_prompt(p, sx, sy, d.image.shape[:2]) for p in self.prompts.get(d.item.name, [])]

    def _model(self, images: list[np.ndarray], prompts) -> list[Detections]:
        dets = self.predictor.predict(images, prompts)
        if self.refiner is None:
            return dets
        return [refine(d, r) for d, r in zip(dets, self.refiner.predict(images, [box_prompts(d) for d in dets]))]


def box_prompts(d: Detections) -> list[Prompt]:
    """Each detection's box as a prompt labelled with its class."""
    return [Prompt(box=box, label=label) for box, label in zip(d.xywh.tolist(), d.labels)]


def refine(d: Detections, r: Detections) -> Detections:
    """``d`` with the masks (and their boxes) ``r`` found from its boxes; the
    class, score and class distribution stay the detector's. The detector's
    mask uncertainty described its own masks and goes; the refiner's extras
    come instead (SAM's IoU estimate), but not SAM's logits."""
    data = {k: v for k, v in d.data.items() if k != MASK_UNCERTAINTY}
    data.update((k, v) for k, v in r.data.items() if k != MASK_LOGITS)
    return replace(d, xyxy=r.xyxy, mask=r.mask, data=data)
