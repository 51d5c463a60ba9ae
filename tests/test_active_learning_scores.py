"""Active learning's scores, aggregation, k-center and selection on inputs whose answers are known by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from annot.active_learning.aggregate import aggregate
from annot.active_learning.kcenter import k_center_greedy, nearest_distance, normalise
from annot.active_learning.scores import (
    box_iou,
    detection_scores,
    entropy,
    flip_inconsistency,
    js_divergence,
    least_confidence,
    margin,
    mc_inconsistency,
)
from annot.active_learning.select import Candidate, balance_weights, select
from annot.detections import CLASS_PROBS, MASK_UNCERTAINTY, Detections

NAMES = ("a", "b")


def dets(boxes, probs, mask_unc=None) -> Detections:
    probs = np.asarray(probs, float).reshape(-1, 3)
    data = {CLASS_PROBS: probs}
    if mask_unc is not None:
        data[MASK_UNCERTAINTY] = np.asarray(mask_unc, float)
    return Detections(np.asarray(boxes, float).reshape(-1, 4), probs[:, 1:].argmax(1), probs[:, 1:].max(1), NAMES,
                      None, data, {CLASS_PROBS: ("__background__", *NAMES)})


# -- classification scores ------------------------------------------------------

def test_classification_scores_by_hand():
    p = np.array([[0.1, 0.6, 0.3], [0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    assert least_confidence(p) == pytest.approx([0.4, 0.0, 2 / 3])
    assert margin(p) == pytest.approx([1 - (0.6 - 0.3), 0.0, 1.0])
    h0 = -(0.1 * math.log(0.1) + 0.6 * math.log(0.6) + 0.3 * math.log(0.3)) / math.log(3)
    assert entropy(p) == pytest.approx([h0, 0.0, 1.0])


def test_margin_counts_the_background_column():
    # the detector half believes it is background: the doubt a detector has most
    assert margin([[0.45, 0.55, 0.0]]) == pytest.approx([0.9])


def test_scores_of_no_detections_are_empty():
    for f in (least_confidence, margin, entropy):
        assert f(np.zeros((0, 3))).shape == (0,)


def test_js_divergence_bounds():
    p = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    q = np.array([[0.0, 1.0], [0.5, 0.5], [0.8, 0.2]])
    js = js_divergence(p, q)
    assert js[0] == pytest.approx(1.0) and js[1] == pytest.approx(0.0)
    m = np.array([0.5, 0.5])
    kl = sum(a * math.log2(a / b) for a, b in zip([0.2, 0.8], m))
    assert js[2] == pytest.approx(kl)  # symmetric case: both halves equal


def test_box_iou_by_hand():
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    assert iou[0] == pytest.approx([50 / 150, 0.0, 1.0])


# -- flip consistency ---------------------------------------------------------------

def test_flip_consistency_of_a_mirrored_identical_detection_is_zero():
    width = 100
    d = dets([[10, 20, 30, 40]], [[0.1, 0.8, 0.1]])
    mirrored = dets([[70, 20, 90, 40]], [[0.1, 0.8, 0.1]])  # the same box seen in the flipped image
    assert flip_inconsistency(d, mirrored, width) == pytest.approx([0.0])


def test_flip_consistency_by_hand():
    width = 100
    d = dets([[10, 20, 30, 40], [50, 50, 60, 60]], [[0.1, 0.8, 0.1], [0.2, 0.4, 0.4]])
    # partner of the first: shifted 5 px (IoU 15/25 in x), class distribution changed; the second has none
    flipped = dets([[65, 20, 85, 40]], [[0.1, 0.1, 0.8]])
    out = flip_inconsistency(d, flipped, width)
    iou = (15 * 20) / (25 * 20)
    js = js_divergence(np.array([[0.1, 0.8, 0.1]]), np.array([[0.1, 0.1, 0.8]]))[0]
    assert out[0] == pytest.approx(1 - iou * (1 - js))
    assert out[1] == pytest.approx(1.0)


def test_flip_with_nothing_found_on_the_mirror_is_fully_inconsistent():
    d = dets([[10, 20, 30, 40]], [[0.1, 0.8, 0.1]])
    assert flip_inconsistency(d, d[[]], 100) == pytest.approx([1.0])


def test_mc_dropout_consistency_by_hand():
    probs = np.array([[0.1, 0.8, 0.1], [0.2, 0.4, 0.4]])
    # two passes: the first detection matched with mask IoU 0.8 (same classes) then 0.6 (classes moved);
    # the second matched by neither pass (IoU 0 means no partner above 0.5)
    mc_iou = np.array([[0.8, 0.6], [0.0, 0.0]])
    mc_probs = np.array([[[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], [[0.2, 0.4, 0.4], [0.2, 0.4, 0.4]]])
    out = mc_inconsistency(probs, mc_iou, mc_probs)
    js = js_divergence(np.array([[0.1, 0.8, 0.1]]), np.array([[0.1, 0.1, 0.8]]))[0]
    assert out[0] == pytest.approx(1 - (0.8 * 1 + 0.6 * (1 - js)) / 2)
    assert out[1] == pytest.approx(1.0)
    assert mc_inconsistency(np.zeros((0, 3)), np.zeros((0, 2)), np.zeros((0, 2, 3))).shape == (0,)


def test_detection_scores_combined_is_entropy_and_mask_averaged():
    d = dets([[0, 0, 5, 5]], [[0.2, 0.5, 0.3]], mask_unc=[0.6])
    s = detection_scores(d)
    assert set(s) == {"least_confidence", "margin", "entropy", "mask", "combined"}
    assert s["combined"] == pytest.approx((s["entropy"] + 0.6) / 2)
    with pytest.raises(ValueError):
        detection_scores(d, d)  # flip needs the width


# -- aggregation ------------------------------------------------------------------------

@pytest.mark.parametrize("how,expected", [("max", 0.9), ("mean", 0.5), ("sum", 1.5), ("topk-mean", (0.9 + 0.4) / 2)])
def test_aggregation(how, expected):
    assert aggregate([0.2, 0.9, 0.4], how, k=2) == pytest.approx(expected)


def test_aggregation_of_an_empty_image_is_the_empty_score():
    assert aggregate([], "max", empty=0.7) == 0.7
    assert aggregate([0.1], "topk-mean", k=5) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        aggregate([0.1], "median")


# -- k-center ---------------------------------------------------------------------------

def brute_k_center(x, budget, labelled, first=None):
    """The textbook algorithm with the full distance matrix."""
    d = 1 - x @ x.T
    centres = [] if first is None else [first]
    if labelled is not None:
        dl = 1 - x @ labelled.T
        near = dl.min(axis=1)
    else:
        near = d[first].copy()
    while len(centres) < budget:
        i = int(np.argmax(np.where(np.isin(np.arange(len(x)), centres), -np.inf, near)))
        centres.append(i)
        near = np.minimum(near, d[i])
    return centres


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_equals_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    x = normalise(rng.normal(size=(60, 8)))
    lab = normalise(rng.normal(size=(5, 8)))
    got, gaps = k_center_greedy(x, 10, lab)
    assert got == brute_k_center(x, 10, lab)
    # each gap is the picked point's distance to the nearest earlier centre or labelled point
    for k, i in enumerate(got):
        centres = np.vstack([lab, x[got[:k]]])
        assert gaps[k] == pytest.approx((1 - x[i] @ centres.T).min(), abs=1e-5)


def test_k_center_without_labelled_starts_at_a_seeded_point():
    rng = np.random.default_rng(3)
    x = normalise(rng.normal(size=(40, 6)))
    a, _ = k_center_greedy(x, 6, None, seed=5)
    assert a == k_center_greedy(x, 6, None, seed=5)[0]
    assert a == brute_k_center(x, 6, None, first=a[0])
    assert len({k_center_greedy(x, 1, None, seed=s)[0][0] for s in range(10)}) > 1


def test_k_center_maximises_the_minimum_gap_better_than_random():
    # the core-set objective: the largest distance of any point to its nearest centre
    rng = np.random.default_rng(0)
    x = normalise(rng.normal(size=(300, 16)))
    chosen, _ = k_center_greedy(x, 20, None, seed=0)
    cover = nearest_distance(x, x[chosen])[0].max()
    random_cover = [nearest_distance(x, x[rng.choice(300, 20, replace=False)])[0].max() for _ in range(20)]
    assert cover < min(random_cover)


def test_nearest_distance_chunks_the_centres(monkeypatch):
    import annot.active_learning.kcenter as kc

    rng = np.random.default_rng(1)
    x, c = normalise(rng.normal(size=(50, 4))), normalise(rng.normal(size=(30, 4)))
    whole = nearest_distance(x, c)
    monkeypatch.setattr(kc, "CHUNK_FLOATS", 50 * 7)  # 7 centres per chunk
    chunked = nearest_distance(x, c)
    assert np.allclose(whole[0], chunked[0]) and (whole[1] == chunked[1]).all()
    assert (whole[1] == (x @ c.T).argmax(1)).all()


# -- selection ----------------------------------------------------------------------------

def cands(scores, hashes=None, emb=None, classes=None):
    return [Candidate(f"im{k}", s, None if hashes is None else hashes[k], None if emb is None else emb[k],
                      [] if classes is None else classes[k]) for k, s in enumerate(scores)]


def test_uncertainty_takes_the_highest_scores():
    sel = select(cands([0.1, 0.9, 0.5, 0.7]), 2, "uncertainty")
    assert [p.index for p in sel.picks] == [1, 3]
    assert "0.900" in sel.picks[0].reason


def test_random_is_seeded_and_differs_between_seeds():
    c = cands(np.linspace(0, 1, 30))
    a = [p.index for p in select(c, 5, "random", seed=1).picks]
    assert a == [p.index for p in select(c, 5, "random", seed=1).picks]
    assert a != [p.index for p in select(c, 5, "random", seed=2).picks]


def test_no_two_near_duplicates_in_a_batch_nor_a_duplicate_of_a_labelled_image():
    base = 0x0F0F_0F0F_0F0F_0F0F
    hashes = [base, base ^ 0b11, 0xFFFF_0000_FFFF_0000, 0x1234_5678_9ABC_DEF0, base ^ (1 << 40)]
    # 0 and 1 are 2 bits apart; 4 is 1 bit from 0; 3 is 1 bit from a labelled image
    labelled = [0x1234_5678_9ABC_DEF1]
    sel = select(cands([0.9, 0.8, 0.3, 0.95, 0.85], hashes), 5, "uncertainty", labelled_hashes=labelled, radius=6)
    assert [p.index for p in sel.picks] == [0, 2]
    assert sel.duplicates_skipped == 3
    picked = [hashes[p.index] for p in sel.picks]
    for a, b in itertools.combinations(picked + labelled, 2):
        assert (a ^ b).bit_count() > 6


def test_diversity_picks_one_per_cluster_first():
    rng = np.random.default_rng(0)
    centres = normalise(rng.normal(size=(4, 16)))
    emb = normalise(np.repeat(centres, 10, axis=0) + 0.01 * rng.normal(size=(40, 16)))
    sel = select(cands(np.zeros(40), emb=emb), 4, "diversity", seed=0)
    assert sorted(p.index // 10 for p in sel.picks) == [0, 1, 2, 3]
    # each image's cluster is the rank of the picked image of its own group
    rank_of_group = {p.index // 10: r for r, p in enumerate(sel.picks, start=1)}
    assert sel.clusters == [rank_of_group[k // 10] for k in range(40)]


def test_diversity_avoids_what_is_labelled():
    rng = np.random.default_rng(1)
    centres = normalise(rng.normal(size=(3, 16)))
    emb = normalise(np.repeat(centres, 5, axis=0) + 0.01 * rng.normal(size=(15, 16)))
    sel = select(cands(np.zeros(15), emb=emb), 2, "diversity", labelled_embeddings=centres[:2])
    assert sel.picks[0].index // 5 == 2  # the group no labelled image covers comes first


def test_hybrid_stays_inside_the_uncertainty_shortlist():
    rng = np.random.default_rng(2)
    emb = normalise(rng.normal(size=(50, 8)))
    scores = rng.random(50)
    sel = select(cands(scores, emb=emb), 3, "hybrid", pool_factor=2)
    shortlist = set(np.argsort(-scores)[:6].tolist())
    assert {p.index for p in sel.picks} <= shortlist and len(sel.picks) == 3


def test_diversity_without_embeddings_says_so():
    with pytest.raises(ValueError, match="embeddings"):
        select(cands([0.5, 0.4]), 1, "diversity")


def test_balance_favours_classes_rare_in_the_labelled_set():
    w = balance_weights(cands([0, 0, 0], classes=[["common"], ["rare"], []]), {"common": 100, "rare": 10})
    assert w == pytest.approx([1.0, 1.9, 1.0])
    # equal uncertainty: the rare class wins with --balance, the name order without
    c = cands([0.5, 0.5], classes=[["common"], ["rare"]])
    assert select(c, 1, "uncertainty").picks[0].index == 0
    assert select(c, 1, "uncertainty", balance={"common": 100, "rare": 10}).picks[0].index == 1
