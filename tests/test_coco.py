from __future__ import annotations

import json

import pytest
from conftest import SAMPLES, load
from pycocotools.coco import COCO

from annot.validate import validate_coco

pytestmark = pytest.mark.samples  # reads ../shared/samples

FALSE = SAMPLES / "fcakyon-labelme2coco/tests/data"
DATUMARO_COCO = SAMPLES / "openvinotoolkit-datumaro/tests/assets/coco_dataset"

# The one defect each coco_false_* file has against coco_true_0.json, as annot names it.
SPECIFIC = {
    0: "annotations: missing (found 'annotation': a misspelling?)",
    1: "annotations[0].segmentation: must be a list of polygons ([[x0, y0, x1, y1, ...], ...]), found a float at [0]",
    2: "categories[0].id: missing",
    3: "images[1].id: missing",
    4: "annotations[0].category_id: missing",
    5: "annotations[2].image_id: missing",
    6: "images[0].file_name: missing or not a string",
    7: "categories[0].name: missing or not a string",
    8: "annotations[0].segmentation: missing",
    9: "images: missing",
    10: "annotations: missing",
    11: "categories: missing",
    12: "annotations: must be a list, found dict",
    13: "categories: must be a list, found dict",
    14: "images: must be a list, found dict",
    15: "images: missing (found 'image': a misspelling?)",
    16: "categories: missing (found 'categoryes': a misspelling?)",
}


@pytest.mark.parametrize("k", sorted(SPECIFIC))
def test_every_false_file_is_rejected_with_its_specific_message(annot, k):
    path = FALSE / f"coco_false_{k}.json"
    res = annot("validate", "coco", path)
    assert res.code == 1
    lines = res.err.splitlines()
    assert f"{path}:{SPECIFIC[k]}" in lines, res.err
    # and the message is specific: the valid twin file does not get it
    true_problems, _ = validate_coco(load(FALSE / "coco_true_0.json"))
    assert SPECIFIC[k] not in true_problems


def test_true_files_fail_only_on_what_coco_requires_beyond_them():
    problems, _ = validate_coco(load(FALSE / "coco_true_0.json"))
    # these "true" files omit sizes, ids, bboxes and areas that COCO evaluation needs
    kinds = {p.split(":")[0].split(".")[-1] for p in problems}
    assert kinds == {"width", "height", "id", "bbox", "area"}


def test_valid_file_passes_with_ap_one(convert, annot):
    out = convert("coco", "coco", DATUMARO_COCO / "coco_instances/annotations/instances_train.json")
    res = annot("validate", "coco", out)
    assert res.code == 0 and "bbox AP 1.000" in res.out, res


def test_validation_does_not_modify_the_document():
    doc = {"images": [{"id": 1, "file_name": "a", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "x"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0,
                            "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]}]}
    before = json.dumps(doc)
    assert validate_coco(doc)[0] == []
    assert json.dumps(doc) == before  # COCOeval would turn the polygon into bytes RLE in place


def test_self_evaluation_catches_degenerate_geometry():
    doc = {"images": [{"id": 1, "file_name": "a", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "x"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0,
                            "segmentation": [[0.1, 0.1, 0.2, 0.1, 0.2, 0.2]]}]}  # rasterises to nothing
    problems, aps = validate_coco(doc)
    assert aps["bbox"] == pytest.approx(1.0) and aps["segm"] < 0.5
    assert problems == [f"$: self-evaluation segm AP = {aps['segm']:.4f}, must be 1.0 (degenerate or unmatched annotations)"]


@pytest.mark.parametrize("bad, message", [
    ({"bbox": [5, 5, 10, 2]}, "annotations[0].bbox: [5, 5, 10, 2] extends outside the 10x10 image"),
    ({"segmentation": {"size": [5, 5], "counts": "0"}}, "annotations[0].segmentation.size: RLE size [5, 5] is not the image's [height, width] = [10, 10]"),
    ({"segmentation": [[1, 1, 2, 2]]}, "annotations[0].segmentation[0]: polygon needs an even number >= 6 of coordinates, has 4"),
    ({"id": "1"}, "annotations[0].id: must be an int, found '1'"),
    ({"category_id": 9}, "annotations[0].category_id: 9 is not a category id"),
])
def test_structural_checks(bad, message):
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0,
           "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]], **bad}
    doc = {"images": [{"id": 1, "file_name": "a", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "x"}], "annotations": [ann]}
    assert message in validate_coco(doc)[0]


def test_reader_normalises_messy_coco(convert, tmp_path):
    doc = {"images": [{"id": "img-a", "file_name": "a.jpg", "width": 20, "height": 10},
                      {"id": "7", "file_name": "empty.jpg", "width": 5, "height": 5}],
           "categories": [{"id": "12", "name": "dog"}, {"id": 3, "name": "cat"}],
           "annotations": [
               {"id": "x", "image_id": "img-a", "category_id": 3, "iscrowd": "false",
                "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
               {"id": "y", "image_id": "img-a", "category_id": "12", "iscrowd": True,
                "segmentation": {"size": [10, 20], "counts": [5, 10, 185]}},
               {"id": "z", "image_id": "img-a", "category_id": 12, "bbox": [1, 1, 2, 2],
                "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3], [5, 5, 6, 6]]}]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    out = convert("coco", "coco", tmp_path / "m.json")
    coco = load(out)
    assert [c["name"] for c in coco["categories"]] == ["dog", "cat"]  # file order kept, ids 1..N
    assert [i["id"] for i in coco["images"]] == [1, 2]  # the image without annotations is kept
    a, b, c = coco["annotations"]
    assert (a["id"], a["category_id"], a["iscrowd"], a["area"], a["bbox"]) == (1, 2, 0, 16, [0, 0, 4, 4])
    assert b["iscrowd"] == 1 and isinstance(b["segmentation"]["counts"], str) and b["area"] == 10
    assert c["segmentation"] == [[1, 1, 3, 1, 3, 3, 1, 3]]  # the 4-number polygon is dropped
    assert c["area"] == 4


def test_datumaro_coco_assets_round_trip(convert, annot):
    src = DATUMARO_COCO / "coco/annotations/instances_train.json"
    out = convert("coco", "coco", src)
    orig, got = load(src), load(out)
    assert len(got["annotations"]) == len(orig["annotations"])
    for o, g in zip(orig["annotations"], got["annotations"]):
        assert g["bbox"] == pytest.approx(o["bbox"]) and g["iscrowd"] == o["iscrowd"]
    assert annot("validate", "coco", out).code == 0


@pytest.mark.parametrize("name", ["instances_val2014_fakebbox100_results.json",
                                  "instances_val2014_fakesegm100_results.json"])
def test_cocoapi_fake_results_convert_and_validate_with_their_dataset(annot, tmp_path, name):
    """cocoapi's own results files, with a dataset of their images and
    categories (--gt), read as a dataset of scored annotations: the same
    detections come out, with their scores, as pycocotools loads them."""
    path = SAMPLES / "cocodataset-cocoapi/results" / name
    orig = load(path)
    sizes = {r["image_id"]: r["segmentation"]["size"] for r in orig if "segmentation" in r}
    gt = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": sizes.get(i, [640, 640])[1],
                      "height": sizes.get(i, [640, 640])[0]} for i in sorted({r["image_id"] for r in orig})],
          "categories": [{"id": c, "name": f"c{c}"} for c in sorted({r["category_id"] for r in orig})],
          "annotations": []}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    res = annot("validate", "coco", path, "--gt", tmp_path / "gt.json")
    assert res.code == 0 and f"{len(orig)} results on" in res.out, res
    res = annot("convert", "coco", "coco", path, "--gt", tmp_path / "gt.json", "-o", tmp_path / "out.json", "-q")
    assert res.code == 0, res
    got = load(tmp_path / "out.json")
    ref = COCO(str(tmp_path / "gt.json")).loadRes(str(path))
    assert len(got["annotations"]) == len(orig) == len(ref.getAnnIds())
    names = {c["id"]: c["name"] for c in gt["categories"]}
    out_names = {c["id"]: c["name"] for c in got["categories"]}
    for a, r in zip(got["annotations"], ref.loadAnns(ref.getAnnIds())):
        assert out_names[a["category_id"]] == names[r["category_id"]] and a["score"] == pytest.approx(r["score"])
        assert a["bbox"] == pytest.approx(r["bbox"], abs=1e-6)
    res = annot("convert", "coco", "coco", path, "-o", tmp_path / "x.json")
    assert res.code == 2 and "a COCO results list" in res.err and "pass --gt" in res.err
