"""X -> COCO -> X for every writable format, on generated datasets."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from annot.cli import main
from annot.geometry import encode_mask, polygon_areas, polygons_bbox, rotated_rectangle

LABELS = ["a", "b", "c"]


@st.composite
def datasets(draw, boxes_only=False, rotated=False, masks=False):
    images, anns = [], []
    for i in range(draw(st.integers(1, 3))):
        W, H = draw(st.integers(20, 300)), draw(st.integers(20, 300))
        images.append({"id": i + 1, "file_name": f"img{i}.png", "width": W, "height": H})
        for _ in range(draw(st.integers(0, 4))):
            kind = "box" if boxes_only else draw(st.sampled_from(["box", "polygon"] + ["mask"] * masks))
            x0 = draw(st.integers(0, W - 4))
            y0 = draw(st.integers(0, H - 4))
            x1 = draw(st.integers(x0 + 2, W))
            y1 = draw(st.integers(y0 + 2, H))
            if kind == "box" and rotated and draw(st.booleans()) and min(x1 - x0, y1 - y0) >= 16:
                w, h = (x1 - x0) / 2, (y1 - y0) / 2
                poly = rotated_rectangle(x0 + w / 2, y0 + h / 3, w, h / 2, draw(st.floats(1, 30)))
                if min(poly) < 0 or max(poly[0::2]) > W or max(poly[1::2]) > H:
                    poly = [x0, y0, x1, y0, x1, y1, x0, y1]  # would be clipped: not a rectangle any more
            elif kind == "box":
                poly = [x0, y0, x1, y0, x1, y1, x0, y1]
            elif kind == "polygon":
                poly = [x0, y0, x1, y0, (x0 + x1) / 2, y1]
            if kind == "mask":
                m = np.zeros((H, W), np.uint8)
                m[y0:y1, x0:x1] = 1
                seg = encode_mask(m)
                bbox, area = [x0, y0, x1 - x0, y1 - y0], float(m.sum())
            else:
                seg = [poly]
                bbox, area = polygons_bbox(seg), polygon_areas([seg], H, W)[0]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": draw(st.integers(1, 3)),
                         "bbox": bbox, "area": area, "iscrowd": 0, "segmentation": seg})
    return {"images": images, "annotations": anns,
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(LABELS)]}


def run(*args):
    assert main([str(a) for a in args]) == 0


def write_images(coco, folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    for im in coco["images"]:
        Image.new("RGB", (im["width"], im["height"])).save(folder / im["file_name"])


SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def round_trip(tmp, coco, fmt, extra_in=(), extra_out=()):
    """coco -> X1 -> COCO -> X2; returns (X1, X2) paths."""
    src = tmp / "src.json"
    src.write_text(json.dumps(coco))
    x1, mid, x2 = tmp / f"x1_{fmt}", tmp / "mid.json", tmp / f"x2_{fmt}"
    run("convert", "coco", fmt, src, "-o", x1, "-q", "--overwrite", *extra_out)
    run("convert", fmt, "coco", x1, "-o", mid, "-q", "--overwrite", *extra_in)
    run("validate", "coco", mid, "-q")
    run("convert", "coco", fmt, mid, "-o", x2, "-q", "--overwrite", *extra_out)
    return x1, x2


@SETTINGS
@given(coco=datasets(masks=True))
def test_labelme(tmp_path_factory, coco):
    tmp = tmp_path_factory.mktemp("lm")
    x1, x2 = round_trip(tmp, coco, "labelme", extra_in=("--labels", _labels(tmp)))
    for f in sorted(x1.glob("*.json")):
        a, b = json.loads(f.read_text()), json.loads((x2 / f.name).read_text())
        assert a == b


@SETTINGS
@given(coco=datasets(boxes_only=True))
def test_voc(tmp_path_factory, coco):
    tmp = tmp_path_factory.mktemp("voc")
    x1, x2 = round_trip(tmp, coco, "voc", extra_in=("--labels", _labels(tmp)))
    for f in sorted(x1.glob("*.xml")):
        assert ET.tostring(ET.parse(f).getroot()) == ET.tostring(ET.parse(x2 / f.name).getroot())


@SETTINGS
@given(coco=datasets(boxes_only=True))
def test_yolo(tmp_path_factory, coco):
    tmp = tmp_path_factory.mktemp("yolo")
    write_images(coco, tmp / "images")
    x1, x2 = round_trip(tmp, coco, "yolo", extra_in=("--image-root", tmp / "images"))
    for f in sorted(x1.glob("img*.txt")):
        a = [list(map(float, ln.split())) for ln in f.read_text().splitlines()]
        b = [list(map(float, ln.split())) for ln in (x2 / f.name).read_text().splitlines()]
        assert np.allclose(np.array(a, dtype=float).reshape(-1, 5), np.array(b, dtype=float).reshape(-1, 5), atol=2e-6)


@SETTINGS
@given(coco=datasets(rotated=True, masks=True))
def test_labelstudio(tmp_path_factory, coco):
    tmp = tmp_path_factory.mktemp("ls")
    write_images(coco, tmp / "images")  # tasks without regions carry no size: Label Studio's format
    x1, x2 = round_trip(tmp, coco, "labelstudio", extra_in=("--labels", _labels(tmp), "--image-root", tmp / "images"))
    a, b = json.loads(x1.read_text()), json.loads(x2.read_text())
    assert len(a) == len(b)
    for ta, tb in zip(a, b):
        ra, rb = ta["annotations"][0]["result"], tb["annotations"][0]["result"]
        assert [r["type"] for r in ra] == [r["type"] for r in rb]
        for r1, r2 in zip(ra, rb):
            v1, v2 = r1["value"], r2["value"]
            if r1["type"] == "brushlabels":
                assert v1 == v2  # bit-exact
            elif r1["type"] == "polygonlabels":
                assert np.allclose(v1["points"], v2["points"], atol=1e-9)
            else:
                for k in ("x", "y", "width", "height", "rotation"):
                    assert v1[k] == pytest.approx(v2[k], abs=1e-9), k


def _labels(tmp: Path) -> Path:
    p = tmp / "labels.txt"
    p.write_text("\n".join(LABELS))
    return p
