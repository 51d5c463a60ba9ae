"""``annot merge``: COCO files of different teams into one, checked against each input."""

from __future__ import annotations

import json

import pytest
from conftest import LABELME, load
from pycocotools.coco import COCO

SEMANTIC = LABELME / "examples/semantic_segmentation/data_annotated"
VIDEO = LABELME / "examples/video_annotation/data_annotated"


def _by_file(doc: dict) -> dict[str, list]:
    """file name -> sorted (category name, bbox, area, segmentation) of its annotations."""
    names = {c["id"]: c["name"] for c in doc["categories"]}
    files = {im["id"]: im["file_name"] for im in doc["images"]}
    out: dict[str, list] = {f: [] for f in files.values()}
    for a in doc["annotations"]:
        out[files[a["image_id"]]].append((names[a["category_id"]], a["bbox"], a["area"], json.dumps(a["segmentation"])))
    return {f: sorted(v) for f, v in out.items()}


@pytest.mark.samples
def test_merge_keeps_every_annotation_of_every_input(convert, annot, tmp_path):
    a = convert("labelme", "coco", SEMANTIC)
    b = convert("labelme", "coco", VIDEO)
    out = tmp_path / "merged.json"
    res = annot("merge", a, b, "-o", out, "-q")
    assert res.code == 0, res
    assert annot("validate", "coco", out).code == 0
    merged, da, db = load(out), load(a), load(b)
    assert _by_file(merged) == {**_by_file(da), **_by_file(db)}
    assert [im["id"] for im in merged["images"]] == list(range(1, len(da["images"]) + len(db["images"]) + 1))
    assert len({a["id"] for a in merged["annotations"]}) == len(da["annotations"]) + len(db["annotations"])
    assert [c["name"] for c in merged["categories"]] == list(dict.fromkeys(
        c["name"] for c in da["categories"] + db["categories"]))
    COCO(str(out))  # pycocotools indexes it


def _doc(files: list[str], cats: list[str], label: str) -> dict:
    ids = {n: k for k, n in enumerate(cats, start=1)}
    return {"images": [{"id": k, "file_name": f, "width": 20, "height": 10} for k, f in enumerate(files, 1)],
            "annotations": [{"id": k, "image_id": k, "category_id": ids[label], "bbox": [1, 1, 4, 4], "area": 16,
                             "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "iscrowd": 0} for k in range(1, len(files) + 1)],
            "categories": [{"id": ids[n], "name": n} for n in cats]}


def test_categories_match_by_name_not_id(annot, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(_doc(["a.png"], ["cat", "dog"], "dog")))
    (tmp_path / "b.json").write_text(json.dumps(_doc(["b.png"], ["dog", "cat", "eel"], "dog")))
    (tmp_path / "labels.txt").write_text("eel\ndog\ncat\n")
    res = annot("merge", tmp_path / "a.json", tmp_path / "b.json", "-o", tmp_path / "m.json", "--labels",
                tmp_path / "labels.txt", "-q")
    assert res.code == 0, res
    m = load(tmp_path / "m.json")
    assert [(c["id"], c["name"]) for c in m["categories"]] == [(1, "eel"), (2, "dog"), (3, "cat")]
    assert [a["category_id"] for a in m["annotations"]] == [2, 2]


def test_refusals_are_one_line(annot, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(_doc(["a.png"], ["cat"], "cat")))
    (tmp_path / "b.json").write_text(json.dumps(_doc(["a.png", "b.png"], ["cat"], "cat")))
    (tmp_path / "labels.txt").write_text("dog\n")
    out = tmp_path / "m.json"
    twice = annot("merge", tmp_path / "a.json", tmp_path / "b.json", "-o", out)
    assert twice.code == 2 and "b.json: image 'a.png' is also in" in twice.err and len(twice.err.splitlines()) == 1
    unknown = annot("merge", tmp_path / "a.json", "-o", out, "--labels", tmp_path / "labels.txt")
    assert unknown.code == 2 and "a.json: category 'cat' is not in --labels" in unknown.err
    assert not out.exists()
    out.write_text("mine")
    kept = annot("merge", tmp_path / "a.json", "-o", out)
    assert kept.code == 2 and out.read_text() == "mine"
    assert annot("merge", tmp_path / "a.json", "-o", out, "--overwrite", "-q").code == 0
    assert len(load(out)["images"]) == 1
