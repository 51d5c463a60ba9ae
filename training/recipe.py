"""What a training run is made of: the presets, and the model configuration a
checkpoint and a model version record.

``--preset cpu-tiny`` is a recipe that learns from scratch on a 2-core CPU
in minutes: MobileNetV3-FPN with trainable BatchNorm, the FPN starting at
stride 8 (torchvision's starts at 32: a 128 px image would leave it a 4x4
map), the FPN and heads 64 channels wide (4x the images/s of torchvision's
256 at 128 px), fewer proposals and sampled RoIs, small images. ``--preset gpu`` is torchvision's
Mask R-CNN v2 (ResNet-50-FPN) at its own scale. Any option given on the
command line wins over the preset. docs/training.md has the measurements
behind the numbers.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace

from annot.errors import AnnotError

# torchvision's MaskRCNN options (no weights depend on them) per preset
CPU_TINY_HEADS = {"rpn_pre_nms_top_n_train": 300, "rpn_post_nms_top_n_train": 150, "rpn_pre_nms_top_n_test": 300,
                  "rpn_post_nms_top_n_test": 150, "box_batch_size_per_image": 32}

PRESETS = {
    "cpu-tiny": {"backbone": "mobilenet_v3_large_fpn", "norm": "batch", "channels": 64, "min_stride": 8,
                 "image_size": 256,
                 "epochs": 16, "batch_size": 4, "max_lr": 0.04, "clip_grad_norm": 10.0, "heads": CPU_TINY_HEADS},
    "gpu": {"backbone": "resnet50_fpn_v2", "norm": "batch", "channels": 256, "min_stride": 4, "image_size": 800,
            "epochs": 12,
            "batch_size": 4, "max_lr": 0.02, "heads": {}},
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything that rebuilds the network: stored in each checkpoint and
    on the model version (``annot predict``/``serve`` load from it)."""

    classes: list[str]
    backbone: str = "mobilenet_v3_large_fpn"
    norm: str = "batch"
    channels: int = 256
    min_stride: int = 32  # MobileNet: where its FPN starts (8 for small images; 32 is torchvision's)
    image_size: int = 800  # the shorter side, as torchvision's min_size
    heads: dict = field(default_factory=dict)

    @property
    def max_size(self) -> int:
        return round(self.image_size * 1333 / 800)  # torchvision's ratio of max_size to min_size

    def build(self, train_scales: bool = False):
        """The network, random weights. ``train_scales``: scale jitter, the
        shorter side drawn per batch from 0.75..1x ``image_size`` (torchvision's
        transform draws a ``min_size`` per batch while training)."""
        from annot.plugins.maskrcnn import build

        sizes = tuple(sorted({round(self.image_size * f) for f in (0.75, 0.875, 1.0)})) if train_scales \
            else self.image_size
        return build(self.backbone, len(self.classes) + 1, sizes, self.max_size, norm=self.norm,
                     channels=self.channels, min_stride=self.min_stride, **self.heads)

    def checkpoint(self, state_dict: dict) -> dict:
        """What ``annot.plugins.maskrcnn`` loads."""
        return {"model": state_dict, "classes": list(self.classes), "backbone": self.backbone,
                "min_size": self.image_size, "max_size": self.max_size, "norm": self.norm,
                "channels": self.channels, "min_stride": self.min_stride}

    def to_dict(self) -> dict:
        return {"predictor": "maskrcnn", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def preset(name: str) -> dict:
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise AnnotError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


def median_short_side(images: list[dict]) -> int:
    return int(statistics.median(min(im["width"], im["height"]) for im in images)) if images else 0


def image_size_for(chosen: int | None, preset_size: int, images: list[dict]) -> int:
    """``--image-size``, else the preset's, never above the images' median
    shorter side (upscaling small images costs time and adds nothing)."""
    if chosen is not None:
        return chosen
    median = median_short_side(images)
    return min(preset_size, median) if median else preset_size


__all__ = ["PRESETS", "ModelConfig", "preset", "image_size_for", "replace"]
