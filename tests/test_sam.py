"""SAM plumbing on a tiny randomly initialised SAM (no checkpoint can be downloaded here).

Random weights give meaningless masks, so these tests check what does not
depend on the weights: prompts reach the decoder in the right coordinates,
the best of the multimask outputs is kept, the encoder runs once per image,
and embeddings survive the disk cache.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from segment_anything.build_sam import _build_sam  # noqa: E402

from annot.plugins.embedding_cache import EmbeddingCache, image_key  # noqa: E402
from annot.plugins.predictor import Prompt  # noqa: E402
from annot.plugins.sam import SamPlugin  # noqa: E402


@pytest.fixture(scope="module")
def tiny_sam():
    torch.manual_seed(0)
    return _build_sam(encoder_embed_dim=32, encoder_depth=1, encoder_num_heads=1, encoder_global_attn_indexes=[0])


def _plugin(tiny_sam, cache=None):
    p = SamPlugin()
    p.load(sam=tiny_sam, device="cpu", cache=cache)
    return p


def _image(seed, h=120, w=160):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_prompts_reach_the_decoder_and_best_mask_is_kept(tiny_sam, monkeypatch):
    plugin = _plugin(tiny_sam)
    seen = {}
    original = plugin.predictor.predict

    def spy(**kw):
        masks, scores, logits = original(**kw)
        seen.update(kw, scores=scores)
        return masks, scores, logits

    monkeypatch.setattr(plugin.predictor, "predict", spy)
    image = _image(1)
    (det,) = plugin.predict([image], [[Prompt(box=[10, 20, 30, 40], positive=[(25, 35)], negative=[(5, 5)],
                                              label="cup")]])
    assert seen["box"].tolist() == [10, 20, 40, 60]  # COCO xywh -> SAM xyxy
    assert seen["point_coords"].tolist() == [[25, 35], [5, 5]] and seen["point_labels"].tolist() == [1, 0]
    assert seen["multimask_output"] is True
    assert det.labels == ["cup"] and det.masks.shape == (1, 120, 160) and det.masks.dtype == bool
    assert det.scores[0] == pytest.approx(float(seen["scores"].max()))


def test_second_click_never_reruns_the_encoder(tiny_sam):
    plugin = _plugin(tiny_sam)
    a, b = _image(2), _image(3)
    plugin.predict([a], [[Prompt(positive=[(50, 50)])]])
    plugin.predict([a], [[Prompt(positive=[(60, 40)]), Prompt(box=[0, 0, 50, 50])]])
    assert plugin.encoder_calls == 1
    plugin.predict([b, a], [[Prompt(positive=[(5, 5)])], [Prompt(positive=[(7, 7)])]])
    assert plugin.encoder_calls == 2 and (plugin.cache.hits, plugin.cache.misses) == (2, 2)


def test_cached_embedding_gives_the_same_masks(tiny_sam):
    image = _image(4)
    fresh = _plugin(tiny_sam, EmbeddingCache(fp16=False))
    (d1,) = fresh.predict([image], [[Prompt(box=[20, 20, 60, 50])]])
    (d2,) = fresh.predict([image], [[Prompt(box=[20, 20, 60, 50])]])  # from the cache
    assert np.array_equal(d1.masks, d2.masks) and d1.scores.tolist() == d2.scores.tolist()


def test_switching_images_hands_the_decoder_each_images_own_embedding(tiny_sam):
    """Clicks after the first on an image skip re-installing its embedding; going
    back and forth between images must still decode against the right one."""
    a, b = _image(5), _image(6)
    click = [[Prompt(positive=[(80, 60)], box=[40, 30, 80, 60])]]
    plugin = _plugin(tiny_sam)
    decoded = []
    original = plugin.predictor.predict
    plugin.predictor.predict = lambda **kw: decoded.append(plugin._current) or original(**kw)
    (a1,), (b1,), (a2,), (a3,) = (plugin.predict([im], click) for im in (a, b, a, a))
    (b_alone,) = _plugin(tiny_sam).predict([b], click)
    assert a1.scores.tolist() != b1.scores.tolist()  # the two images do decode differently
    for d in (a2, a3):
        assert np.array_equal(d.masks, a1.masks) and d.scores.tolist() == a1.scores.tolist()
    assert np.array_equal(b1.masks, b_alone.masks) and b1.scores.tolist() == b_alone.scores.tolist()
    assert plugin.encoder_calls == 2
    # a click is first decoded against the embedding held, while the key is hashed; a wrong
    # guess (another image of the same size) is decoded again: A | A?, B | B?, A | A? (right)
    ka, kb = image_key(a), image_key(b)
    assert decoded == [ka, ka, kb, kb, ka, ka]


def test_cache_is_bounded_in_bytes():
    cache = EmbeddingCache(max_bytes=3 * 4 * 256 * 64 * 64, fp16=False)  # room for three fp32 embeddings
    for k in range(5):
        cache.put(str(k), np.zeros((1, 256, 64, 64), np.float32))
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes
    assert cache.get("0") is None and cache.get("4") is not None
    half = EmbeddingCache()
    assert half.put("x", np.zeros((1, 256, 64, 64), np.float32)).nbytes == 2 * 1024 * 1024  # fp16: 2 MB


def test_precompute_to_disk_then_clicks_only_decode(tiny_sam, tmp_path):
    from annot.plugins.cli import precompute

    for k in range(3):
        Image.fromarray(_image(10 + k)).save(tmp_path / f"{k}.png")
    cache_dir = tmp_path / "emb"
    batch = _plugin(tiny_sam, EmbeddingCache(max_bytes=0, directory=cache_dir))
    assert precompute(batch, [tmp_path]) == 3 and batch.encoder_calls == 3
    assert sorted(p.stem for p in cache_dir.glob("*.npy")) == sorted(
        image_key(np.asarray(Image.open(tmp_path / f"{k}.png").convert("RGB"))) for k in range(3))
    later = _plugin(tiny_sam, EmbeddingCache(directory=cache_dir))  # a labelling session afterwards
    later.predict([np.asarray(Image.open(tmp_path / "1.png").convert("RGB"))], [[Prompt(positive=[(9, 9)])]])
    assert later.encoder_calls == 0


def test_missing_checkpoint_says_what_to_do(monkeypatch, annot):
    monkeypatch.delenv("ANNOT_SAM_CHECKPOINT", raising=False)
    with pytest.raises(Exception, match=r"SAM needs a vit_b checkpoint.*\(none given\); without one, use grabcut"):
        SamPlugin().load("vit_b")
    # the model type is read from the checkpoint's file name, as Meta names them
    res = annot("sam", "precompute", ".", "--cache", "x", "--checkpoint", "/nonexistent/sam_vit_h_4b8939.pth")
    assert res.code == 2 and "SAM needs a vit_h checkpoint" in res.err and "use grabcut" in res.err
