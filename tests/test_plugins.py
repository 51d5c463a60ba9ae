"""Predictor plugins: discovery through entry points, GrabCut on Penn-Fudan."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import SHARED
from PIL import Image

from annot.plugins import registry
from annot.plugins.grabcut import GrabCutPredictor
from annot.plugins.predictor import Predictor, Prompt

PENNFUDAN = SHARED / "datasets" / "PennFudanPed"


def test_builtin_grabcut_is_registered(annot):
    res = annot("plugins", "list", "--json")
    assert res.code == 0
    plugins = {p["name"]: p for p in json.loads(res.out)}
    assert plugins["grabcut"]["status"] == "ok" and plugins["grabcut"]["device"] == "cpu"
    assert plugins["grabcut"]["target"] == "annot.plugins.grabcut:GrabCutPredictor"
    import torch

    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert plugins["maskrcnn"]["device"] == plugins["sam"]["device"] == here
    assert plugins["maskrcnn"]["status"].startswith("ok: weights from the store")
    assert isinstance(registry.get("grabcut"), Predictor)


def test_third_party_plugin_is_discovered(tmp_path, monkeypatch, annot):
    """A package installed later adds a model by declaring the entry point."""
    (tmp_path / "toy_model.py").write_text(
        "class Toy:\n"
        "    name = 'toy'\n    version = '1'\n    device = 'cpu'\n    capabilities = frozenset({'masks'})\n"
        "    @staticmethod\n    def availability():\n        return 'missing checkpoint toy.pt'\n"
        "    def load(self, **o):\n        pass\n"
        "    def predict(self, images, prompts=None):\n        return []\n"
    )
    dist = tmp_path / "toy_model-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-model\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[annot.predictors]\ntoy = toy_model:Toy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = {p["name"]: p for p in json.loads(annot("plugins", "list", "--json").out)}
    assert plugins["toy"]["status"] == "missing checkpoint toy.pt"
    assert plugins["toy"]["capabilities"] == ["masks"]
    assert registry.get("toy").name == "toy"
    res = annot("plugins", "list")
    assert res.code == 0 and "toy" in res.out
    with pytest.raises(Exception, match="unknown model 'nope'; known: .*grabcut.*toy"):
        registry.get("nope")
    sys.modules.pop("toy_model", None)


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.samples
def test_grabcut_beats_the_box_on_pennfudan():
    gc = GrabCutPredictor()
    ious, base = [], []
    for png in sorted((PENNFUDAN / "PNGImages").glob("*.png"))[:6]:
        image = np.asarray(Image.open(png).convert("RGB"))
        gt = np.asarray(Image.open(PENNFUDAN / "PedMasks" / f"{png.stem}_mask.png"))
        prompts = []
        truths = []
        for inst in np.unique(gt)[1:]:
            m = gt == inst
            ys, xs = np.nonzero(m)
            box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            prompts.append(Prompt(box=[float(v) for v in box], label="pedestrian"))
            truths.append(m)
        (det,) = gc.predict([image], [prompts])
        assert det.labels == ["pedestrian"] * len(prompts) and det.mask.shape == (len(prompts), *gt.shape)
        for pred, m, p in zip(det.mask, truths, prompts):
            x, y, w, h = (int(v) for v in p.box)
            boxmask = np.zeros_like(m)
            boxmask[y : y + h, x : x + w] = True
            ious.append(_iou(pred, m))
            base.append(_iou(boxmask, m))
    assert np.mean(ious) > 0.5
    assert np.mean(ious) > np.mean(base) + 0.1


def test_grabcut_points_and_detections_bridge():
    # a red disc on grey: a positive point inside and a negative one outside find it
    image = np.full((80, 100, 3), 128, np.uint8)
    yy, xx = np.mgrid[:80, :100]
    disc = (yy - 40) ** 2 + (xx - 50) ** 2 <= 15**2
    image[disc] = (220, 30, 30)
    (det,) = GrabCutPredictor().predict([image], [[Prompt(box=[30, 20, 40, 40], positive=[(50, 40)],
                                                          negative=[(32, 22)], label="ball")]])
    assert _iou(det.mask[0], disc) > 0.9
    ys, xs = np.nonzero(det.mask[0])
    assert det.xyxy[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    (inst,) = det.to_instances()
    assert inst.label == "ball" and inst.area == det.mask[0].sum() and isinstance(inst.segmentation, dict)
    with pytest.raises(ValueError, match="needs prompts"):
        GrabCutPredictor().predict([image])


def test_grabcut_refines_a_previous_mask_with_a_click():
    """Two touching discs: the box covers both, so the first cut takes both;
    a negative click on one, with the previous mask, keeps only the other."""
    image = np.full((80, 120, 3), 128, np.uint8)
    yy, xx = np.mgrid[:80, :120]
    left = (yy - 40) ** 2 + (xx - 45) ** 2 <= 15**2
    right = (yy - 40) ** 2 + (xx - 75) ** 2 <= 15**2
    image[left] = (220, 30, 30)
    image[right] = (30, 30, 220)
    gc = GrabCutPredictor()
    (first,) = gc.predict([image], [[Prompt(box=[28, 23, 64, 34], label="ball")]])
    assert _iou(first.mask[0], left | right) > 0.8
    (again,) = gc.predict([image], [[Prompt(negative=[(75, 40)], positive=[(45, 40)], mask=first.mask[0],
                                            label="ball", region_id="r1")]])
    assert _iou(again.mask[0], left) > 0.8 and _iou(again.mask[0], right) < 0.1
