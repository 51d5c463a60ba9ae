"""A server holds one loaded predictor and calls it from many threads at once:
every thread must get exactly what a single thread gets (nothing a call
computes may be kept in the predictor or written into its model)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from segment_anything.build_sam import _build_sam  # noqa: E402
from tiny_models import CLASSES, scene  # noqa: E402

from annot.plugins.embedding_cache import EmbeddingCache  # noqa: E402
from annot.plugins.grabcut import GrabCutPredictor  # noqa: E402
from annot.plugins.maskrcnn import MaskRCNNPredictor  # noqa: E402
from annot.plugins.predictor import Prompt  # noqa: E402
from annot.plugins.sam import SamPlugin  # noqa: E402

THREADS = 6
ROUNDS = 2


def _same(a, b) -> bool:
    return (a.labels == b.labels and np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.confidence, b.confidence)
            and np.array_equal(a.mask, b.mask) and a.data.keys() == b.data.keys()
            and all(np.array_equal(a.data[k], b.data[k]) for k in a.data))


def _hammer(predictors, images, prompts=None):
    """Each thread calls its predictor on every image, in its own order, all
    starting together, ROUNDS times; returns [(predictor index, image index,
    Detections)]."""
    start = threading.Barrier(THREADS)
    results, errors = [], []

    def work(t):
        rng = np.random.default_rng(t)
        pred = predictors[t % len(predictors)]
        try:
            start.wait()
            for _ in range(ROUNDS):
                for k in rng.permutation(len(images)):
                    (det,) = pred.predict([images[k]], None if prompts is None else [prompts[k]])
                    results.append((t % len(predictors), int(k), det))
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(results) == THREADS * ROUNDS * len(images)
    return results


def test_maskrcnn_from_many_threads(tiny_maskrcnn):
    """Two predictors share one model with different thresholds: neither sees the other's."""
    rng = np.random.default_rng(11)
    images = [scene(rng)[0] for _ in range(3)]
    loose, strict = MaskRCNNPredictor(), MaskRCNNPredictor()
    loose.load(model=tiny_maskrcnn, classes=CLASSES, device="cpu", score_threshold=0.1)
    strict.load(model=tiny_maskrcnn, classes=CLASSES, device="cpu", score_threshold=0.3)
    alone = [[p.predict([im])[0] for im in images] for p in (loose, strict)]
    assert all(len(d) for d in alone[0]) and [len(d) for d in alone[0]] != [len(d) for d in alone[1]]
    for p, k, det in _hammer([loose, strict], images):
        assert _same(det, alone[p][k]), (p, k)


def test_sam_from_many_threads():
    torch.manual_seed(0)
    sam = SamPlugin()
    sam.load(sam=_build_sam(encoder_embed_dim=32, encoder_depth=1, encoder_num_heads=1,
                            encoder_global_attn_indexes=[0]), device="cpu", cache=EmbeddingCache(fp16=False))
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (90 + 10 * k, 120, 3), dtype=np.uint8) for k in range(3)]
    prompts = [[Prompt(box=[10 + k, 10, 40, 30], label="a"), Prompt(positive=[(60, 40 + k)], label="b")]
               for k in range(3)]
    alone = [SamPlugin.predict(sam, [im], [pr])[0] for im, pr in zip(images, prompts)]
    for _, k, det in _hammer([sam], images, prompts):
        assert _same(det, alone[k]), k
    assert sam.encoder_calls <= 3 + THREADS  # once per image, give or take threads that missed the cache together


def test_grabcut_from_many_threads():
    rng = np.random.default_rng(5)
    images, prompts = [], []
    for k in range(3):
        image = rng.integers(20, 60, (70, 90, 3), dtype=np.uint8)
        image[20 : 50, 25 + k : 60 + k] = (200, 180, 40)
        images.append(image)
        prompts.append([Prompt(box=[20 + k, 15, 45, 40], positive=[(40 + k, 35)])])
    gc = GrabCutPredictor()
    alone = [gc.predict([im], [pr])[0] for im, pr in zip(images, prompts)]
    for _, k, det in _hammer([gc], images, prompts):
        assert _same(det, alone[k]), k
