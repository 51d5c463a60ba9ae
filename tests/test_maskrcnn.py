"""Mask R-CNN predictor: a small model trained for a few steps inside the test
(no weights can be downloaded) keeps each detection's class distribution."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from annot.plugins.maskrcnn import ClassProbRoIHeads, MaskRCNNPredictor, build  # noqa: E402

CLASSES = ["square", "disc"]


def _scene(rng, size=96):
    image = np.full((size, size, 3), 40, np.uint8)
    masks, labels = [], []
    yy, xx = np.mgrid[:size, :size]
    for k in range(2):
        cx, cy, r = int(rng.integers(20, size - 20)), int(rng.integers(20, size - 20)), int(rng.integers(8, 16))
        m = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if k else ((abs(yy - cy) <= r) & (abs(xx - cx) <= r))
        image[m] = (220, 60, 60) if k else (60, 220, 60)
        masks.append(m)
        labels.append(k + 1)
    boxes = [[xx[m].min(), yy[m].min(), xx[m].max() + 1, yy[m].max() + 1] for m in masks]
    return image, {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels),
                   "masks": torch.tensor(np.stack(masks), dtype=torch.uint8)}


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build("mobilenet_v3_large_fpn", len(CLASSES) + 1, min_size=96, max_size=96)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(12):
        batch = [_scene(rng) for _ in range(2)]
        losses = model([torch.as_tensor(im).permute(2, 0, 1).float() / 255 for im, _ in batch],
                       [t for _, t in batch])
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    return model, rng


def test_detections_carry_their_class_distribution(trained):
    model, rng = trained
    pred = MaskRCNNPredictor()
    pred.load(model=model, classes=CLASSES, device="cpu", score_threshold=0.0)
    image, _ = _scene(rng)
    (det,) = pred.predict([image])
    n = len(det.labels)
    assert n > 0
    assert det.class_probs.shape == (n, 3) and np.allclose(det.class_probs.sum(1), 1, atol=1e-5)
    # torchvision's score is the softmax probability of the detection's class:
    # the attached vector must be the very row that score came from
    idx = [CLASSES.index(lb) + 1 for lb in det.labels]
    assert np.allclose(det.class_probs[np.arange(n), idx], det.scores, atol=1e-5)
    assert det.masks.shape == (n, 96, 96) and det.masks.dtype == bool
    assert ((det.mask_quality >= 0.5) | (det.masks.sum((1, 2)) == 0)).all() and (det.mask_quality <= 1).all()
    insts = det.to_instances()
    assert all(i.label in CLASSES and isinstance(i.segmentation, dict) for i in insts)


def test_checkpoint_round_trip_and_wrong_class_count(trained, tmp_path):
    model, rng = trained
    path = tmp_path / "m.pt"
    torch.save({"model": model.state_dict(), "classes": CLASSES, "backbone": "mobilenet_v3_large_fpn"}, path)
    a, b = MaskRCNNPredictor(), MaskRCNNPredictor()
    a.load(model=model, classes=CLASSES, device="cpu", score_threshold=0.0)
    b.load(checkpoint=path, device="cpu", score_threshold=0.0)
    b.model.transform.min_size, b.model.transform.max_size = (96,), 96
    image, _ = _scene(rng)
    (da,), (db,) = a.predict([image]), b.predict([image])
    assert np.allclose(da.scores, db.scores, atol=1e-5) and da.labels == db.labels
    assert isinstance(b.model.roi_heads, ClassProbRoIHeads)
    torch.save({"model": model.state_dict(), "classes": ["only-one"]}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="box head has 2 classes but it lists 1"):
        MaskRCNNPredictor().load(checkpoint=tmp_path / "bad.pt", device="cpu")
