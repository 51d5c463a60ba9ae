"""A model's detections of a dataset's images, as a COCO results list.

What COCO evaluation reads: per detection the image id, the category id (by
class name in the dataset's categories), the score, the box and the RLE
mask, at a low score threshold (0.05, as detectron2 evaluates: AP integrates
over every operating point).
"""

from __future__ import annotations

from pathlib import Path

from annot.paths import require_confined
from annot.plugins.images import load_rgb

EVAL_SCORE_THRESHOLD = 0.05


def coco_results(predictor, doc: dict, image_root: Path, progress=None) -> list[dict]:
    """Run a loaded predictor over ``doc``'s images (found under ``image_root``)."""
    cat_of = {c["name"]: c["id"] for c in doc["categories"]}
    results = []
    for k, im in enumerate(doc["images"]):
        path = require_confined(Path(image_root), im["file_name"], "the dataset", f"images[{k}].file_name")
        detections = predictor.predict([load_rgb(path)])[0]
        for inst in detections.to_instances():
            if inst.label in cat_of:
                results.append({"image_id": im["id"], "category_id": cat_of[inst.label], "score": inst.score,
                                "bbox": inst.bbox, "segmentation": inst.segmentation, "area": inst.area})
        if progress is not None:
            progress()
    return results


def evaluate_model(model, classes: list[str], doc: dict, image_root: Path, device: str = "cpu",
                   precision: str = "fp32", score_threshold: float = 0.5):
    """:func:`annot.training.evaluate.evaluate` of an in-memory model (left in eval mode)."""
    from annot.plugins.maskrcnn import MaskRCNNPredictor

    from .evaluate import evaluate

    predictor = MaskRCNNPredictor()
    predictor.load(model=model, classes=classes, device=device, score_threshold=EVAL_SCORE_THRESHOLD,
                   precision=precision)
    return evaluate(doc, coco_results(predictor, doc, image_root), score_threshold=score_threshold)


def load_stored(store, ref: str, device: str, score_threshold: float = EVAL_SCORE_THRESHOLD):
    """A model version of the store (``NAME@N``, or ``NAME``: the promoted one),
    its checkpoint verified, loaded by its predictor plugin."""
    from annot.db.registry import checkpoint_for_loading, get_model
    from annot.plugins import registry

    with store.transaction() as s:
        mv = get_model(s, ref)
        checkpoint = checkpoint_for_loading(store, mv)
        plugin = mv.config.get("predictor") or mv.name
    predictor = registry.get(plugin)
    predictor.load(checkpoint=checkpoint, device=device, score_threshold=score_threshold)
    return predictor
