"""From the scores of an image's detections to one number per image.

``max`` (the image's most doubtful detection), ``mean``, ``sum`` (favours
crowded images: the benchmark reports instances labelled per strategy) and
``topk-mean`` (the mean of the k largest; all of them when fewer). An image
with no detection above the scoring threshold gets ``empty`` instead: a
model that finds nothing may be missing objects, so the default counts it as
fully uncertain (1.0), the top of every score's range but ``sum``'s.
"""

from __future__ import annotations

import numpy as np

AGGREGATIONS = ("max", "mean", "sum", "topk-mean")
EMPTY_SCORE = 1.0


def aggregate(values, how: str = "max", k: int = 3, empty: float = EMPTY_SCORE) -> float:
    values = np.asarray(values, float).ravel()
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; known: {', '.join(AGGREGATIONS)}")
    if k < 1:
        raise ValueError(f"topk-mean needs k >= 1, got {k}")
    if not len(values):
        return float(empty)
    if how == "max":
        return float(values.max())
    if how == "mean":
        return float(values.mean())
    if how == "sum":
        return float(values.sum())
    return float(np.sort(values)[-k:].mean())
