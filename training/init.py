"""Where a run's first weights come from: ``--init scratch | coco | NAME@N | FILE``.

Weights made for other classes still fit: every weight but the class rows of
the box and mask predictors is copied, and a class row is copied when the
class has the same name in both lists (the background row always), so
fine-tuning torchvision's COCO model on "person" keeps what it knew of people.
Any other mismatch (another backbone, width or norm) is one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from annot.errors import AnnotError

# the predictors' weights with one row (or 4 rows, for box deltas) per class, background first
CLASS_ROWS = {"roi_heads.box_predictor.cls_score.weight": 1, "roi_heads.box_predictor.cls_score.bias": 1,
              "roi_heads.box_predictor.bbox_pred.weight": 4, "roi_heads.box_predictor.bbox_pred.bias": 4,
              "roi_heads.mask_predictor.mask_fcn_logits.weight": 1,
              "roi_heads.mask_predictor.mask_fcn_logits.bias": 1}


@dataclass
class Init:
    """Weights to start from: a state dict, the classes its rows are for, and
    the architecture it needs (None: whatever the run builds)."""

    source: str
    state: dict | None = None
    classes: list[str] | None = None
    architecture: dict | None = None  # backbone, norm, channels (and image_size) of the source


def resolve_init(spec: str, store=None, backbone: str | None = None) -> Init:
    """``scratch``, ``coco`` (torchvision's COCO Mask R-CNN v2 from the torch
    cache), ``NAME@N`` / ``NAME`` (a version in the store; ``NAME``: the
    promoted one) or a checkpoint file."""
    if spec == "scratch":
        return Init("scratch")
    if spec == "coco":
        from annot.plugins.maskrcnn import coco_model

        if backbone not in (None, "resnet50_fpn_v2"):
            raise AnnotError(f"--init coco: torchvision has COCO Mask R-CNN weights for resnet50_fpn_v2 only, "
                             f"not {backbone}")
        try:
            model, classes = coco_model()
        except AnnotError as e:
            raise AnnotError(str(e).replace("--weights coco:", "--init coco:", 1)) from None
        return Init("coco", model.state_dict(), classes, {"backbone": "resnet50_fpn_v2", "norm": "batch",
                                                          "channels": 256, "min_stride": 4})
    path = Path(spec)
    if path.is_file():
        return _from_file(path, spec)
    if "/" in spec or path.suffix in (".pt", ".pth", ".ckpt", ".bin", ".json"):
        raise AnnotError(f"--init {spec}: no such file")
    if store is None:
        raise AnnotError(f"--init {spec}: no such file, and no store to look a model version up in")
    from annot.db.registry import checkpoint_for_loading, get_model

    with store.transaction() as s:
        mv = get_model(s, spec)
        label, config = mv.label, dict(mv.config)
        ckpt = checkpoint_for_loading(store, mv)
    init = _from_file(ckpt, f"{spec} ({label})")
    if "image_size" in config:
        init.architecture["image_size"] = config["image_size"]
    return init


def _from_file(path: Path, source: str) -> Init:
    from annot.plugins.maskrcnn import load_checkpoint

    state = load_checkpoint(path)
    arch = {"backbone": state.get("backbone") or "mobilenet_v3_large_fpn", "norm": state.get("norm", "frozen"),
            "channels": state.get("channels", 256), "min_stride": state.get("min_stride", 32)}
    if "min_size" in state:
        arch["image_size"] = state["min_size"]
    return Init(source, state["model"], list(state["classes"]), arch)


def apply_init(model: torch.nn.Module, init: Init, classes: list[str]) -> dict:
    """Load ``init`` into ``model`` (built for ``classes``); returns what was
    kept: ``{"classes_kept": [...], "classes_new": [...]}``."""
    if init.state is None:
        return {"classes_kept": [], "classes_new": list(classes)}
    from annot.plugins.maskrcnn import state_dict_mismatch

    own = model.state_dict()
    state = dict(init.state)
    src_row = {name: k for k, name in enumerate(["__background__", *init.classes])}
    rows = [src_row.get(name) for name in ["__background__", *classes]]
    for key, per in CLASS_ROWS.items():
        if key not in state or key not in own:
            continue
        merged = own[key].clone()
        for dst, src in enumerate(rows):
            if src is not None and src * per + per <= len(state[key]):
                merged[dst * per : dst * per + per] = state[key][src * per : src * per + per]
        state[key] = merged
    problem = state_dict_mismatch(model, state)
    if problem:
        raise AnnotError(f"--init {init.source}: does not fit the model being trained: {problem}")
    model.load_state_dict(state)
    kept = [c for c, r in zip(classes, rows[1:]) if r is not None]
    return {"classes_kept": kept, "classes_new": [c for c in classes if c not in kept]}
