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

    def __post_init__(self):
        n = len(self.labels)
        if self.scores.shape != (n,) or self.masks.ndim != 3 or len(self.masks) != n:
            raise ValueError(f"Detections: {n} labels but scores {self.scores.shape} and masks {self.masks.shape}")

    def to_instances(self) -> list[Instance]:
        out = []
        for label, score, m in zip(self.labels, self.scores.tolist(), self.masks):
            rle, bbox, area = mask_instance(m)
            if area:
                out.append(Instance(label, bbox, area, rle, score=score))
        return out


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
