"""The bundled synthetic project: every tool's copy converts to the same instances."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load
from synthetic import write_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return write_project(tmp_path_factory.mktemp("demo"), n_images=4, seed=3)


def _boxes(coco):
    names = {c["id"]: c["name"] for c in coco["categories"]}
    files = {i["id"]: i["file_name"].rsplit("/", 1)[-1] for i in coco["images"]}
    return sorted((files[a["image_id"]], names[a["category_id"]], *a["bbox"]) for a in coco["annotations"])


def test_all_formats_agree(project, convert):
    labels = project["labelme"].parent / "labels.txt"
    lm = load(convert("labelme", "coco", project["labelme"], extra=("--labels", labels)))
    voc = load(convert("voc", "coco", project["voc"], extra=("--labels", labels)))
    yolo = load(convert("yolo", "coco", project["yolo"]))
    cml = load(convert("createml", "coco", project["createml"] / "annotations.json", extra=("--labels", labels)))
    ls = load(convert("labelstudio", "coco", project["labelstudio"] / "export.json", extra=("--labels", labels)))
    for other in (voc, yolo, cml):
        assert [c["name"] for c in other["categories"]] == ["bicycle", "car", "person"]
    ref = _boxes(cml)  # full precision; the VOC and YOLO files carry 6 digits
    for other, tol in ((voc, 1e-3), (yolo, 1e-3), (lm, 1e-6)):
        got = _boxes(other)
        assert [g[:2] for g in got] == [r[:2] for r in ref]
        assert np.allclose([g[2:] for g in got], [r[2:] for r in ref], atol=tol)
    assert len(ls["annotations"]) == len(voc["annotations"])
    kinds = [type(a["segmentation"]).__name__ for a in ls["annotations"]]
    assert "dict" in kinds and "list" in kinds  # brush masks and polygons/rectangles
