from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import LS_DATA, load
from label_studio_sdk.converter.brush import decode_rle

from annot.geometry import segmentation_to_mask

pytestmark = pytest.mark.samples  # reads ../shared/samples


def _coco(tmp_path, anns, W=200, H=100, cats=("car", "person")):
    doc = {"images": [{"id": 1, "file_name": "a/b.jpg", "width": W, "height": H}],
           "categories": [{"id": i + 1, "name": n} for i, n in enumerate(cats)],
           "annotations": [{"id": k + 1, "image_id": 1, "iscrowd": 0, **a} for k, a in enumerate(anns)]}
    p = tmp_path / "in.json"
    p.write_text(json.dumps(doc))
    return p


RECT = {"category_id": 1, "bbox": [20, 10, 40, 30], "area": 1200, "segmentation": [[20, 10, 60, 10, 60, 40, 20, 40]]}
TRI = {"category_id": 2, "bbox": [0, 0, 100, 50], "area": 2500, "segmentation": [[0, 0, 100, 0, 100, 50]]}


def test_rectangles_polygons_and_default_controls(convert, tmp_path):
    tasks = load(convert("coco", "labelstudio", _coco(tmp_path, [RECT, TRI])))
    (task,) = tasks
    assert task["data"] == {"image": "/data/local-files/?d=a/b.jpg"}
    rect, tri = task["annotations"][0]["result"]
    assert rect["type"] == "rectanglelabels" and rect["from_name"] == "label" and rect["to_name"] == "image"
    assert rect["value"] == {"x": 10, "y": 10, "width": 20, "height": 30, "rotation": 0, "rectanglelabels": ["car"]}
    assert (rect["original_width"], rect["original_height"]) == (200, 100)
    assert tri["type"] == "polygonlabels"
    assert tri["value"]["points"] == [[0, 0], [50, 0], [50, 50]]


def test_rotated_rectangle_round_trips_through_label_studio(convert):
    obb = LS_DATA / "test_export_yolo/data_obb.json"
    coco = convert("labelstudio", "coco", obb)
    tasks = load(convert("coco", "labelstudio", coco))
    src = [r["value"] for t in load(obb) for r in t["annotations"][0]["result"]]
    got = [r["value"] for t in tasks for r in t["annotations"][0]["result"]]
    assert len(src) == len(got) == 25
    for s, g in zip(src, got):
        assert g["rectanglelabels"] == s["rectanglelabels"]
        for k in ("x", "y", "width", "height", "rotation"):
            assert g[k] == pytest.approx(s[k], abs=1e-6), k


def test_brush_output_decodes_bit_exact_with_sdk(convert, tmp_path):
    from annot.geometry import encode_mask

    m = np.zeros((100, 200), np.uint8)
    m[10:60, 30:120] = 1
    m[20:30, 40:50] = 0  # hole
    rle = encode_mask(m)
    tasks = load(convert("coco", "labelstudio", _coco(tmp_path, [
        {"category_id": 1, "bbox": [30, 10, 90, 50], "area": int(m.sum()), "segmentation": rle}])))
    (region,) = tasks[0]["annotations"][0]["result"]
    assert region["type"] == "brushlabels" and region["from_name"] == "tag"
    flat = decode_rle(region["value"]["rle"])
    assert np.array_equal(flat.reshape(100, 200, 4)[:, :, 3] > 0, m.astype(bool))


def test_label_config_routes_geometry(convert, tmp_path):
    cfg = tmp_path / "cfg.xml"
    cfg.write_text("""<View><Image name="img" value="$photo"/>
      <RectangleLabels name="boxes" toName="img"><Label value="car"/></RectangleLabels>
      <BrushLabels name="masks" toName="img"><Label value="person"/></BrushLabels></View>""")
    tasks = load(convert("coco", "labelstudio", _coco(tmp_path, [RECT, TRI]), extra=("--label-config", cfg)))
    assert list(tasks[0]["data"]) == ["photo"]
    rect, tri = tasks[0]["annotations"][0]["result"]
    assert (rect["from_name"], rect["to_name"], rect["type"]) == ("boxes", "img", "rectanglelabels")
    # no PolygonLabels holds "person": the polygon is painted as a brush mask
    assert (tri["from_name"], tri["type"]) == ("masks", "brushlabels")
    mask = decode_rle(tri["value"]["rle"]).reshape(100, 200, 4)[:, :, 3] > 0
    assert np.array_equal(mask, segmentation_to_mask(TRI["segmentation"], 100, 200).astype(bool))


def test_label_missing_from_config_is_an_error(annot, tmp_path):
    cfg = tmp_path / "cfg.xml"
    cfg.write_text('<View><Image name="image" value="$image"/><RectangleLabels name="l" toName="image">'
                   '<Label value="car"/></RectangleLabels></View>')
    res = annot("convert", "coco", "labelstudio", _coco(tmp_path, [RECT, TRI]), "-o", tmp_path / "o.json",
                "--label-config", cfg)
    assert res.code == 2 and "label 'person' is in no control tag of the label config" in res.err
    assert not (tmp_path / "o.json").exists()


def test_predictions_with_scores_and_url_prefix(convert, tmp_path):
    anns = [dict(RECT, score=0.9), dict(TRI, score=0.5)]
    tasks = load(convert("coco", "labelstudio", _coco(tmp_path, anns),
                         extra=("--as", "predictions", "--model-version", "maskrcnn-v7",
                                "--image-url-prefix", "s3://bucket/imgs/")))
    (task,) = tasks
    assert "annotations" not in task and task["data"]["image"] == "s3://bucket/imgs/a/b.jpg"
    (pred,) = task["predictions"]
    assert pred["model_version"] == "maskrcnn-v7" and pred["score"] == pytest.approx(0.7)
    assert [r["score"] for r in pred["result"]] == [0.9, 0.5]
