"""Scoring pool images with a loaded predictor: one :class:`ImageScore` each.

Images are decoded in DataLoader workers (``annot predict``'s reader), the
model runs once per image (twice with ``flip``: the image and its mirror),
and only small things are kept per image: the aggregated scores, the few
most uncertain detections, the predicted classes and the embedding. The soft
masks behind ``mask`` were reduced to one number per detection inside the
predictor, so nothing full-size outlives its batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from annot.detections import EMBEDDING, Detections
from annot.plugins.batch_predict import decoded_batches
from annot.plugins.inputs import InputImage

from .aggregate import EMPTY_SCORE, aggregate
from .scores import detection_scores

REGIONS = 3  # the most uncertain detections each image keeps as its explanation


@dataclass
class ImageScore:
    item: InputImage
    components: dict[str, float] = field(default_factory=dict)  # score name -> aggregated value
    detections: int = 0
    classes: list[str] = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)  # label, box [x, y, w, h] (image pixels), confidence, scores
    embedding: np.ndarray | None = None
    error: str | None = None
    instances: list | None = None  # detections kept for Label Studio (at the image's size), when asked
    size: tuple[int, int] | None = None  # the image's (height, width)


@dataclass(frozen=True)
class ScoringOptions:
    score: str = "combined"  # which component ranks (and picks the regions)
    agg: str = "max"
    topk: int = 3
    empty: float = EMPTY_SCORE
    flip: bool = False


def image_uncertainty(d: Detections, opts: ScoringOptions, flipped: Detections | None = None,
                      width: int | None = None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(score name -> the image's aggregated value, score name -> per detection).
    ``annot serve`` scores each task with it, ``annot rank`` each pool image."""
    per = detection_scores(d, flipped, width if flipped is not None else None)
    return {name: aggregate(v, opts.agg, opts.topk, opts.empty) for name, v in per.items()}, per


def score_detections(item: InputImage, d: Detections, opts: ScoringOptions, size: tuple[int, int],
                     shown: tuple[int, int], flipped: Detections | None = None,
                     keep_from: float | None = None) -> ImageScore:
    """``d`` found on the image as the model saw it (``shown`` = its (height,
    width)); ``size`` = the image's own (height, width), which regions use.
    ``keep_from``: keep the detections scoring at least this as COCO
    instances (for Label Studio)."""
    components, per = image_uncertainty(d, opts, flipped, shown[1])
    regions = []
    key = per.get(opts.score)
    if key is not None and len(d):
        sy, sx = size[0] / shown[0], size[1] / shown[1]
        for i in np.argsort(-key, kind="stable")[:REGIONS].tolist():
            x, y, w, h = d.xywh[i].tolist()
            regions.append({"label": d.labels[i], "box": [round(x * sx, 1), round(y * sy, 1), round(w * sx, 1),
                                                          round(h * sy, 1)],
                            "confidence": round(float(d.confidence[i]), 4),
                            "scores": {name: round(float(v[i]), 4) for name, v in per.items()}})
    emb = d.image_data.get(EMBEDDING)
    kept = None if keep_from is None else d[d.confidence >= keep_from].to_instances(size)
    return ImageScore(item, components, len(d), d.labels, regions, None if emb is None else np.asarray(emb, np.float32),
                      instances=kept, size=tuple(size))


def score_images(predictor, items: list[InputImage], opts: ScoringOptions, batch_size: int = 1, workers: int = 0,
                 max_side: int | None = 2048, keep_from: float | None = None) -> Iterator[ImageScore]:
    for batch in decoded_batches(items, batch_size, workers, max_side):
        for d in batch:
            if d.error is not None:
                yield ImageScore(d.item, error=d.error)
        good = [d for d in batch if d.error is None]
        if not good:
            continue
        try:
            images = [d.image for d in good]
            dets = predictor.predict(images)
            flips = predictor.predict([np.ascontiguousarray(im[:, ::-1]) for im in images]) if opts.flip \
                else [None] * len(good)
        except Exception as e:  # one image's failure must not end the ranking: report it and go on
            for d in good:
                yield ImageScore(d.item, error=f"{d.item.path}: model failed: {type(e).__name__}: {e}")
            continue
        for d, det, fl in zip(good, dets, flips):
            yield score_detections(d.item, det, opts, d.size, d.image.shape[:2], fl, keep_from)
