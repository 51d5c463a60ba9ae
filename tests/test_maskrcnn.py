"""Mask R-CNN predictor: a small model trained for a few steps inside the test
(no weights can be downloaded) keeps each detection's class distribution."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tiny_models import CLASSES, save_checkpoint, scene  # noqa: E402

from annot.plugins.maskrcnn import ClassProbRoIHeads, MaskRCNNPredictor  # noqa: E402


@pytest.fixture(scope="module")
def trained(tiny_maskrcnn):
    return tiny_maskrcnn, np.random.default_rng(7)


def test_detections_carry_their_class_distribution(trained):
    model, rng = trained
    pred = MaskRCNNPredictor()
    pred.load(model=model, classes=CLASSES, device="cpu", score_threshold=0.0)
    image, _ = scene(rng)
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
    save_checkpoint(model, path)
    a, b = MaskRCNNPredictor(), MaskRCNNPredictor()
    a.load(model=model, classes=CLASSES, device="cpu", score_threshold=0.0)
    b.load(checkpoint=path, device="cpu", score_threshold=0.0)
    assert b.model.transform.min_size == (96,)  # the scale it was trained at travels with the checkpoint
    image, _ = scene(rng)
    (da,), (db,) = a.predict([image]), b.predict([image])
    assert np.allclose(da.scores, db.scores, atol=1e-5) and da.labels == db.labels
    assert isinstance(b.model.roi_heads, ClassProbRoIHeads)
    torch.save({"model": model.state_dict(), "classes": ["only-one"]}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="box head has 2 classes but it lists 1"):
        MaskRCNNPredictor().load(checkpoint=tmp_path / "bad.pt", device="cpu")
    torch.save({"model": model.state_dict(), "classes": CLASSES, "backbone": "resnet50_fpn_v2"}, tmp_path / "r.pt")
    with pytest.raises(Exception, match="r.pt: does not fit a resnet50_fpn_v2 Mask R-CNN"):
        MaskRCNNPredictor().load(checkpoint=tmp_path / "r.pt", device="cpu")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(Exception, match="cut.pt: not a readable checkpoint"):
        MaskRCNNPredictor().load(checkpoint=tmp_path / "cut.pt", device="cpu")
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(Exception, match="bare.pt: not an annot Mask R-CNN checkpoint"):
        MaskRCNNPredictor().load(checkpoint=tmp_path / "bare.pt", device="cpu")


def test_bf16_autocast_keeps_box_arithmetic_in_fp32(trained):
    """Under bf16 autocast torchvision would decode boxes in bf16 (coordinates
    rounded to bf16 steps); the heads' outputs are
    cast to fp32 first, so boxes and masks are not quantised."""
    model, rng = trained
    pred = MaskRCNNPredictor()
    pred.load(model=model, classes=CLASSES, device="cpu", score_threshold=0.0, precision="bf16")
    image, _ = scene(rng)
    (det,) = pred.predict([image])
    xyxy = np.concatenate([det.boxes[:, :2], det.boxes[:, :2] + det.boxes[:, 2:]], 1)
    coords = xyxy[xyxy >= 32]  # bf16 steps are 0.25 px in [32, 64) and 0.5 px in [64, 128)
    assert len(coords) > 10
    assert np.mean(coords % 0.25 == 0) < 0.2
    assert np.allclose(det.class_probs.sum(1), 1, atol=1e-2)


def test_threshold_applied_inside_the_model_keeps_the_same_detections(trained):
    """The score threshold is handed to torchvision's postprocessing (so boxes
    below it skip NMS, the mask head and pasting): the detections kept must be
    exactly those of the unmodified model filtered afterwards."""
    model, rng = trained
    image, _ = scene(rng)
    floor = model.roi_heads.score_thresh
    with torch.inference_mode():
        ref = model([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    scores = ref["scores"].numpy()
    t = float(np.sort(scores)[len(scores) // 2])  # half the boxes fall below it; the median itself stays
    keep = scores >= t
    assert 0 < keep.sum() < len(scores)
    pred = MaskRCNNPredictor()
    pred.load(model=model, classes=CLASSES, device="cpu", score_threshold=t)
    (det,) = pred.predict([image])
    assert model.roi_heads.score_thresh == floor  # the caller's model is left as it was
    assert det.labels == [CLASSES[int(i) - 1] for i in ref["labels"][keep]]
    assert np.array_equal(det.scores, scores[keep])
    xyxy = ref["boxes"][keep].numpy()
    assert np.array_equal(det.boxes, np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1))
    assert np.array_equal(det.masks, ref["masks"][keep, 0].numpy() >= 0.5)
