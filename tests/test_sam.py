"""SAM plumbing on a tiny randomly initialised SAM (no checkpoint can be downloaded here).

Random weights give meaningless masks, so these tests check what does not
depend on the weights: every prompt gives what segment-anything's own
SamPredictor gives, previous masks are fed back, the encoder runs once per
image, and embeddings survive the disk cache.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from segment_anything.build_sam import _build_sam  # noqa: E402

from annot.detections import IOU_PREDICTION, MASK_LOGITS  # noqa: E402
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


PROMPTS = [
    Prompt(box=[10, 20, 30, 40], positive=[(25, 35)], negative=[(5, 5)], label="cup"),
    Prompt(positive=[(80, 60)]),
    Prompt(box=[40, 30, 80, 60], label="plate"),
]


def _reference(tiny_sam, image, prompt, mask_input=None):
    """segment-anything's own SamPredictor: (best mask, its score, its logits)."""
    from segment_anything import SamPredictor

    ref = SamPredictor(tiny_sam)
    ref.set_image(image)
    pts = [*prompt.positive, *prompt.negative]
    box = None
    if prompt.box is not None:
        x, y, w, h = prompt.box
        box = np.array([x, y, x + w, y + h], np.float32)
    masks, scores, logits = ref.predict(
        point_coords=np.array(pts, np.float32) if pts else None,
        point_labels=np.array([1] * len(prompt.positive) + [0] * len(prompt.negative)) if pts else None,
        box=box, mask_input=mask_input, multimask_output=True)
    best = int(np.argmax(scores))
    return masks[best], scores[best], logits[best]


def test_same_masks_as_segment_anythings_predictor(tiny_sam):
    """annot calls SAM's modules itself (no shared SamPredictor state): every
    prompt kind must give SamPredictor's best mask, score and logits."""
    image = _image(1)
    (det,) = _plugin(tiny_sam, EmbeddingCache(fp16=False)).predict([image], [PROMPTS])
    assert det.labels == ["cup", "object", "plate"] and det.mask.shape == (3, 120, 160) and det.mask.dtype == bool
    for k, prompt in enumerate(PROMPTS):
        mask, score, logits = _reference(tiny_sam, image, prompt)
        assert np.array_equal(det.mask[k], mask), k
        assert det.confidence[k] == pytest.approx(float(score), abs=1e-6)
        assert det.data[IOU_PREDICTION][k] == pytest.approx(float(score), abs=1e-6)
        assert np.allclose(det.data[MASK_LOGITS][k], logits, atol=1e-5)
        if mask.any():
            ys, xs = np.nonzero(mask)
            assert det.xyxy[k].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_refining_feeds_the_previous_mask_back(tiny_sam):
    """A click with the region's previous logits is SAM's mask_input; a
    previous mask SAM did not make is placed in SAM's 256x256 frame the way
    the image is (long side to 1024, padded right and bottom)."""
    image = _image(2)
    plugin = _plugin(tiny_sam, EmbeddingCache(fp16=False))
    (first,) = plugin.predict([image], [[PROMPTS[1]]])
    click = Prompt(positive=[(80, 60)], negative=[(20, 20)], logits=first.data[MASK_LOGITS][0], region_id="r7")
    (second,) = plugin.predict([image], [[click]])
    mask, score, _ = _reference(tiny_sam, image, click, mask_input=first.data[MASK_LOGITS][0][None])
    assert np.array_equal(second.mask[0], mask) and second.confidence[0] == pytest.approx(float(score), abs=1e-6)
    left = np.zeros((120, 160), bool)
    left[:, :80] = True
    placed = plugin._mask_input(Prompt(mask=left), (120, 160))  # 120x160 -> 768x1024 -> 192x256 of 256x256
    assert placed.shape == (256, 256)
    assert (placed[:192, :128] > 0).all() and (placed[:192, 128:] < 0).all() and (placed[192:] < 0).all()


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
    assert np.array_equal(d1.mask, d2.mask) and d1.confidence.tolist() == d2.confidence.tolist()


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
    assert res.code == 2 and "SAM vit_h checkpoint /nonexistent/sam_vit_h_4b8939.pth: no such file" in res.err
    assert "use grabcut" in res.err and len(res.err.splitlines()) == 1


def test_serve_reads_what_precompute_wrote(tiny_sam, tmp_path, monkeypatch):
    """``annot serve --sam-cache DIR``: a click on a precomputed image runs only SAM's decoder."""
    from annot.plugins.cli import precompute
    from annot.serve.config import ServeConfig
    from annot.serve.models import Models

    Image.fromarray(_image(20)).save(tmp_path / "a.png")
    cache_dir = tmp_path / "emb"
    assert precompute(_plugin(tiny_sam, EmbeddingCache(max_bytes=0, directory=cache_dir)), [tmp_path]) == 1
    load = SamPlugin.load
    monkeypatch.setattr(SamPlugin, "load", lambda self, checkpoint=None, device=None, cache=None, **kw:
                        load(self, sam=tiny_sam, device="cpu", cache=cache))
    for sam_cache, encoded in ((str(cache_dir), 0), (None, 1)):
        models = Models(ServeConfig(model=None, sam_checkpoint="sam_vit_b.pth", sam_cache=sam_cache))
        models._load_segmenter()
        sam = models.segmenter.predictor
        assert isinstance(sam, SamPlugin)
        sam.predict([np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))], [[Prompt(positive=[(9, 9)])]])
        assert sam.encoder_calls == encoded
