from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import LS_DATA, load
from label_studio_sdk.converter import Converter
from label_studio_sdk.converter.brush import image2rle
from PIL import Image

from annot.converters.labelstudio_refs import file_name_of
from annot.geometry import polygons_bbox, rotated_rectangle, segmentation_to_mask

pytestmark = pytest.mark.samples  # reads ../shared/samples

OBB = LS_DATA / "test_export_yolo/data_obb.json"


def test_export_coco_sample(convert, annot, tmp_path):
    res = annot("convert", "labelstudio", "coco", LS_DATA / "test_export_coco/data.json", "-o", tmp_path / "o.json")
    assert res.code == 0, res
    # its two keypoints have no parentID: skipped and counted
    assert "2 x keypoint not linked to a region (no parentID) skipped" in res.err
    coco = load(tmp_path / "o.json")
    assert [c["name"] for c in coco["categories"]] == ["polygon_label", "rectangle_label"]
    assert coco["images"][0] == {"id": 1, "file_name": "test_image1.jpg", "width": 500, "height": 320,
                                      "ls_task_id": 175210175}
    rect = next(a for a in coco["annotations"] if a["category_id"] == 2)
    x, y, w, h = 31.941923774954628, 4.113475177304964, 6.352087114337568, 9.929078014184398
    assert rect["bbox"] == pytest.approx([x * 5, y * 3.2, w * 5, h * 3.2])
    poly = next(a for a in coco["annotations"] if a["category_id"] == 1)
    assert poly["segmentation"][0][:2] == pytest.approx([41.74228675136116 * 5, 3.546099290780142 * 3.2])


def _sdk_and_ours(task_list):
    out = []
    for t in task_list:
        for r in t["annotations"][0]["result"]:
            v, W, H = r["value"], r["original_width"], r["original_height"]
            sx, sy, sw, sh = Converter.rotated_rectangle(v)  # what the SDK's COCO export uses
            sdk = [sx * W / 100, sy * H / 100, sw * W / 100, sh * H / 100]
            ours = polygons_bbox([rotated_rectangle(v["x"] * W / 100, v["y"] * H / 100, v["width"] * W / 100,
                                                    v["height"] * H / 100, v["rotation"])])
            out.append((sdk, ours))
    return out


def test_rotated_boxes_in_pixel_space_not_percent_space(convert):
    tasks = load(OBB)
    coco = load(convert("labelstudio", "coco", OBB))
    anns = coco["annotations"]
    assert len(anns) == sum(len(t["annotations"][0]["result"]) for t in tasks) == 25
    pairs = _sdk_and_ours(tasks)
    for a, (_sdk, ours) in zip(anns, pairs):
        corners = np.array(a["segmentation"][0]).reshape(4, 2)
        e = np.roll(corners, -1, 0) - corners
        assert abs(np.dot(e[0], e[1])) < 1e-6 * np.dot(e[0], e[0])  # still a rectangle in pixels
        assert a["bbox"] == pytest.approx(ours)  # the envelope of the four rotated corners
    worst = max(max(abs(s - o) for s, o in zip(sdk, ours)) for sdk, ours in pairs)
    assert worst > 60  # px: the SDK rotates in percent space, shearing boxes on 597x768 images
    # on a square image percent space is pixel space, and both agree: the error is only the aspect ratio
    square = copy.deepcopy(tasks)
    for t in square:
        for r in t["annotations"][0]["result"]:
            r["original_width"] = r["original_height"]
    assert max(max(abs(s - o) for s, o in zip(sdk, ours)) for sdk, ours in _sdk_and_ours(square)) < 1e-6


def _task(tid, annotations, image="/data/upload/3/0a1b2c3d-pic.jpg", predictions=()):
    return {"id": tid, "data": {"image": image}, "annotations": annotations, "predictions": list(predictions)}


def _rect(label, x=10, y=10, w=20, h=20, rid="r1", W=200, H=100, **extra):
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": W,
            "original_height": H, "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                                             "rectanglelabels": [label]}, **extra}


def _ann(aid, results, gt=False, cancelled=False, updated="2026-01-01T00:00:00Z"):
    return {"id": aid, "result": results, "ground_truth": gt, "was_cancelled": cancelled, "updated_at": updated}


def test_annotation_selection(convert, tmp_path):
    tasks = [
        _task(1, [_ann(1, [_rect("old")], updated="2026-01-01"), _ann(2, [_rect("new")], updated="2026-02-01")]),
        _task(2, [_ann(3, [_rect("gt")], gt=True, updated="2026-01-01"), _ann(4, [_rect("later")], updated="2026-03-01")]),
        _task(3, [_ann(5, [_rect("cancelled")], cancelled=True, updated="2026-09-01"), _ann(6, [_rect("kept")])]),
        _task(4, [_ann(7, [_rect("only cancelled")], cancelled=True)]),
    ]
    f = tmp_path / "export.json"
    f.write_text(json.dumps(tasks))

    def labels(mode):
        coco = load(convert("labelstudio", "coco", f, extra=("--annotations", mode)))
        names = {c["id"]: c["name"] for c in coco["categories"]}
        return [(i["ls_task_id"], sorted(names[a["category_id"]] for a in coco["annotations"] if a["image_id"] == i["id"]))
                for i in coco["images"]]

    assert labels("latest") == [(1, ["new"]), (2, ["gt"]), (3, ["kept"])]
    assert labels("ground-truth") == [(2, ["gt"])]
    assert labels("all") == [(1, ["new", "old"]), (2, ["gt", "later"]), (3, ["kept"])]  # one image per task


def test_sdk_yolo_export_multiple_annotations(convert):
    coco = load(convert("labelstudio", "coco", LS_DATA / "test_export_yolo/data.json"))
    assert [i["file_name"] for i in coco["images"]] == ["image1", "image2"]  # a path on Label Studio: relative
    assert len(coco["annotations"]) == 4  # task 1 has two annotations: the latest one is taken
    all_ = load(convert("labelstudio", "coco", LS_DATA / "test_export_yolo/data.json", extra=("--annotations", "all")))
    assert len(all_["images"]) == 2 and len(all_["annotations"]) == 6


def test_keypoints_linked_by_parent_id(convert):
    coco = load(convert("labelstudio", "coco", LS_DATA / "test_export_yolo/data_keypoints.json"))
    task = load(LS_DATA / "test_export_yolo/data_keypoints.json")[0]
    results = task["annotations"][0]["result"]
    kps = [r for r in results if r["type"] == "keypointlabels"]
    person = next(c for c in coco["categories"] if c["name"] == "person")
    names = person["keypoints"]
    assert sorted(names) == sorted({r["value"]["keypointlabels"][0] for r in kps})
    (ann,) = [a for a in coco["annotations"] if a["category_id"] == person["id"]]
    assert ann["num_keypoints"] == len(kps)
    nose = next(r for r in kps if r["value"]["keypointlabels"] == ["nose"])
    k = names.index("nose")
    assert ann["keypoints"][3 * k : 3 * k + 3] == pytest.approx(
        [nose["value"]["x"] * 216 / 100, nose["value"]["y"] * 174 / 100, 2])
    assert coco["images"][0]["file_name"] == "image1.jpg"  # /data/upload/18/image1.jpg


def test_polygons_exact_pixels(convert):
    coco = load(convert("labelstudio", "coco", LS_DATA / "test_export_yolo/data_polygons.json"))
    pts = load(LS_DATA / "test_export_yolo/data_polygons.json")[0]["annotations"][0]["result"][0]["value"]["points"]
    assert coco["annotations"][0]["segmentation"][0] == pytest.approx([v for x, y in pts for v in (x * 6.4, y * 4.26)])


def test_json_min(convert, tmp_path):
    rows = [{"image": "/data/local-files/?d=dataset/a.jpg", "id": 7, "annotator": 1,
             "label": [{"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["cat"],
                        "original_width": 100, "original_height": 50}],
             "poly": [{"points": [[0, 0], [50, 0], [50, 50]], "closed": True, "polygonlabels": ["dog"],
                       "original_width": 100, "original_height": 50}]}]
    (tmp_path / "min.json").write_text(json.dumps(rows))
    coco = load(convert("labelstudio", "coco", tmp_path / "min.json"))
    assert coco["images"][0]["file_name"] == "dataset/a.jpg"
    cat, dog = coco["annotations"]
    assert cat["bbox"] == [10, 10, 30, 20]
    assert dog["segmentation"] == [[0, 0, 50, 0, 50, 25]]


def test_brush_decoded_to_rle_with_holes(convert, tmp_path):
    png = LS_DATA.parent / "data/test_brush/test.png"
    rle, w, h = image2rle(str(png))  # the SDK's own encoder, as Label Studio imports masks
    with Image.open(png) as im:
        expected = np.asarray(im.convert("L")) > 128
    task = _task(1, [_ann(1, [{"id": "b", "type": "brushlabels", "from_name": "tag", "to_name": "image",
                               "original_width": w, "original_height": h,
                               "value": {"format": "rle", "rle": rle, "brushlabels": ["road"]}}])])
    (tmp_path / "b.json").write_text(json.dumps([task]))
    coco = load(convert("labelstudio", "coco", tmp_path / "b.json"))
    (a,) = coco["annotations"]
    mask = segmentation_to_mask(a["segmentation"], h, w).astype(bool)
    assert np.array_equal(mask, expected)
    assert a["area"] == expected.sum()


def test_zero_region_tasks_need_a_size(convert, annot, tmp_path):
    f = tmp_path / "e.json"
    f.write_text(json.dumps([_task(42, [_ann(1, [])], image="/data/upload/1/deadbeef-empty.png")]))
    res = annot("convert", "labelstudio", "coco", f, "-o", tmp_path / "o.json")
    assert res.code == 2 and f"{f}:task 42: image size unknown" in res.err
    assert not (tmp_path / "o.json").exists()
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (33, 22)).save(tmp_path / "imgs/empty.png")
    coco = load(convert("labelstudio", "coco", f, extra=("--image-root", tmp_path / "imgs")))
    assert coco["images"][0]["file_name"] == "empty.png" and coco["images"][0]["width"] == 33
    assert coco["annotations"] == []


@pytest.mark.parametrize("ref, keep, expected", [
    ("/data/upload/12/0a1b2c3d-photo 1.jpg", False, ("photo 1.jpg", None)),
    ("/data/upload/12/0a1b2c3d-photo.jpg", True, ("/data/upload/12/0a1b2c3d-photo.jpg", None)),
    ("/data/local-files/?d=train%2Fx.png", False, ("train/x.png", None)),
    ("s3://bucket/a/b.jpg", False, ("b.jpg", "s3://bucket/a/b.jpg")),
    ("gs://bucket/c.jpg", False, ("c.jpg", "gs://bucket/c.jpg")),
    ("https://host/img/d%20e.png?sig=1", False, ("d e.png", "https://host/img/d%20e.png?sig=1")),
])
def test_image_references(ref, keep, expected):
    assert file_name_of(ref, keep) == expected


def test_predictions_as_coco_results(convert, tmp_path):
    from pycocotools.coco import COCO

    pred = {"model_version": "m1", "score": 0.7, "result": [_rect("cat", rid="p1", score=0.9), _rect("dog", x=50, rid="p2")]}
    tasks = [_task(1, [_ann(1, [_rect("cat")])], predictions=[pred])]
    (tmp_path / "p.json").write_text(json.dumps(tasks))
    plain = load(convert("labelstudio", "coco", tmp_path / "p.json"))
    assert [c["name"] for c in plain["categories"]] == ["cat"]
    out = convert("labelstudio", "coco", tmp_path / "p.json", extra=("--predictions",))
    results = load(out.with_name(out.stem + ".predictions.json"))
    assert [(r["category_id"], r["score"]) for r in results] == [(1, 0.9), (2, 0.7)]
    gt = COCO(str(out))
    dt = gt.loadRes(str(out.with_name(out.stem + ".predictions.json")))
    assert len(dt.getAnnIds()) == 2
