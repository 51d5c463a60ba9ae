"""torchvision Mask R-CNN as a predictor that keeps what active learning needs.

torchvision's ``RoIHeads.postprocess_detections`` keeps one score per
detection and drops the class distribution. :class:`ClassProbRoIHeads` lets it
run unchanged, then finds each kept box among the decoded per-class boxes of
the proposals (the box of proposal i for class c is unique) and attaches that
proposal's full softmax vector, so entropy and margin can be computed later.
The soft masks torchvision pastes are kept as a per-detection mask quality:
the mean probability inside the thresholded mask.

Backbones: ``resnet50_fpn_v2`` (torchvision's builder; the GPU default) and
``mobilenet_v3_large_fpn`` (Mask R-CNN on torchvision's MobileNetV3-FPN
backbone; the CPU default). Weights come from a checkpoint file
(``{"model": state_dict, "classes": [...], "backbone": ..., "min_size": ...,
"max_size": ...}``, the last three optional); torchvision's
COCO weights (``weights="coco"``) when the machine can download them or has
them in the torch cache.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection import (
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_V2_Weights,
    maskrcnn_resnet50_fpn_v2,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import boxes as box_ops

from annot.errors import AnnotError

from .precision import autocast
from .predictor import Detections

BACKBONES = ("resnet50_fpn_v2", "mobilenet_v3_large_fpn")
COCO_WEIGHTS = MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1


class ClassProbRoIHeads(RoIHeads):
    def postprocess_detections(self, class_logits, box_regression, proposals, image_shapes):
        boxes, scores, labels = super().postprocess_detections(class_logits, box_regression, proposals, image_shapes)
        probs = F.softmax(class_logits, -1).split([len(p) for p in proposals])
        decoded = self.box_coder.decode(box_regression, proposals).split([len(p) for p in proposals])
        self._class_probs = []
        for b, lab, p, d, shape in zip(boxes, labels, probs, decoded, image_shapes):
            d = box_ops.clip_boxes_to_image(d, shape)  # as the parent did before filtering
            cand = d[:, lab, :].permute(1, 0, 2)  # (kept, proposals, 4): each kept box's class column
            match = (cand - b[:, None, :]).abs().sum(-1).argmin(-1)
            self._class_probs.append(p[match])
        return boxes, scores, labels

    def forward(self, features, proposals, image_shapes, targets=None):
        result, losses = super().forward(features, proposals, image_shapes, targets)
        if not self.training:
            for r, cp in zip(result, self._class_probs):
                r["class_probs"] = cp
        return result, losses


def build(backbone: str, num_classes: int, min_size: int = 800, max_size: int = 1333) -> MaskRCNN:
    """A Mask R-CNN with random weights; ``num_classes`` counts the background."""
    if backbone == "resnet50_fpn_v2":
        model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes,
                                         min_size=min_size, max_size=max_size)
    elif backbone == "mobilenet_v3_large_fpn":
        bb = mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=None, fpn=True, trainable_layers=6)
        # three feature maps: anchors as torchvision's fasterrcnn_mobilenet_v3_large_fpn sets them
        anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
        model = MaskRCNN(bb, num_classes=num_classes, min_size=min_size, max_size=max_size,
                         rpn_anchor_generator=anchors)
    else:
        raise AnnotError(f"unknown backbone {backbone!r}; known: {', '.join(BACKBONES)}")
    model.roi_heads.__class__ = ClassProbRoIHeads
    return fp32_box_math(model)


def _to_fp32(_module, _inputs, output):
    if isinstance(output, torch.Tensor):
        return output.float()
    return type(output)(_to_fp32(None, None, o) for o in output)


def fp32_box_math(model: MaskRCNN) -> MaskRCNN:
    """Make the prediction heads hand fp32 to torchvision's box arithmetic.

    Under bf16 autocast the RPN and box heads output bf16, and torchvision
    decodes boxes in the dtype of the deltas: every proposal and output box is
    then rounded to bf16 (8 px steps at x = 1000; measured: 99.5 % of box
    coordinates came out as even integers). Forward hooks cast the heads'
    outputs to fp32, so backbone, FPN and heads still run in bf16 while box
    decoding, NMS and mask pasting stay exact. Idempotent; state dict unchanged.
    """
    if getattr(model, "_annot_fp32_box_math", False):
        return model
    for head in (model.rpn.head, model.roi_heads.box_predictor, model.roi_heads.mask_predictor):
        if head is not None:
            head.register_forward_hook(_to_fp32)
    model._annot_fp32_box_math = True
    return model


def _load_checkpoint(path) -> dict:
    """``{"model": state_dict, "classes": [...], ...}``; one clear line when it is not that."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        raise AnnotError(f"{path}: not a readable checkpoint: {str(e).splitlines()[0]}") from None
    if not isinstance(state, dict) or "model" not in state or "classes" not in state:
        raise AnnotError(f"{path}: not an annot Mask R-CNN checkpoint (a dict with 'model' and 'classes')")
    return state


def coco_weights_path() -> Path:
    """Where torchvision keeps the COCO weights: the torch hub cache (``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(COCO_WEIGHTS.url).name


def coco_model() -> tuple[MaskRCNN, list[str]]:
    """resnet50_fpn_v2 with torchvision's COCO weights, from the torch cache,
    downloaded there when the machine can. Classes are torchvision's 90 (with
    its "N/A" gaps), so a label's index + 1 is its COCO category id."""
    from urllib.error import URLError

    try:
        state = torch.hub.load_state_dict_from_url(COCO_WEIGHTS.url, progress=False, check_hash=True,
                                                   map_location="cpu")
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:  # there, but damaged
        raise AnnotError(f"{coco_weights_path()}: not a readable weights file ({str(e).splitlines()[0]}); "
                         f"delete it and download {COCO_WEIGHTS.url} again") from None
    except (URLError, OSError) as e:
        raise AnnotError(f"--weights coco: {coco_weights_path()} is not there and cannot be downloaded "
                         f"({getattr(e, 'reason', e)}); on a machine with internet download {COCO_WEIGHTS.url} "
                         f"and copy it to that path (TORCH_HOME moves the cache)") from None
    classes = list(COCO_WEIGHTS.meta["categories"][1:])
    model = build("resnet50_fpn_v2", len(classes) + 1)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise AnnotError(f"{coco_weights_path()}: not torchvision's Mask R-CNN v2 COCO weights: "
                         f"{str(e).splitlines()[0]}") from None
    return model, classes


class MaskRCNNPredictor:
    name = "maskrcnn"
    version = "torchvision"
    capabilities = frozenset({"masks", "automatic", "trainable"})

    def __init__(self):
        self.model: MaskRCNN | None = None
        self.classes: list[str] = []
        self.device = "cpu"
        self.score_threshold = 0.5
        self.precision = "auto"

    def load(self, checkpoint=None, model: MaskRCNN | None = None, classes: list[str] | None = None,
             backbone: str | None = None, device: str | None = None, score_threshold: float = 0.5,
             weights: str | None = None, precision: str = "auto", **_) -> None:
        """From ``checkpoint`` (a path), torchvision's COCO weights
        (``weights="coco"``), or an in-memory ``model`` with its ``classes``.
        ``precision``: auto (bf16 autocast on GPUs that have it, else fp16;
        fp32 on CPU), fp32, bf16 or fp16."""
        self.precision = precision
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if weights == "coco":
            model, classes = coco_model()
        elif weights is not None:
            raise AnnotError(f"unknown weights {weights!r}: use coco, or a checkpoint")
        elif checkpoint is not None:
            state = _load_checkpoint(checkpoint)
            classes = list(state["classes"])
            backbone = state.get("backbone") or backbone or self.default_backbone()
            # the input scale it was trained at, when the checkpoint records it
            model = build(backbone, len(classes) + 1, state.get("min_size", 800), state.get("max_size", 1333))
            head = state["model"].get("roi_heads.box_predictor.cls_score.weight")
            if head is not None and head.shape[0] != len(classes) + 1:
                raise AnnotError(f"{checkpoint}: its box head has {head.shape[0] - 1} classes but it lists "
                                 f"{len(classes)}")
            try:
                model.load_state_dict(state["model"])
            except RuntimeError as e:
                raise AnnotError(f"{checkpoint}: does not fit a {backbone} Mask R-CNN: "
                                 f"{str(e).splitlines()[0]}") from None
        if model is None or classes is None:
            raise AnnotError("maskrcnn: give a checkpoint, or a model with its classes")
        if not isinstance(model.roi_heads, ClassProbRoIHeads):
            model.roi_heads.__class__ = ClassProbRoIHeads
        fp32_box_math(model)
        n_out = model.roi_heads.box_predictor.cls_score.out_features
        if n_out != len(classes) + 1:
            raise AnnotError(f"maskrcnn: the model predicts {n_out - 1} classes, {len(classes)} were named")
        self.model, self.classes, self.score_threshold = model.to(self.device).eval(), list(classes), score_threshold

    @staticmethod
    def default_device() -> str:
        return "cuda" if torch.cuda.is_available() else "cpu"

    @staticmethod
    def availability() -> str:
        cached = "cached" if coco_weights_path().is_file() else "not cached"
        return f"ok: weights from the store, --checkpoint, or --weights coco ({cached})"

    def default_backbone(self) -> str:
        return "resnet50_fpn_v2" if torch.cuda.is_available() else "mobilenet_v3_large_fpn"

    @torch.inference_mode()
    def predict(self, images, prompts=None) -> list[Detections]:
        # uint8 crosses to the device (4x less than float), then is scaled there
        tensors = [(torch.from_numpy(im) if im.flags.writeable else torch.tensor(im))
                   .to(self.device, non_blocking=True).permute(2, 0, 1).float() / 255 for im in images]
        heads = self.model.roi_heads
        model_floor = heads.score_thresh
        # torchvision drops boxes scoring <= score_thresh before NMS, the mask head and mask pasting (a Python
        # loop over detections): filtering there instead of afterwards skips that work for boxes we would drop.
        # The kept set is the same: NMS only lets a box be suppressed by a higher-scoring one, and the top-k cap
        # keeps the best. nextafter makes torchvision's strict ">" our ">=".
        heads.score_thresh = float(np.nextafter(np.float32(self.score_threshold), np.float32(-np.inf)))
        try:
            with autocast(self.device, self.precision):
                outputs = self.model(tensors)
        finally:
            heads.score_thresh = model_floor
        out = []
        for o in outputs:
            keep = o["scores"] >= self.score_threshold
            soft = o["masks"][keep, 0].float()
            hard = soft >= 0.5
            quality = (soft * hard).sum((1, 2)) / hard.sum((1, 2)).clamp(min=1)
            boxes = o["boxes"][keep].float()
            boxes[:, 2:] -= boxes[:, :2]  # xyxy -> COCO xywh
            out.append(Detections(
                [self.classes[int(i) - 1] for i in o["labels"][keep]],
                o["scores"][keep].float().cpu().numpy(),
                hard.cpu().numpy(),
                class_probs=o["class_probs"][keep].float().cpu().numpy(),
                mask_quality=quality.cpu().numpy(),
                boxes=boxes.cpu().numpy(),
            ))
        return out
