"""Uncertainty of each detection, from what the predictor returned.

Every score is in [0, 1], higher = less certain, so scores can be compared
and averaged:

- ``least_confidence``: 1 - p1, ``margin``: 1 - (p1 - p2), ``entropy``:
  the Shannon entropy of the class distribution divided by log(C) (C = its
  columns), where p1 >= p2 are the two largest probabilities. The
  distribution is the detector's whole softmax *including the background
  column* (``Detections.data["class_probs"]``): a detection the model half
  believes is background is the commonest doubt a detector has.
- ``mask``: the predictor's mean binary entropy (bits) of the soft mask over
  its uncertain pixels inside the box (``data["mask_uncertainty"]``, measured
  before thresholding).
- ``flip``: CALD-style consistency. The image and its horizontal flip are
  both predicted; each detection is matched to the flipped run's detection
  (boxes flipped back) of highest box IoU, and scores
  1 - IoU x (1 - JS), JS the Jensen-Shannon divergence (bits, in [0, 1]) of
  the two class distributions. No overlapping partner: 1.
- ``mc``: Monte Carlo dropout (``annot rank --mc-samples K``). The box
  head runs K more times with dropout; each detection is matched to each
  pass's detection of highest mask IoU, and scores
  1 - mean over passes of IoU x (1 - JS), a pass whose best match overlaps
  by 0.5 or less contributing 0 (``data["mc_iou"]``,
  ``data["mc_class_probs"]``).
- ``combined``: the mean of ``entropy`` and ``mask`` (``entropy`` alone for
  box-only models).

A box-only predictor has no ``mask``; a predictor without class
distributions (GrabCut, SAM) has none of the classification scores.
"""

from __future__ import annotations

import numpy as np

from annot.detections import CLASS_PROBS, MASK_UNCERTAINTY, MC_CLASS_PROBS, MC_IOU, Detections

CLASSIFICATION = ("least_confidence", "margin", "entropy")
# detections the model scores below this are not scored: the uncertain ones are the low-scoring ones,
# so ranking keeps far more than pre-annotation's 0.5
SCORING_THRESHOLD = 0.05
SCORES = (*CLASSIFICATION, "mask", "flip", "mc", "combined")
EXTRA_PASSES = ("flip", "mc")  # scores that need more model runs than one plain prediction
_TINY = 1e-12


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """(n, C) distributions -> (n,) 1 - the largest probability."""
    probs = np.asarray(probs, float)
    return 1.0 - probs.max(axis=1) if len(probs) else np.zeros(0)


def margin(probs: np.ndarray) -> np.ndarray:
    """(n, C) -> (n,) 1 - (p1 - p2), the two largest probabilities."""
    probs = np.asarray(probs, float)
    if not len(probs):
        return np.zeros(0)
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs: np.ndarray) -> np.ndarray:
    """(n, C) -> (n,) Shannon entropy / log(C), in [0, 1]."""
    probs = np.asarray(probs, float)
    if not len(probs) or probs.shape[1] < 2:
        return np.zeros(len(probs))
    p = np.clip(probs, _TINY, 1.0)
    return -(probs * np.log(p)).sum(axis=1) / np.log(probs.shape[1])


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon divergence in bits (0 same, 1 disjoint)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    m = (p + q) / 2

    def kl(a, b):
        return (a * (np.log2(np.clip(a, _TINY, 1)) - np.log2(np.clip(b, _TINY, 1)))).sum(axis=1)

    return np.clip((kl(p, m) + kl(q, m)) / 2, 0.0, 1.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) x (m, 4) xyxy -> (n, m) IoU, by pycocotools."""
    from pycocotools import mask as mask_utils

    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    xywh = [np.c_[x[:, :2], x[:, 2:] - x[:, :2]] for x in (a, b)]
    return np.asarray(mask_utils.iou(xywh[0], xywh[1], np.zeros(len(b), np.uint8)), float).reshape(len(a), len(b))


def unflip(d: Detections, width: int) -> np.ndarray:
    """The boxes of detections made on a horizontally flipped image, in the
    original image's coordinates."""
    out = d.xyxy.copy()
    out[:, 0], out[:, 2] = width - d.xyxy[:, 2], width - d.xyxy[:, 0]
    return out


def flip_inconsistency(d: Detections, flipped: Detections, width: int) -> np.ndarray:
    """(len(d),) 1 - IoU x (1 - JS) against the best-overlapping detection of
    the flipped image (``width``: the image's width in the detections' pixels)."""
    if not len(d):
        return np.zeros(0)
    if not len(flipped):
        return np.ones(len(d))
    iou = box_iou(d.xyxy, unflip(flipped, width))
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(len(d)), best]
    if CLASS_PROBS in d.data and CLASS_PROBS in flipped.data:
        agreement = 1.0 - js_divergence(d.data[CLASS_PROBS], flipped.data[CLASS_PROBS][best])
    else:  # no distributions: the classes agree or not
        agreement = (d.class_id == flipped.class_id[best]).astype(float)
    return 1.0 - best_iou * agreement


def mc_inconsistency(probs: np.ndarray, mc_iou: np.ndarray, mc_probs: np.ndarray) -> np.ndarray:
    """(n, C) distributions, (n, K) matched mask IoUs (0: unmatched), (n, K, C)
    the matches' distributions -> (n,) 1 - mean_k IoU_k x (1 - JS_k)."""
    probs, mc_iou, mc_probs = np.asarray(probs, float), np.asarray(mc_iou, float), np.asarray(mc_probs, float)
    if not len(probs):
        return np.zeros(0)
    n, k = mc_iou.shape
    js = js_divergence(np.repeat(probs, k, axis=0), mc_probs.reshape(n * k, -1)).reshape(n, k)
    return 1.0 - (mc_iou * (1.0 - js)).mean(axis=1)


def detection_scores(d: Detections, flipped: Detections | None = None, width: int | None = None
                     ) -> dict[str, np.ndarray]:
    """Every score this detection set supports, each (len(d),)."""
    out: dict[str, np.ndarray] = {}
    probs = d.data.get(CLASS_PROBS)
    if probs is not None:
        out["least_confidence"] = least_confidence(probs)
        out["margin"] = margin(probs)
        out["entropy"] = entropy(probs)
    if MASK_UNCERTAINTY in d.data:
        out["mask"] = np.asarray(d.data[MASK_UNCERTAINTY], float)
    if flipped is not None:
        if width is None:
            raise ValueError("flip scores need the image width")
        out["flip"] = flip_inconsistency(d, flipped, width)
    if MC_IOU in d.data and probs is not None:
        out["mc"] = mc_inconsistency(probs, d.data[MC_IOU], d.data[MC_CLASS_PROBS])
    if "entropy" in out:
        out["combined"] = (out["entropy"] + out["mask"]) / 2 if "mask" in out else out["entropy"]
    return out
