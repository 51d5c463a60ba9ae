"""The promotion rule: a new version replaces the promoted one only when it
measures better on the same val images.

The metric (default val segm AP) of the candidate is compared with the
promoted version's on the candidate's val set. When the promoted version was
evaluated on another val set (the split grew since), it is evaluated again
on the current one first; splits only ever grow, so this compares like with
like. The candidate is promoted when ``new - old > min_gain``; otherwise it
stays ``ready`` and the reason is said. With nothing promoted yet the bar
is the same network untrained, evaluated on the same val images (it scores
~0): a model must have learned something to be promoted. ``annot models promote``/``rollback`` override.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Decision:
    promoted: bool
    reason: str
    new: float
    old: float | None
    reevaluated: bool = False


def decide(store, candidate: str, metric: str, min_gain: float, val_doc: dict, image_root: Path,
           device: str = "cpu", untrained=None) -> Decision:
    """``untrained()``: the metric of the same network untrained on these val
    images, the bar when nothing is promoted (default 0, what it scores)."""
    from annot.db.registry import get_model, promote
    from annot.errors import NotYetInStore

    from .train import images_digest, metric_value

    digest = images_digest(val_doc)
    with store.transaction() as s:
        new_mv = get_model(s, candidate)
        new_label, name = new_mv.label, new_mv.name
        new = metric_value(new_mv.metrics.get("val", {}), metric)
        try:
            old_mv = get_model(s, name)
            old_label, old_id, old_val = old_mv.label, old_mv.id, dict(old_mv.metrics.get("val") or {})
        except NotYetInStore:
            old_mv = None
    what = f"val {metric.replace('_', ' ')}"
    if new < 0:
        return Decision(False, f"{new_label}: {what} could not be measured (no val ground truth)", new, None)
    if old_mv is None:  # the bar: the same network untrained, measured on the same images
        bar = untrained() if untrained is not None else 0.0
        if new - bar > min_gain:
            promote(store, candidate)
            return Decision(True, f"{new_label} is the first promoted version of {name}: {what} {new:.4g} beats "
                                  f"the untrained network's {bar:.4g} by more than --min-gain {min_gain:g}",
                            new, None)
        return Decision(False, f"{what} {new:.4g} does not beat the untrained network's {bar:.4g} by more than "
                               f"--min-gain {min_gain:g} (nothing is promoted yet)", new, None)
    reevaluated = False
    if old_val.get("images_sha256") != digest:
        old_val = reevaluate(store, old_id, val_doc, image_root, device)
        reevaluated = True
    old = metric_value(old_val, metric)
    again = f" (re-evaluated on the current {len(val_doc['images'])} val images)" if reevaluated else ""
    if new - old > min_gain:
        promote(store, candidate)
        return Decision(True, f"{what} {new:.4g} beats {old_label}'s {old:.4g}{again} by {new - old:+.4g} "
                              f"(> --min-gain {min_gain:g})", new, old, reevaluated)
    return Decision(False, f"{what} {new:.4g} vs {old_label}'s {old:.4g}{again}: a gain of {new - old:+.4g} is "
                           f"not above --min-gain {min_gain:g}; {old_label} stays promoted", new, old, reevaluated)


def reevaluate(store, mv_id: int, val_doc: dict, image_root: Path, device: str = "cpu") -> dict:
    """Evaluate a stored version on ``val_doc``; the result replaces its ``val`` metrics."""
    from annot.db.registry import update_metrics
    from annot.db.schema import ModelVersion

    from .evaluate import evaluate
    from .predictions import EVAL_SCORE_THRESHOLD, coco_results, load_stored
    from .train import images_digest

    with store.transaction() as s:
        mv = s.get(ModelVersion, mv_id)
        ref, scheme, dataset = f"{mv.name}@{mv.version}", (mv.metrics.get("val") or {}).get("scheme"), \
            (mv.metrics.get("val") or {}).get("dataset")
    predictor = load_stored(store, ref, device, EVAL_SCORE_THRESHOLD)
    ev = evaluate(val_doc, coco_results(predictor, val_doc, image_root))
    val = {**ev.metrics(), "images": len(val_doc["images"]), "images_sha256": images_digest(val_doc),
           "dataset": dataset, "scheme": scheme, "reevaluated": True}
    update_metrics(store, mv_id, val=val)
    return val
