"""The predictor interface: what every model plugin provides.

A predictor turns images (and, for interactive models, prompts) into one
:class:`~annot.detections.Detections` per image. A loaded predictor is called
again and again, from several threads at once in a server: ``load`` takes
every setting (threshold, device, precision), ``predict`` takes only images
and prompts, and nothing a call computes is kept in the predictor or written
into its model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from annot.detections import Detections

DEFAULT_LABEL = "object"  # the class of a prompt that names none


@dataclass
class Prompt:
    """What a labeller gives an interactive model for one object.

    ``box`` is ``[x, y, w, h]`` in COCO pixels; points are ``(x, y)``,
    positive (on the object) or negative. To refine a region instead of
    starting over, ``mask`` is its previous mask ((H, W) bool, image pixels)
    and ``logits`` SAM's low-resolution logits of it ((256, 256), from
    ``Detections.data["mask_logits"]``) when SAM made it; ``region_id`` names
    the region (Label Studio's region id) so an answer can replace it.
    """

    box: list[float] | None = None
    positive: list[tuple[float, float]] = field(default_factory=list)
    negative: list[tuple[float, float]] = field(default_factory=list)
    label: str | None = None
    mask: np.ndarray | None = None
    logits: np.ndarray | None = None
    region_id: str | None = None


def prompt_classes(prompts: Sequence[Prompt]) -> tuple[tuple[str, ...], np.ndarray]:
    """(class names in order of first use, each prompt's class id): prompted
    models answer in the prompts' own labels."""
    labels = [p.label or DEFAULT_LABEL for p in prompts]
    names = tuple(dict.fromkeys(labels))
    index = {n: k for k, n in enumerate(names)}
    return names, np.array([index[lb] for lb in labels], np.int64)


@runtime_checkable
class Predictor(Protocol):
    name: str
    version: str
    device: str
    #: what it can do: "masks", "box_prompt", "point_prompt", "mask_prompt", "automatic", "trainable"
    capabilities: frozenset[str]
    #: the options ``load`` reads; the CLI refuses an option the model would ignore
    load_options: frozenset[str]

    def load(self, **options) -> None: ...

    def predict(self, images: list[np.ndarray], prompts: list[list[Prompt]] | None = None) -> list[Detections]:
        """``images`` are HxWx3 uint8 RGB; ``prompts[i]`` are image i's prompts."""
        ...
