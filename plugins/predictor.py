"""The predictor interface: what every model plugin provides.

A predictor turns images (and, for interactive models, prompts) into
:class:`Detections`: parallel arrays per image, the shape supervision and
detectron2 use, bridged to the COCO core by :meth:`Detections.to_instances`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from annot.geometry import mask_instance
from annot.model import Instance


@dataclass
class Prompt:
    """What a labeller gives an interactive model: a box (``[x, y, w, h]``,
    COCO pixels) and/or points, positive (on the object) or negative."""

    box: list[float] | None = None
    positive: list[tuple[float, float]] = field(default_factory=list)
    negative: list[tuple[float, float]] = field(default_factory=list)
    label: str | None = None


@dataclass
class Detections:
    """One image's predictions as parallel arrays (n = number of instances)."""

    labels: list[str]
    scores: np.ndarray  # (n,)
    masks: np.ndarray  # (n, H, W) bool
    class_probs: np.ndarray | None = None  # (n, classes), for active learning
    mask_quality: np.ndarray | None = None  # (n,) e.g. mean soft-mask confidence
    boxes: np.ndarray | None = None  # (n, 4) COCO xywh, for detectors (prompts for a refiner)

    def __post_init__(self):
        n = len(self.labels)
        if self.scores.shape != (n,) or self.masks.ndim != 3 or len(self.masks) != n:
            raise ValueError(f"Detections: {n} labels but scores {self.scores.shape} and masks {self.masks.shape}")

    def to_instances(self, size: tuple[int, int] | None = None) -> list[Instance]:
        """COCO instances (RLE masks); with ``size`` = (height, width) larger
        than the masks (the model saw a downscaled image) each mask is
        upsampled to it, one at a time."""
        out = []
        for k, (label, score, m) in enumerate(zip(self.labels, self.scores.tolist(), self.masks)):
            if size is not None and m.shape != tuple(size):
                m = resize_mask(m, size)
            rle, bbox, area = mask_instance(m)
            if area:
                extra = {}
                if self.class_probs is not None:
                    extra["class_probs"] = self.class_probs[k].tolist()
                if self.mask_quality is not None:
                    extra["mask_quality"] = float(self.mask_quality[k])
                out.append(Instance(label, bbox, area, rle, score=score, extra=extra or None))
        return out


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A boolean mask resampled to ``size`` = (height, width): bilinear on
    0/255, then thresholded at half, so upsampled edges are smooth."""
    import cv2

    up = cv2.resize(mask.astype(np.uint8) * 255, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return up >= 128


@runtime_checkable
class Predictor(Protocol):
    name: str
    version: str
    device: str
    #: what it can do: "masks", "box_prompt", "point_prompt", "automatic", "trainable"
    capabilities: frozenset[str]

    def load(self, **options) -> None: ...

    def predict(self, images: list[np.ndarray], prompts: list[list[Prompt]] | None = None) -> list[Detections]:
        """``images`` are HxWx3 uint8 RGB; ``prompts[i]`` are image i's prompts."""
        ...
