"""Mask R-CNN predictor: a small model trained for a few steps inside the test
(no weights can be downloaded) keeps each detection's class distribution and
gives the same detections as torchvision's own forward pass."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tiny_models import CLASSES, save_checkpoint, scene  # noqa: E402

from annot.detections import CLASS_PROBS, MASK_UNCERTAINTY  # noqa: E402
from annot.plugins.maskrcnn import MaskRCNNPredictor, mask_uncertainty  # noqa: E402


@pytest.fixture(scope="module")
def trained(tiny_maskrcnn):
    return tiny_maskrcnn, np.random.default_rng(7)


def test_detections_carry_their_class_distribution(trained):
    model, rng = trained
    pred = MaskRCNNPredictor()
    pred.load(model=model, classes=CLASSES, device="cpu", score_threshold=0.0)
    image, _ = scene(rng)
    (det,) = pred.predict([image])
    n = len(det)
    assert n > 0
    probs = det.data[CLASS_PROBS]
    assert probs.shape == (n, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert det.columns[CLASS_PROBS] == ("__background__", *CLASSES)
    # torchvision's score is the softmax probability of the detection's class:
    # the attached vector must be the very row that score came from
    assert np.allclose(probs[np.arange(n), det.class_id + 1], det.confidence, atol=1e-5)
    assert det.mask.shape == (n, 96, 96) and det.mask.dtype == bool
    assert ((det.data[MASK_UNCERTAINTY] >= 0) & (det.data[MASK_UNCERTAINTY] <= 1)).all()
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
    assert np.allclose(da.confidence, db.confidence, atol=1e-5) and da.labels == db.labels
    torch.save({"model": model.state_dict(), "classes": ["only-one"]}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="box head has 2 classes but it lists 1"):
        MaskRCNNPredictor().load(checkpoint=tmp_path / "bad.pt", device="cpu")
    torch.save({"model": model.state_dict(), "classes": CLASSES, "backbone": "resnet50_fpn_v2"}, tmp_path / "r.pt")
    # the whole reason in one sentence, not "Error(s) in loading state_dict for MaskRCNN:"
    with pytest.raises(Exception, match=r"r.pt: does not fit a resnet50_fpn_v2 Mask R-CNN: \d+ weight\(s\) missing "
                                        r"\(first: backbone\.body\.conv1\.weight\); \d+ unexpected \(first: "
                                        r"backbone\.body\.0\.0\.weight\)"):
        MaskRCNNPredictor().load(checkpoint=tmp_path / "r.pt", device="cpu")
    state = model.state_dict()
    state["roi_heads.mask_head.0.0.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save({"model": state, "classes": CLASSES, "backbone": "mobilenet_v3_large_fpn"}, tmp_path / "s.pt")
    with pytest.raises(Exception, match=r"s.pt: does not fit a mobilenet_v3_large_fpn Mask R-CNN: 1 of another "
                                        r"shape \(first: roi_heads.mask_head.0.0.weight is \(3, 3, 3, 3\) in the "
                                        r"file, \(256, 256, 3, 3\) in the model\)$"):
        MaskRCNNPredictor().load(checkpoint=tmp_path / "s.pt", device="cpu")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    (tmp_path / "text.pt").write_text("hello, not a checkpoint\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    for bad in ("cut.pt", "text.pt", "empty.pt"):
        with pytest.raises(Exception, match=f"{bad}: not a readable checkpoint \\(.+\\)$"):
            MaskRCNNPredictor().load(checkpoint=tmp_path / bad, device="cpu")
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
    coords = det.xyxy[det.xyxy >= 32]  # bf16 steps are 0.25 px in [32, 64) and 0.5 px in [64, 128)
    assert len(coords) > 10
    assert np.mean(coords % 0.25 == 0) < 0.2
    assert np.allclose(det.data[CLASS_PROBS].sum(1), 1, atol=1e-2)


def test_same_detections_as_torchvision_and_the_model_is_left_untouched(trained):
    """annot runs the model's modules itself (to keep each detection's
    proposal): the detections must be exactly torchvision's forward pass
    filtered at the threshold, and the model must be the same object, with the
    same settings and state, afterwards."""
    model, rng = trained
    image, _ = scene(rng)
    floor = model.roi_heads.score_thresh
    with torch.inference_mode():
        ref = model([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    scores = ref["scores"].numpy()
    t = float(np.sort(scores)[len(scores) // 2])  # half the boxes fall below it; the median itself stays
    keep = scores >= t
    assert 0 < keep.sum() < len(scores)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pred = MaskRCNNPredictor()
    pred.load(model=model, classes=CLASSES, device="cpu", score_threshold=t)
    (det,) = pred.predict([image])
    assert model.roi_heads.score_thresh == floor and type(model.roi_heads).__name__ == "RoIHeads"
    assert not model.rpn.head._forward_hooks and not model.roi_heads.box_predictor._forward_hooks
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert det.labels == [CLASSES[int(i) - 1] for i in ref["labels"][keep]]
    assert np.array_equal(det.confidence, scores[keep].astype(np.float64))
    assert np.array_equal(det.xyxy, ref["boxes"][keep].numpy().astype(np.float64))
    assert np.array_equal(det.mask, ref["masks"][keep, 0].numpy() >= 0.5)


def test_mask_uncertainty_is_the_entropy_of_uncertain_pixels_in_the_box():
    soft = torch.zeros(3, 10, 10)
    soft[0, 2:4, 2:4] = 0.5  # 4 pixels of 1 bit each
    soft[0, 5, 5] = 0.97  # certain: not counted
    soft[1, 0, 0] = 0.5  # outside its box: not counted
    soft[1, 6, 6] = 0.9
    soft[2, 1, 1] = 1.0  # nothing uncertain
    boxes = torch.tensor([[0, 0, 10, 10], [5, 5, 8, 8], [0, 0, 10, 10]], dtype=torch.float)
    h = -(0.9 * np.log2(0.9) + 0.1 * np.log2(0.1))
    assert mask_uncertainty(soft, boxes).tolist() == pytest.approx([1.0, h, 0.0])


def test_embedding_is_the_backbone_features_pooled_over_the_image(trained):
    """The per-image embedding (for diversity ranking) is each FPN level's
    global average over the image, concatenated and L2-normalised; in a batch
    the padding beside a smaller image is left out of its average."""
    model, rng = trained
    large, _ = scene(rng, 96)
    small = np.ascontiguousarray(scene(rng, 96)[0][:, :64])  # 96x64: padded to 96x96 beside the large one
    pred = MaskRCNNPredictor()
    pred.load(model=model, classes=CLASSES, device="cpu", score_threshold=0.3, embeddings=True)
    (alone,) = pred.predict([small])
    together, _ = pred.predict([small, large])
    emb = alone.image_data["embedding"]
    pooled = torch.cat([f.mean((2, 3))[0] for f in _features(model, [small]).values()])
    assert np.allclose(emb, torch.nn.functional.normalize(pooled, dim=0).numpy(), atol=1e-6)
    features = _features(model, [small, large])
    assert next(iter(features.values())).shape[-1] > next(iter(_features(model, [small]).values())).shape[-1]
    # the small image is 2/3 of the padded width: the feature cells that cover any of it
    valid = torch.cat([f[0, :, :, : -(-f.shape[-1] * 2 // 3)].mean((1, 2)) for f in features.values()])
    assert np.allclose(together.image_data["embedding"], torch.nn.functional.normalize(valid, dim=0).numpy(),
                       atol=1e-6)


def _features(model, images):
    with torch.inference_mode():
        batch, _ = model.transform([torch.from_numpy(im).permute(2, 0, 1).float() / 255 for im in images])
        return model.backbone(batch.tensors)


def test_default_mobilenet_build_is_torchvisions_model():
    """build()'s MobileNet at its defaults is torchvision's mobilenet_backbone(fpn=True) + MaskRCNN, weight for
    weight, so checkpoints trained on either load into the other; cpu-tiny's variant differs where it says."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import mobilenet_backbone

    from annot.plugins.maskrcnn import build

    ours = build("mobilenet_v3_large_fpn", 3).state_dict()
    # the anchors of torchvision's fasterrcnn_mobilenet_v3_large_fpn
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    theirs = MaskRCNN(mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=None, fpn=True,
                                         trainable_layers=6), num_classes=3, rpn_anchor_generator=anchors).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    tiny = build("mobilenet_v3_large_fpn", 3, 128, 128, norm="batch", channels=64, min_stride=8)
    tiny.eval()
    with torch.no_grad():
        features = tiny.backbone(torch.zeros(1, 3, 128, 128))
    assert {k: tuple(v.shape[1:]) for k, v in features.items()} == {
        "0": (64, 16, 16), "1": (64, 8, 8), "2": (64, 4, 4), "pool": (64, 2, 2)}  # strides 8, 16, 32, 64
