"""Images with hundreds of instances (cells, crowds, parked cars) and
annotation files named relative to the working directory."""

from __future__ import annotations

import json

import pytest
from conftest import load
from PIL import Image
from pycocotools import mask as mask_utils

from annot.validate import validate_coco

N_BOXES = 300  # pycocotools' area() of more than 255 RLEs at once overflows under NumPy 2
W, H = 250, 200


def _dense_coco(path):
    """One image, N_BOXES boxes of varied sizes on a grid (as 4-corner
    polygons) and one triangle, so a shifted area would be noticed."""
    anns = []
    for k in range(N_BOXES):
        x, y = (k % 20) * 12 + 1, (k // 20) * 13 + 1
        w, h = 3 + k % 7, 4 + k % 5
        anns.append({"id": k + 1, "image_id": 1, "category_id": 1 + k % 2, "iscrowd": 0, "bbox": [x, y, w, h],
                     "area": float(w * h), "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    anns.append({"id": N_BOXES + 1, "image_id": 1, "category_id": 2, "iscrowd": 0, "bbox": [2, 190, 60, 8],
                 "area": 240.0, "segmentation": [[2, 190, 62, 190, 2, 198]]})
    doc = {"images": [{"id": 1, "file_name": "cells.png", "width": W, "height": H}],
           "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "debris"}], "annotations": anns}
    path.write_text(json.dumps(doc))
    return path


def _own_area(ann) -> float:
    """The pycocotools area of this annotation alone."""
    return float(mask_utils.area(mask_utils.frPyObjects(ann["segmentation"], H, W)).sum())


@pytest.mark.parametrize("fmt", ["labelme", "voc", "yolo", "labelstudio"])
def test_more_than_255_instances_in_one_image(convert, tmp_path, fmt):
    src = convert("coco", "coco", _dense_coco(tmp_path / "dense.json"))  # read + written + validated
    anns = load(src)["annotations"]
    assert len(anns) == N_BOXES + 1
    assert [a["area"] for a in anns] == [_own_area(a) for a in anns]
    out = convert("coco", fmt, src)
    Image.new("RGB", (W, H)).save(tmp_path / "cells.png")  # YOLO sizes come from the image
    back = load(convert(fmt, "coco", out, extra=("--image-root", tmp_path) if fmt in ("yolo", "labelstudio") else ()))
    got = back["annotations"]
    assert len(got) == N_BOXES + 1  # VOC keeps the triangle's box
    assert [a["area"] for a in got] == [_own_area(a) for a in got]
    for a, b in zip(got, anns):
        assert a["bbox"] == pytest.approx(b["bbox"], abs=1e-6)


def test_validate_evaluates_beyond_100_instances(annot, tmp_path):
    coco = _dense_coco(tmp_path / "dense.json")
    res = annot("validate", "coco", coco)
    assert res.code == 0, res
    # all 301 count: at pycocotools' default 100 detections per image recall would stop at 1/3
    assert "bbox AP 1.000, segm AP 1.000" in res.out


def test_validate_finds_one_degenerate_instance_among_hundreds(tmp_path):
    doc = load(_dense_coco(tmp_path / "dense.json"))
    before = json.dumps(doc)
    assert validate_coco(doc) == ([], {"bbox": 1.0, "segm": 1.0})
    assert json.dumps(doc) == before  # evaluated in groups of copies, the document untouched
    for k in (7, 287):  # first and last group of the 150 cells of category 2
        bad = json.loads(before)
        x, y = bad["annotations"][k]["bbox"][:2]
        bad["annotations"][k]["segmentation"] = [[x, y, x + 0.1, y, x + 0.1, y + 0.1]]  # rasterises to nothing
        problems, aps = validate_coco(bad)
        assert aps["bbox"] == 1.0 and aps["segm"] < 1.0
        assert problems == [f"$: self-evaluation segm AP = {aps['segm']:.4f}, must be 1.0 "
                            "(degenerate or unmatched annotations)"]


def test_files_named_relative_to_the_working_directory(annot, tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    monkeypatch.chdir(proj)
    shape = {"label": "a", "points": [[1, 1], [9, 1], [9, 7]], "shape_type": "polygon", "group_id": None}
    doc = {"version": "5.3.1", "shapes": [shape], "imagePath": "x.png", "imageData": None,
           "imageWidth": 20, "imageHeight": 10}
    (proj / "x.json").write_text(json.dumps(doc))
    doc["imagePath"] = "../x.png"
    (proj / "sub" / "y.json").write_text(json.dumps(doc))
    res = annot("convert", "labelme", "coco", "x.json", "sub/y.json", "-o", "../files.json", "-q")
    assert res.code == 0, res
    # a file given by name: image paths relative to its folder
    assert [i["file_name"] for i in load(tmp_path / "files.json")["images"]] == ["x.png", "../x.png"]
    res = annot("convert", "labelme", "coco", ".", "-o", "../folder.json", "-q")
    assert res.code == 0, res
    # a folder given: relative to it
    assert [i["file_name"] for i in load(tmp_path / "folder.json")["images"]] == ["x.png", "x.png"]
