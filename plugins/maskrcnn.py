"""torchvision Mask R-CNN as a predictor that keeps what active learning needs.

torchvision's ``RoIHeads.postprocess_detections`` keeps one score per
detection and drops the class distribution. :func:`detect` runs the model's
own modules (transform, backbone, RPN, box and mask heads) in the order
``GeneralizedRCNN.forward`` does, with torchvision's selection (per-class
candidates, small-box removal, per-class NMS, top-k) written out so that each
kept detection remembers its proposal: its full softmax vector is that
proposal's row, exactly. The pasted soft masks give each detection's mask
uncertainty before they are thresholded. Nothing is written to the model:
the score threshold, the classes to leave out and the precision are the
predictor's, set once at load, so one loaded predictor can serve many threads.

Backbones: ``resnet50_fpn_v2`` (torchvision's builder; the GPU default) and
``mobilenet_v3_large_fpn`` (Mask R-CNN on torchvision's MobileNetV3-FPN
backbone; the CPU default). Weights come from a checkpoint file
(``{"model": state_dict, "classes": [...], "backbone": ..., "min_size": ...,
"max_size": ..., "norm": ..., "channels": ..., "min_stride": ...}``, all but
the first two optional, as ``annot train`` writes it); torchvision's COCO weights
(``weights="coco"``) when the machine can download them or has them in the
torch cache.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import mobilenet_v3_large
from torchvision.models.detection import (
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_V2_Weights,
    maskrcnn_resnet50_fpn_v2,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, mobilenet_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor as MaskRCNNHeadPredictor
from torchvision.models.detection.roi_heads import maskrcnn_inference, paste_masks_in_image
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.ops import boxes as box_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from annot.detections import (
    CLASS_PROBS,
    EMBEDDING,
    MASK_UNCERTAINTY,
    MC_CLASS_PROBS,
    MC_IOU,
    Detections,
)
from annot.errors import AnnotError, reason

from .precision import autocast

BACKBONES = ("resnet50_fpn_v2", "mobilenet_v3_large_fpn")
COCO_WEIGHTS = MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1
UNUSED = "N/A"  # torchvision's name for the COCO category ids COCO left unused
UNCERTAIN = (0.05, 0.95)  # soft-mask probabilities counted as uncertain pixels


NORMS = ("frozen", "batch")


def build(backbone: str, num_classes: int, min_size: int = 800, max_size: int = 1333, norm: str = "frozen",
          channels: int = 256, min_stride: int = 32, **options) -> MaskRCNN:
    """A plain torchvision Mask R-CNN with random weights; ``num_classes``
    counts the background. ``norm`` (MobileNet): the backbone's
    normalisation layers, ``frozen`` (torchvision's ``FrozenBatchNorm2d``,
    right for weights trained elsewhere) or ``batch`` (``BatchNorm2d``, which
    training from scratch needs: frozen statistics of random weights never
    adapt); resnet50_fpn_v2 has BatchNorm2d throughout, as torchvision builds it.
    ``channels`` (MobileNet): the width of the FPN and the heads; 256 is
    torchvision's model, smaller ones train faster on a CPU (``--preset
    cpu-tiny``: 64 channels train 4x the images/s of 256 at 128 px, docs/training.md).
    ``options`` go to torchvision's ``MaskRCNN`` (sampler sizes, proposal
    counts); they change no weight."""
    if norm not in NORMS:
        raise AnnotError(f"unknown norm {norm!r}; known: {', '.join(NORMS)}")
    if backbone == "resnet50_fpn_v2":  # BatchNorm2d throughout, as torchvision builds (and trained) it
        return maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes,
                                        min_size=min_size, max_size=max_size, **options)
    if backbone == "mobilenet_v3_large_fpn":
        return _mobilenet_maskrcnn(num_classes, min_size, max_size, norm, channels, min_stride, **options)
    raise AnnotError(f"unknown backbone {backbone!r}; known: {', '.join(BACKBONES)}")


def _mobilenet_maskrcnn(num_classes: int, min_size, max_size, norm: str, channels: int, min_stride: int,
                        **options) -> MaskRCNN:
    """Mask R-CNN on MobileNetV3-Large with an FPN. ``min_stride`` 32 is
    torchvision's ``mobilenet_backbone(fpn=True)``: two feature maps, both at
    stride 32 (plus the pooled one), anchors 32..512 on each; with
    ``channels`` 256 it is torchvision's model, weight for weight. ``min_stride``
    8 starts the pyramid at the stride-8 stage (maps at 8, 16, 32 and the
    pooled 64, one anchor size range per level from 16 px): small objects,
    and small images, keep a map fine enough to find them. The heads scale
    with ``channels``."""
    norm_layer = torch.nn.BatchNorm2d if norm == "batch" else FrozenBatchNorm2d
    if min_stride == 32 and channels == 256:  # torchvision's own builders, in their order of random draws
        bb = mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=None, fpn=True, trainable_layers=6,
                                norm_layer=norm_layer)
        anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
        return MaskRCNN(bb, num_classes=num_classes, min_size=min_size, max_size=max_size,
                        rpn_anchor_generator=anchors, **options)
    body = mobilenet_v3_large(weights=None, norm_layer=norm_layer).features
    # the first block of each stride (stride 2 convolutions), then the last layer
    stages = [0] + [i for i, b in enumerate(body) if getattr(b, "_is_cn", False)] + [len(body) - 1]
    if min_stride == 32:
        taken = [stages[-2], stages[-1]]
        sizes = ((32, 64, 128, 256, 512),) * 3
    elif min_stride == 8:
        # the last layer of each stride: the block before the next stride's first, and the last layer
        taken = [stages[3] - 1, stages[4] - 1, stages[-1]]
        sizes = ((16, 24), (32, 48), (64, 96), (128, 256))
    else:
        raise AnnotError(f"min_stride {min_stride}: use 32 (torchvision's) or 8")
    bb = BackboneWithFPN(body, {str(k): str(v) for v, k in enumerate(taken)},
                         [_out_channels(body[k]) for k in taken], channels, extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    representation = 4 * channels  # 1024 at 256, torchvision's TwoMLPHead
    return MaskRCNN(bb, num_classes=None, min_size=min_size, max_size=max_size, rpn_anchor_generator=anchors,
                    box_head=TwoMLPHead(channels * 7 * 7, representation),
                    box_predictor=FastRCNNPredictor(representation, num_classes),
                    mask_head=MaskRCNNHeads(channels, (channels,) * 4, 1),
                    mask_predictor=MaskRCNNHeadPredictor(channels, channels, num_classes), **options)


def _out_channels(block) -> int:
    return block.out_channels if hasattr(block, "out_channels") else block[0].out_channels


# -- inference ------------------------------------------------------------------


def detect(model: MaskRCNN, images: list[torch.Tensor], score_threshold: float,
           allowed: torch.Tensor | None = None, embeddings: bool = False, mc_samples: int = 0) -> list[dict]:
    """``model``'s detections of ``images`` (CHW floats in [0, 1]), as
    torchvision returns them (``boxes`` xyxy, ``labels``, ``scores``, soft
    ``masks`` (n, 1, H, W) at each image's size) plus ``class_probs`` (n,
    classes + 1) and, with ``embeddings``, the image's ``embedding``.

    Detections scoring below ``score_threshold`` are dropped before NMS, the
    mask head and mask pasting (torchvision applies its own ``score_thresh``
    there; dropping afterwards would leave the kept set the same but pay for
    the rest). ``allowed``: which of the classes + 1 columns may be detected
    (None: every class but the background).

    Under bf16/fp16 autocast the heads' outputs are widened before box
    arithmetic: torchvision decodes boxes in the dtype of the deltas, which
    in bf16 rounds coordinates to 8 px steps at x = 1000.

    ``mc_samples`` K > 0 adds ``mc_iou`` (n, K) and ``mc_class_probs``
    (n, K, classes + 1): see :func:`_mc_dropout`.
    """
    original_sizes = [tuple(im.shape[-2:]) for im in images]
    batch, _ = model.transform(images)
    features = model.backbone(batch.tensors)
    if isinstance(features, torch.Tensor):
        features = OrderedDict([("0", features)])
    proposals = _proposals(model.rpn, batch, features)
    heads = model.roi_heads
    box_features = heads.box_head(heads.box_roi_pool(features, proposals, batch.image_sizes))
    class_logits, box_regression = heads.box_predictor(box_features)
    results = _select(heads, class_logits.float(), box_regression.float(), proposals, batch.image_sizes,
                      score_threshold, allowed)
    boxes = [r["boxes"] for r in results]
    mask_logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(features, boxes, batch.image_sizes)))
    for r, probs in zip(results, maskrcnn_inference(mask_logits.float(), [r["labels"] for r in results])):
        r["masks"] = probs
    if mc_samples:
        _mc_dropout(heads, features, box_features, proposals, batch.image_sizes, results, score_threshold,
                    allowed, mc_samples)
    results = model.transform.postprocess(results, batch.image_sizes, original_sizes)
    if embeddings:
        for r, emb in zip(results, _embeddings(features, batch)):
            r["embedding"] = emb
    return results


MC_DROPOUT_RATE = 0.5  # Fast R-CNN's dropout after its fully connected box-head layers
MC_MATCH_IOU = 0.5


def _mc_dropout(heads, features, box_features, proposals, image_sizes, results: list[dict], threshold: float,
                allowed, samples: int) -> None:
    """Monte Carlo dropout in the box head: ``samples`` passes of the box
    predictor over the same proposals with dropout (rate 0.5) on the box
    head's features, each pass decoded, NMS'd and given masks like the
    deterministic one. Every detection of ``results`` is matched to each
    pass's detection of highest mask IoU; it gets ``mc_iou`` (that IoU, 0 when
    not above 0.5) and ``mc_class_probs`` (that detection's distribution).

    The dropout masks are drawn from a generator seeded per image, so an
    image scores the same alone or in any batch, and nothing of the model
    changes (it stays in eval mode; the dropout is applied to a copy of the
    features)."""
    counts = [len(p) for p in proposals]
    keep = 1.0 - MC_DROPOUT_RATE
    drops = []
    for rows in box_features.split(counts):
        g = torch.Generator(device=rows.device).manual_seed(0)
        drops.append(torch.stack([torch.empty_like(rows).bernoulli_(keep, generator=g) for _ in range(samples)]))
    drops = torch.cat(drops, dim=1) / keep  # (samples, proposals, features)
    det_masks = [_binary_masks(r["masks"], r["boxes"], size) for r, size in zip(results, image_sizes)]
    ious = [torch.zeros(len(r["boxes"]), samples) for r in results]
    probs = [torch.zeros(len(r["boxes"]), samples, r["class_probs"].shape[1]) for r in results]
    for k in range(samples):
        logits, deltas = heads.box_predictor(box_features * drops[k])
        passes = _select(heads, logits.float(), deltas.float(), proposals, image_sizes, threshold, allowed)
        boxes = [p["boxes"] for p in passes]
        mask_logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(features, boxes, image_sizes)))
        soft = maskrcnn_inference(mask_logits.float(), [p["labels"] for p in passes])
        for i, (p, m, size) in enumerate(zip(passes, soft, image_sizes)):
            if not len(det_masks[i]) or not len(p["boxes"]):
                continue
            iou = _mask_iou(det_masks[i], _binary_masks(m, p["boxes"], size))
            best_iou, best = iou.max(dim=1)
            ious[i][:, k] = torch.where(best_iou > MC_MATCH_IOU, best_iou, 0.0)
            probs[i][:, k] = p["class_probs"][best].float().cpu()
    for r, iou, prob in zip(results, ious, probs):
        r["mc_iou"], r["mc_class_probs"] = iou, prob


def _binary_masks(soft: torch.Tensor, boxes: torch.Tensor, size) -> np.ndarray:
    """(n, 1, 28, 28) soft masks pasted into ``size`` and thresholded at 0.5: (H, W, n) uint8, Fortran order."""
    pasted = paste_masks_in_image(soft, boxes, tuple(size), padding=1)[:, 0] >= 0.5
    return np.asfortranarray(pasted.permute(1, 2, 0).cpu().numpy().astype(np.uint8))


def _mask_iou(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """(n, m) IoU of two stacks of binary masks, by pycocotools' RLE."""
    from pycocotools import mask as mask_utils

    iou = mask_utils.iou(mask_utils.encode(a), mask_utils.encode(b), np.zeros(b.shape[2], np.uint8))
    return torch.as_tensor(np.asarray(iou, np.float32).reshape(a.shape[2], b.shape[2]))


def _proposals(rpn, batch, features) -> list[torch.Tensor]:
    """``RegionProposalNetwork.forward`` at inference, deltas decoded in fp32."""
    levels = list(features.values())
    objectness, deltas = rpn.head(levels)
    anchors = rpn.anchor_generator(batch, levels)
    per_level = [o[0].numel() for o in objectness]
    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    proposals = rpn.box_coder.decode(deltas.float(), anchors).view(len(anchors), -1, 4)
    boxes, _ = rpn.filter_proposals(proposals, objectness.float(), batch.image_sizes, per_level)
    return boxes


def _select(heads, class_logits, box_regression, proposals, image_sizes, threshold: float,
            allowed: torch.Tensor | None) -> list[dict]:
    """``RoIHeads.postprocess_detections`` with ``threshold`` inclusive, the
    ``allowed`` classes only, and each detection's class distribution."""
    counts = [len(p) for p in proposals]
    decoded = heads.box_coder.decode(box_regression, proposals).split(counts)
    probs = F.softmax(class_logits, -1).split(counts)
    out = []
    for boxes, p, shape in zip(decoded, probs, image_sizes):
        n, c = p.shape
        boxes = box_ops.clip_boxes_to_image(boxes, shape)
        cand = torch.ones(c, dtype=torch.bool, device=p.device) if allowed is None else allowed.to(p.device)
        cand[0] = False  # the background
        labels = torch.arange(c, device=p.device).expand(n, c)[:, cand].reshape(-1)
        rows = torch.arange(n, device=p.device).view(-1, 1).expand(n, c)[:, cand].reshape(-1)
        scores = p[:, cand].reshape(-1)
        boxes = boxes[:, cand].reshape(-1, 4)
        keep = torch.where(scores >= threshold)[0]
        keep = keep[box_ops.remove_small_boxes(boxes[keep], min_size=1e-2)]
        keep = keep[box_ops.batched_nms(boxes[keep], scores[keep], labels[keep], heads.nms_thresh)]
        keep = keep[: heads.detections_per_img]
        out.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep],
                    "class_probs": p[rows[keep]]})
    return out


def _embeddings(features: OrderedDict, batch) -> list[torch.Tensor]:
    """Per image: each FPN level averaged over the image's own (unpadded)
    area, concatenated, L2-normalised: what diversity ranking compares."""
    padded_h, padded_w = batch.tensors.shape[-2:]
    out = []
    for k, (h, w) in enumerate(batch.image_sizes):
        parts = []
        for f in features.values():
            fh = max(1, math.ceil(h * f.shape[-2] / padded_h))
            fw = max(1, math.ceil(w * f.shape[-1] / padded_w))
            parts.append(f[k, :, :fh, :fw].float().mean((1, 2)))
        out.append(F.normalize(torch.cat(parts), dim=0))
    return out


def mask_uncertainty(soft: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Per detection: the mean binary entropy (bits) of its soft mask ``soft``
    (n, H, W) over the uncertain pixels (0.05 < p < 0.95) inside its box
    (n, 4 xyxy); 0 when it has none. Measured in the box, so only a crop of
    each mask is touched."""
    out = torch.zeros(len(soft), device=soft.device)
    lo, hi = UNCERTAIN
    for k, (m, b) in enumerate(zip(soft, boxes.tolist())):
        x0, y0 = max(int(math.floor(b[0])), 0), max(int(math.floor(b[1])), 0)
        p = m[y0 : int(math.ceil(b[3])), x0 : int(math.ceil(b[2]))]
        p = p[(p > lo) & (p < hi)].float()
        if p.numel():
            out[k] = -(p * torch.log2(p) + (1 - p) * torch.log2(1 - p)).mean()
    return out


# -- weights --------------------------------------------------------------------


def load_checkpoint(path) -> dict:
    """``{"model": state_dict, "classes": [...], ...}``; one clear line when it is not that."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle raises whatever the bytes lead it to: KeyError, IndexError, ...
        raise AnnotError(f"{path}: not a readable checkpoint ({reason(e)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) \
            or not isinstance(state.get("classes"), (list, tuple)) \
            or not all(isinstance(c, str) and c for c in state["classes"]):
        raise AnnotError(f"{path}: not an annot Mask R-CNN checkpoint (a dict with 'model', a state dict, and "
                         f"'classes', a list of names)")
    return state


def state_dict_mismatch(model: torch.nn.Module, state: dict) -> str | None:
    """Why ``state`` does not load into ``model``, in one sentence; None if it fits."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} weight(s) missing (first: {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
    if shapes:
        k, theirs, ours = shapes[0]
        parts.append(f"{len(shapes)} of another shape (first: {k} is {theirs} in the file, {ours} in the model)")
    return "; ".join(parts) or None


def load_weights(model: torch.nn.Module, state: dict, source, what: str) -> None:
    problem = state_dict_mismatch(model, state)
    if problem:
        raise AnnotError(f"{source}: does not fit {what}: {problem}")
    model.load_state_dict(state)


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
    except (URLError, OSError) as e:
        raise AnnotError(f"--weights coco: {coco_weights_path()} is not there and cannot be downloaded "
                         f"({getattr(e, 'reason', e)}); on a machine with internet download {COCO_WEIGHTS.url} "
                         f"and copy it to that path (TORCH_HOME moves the cache)") from None
    except Exception as e:  # there, but damaged
        raise AnnotError(f"{coco_weights_path()}: not a readable weights file ({reason(e)}); "
                         f"delete it and download {COCO_WEIGHTS.url} again") from None
    classes = list(COCO_WEIGHTS.meta["categories"][1:])
    model = build("resnet50_fpn_v2", len(classes) + 1)
    load_weights(model, state, coco_weights_path(), "torchvision's Mask R-CNN v2 COCO weights")
    return model, classes


# -- the predictor ----------------------------------------------------------------


class MaskRCNNPredictor:
    name = "maskrcnn"
    version = "torchvision"
    capabilities = frozenset({"masks", "automatic", "trainable"})
    #: what ``load`` reads; the CLI refuses any other model option for this model
    load_options = frozenset({"checkpoint", "weights", "backbone", "score_threshold", "device", "precision",
                              "embeddings", "mc_samples"})

    def __init__(self):
        self.model: MaskRCNN | None = None
        self.classes: list[str] = []
        self.device = "cpu"
        self.score_threshold = 0.5
        self.precision = "auto"
        self.embeddings = False
        self.mc_samples = 0
        self._allowed: torch.Tensor | None = None

    def load(self, checkpoint=None, model: MaskRCNN | None = None, classes: list[str] | None = None,
             backbone: str | None = None, device: str | None = None, score_threshold: float = 0.5,
             weights: str | None = None, precision: str = "auto", embeddings: bool = False, mc_samples: int = 0,
             **_) -> None:
        """From ``checkpoint`` (a path), torchvision's COCO weights
        (``weights="coco"``), or an in-memory ``model`` with its ``classes``.
        ``precision``: auto (bf16 autocast on GPUs that have it, else fp16;
        fp32 on CPU), fp32, bf16 or fp16. ``embeddings``: also return each
        image's pooled backbone features (``image_data["embedding"]``).
        ``mc_samples``: that many Monte Carlo dropout passes of the box head
        per image, matched to each detection (``data["mc_iou"]``,
        ``data["mc_class_probs"]``: what the ``mc`` active-learning score reads)."""
        if checkpoint is not None and weights is not None:
            raise AnnotError("maskrcnn: give a checkpoint or --weights coco, not both")
        self.precision = precision
        self.device = device or self.default_device()
        if weights == "coco":
            model, classes = coco_model()
        elif weights is not None:
            raise AnnotError(f"unknown weights {weights!r}: use coco, or a checkpoint")
        elif checkpoint is not None:
            model, classes = self._from_checkpoint(checkpoint, backbone)
        if model is None or classes is None:
            raise AnnotError("maskrcnn: give a checkpoint, or a model with its classes")
        n_out = model.roi_heads.box_predictor.cls_score.out_features
        if n_out != len(classes) + 1:
            raise AnnotError(f"maskrcnn: the model predicts {n_out - 1} classes, {len(classes)} were named")
        if mc_samples < 0:
            raise AnnotError(f"maskrcnn: mc_samples must be 0 or more, got {mc_samples}")
        self.classes, self.score_threshold, self.embeddings = list(classes), float(score_threshold), embeddings
        self.mc_samples = int(mc_samples)
        self._allowed = torch.tensor([True] + [c != UNUSED for c in self.classes])
        self.model = model.to(self.device).eval()

    def _from_checkpoint(self, checkpoint, backbone: str | None) -> tuple[MaskRCNN, list[str]]:
        state = load_checkpoint(checkpoint)
        classes = list(state["classes"])
        backbone = state.get("backbone") or backbone or self.default_backbone()
        # the input scale it was trained at, when the checkpoint records it
        model = build(backbone, len(classes) + 1, state.get("min_size", 800), state.get("max_size", 1333),
                      norm=state.get("norm", "frozen"), channels=state.get("channels", 256),
                      min_stride=state.get("min_stride", 32))
        head = state["model"].get("roi_heads.box_predictor.cls_score.weight")
        if head is not None and head.shape[0] != len(classes) + 1:
            raise AnnotError(f"{checkpoint}: its box head has {head.shape[0] - 1} classes but it lists "
                             f"{len(classes)}")
        load_weights(model, state["model"], checkpoint, f"a {backbone} Mask R-CNN")
        return model, classes

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
        if self.model is None:
            raise AnnotError("maskrcnn: load() first")
        # uint8 crosses to the device (4x less than float), then is scaled there
        tensors = [(torch.from_numpy(im) if im.flags.writeable else torch.tensor(im))
                   .to(self.device, non_blocking=True).permute(2, 0, 1).float() / 255 for im in images]
        with autocast(self.device, self.precision):
            outputs = detect(self.model, tensors, self.score_threshold, self._allowed, self.embeddings,
                             self.mc_samples)
        names = tuple(self.classes)
        columns = {CLASS_PROBS: ("__background__", *names)}
        out = []
        for o in outputs:
            soft = o["masks"][:, 0].float()
            data = {CLASS_PROBS: o["class_probs"].float().cpu().numpy(),
                    MASK_UNCERTAINTY: mask_uncertainty(soft, o["boxes"]).cpu().numpy()}
            if "mc_iou" in o:
                data[MC_IOU], data[MC_CLASS_PROBS] = o["mc_iou"].numpy(), o["mc_class_probs"].numpy()
            image_data = {EMBEDDING: o["embedding"].cpu().numpy()} if "embedding" in o else {}
            out.append(Detections(o["boxes"].float().cpu().numpy(), (o["labels"] - 1).cpu().numpy(),
                                  o["scores"].float().cpu().numpy(), names, (soft >= 0.5).cpu().numpy(),
                                  data, columns, image_data))
        return out
