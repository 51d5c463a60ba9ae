"""Model output comes back in: what ``annot predict`` writes (a COCO results
list, Label Studio tasks with predictions) converts to every writer and back,
and what comes back is the model's own detections, within what each format
keeps (checked against the predictor called directly, not against a second
conversion)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402
from tiny_models import CLASSES, save_checkpoint, write_scenes  # noqa: E402

from annot.geometry import segmentation_to_mask  # noqa: E402
from annot.plugins.maskrcnn import MaskRCNNPredictor  # noqa: E402

THRESHOLD = 0.25
# what each writer keeps of a detection, and how closely its mask comes back
KEEPS = {  # writer: (mask IoU at least, scores kept, extension, read-back options)
    "coco": (1.0, True, ".json", ()),
    "labelme": (1.0, False, "", ("--labels", "LABELS")),
    "labelstudio": (1.0, False, ".json", ()),
    "yolo": (0.8, False, "", ("--image-root", "IMAGES")),  # polygons traced with a 1 px tolerance
    "voc": (None, False, "", ()),  # boxes only
}


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, tiny_maskrcnn):
    """The tiny model's detections of three scenes, from the predictor itself
    and from `annot predict` as COCO results and as Label Studio tasks."""
    from annot.cli import main

    root = tmp_path_factory.mktemp("roundtrip")
    paths = write_scenes(root / "images", 3)
    save_checkpoint(tiny_maskrcnn, root / "m.pt")
    (root / "labels.txt").write_text("\n".join(CLASSES))
    common = ["predict", "--model", "maskrcnn", "--checkpoint", str(root / "m.pt"), str(root / "images"),
              "--score-threshold", str(THRESHOLD), "-q"]
    assert main([*common, "--format", "coco", "-o", str(root / "res.json")]) == 0
    assert main([*common, "-o", str(root / "tasks.json")]) == 0
    direct = MaskRCNNPredictor()
    direct.load(checkpoint=root / "m.pt", device="cpu", score_threshold=THRESHOLD)
    truth = {}
    for p in paths:
        (det,) = direct.predict([np.asarray(Image.open(p).convert("RGB"))])
        truth[p.name] = det[det.mask.any((1, 2))]  # an empty mask is no annotation
    assert sum(len(d) for d in truth.values()) > 10
    return root, truth


def _back(annot, root, out, writer):
    """``out`` (written by ``writer``) read back into COCO: the parsed file."""
    extra = [{"LABELS": root / "labels.txt", "IMAGES": root / "images"}.get(a, a) for a in KEEPS[writer][3]]
    back = out.with_name(out.name + ".back.json")
    res = annot("convert", writer, "coco", out, "-o", back, "-q", *extra)
    assert res.code == 0, res
    assert annot("validate", "coco", back, "-q").code == 0
    return json.loads(back.read_text())


def _compare(coco, truth, writer):
    min_iou, scores, _, _ = KEEPS[writer]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_image = {im["id"]: im for im in coco["images"]}
    got = {}
    for a in coco["annotations"]:
        got.setdefault(by_image[a["image_id"]]["file_name"], []).append(a)
    assert sorted(got) == sorted(n for n, d in truth.items() if len(d))
    for name, det in truth.items():
        anns = got.get(name, [])
        assert len(anns) == len(det), (writer, name)
        h, w = det.mask.shape[1:]
        for k, a in enumerate(anns):  # every format keeps the detections' order
            assert names[a["category_id"]] == det.labels[k], (writer, name, k)
            x0, y0, x1, y1 = det.xyxy[k]
            if min_iou is None:  # boxes: the box of the mask, to the pixel
                ys, xs = np.nonzero(det.mask[k])
                assert a["bbox"] == pytest.approx([xs.min(), ys.min(), xs.max() + 1 - xs.min(),
                                                   ys.max() + 1 - ys.min()], abs=1e-6), (writer, name, k)
            else:
                m = segmentation_to_mask(a["segmentation"], h, w).astype(bool)
                iou = (m & det.mask[k]).sum() / (m | det.mask[k]).sum()
                assert iou >= min_iou - 1e-9, (writer, name, k, iou)
            if scores:
                assert a["score"] == pytest.approx(det.confidence[k], abs=1e-6)


@pytest.mark.parametrize("writer", sorted(KEEPS))
def test_coco_results_to_every_writer(annot, predicted, writer):
    root, truth = predicted
    out = root / f"from_results_{writer}{KEEPS[writer][2]}"
    res = annot("convert", "coco", writer, root / "res.json", "-o", out, "-q", "--overwrite")
    assert res.code == 0, res
    _compare(_back(annot, root, out, writer), truth, writer)


@pytest.mark.parametrize("writer", sorted(KEEPS))
def test_labelstudio_predictions_to_every_writer(annot, predicted, writer):
    root, truth = predicted
    out = root / f"from_tasks_{writer}{KEEPS[writer][2]}"
    res = annot("convert", "labelstudio", writer, root / "tasks.json", "--annotations", "predictions", "-o", out,
                "-q", "--overwrite")
    assert res.code == 0, res
    _compare(_back(annot, root, out, writer), truth, writer)


def test_results_validate_and_become_label_studio_predictions(annot, predicted):
    root, truth = predicted
    res = annot("validate", "coco", root / "res.json")
    n = sum(len(d) for d in truth.values())
    assert res.code == 0 and f"{n} results on 3 of 3 images, 2 categories" in res.out
    res = annot("convert", "coco", "labelstudio", root / "res.json", "--as", "predictions", "--model-version", "v9",
                "-o", root / "review.json", "-q", "--overwrite")
    assert res.code == 0, res
    tasks = json.loads((root / "review.json").read_text())
    for t in tasks:
        (pred,) = t["predictions"]
        det = truth[t["data"]["image"].rsplit("=", 1)[1]]
        assert pred["model_version"] == "v9" and len(pred["result"]) == len(det)
        assert [r["score"] for r in pred["result"]] == pytest.approx(det.confidence.tolist(), abs=1e-6)
        assert pred["score"] == pytest.approx(float(np.mean(det.confidence)), abs=1e-6)


def test_tasks_with_predictions_only_are_kept_by_predictions(annot, predicted):
    """``--predictions`` on annot predict's own tasks: every image, no
    annotations, the predictions as a results list that loadRes takes."""
    from pycocotools.coco import COCO

    root, truth = predicted
    res = annot("convert", "labelstudio", "coco", root / "tasks.json", "--predictions", "-o", root / "p.json", "-q",
                "--overwrite", "--labels", root / "labels.txt")
    assert res.code == 0, res
    ds = json.loads((root / "p.json").read_text())
    assert sorted(im["file_name"] for im in ds["images"]) == sorted(truth) and ds["annotations"] == []
    dt = COCO(str(root / "p.json")).loadRes(str(root / "p.predictions.json"))
    assert len(dt.getAnnIds()) == sum(len(d) for d in truth.values())
    for im in ds["images"]:
        det = truth[im["file_name"]]
        anns = dt.loadAnns(dt.getAnnIds(imgIds=im["id"]))
        for a, m in zip(anns, det.mask):
            assert np.array_equal(mask_utils.decode(a["segmentation"]).astype(bool), m)
    # without --predictions those tasks have nothing to convert: an error that says what to do, not 0 images
    res = annot("convert", "labelstudio", "coco", root / "tasks.json", "-o", root / "none.json", "--overwrite")
    assert res.code == 2 and "none of the 3 task(s) could be converted" in res.err and "pass --predictions" in res.err
    assert not (root / "none.json").exists()
