"""labelImg's three formats: Pascal VOC, YOLO, CreateML."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
from conftest import LS_DATA, SAMPLES, load
from PIL import Image

pytestmark = pytest.mark.samples  # reads ../shared/samples

RACCOON = SAMPLES / "datitran-raccoon_dataset"
DATUMARO = SAMPLES / "openvinotoolkit-datumaro/tests/assets"


def test_raccoon_voc_matches_its_csv_to_the_pixel(convert):
    coco = load(convert("voc", "coco", RACCOON / "annotations"))
    images = {i["id"]: i for i in coco["images"]}
    got = Counter(
        (images[a["image_id"]]["file_name"], images[a["image_id"]]["width"], images[a["image_id"]]["height"],
         a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3])
        for a in coco["annotations"]
    )
    with open(RACCOON / "data/raccoon_labels.csv") as f:
        want = Counter(
            (r["filename"], int(r["width"]), int(r["height"]), float(r["xmin"]), float(r["ymin"]),
             float(r["xmax"]), float(r["ymax"]))
            for r in csv.DictReader(f)
        )
    assert got == want  # 0 px difference under the continuous convention
    assert len(coco["images"]) == 200 and len(coco["annotations"]) == 217
    assert coco["categories"] == [{"id": 1, "name": "raccoon", "supercategory": ""}]


def _voc(tmp_path, objects, size=True):
    objs = "".join(
        f"<object><name>{n}</name>{extra}<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, extra in objects
    )
    sz = "<size><width>100</width><height>50</height><depth>3</depth></size>" if size else ""
    p = tmp_path / "a.xml"
    p.write_text(f"<annotation><filename>a.jpg</filename>{sz}{objs}</annotation>")
    return p


def test_voc_pixel_conventions_floats_and_difficult(convert, tmp_path):
    f = _voc(tmp_path, [("cat", (1, 1, 10, 10), "<difficult/>"), ("dog", (2.5, 3, 12.25, 20), "<difficult>1</difficult>")])
    cont = load(convert("voc", "coco", f))
    assert [a["bbox"] for a in cont["annotations"]] == [[1, 1, 9, 9], [2.5, 3, 9.75, 17]]
    assert [a["iscrowd"] for a in cont["annotations"]] == [0, 0]
    voc1 = load(convert("voc", "coco", f, extra=("--pixel-convention", "voc1", "--difficult-as-crowd")))
    assert [a["bbox"] for a in voc1["annotations"]] == [[0, 0, 10, 10], [1.5, 2, 10.75, 18]]
    assert [a["iscrowd"] for a in voc1["annotations"]] == [0, 1]


def test_voc_size_from_image_or_error(convert, annot, tmp_path):
    f = _voc(tmp_path, [("cat", (1, 1, 10, 10), "")], size=False)
    res = annot("convert", "voc", "coco", f, "-o", tmp_path / "o.json")
    assert res.code == 2 and f"{f}:size: no <size> and image 'a.jpg' not found" in res.err
    Image.new("RGB", (70, 30)).save(tmp_path / "a.jpg")
    coco = load(convert("voc", "coco", f))
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (70, 30)


def test_datumaro_voc_assets(convert, annot, tmp_path):
    coco = load(convert("voc", "coco", DATUMARO / "voc_dataset/voc_dataset1/Annotations"))
    assert [c["name"] for c in coco["categories"]] == ["cat", "person"]
    assert [a["bbox"] for a in coco["annotations"]] == [[1, 2, 2, 2], [4, 5, 2, 2]]
    # voc_dataset2 has neither <size> nor images: every file is reported, none converted
    res = annot("convert", "voc", "coco", DATUMARO / "voc_dataset/voc_dataset2/Annotations", "-o",
                tmp_path / "o.json", "--on-error", "skip")
    assert res.code == 0
    report = load(tmp_path / "o.json.report.json")
    assert len(report["skipped"]) == 5 and all("no <size>" in s["reason"] for s in report["skipped"])


def test_yolo_sdk_import_data(convert):
    root = LS_DATA / "test_import_yolo_data"
    coco = load(convert("yolo", "coco", root))
    names = (root / "classes.txt").read_text().split("\n")
    assert [c["name"] for c in coco["categories"]] == [n for n in names if n]
    assert len(coco["images"]) == 7
    img1 = next(i for i in coco["images"] if i["file_name"] == "images/img_1.jpg")
    with Image.open(root / "images/img_1.jpg") as im:
        assert (img1["width"], img1["height"]) == im.size
    first = next(a for a in coco["annotations"] if a["image_id"] == img1["id"])
    cx, cy, w, h = 0.49765625, 0.46200607902735563, 0.9640625, 0.8693009118541033
    W, H = im.size
    assert first["category_id"] == 3
    assert first["bbox"] == pytest.approx([cx * W - w * W / 2, cy * H - h * H / 2, w * W, h * H])
    n_lines = sum(len(p.read_text().split("\n")) - 1 for p in (root / "labels").glob("*.txt"))
    assert len(coco["annotations"]) == n_lines


@pytest.mark.parametrize("layout, n_images", [("annotations", 1), ("labels", 2), ("strict", 1)])
def test_yolo_datumaro_layouts(convert, layout, n_images):
    # Annotations/ + Images/, Ultralytics labels/<split>/ + images/<split>/, darknet obj_train_data/
    coco = load(convert("yolo", "coco", DATUMARO / "yolo_dataset" / layout))
    assert len(coco["images"]) == n_images
    assert all((i["width"], i["height"]) == (15, 10) for i in coco["images"])
    names = {c["id"]: c["name"] for c in coco["categories"]}
    got = [(names[a["category_id"]], a["bbox"]) for a in coco["annotations"][:2]]
    assert [g[0] for g in got] == ["label_2", "label_4"]
    assert got[0][1] == pytest.approx([0, 2, 4, 2], abs=1e-4)
    assert got[1][1] == pytest.approx([3, 3, 2, 3], abs=1e-4)


def test_yolo_segmentation_lines_and_errors(convert, annot, tmp_path):
    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    (tmp_path / "a.txt").write_text("1 0.1 0.1 0.5 0.1 0.5 0.5\n0 0.5 0.5 0.2 0.2\n")
    coco = load(convert("yolo", "coco", tmp_path))
    seg, box = coco["annotations"]
    assert seg["category_id"] == 2 and seg["segmentation"] == [[20, 10, 100, 10, 100, 50]]
    assert box["bbox"] == pytest.approx([80, 40, 40, 20])
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n")
    res = annot("convert", "yolo", "coco", tmp_path, "-o", tmp_path / "o.json")
    assert res.code == 2 and "a.txt:line 2: class 5 out of range (0..1" in res.err


@pytest.mark.parametrize("spelling", [("image", "annotations"), ("imagefilename", "annotation")])
def test_createml_both_spellings(convert, tmp_path, spelling):
    Image.new("RGB", (120, 80)).save(tmp_path / "x.jpg")
    img_key, ann_key = spelling
    doc = [{img_key: "x.jpg", ann_key: [{"label": "cup", "coordinates": {"x": 60, "y": 40, "width": 20, "height": 10}}]}]
    (tmp_path / "c.json").write_text(json.dumps(doc))
    coco = load(convert("createml", "coco", tmp_path / "c.json"))
    assert coco["annotations"][0]["bbox"] == [50, 35, 20, 10]
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (120, 80)
