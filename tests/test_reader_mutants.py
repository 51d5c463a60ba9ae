"""What the COCO, labelme and Label Studio readers make of their input,
checked against the input itself and the tools that define the formats
(benchmarks/MUTATION.md, "the readers": each test here kills mutants that
the other tests let live).

- COCO: small hand-written files; areas are pycocotools' pixel counts, sizes
  come from the image files, everything else is the file's own value.
- labelme: masks and polygons rasterised by labelme 6.3.1's
  ``shapes_to_label``; skip decisions read from the report's ``skipped`` list.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load
from PIL import Image
from pycocotools import mask as mask_utils

W, H = 40, 30


def _coco(tmp_path: Path, anns: list[dict], images=None, cats=None, name="in.json", **top) -> Path:
    doc = {"images": images if images is not None else [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
           "categories": cats if cats is not None else [{"id": 1, "name": "ant"}, {"id": 2, "name": "bee"}],
           "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, **a} for k, a in enumerate(anns)], **top}
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def _skip(annot, src: Path, out: Path, *extra, fmt="coco") -> tuple[dict, list[str]]:
    """Convert with --on-error skip: (the COCO output, the skipped items)."""
    res = annot("convert", fmt, "coco", src, "-o", out, "--on-error", "skip", "-q", *extra)
    assert res.code == 0, res
    report = Path(f"{out}.report.json")
    skipped = [s["item"] for s in load(report)["skipped"]] if report.exists() else []
    return load(out), skipped


def _fails(annot, src: Path, tmp_path: Path, *extra, fmt="coco") -> str:
    res = annot("convert", fmt, "coco", src, "-o", tmp_path / "fail.json", *extra)
    assert res.code == 2, res
    return res.err


BOX = [[2, 2, 12, 2, 12, 10, 2, 10]]  # 10 x 8


def _area(polys, h=H, w=W) -> float:
    return float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(polys, h, w))))


# --- COCO -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, crowd", [
    ("false", 0), ("0", 0), ("no", 0), ("", 0), (" FALSE ", 0), (False, 0), (0, 0),
    ("true", 1), ("1", 1), ("yes", 1), (" Yes ", 1), (True, 1), (1, 1), (None, 0),
])
def test_coco_iscrowd_spellings(annot, tmp_path, value, crowd):
    ann = {"segmentation": BOX, "bbox": [2, 2, 10, 8], "area": 80}
    if value is not None:
        ann["iscrowd"] = value
    coco, skipped = _skip(annot, _coco(tmp_path, [ann]), tmp_path / "o.json")
    assert skipped == [] and [a["iscrowd"] for a in coco["annotations"]] == [crowd]


@pytest.mark.parametrize("value", ["maybe", "2", "nein"])
def test_coco_iscrowd_that_is_no_boolean_skips_the_annotation(annot, tmp_path, value):
    src = _coco(tmp_path, [{"segmentation": BOX, "iscrowd": value}, {"segmentation": BOX}])
    coco, skipped = _skip(annot, src, tmp_path / "o.json")
    assert skipped == ["annotations[0]"] and len(coco["annotations"]) == 1


def test_coco_categories_ids_keypoint_names_and_bad_entries(annot, tmp_path):
    """Categories are matched by id as text (3 and "3"); a category with no
    name, an empty name or a non-id is skipped; keypoint names stay with
    their category; a category name given twice is one category."""
    cats = [{"id": "3", "name": "ant", "keypoints": ["head", "tail"]}, {"id": 4, "name": ""}, {"id": 5},
            {"id": [6], "name": "x"}, {"name": "y"}, {"id": 7, "name": "bee", "keypoints": ["a", 1]},
            {"id": 8, "name": "ant"}, "cat"]
    anns = [{"category_id": 3, "segmentation": BOX, "keypoints": [3, 3, 2, 9, 9, 1]},
            {"category_id": "7", "segmentation": BOX}, {"category_id": 8, "segmentation": BOX},
            {"category_id": 4, "segmentation": BOX}]
    coco, skipped = _skip(annot, _coco(tmp_path, anns, cats=cats), tmp_path / "o.json")
    assert skipped == ["categories[1]", "categories[2]", "categories[3]", "categories[4]", "categories[7]",
                       "annotations[3]"]
    assert [(c["name"], c.get("keypoints")) for c in coco["categories"]] == [("ant", ["head", "tail"]),
                                                                           ("bee", None)]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert [names[a["category_id"]] for a in coco["annotations"]] == ["ant", "bee", "ant"]
    assert coco["annotations"][0]["keypoints"] == [3, 3, 2, 9, 9, 1]


def test_coco_labels_option_orders_the_categories(annot, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("bee\nant\nzebra\n")
    anns = [{"category_id": 1, "segmentation": BOX}, {"category_id": 2, "segmentation": BOX}]
    coco, _ = _skip(annot, _coco(tmp_path, anns), tmp_path / "o.json", "--labels", labels)
    assert [c["name"] for c in coco["categories"]] == ["bee", "ant", "zebra"]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert [names[a["category_id"]] for a in coco["annotations"]] == ["ant", "bee"]


def test_coco_images_ids_sizes_extras_and_info(annot, tmp_path):
    """Image ids compare as text ("1" is 1: the second is a duplicate);
    an image without (usable) width/height takes its file's size, found
    beside the JSON or under --image-root; an image over --max-pixels is
    skipped, not the ones after it; extra image fields and the info object
    are kept."""
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (23, 17)).save(tmp_path / "b.png")
    Image.new("RGB", (31, 19)).save(tmp_path / "pics/c.png")
    images = [{"id": 1, "file_name": "a.png", "width": W, "height": H, "license": 3, "coco_url": "u"},
              {"id": "1", "file_name": "dup.png", "width": W, "height": H},
              {"id": "b", "file_name": "b.png"},
              {"id": 12, "file_name": "big.png", "width": 10**6, "height": 10**6},
              {"id": 13, "file_name": "wide.png", "width": 3000, "height": 1},
              {"id": 9, "file_name": "c.png", "width": 0, "height": 19},
              {"id": 10, "file_name": "missing.png"},
              {"id": 11, "file_name": "", "width": W, "height": H},
              {"id": None, "file_name": "n.png", "width": W, "height": H}]
    anns = [{"image_id": "1", "segmentation": BOX}, {"image_id": "b", "segmentation": [[1, 1, 20, 1, 20, 15]]},
            {"image_id": 9, "segmentation": BOX}, {"image_id": 10, "segmentation": BOX}]
    info = {"description": "d", "version": "2"}
    src = _coco(tmp_path, anns, images=images, info=info)
    coco, skipped = _skip(annot, src, tmp_path / "o.json", "--image-root", tmp_path / "pics", "--max-pixels", "2500")
    assert skipped == ["images[1]", "images[3]", "images[4]", "images[6]", "images[7]", "images[8]", "annotations[3]"]
    assert [(i["file_name"], i["width"], i["height"]) for i in coco["images"]] == [
        ("a.png", W, H), ("b.png", 23, 17), ("c.png", 31, 19)]
    assert coco["images"][0]["license"] == 3 and coco["images"][0]["coco_url"] == "u"
    assert coco["info"] == info
    assert [a["image_id"] for a in coco["annotations"]] == [1, 2, 3]
    assert coco["annotations"][1]["area"] == _area([[1, 1, 20, 1, 20, 15]], 17, 23)


def test_coco_missing_sections_and_top_level(annot, tmp_path):
    p = tmp_path / "x.json"
    for doc, msg in [({"images": [], "categories": []}, None),
                     ({"images": {}, "categories": []}, "images: missing or not a list"),
                     ({"images": [], "categories": [], "annotations": None}, "annotations: missing or not a list"),
                     ({"images": []}, "categories: missing or not a list"),
                     ("text", "not a COCO dataset (top level is not an object)")]:
        p.write_text(json.dumps(doc))
        if msg is None:
            coco, _ = _skip(annot, p, tmp_path / "o.json")
            assert coco["annotations"] == [] and coco["images"] == []
        else:
            assert msg in _fails(annot, p, tmp_path)


def test_coco_areas_and_boxes_come_from_the_segmentation_when_missing(annot, tmp_path):
    """No area: pycocotools' pixel count (polygon, RLE) or the box's area
    (no segmentation); no bbox: the polygons' extent or the RLE's box; an
    area over the image's pixel count is measured again; a given positive
    area and bbox are kept."""
    tri = [[3.5, 2.0, 25.0, 4.0, 9.0, 21.5]]
    two = [[1, 1, 6, 1, 6, 5], [20, 20, 30, 20, 30, 28, 20, 28]]
    m = np.zeros((H, W), np.uint8)
    m[5:9, 7:19] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    rle = {"size": r["size"], "counts": r["counts"].decode()}
    anns = [{"segmentation": tri},
            {"segmentation": two, "area": 0},
            {"segmentation": rle},
            {"segmentation": rle, "area": W * H + 1, "bbox": [7, 5, 12, 4]},
            {"segmentation": tri, "area": W * H + 1},
            {"bbox": [1, 2, 5, 7]},
            {"bbox": [1, 2, 5, 7], "area": 12.5, "segmentation": tri},
            {"segmentation": [[1, 1, 6, 1, 6, 5], [2, 2, 4, 2]], "bbox": [1, 1, 5, 4]},
            {"segmentation": [[2, 2, 3, 2, 3, 3, 2, 3]]},
            {"bbox": [1, 2, 5, 7], "area": W * H + 1}]
    coco, skipped = _skip(annot, _coco(tmp_path, anns), tmp_path / "o.json")
    assert skipped == []
    got = [(a["area"], a["bbox"]) for a in coco["annotations"]]
    assert got[0] == (pytest.approx(_area(tri)), [3.5, 2.0, 21.5, 19.5])
    assert got[1] == (pytest.approx(_area(two)), [1.0, 1.0, 29.0, 27.0])
    assert got[2] == (48.0, [7.0, 5.0, 12.0, 4.0])
    assert got[3] == (48.0, [7.0, 5.0, 12.0, 4.0])
    assert got[4] == (pytest.approx(_area(tri)), [3.5, 2.0, 21.5, 19.5])
    assert got[5] == (35.0, [1.0, 2.0, 5.0, 7.0])
    assert got[6] == (12.5, [1.0, 2.0, 5.0, 7.0])
    assert coco["annotations"][7]["segmentation"] == [[1, 1, 6, 1, 6, 5]]
    assert got[7][0] == pytest.approx(_area([[1, 1, 6, 1, 6, 5]]))
    assert got[8][0] == _area([[2, 2, 3, 2, 3, 3, 2, 3]]) == 1  # one pixel: kept
    assert got[9] == (35.0, [1.0, 2.0, 5.0, 7.0])  # over the image, no segmentation: the box's area


@pytest.mark.parametrize("ann, message", [
    ({"segmentation": {"size": [H, W + 1], "counts": [5, 10, H * (W + 1) - 15]}}, "RLE size"),
    ({"segmentation": {"size": [H, W]}}, "RLE needs"),
    ({"segmentation": {"counts": [5, 10]}}, "RLE needs"),
    ({"segmentation": {"size": [H, W], "counts": [H * W + 5]}}, "RLE counts sum to 1,205 pixels"),
    ({"segmentation": [[1, 2, 3, 4, 5, 6, 7]]}, "odd number"),
    ({"segmentation": [[1, 1, 2, 2]]}, "no bbox and no segmentation"),
    ({"segmentation": "x"}, "segmentation must be"),
    ({"segmentation": [[1, 1, 5, 1, 5, 5]], "keypoints": [1, 2]}, "three per point"),
    ({"segmentation": [[1, 1, 5, 1, 5, 5]], "keypoints": ["a", 1, 2]}, "three per point"),
    ({"segmentation": [[1, 1, 5, 1, 5, 5]], "score": "high"}, "is not a number"),
    ({"segmentation": [[50, 50, 60, 50, 60, 60]]}, "has no area inside"),
    ({"segmentation": [[1, 1, 5, 1, 9, 1]], "bbox": [1, 1, 8, 2]}, "covers no pixel"),
    ({"bbox": [1, 1, 0, 5]}, "has no area inside"),
    ({"image_id": 2, "segmentation": BOX}, "is not an image"),
    ({"category_id": 9, "segmentation": BOX}, "is not a category"),
    ({"category_id": None, "segmentation": BOX}, "is not a category"),
    ("ann", "not an object"),
])
def test_coco_annotation_problems_skip_only_that_annotation(annot, tmp_path, ann, message):
    anns = [ann, {"segmentation": BOX}]
    src = _coco(tmp_path, [])
    doc = load(src)
    doc["annotations"] = [a if isinstance(a, str) else {"image_id": 1, "category_id": 1, **a} for a in anns]
    if not isinstance(ann, str) and "category_id" in ann and ann["category_id"] is None:
        del doc["annotations"][0]["category_id"]
    src.write_text(json.dumps(doc))
    coco, skipped = _skip(annot, src, tmp_path / "o.json")
    assert skipped == ["annotations[0]"]
    assert [a["bbox"] for a in coco["annotations"]] == [[2.0, 2.0, 10.0, 8.0]]
    assert message in _fails(annot, src, tmp_path)


def test_coco_scores_and_prediction_extras_are_kept(annot, tmp_path):
    anns = [{"segmentation": BOX, "score": 0.25, "class_probs": [0.25, 0.75], "mask_uncertainty": 0.5,
             "iou_prediction": 0.875, "other": 1},
            {"segmentation": BOX, "score": 1}]
    src = _coco(tmp_path, anns)
    coco, _ = _skip(annot, src, tmp_path / "o.json")
    a, b = coco["annotations"]
    assert {k: a[k] for k in ("score", "class_probs", "mask_uncertainty", "iou_prediction")} == {
        "score": 0.25, "class_probs": [0.25, 0.75], "mask_uncertainty": 0.5, "iou_prediction": 0.875}
    assert "other" not in a and b["score"] == 1 and "class_probs" not in b
    res = annot("convert", "coco", "labelstudio", src, "-o", tmp_path / "ls.json", "--as", "predictions", "-q")
    assert res.code == 0, res
    preds = [p for t in load(tmp_path / "ls.json") for p in t["predictions"]]
    assert sorted(r["score"] for p in preds for r in p["result"]) == [0.25, 1.0]


def test_coco_results_list_is_read_with_its_images_file(annot, tmp_path):
    """A results list without --gt reads <stem>.images.json beside it;
    results get ids 1..N; one without a score is refused; --gt is refused
    for a dataset."""
    base = {"images": [{"id": 5, "file_name": "a.png", "width": W, "height": H}],
            "categories": [{"id": 2, "name": "bee"}]}
    (tmp_path / "r.images.json").write_text(json.dumps(base))
    results = [{"image_id": 5, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.5},
               {"image_id": 5, "category_id": 2, "segmentation": BOX, "score": 0.125}]
    (tmp_path / "r.json").write_text(json.dumps(results))
    coco, skipped = _skip(annot, tmp_path / "r.json", tmp_path / "o.json")
    assert skipped == []
    assert [(a["id"], a["bbox"], a["score"]) for a in coco["annotations"]] == [
        (1, [1.0, 2.0, 3.0, 4.0], 0.5), (2, [2.0, 2.0, 10.0, 8.0], 0.125)]
    assert coco["categories"][0]["name"] == "bee"
    (tmp_path / "n.json").write_text(json.dumps([{k: v for k, v in results[0].items() if k != "score"}]))
    (tmp_path / "n.images.json").write_text(json.dumps(base))
    assert "a result needs a 'score'" in _fails(annot, tmp_path / "n.json", tmp_path)
    (tmp_path / "lone.json").write_text(json.dumps(results))
    assert "lone.images.json beside it" in _fails(annot, tmp_path / "lone.json", tmp_path)
    ds = _coco(tmp_path, [{"segmentation": BOX}], name="ds.json")
    assert "--gt names the dataset of a results list" in _fails(annot, ds, tmp_path, "--gt", ds)
    (tmp_path / "bad.images.json").write_text("[]")
    (tmp_path / "bad.json").write_text(json.dumps(results))
    assert "bad.images.json: not a COCO dataset" in _fails(annot, tmp_path / "bad.json", tmp_path)


# --- labelme ----------------------------------------------------------------------------------------

def _png(m: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(m.astype(np.uint8) * 255).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _lm(tmp_path: Path, shapes: list, name="a.json", **top) -> Path:
    doc = {"version": "5.3.1", "flags": {}, "imagePath": "a.png", "imageData": None, "imageWidth": W,
           "imageHeight": H, "shapes": shapes, **top}
    (tmp_path / "lm").mkdir(exist_ok=True)
    p = tmp_path / "lm" / name
    p.write_text(json.dumps(doc))
    return p


def _shape(label, points, kind="polygon", group=None, **extra):
    return {"label": label, "points": [list(p) for p in points], "group_id": group, "shape_type": kind,
            "flags": {}, **extra}


def _pixels(seg, h=H, w=W) -> np.ndarray:
    if isinstance(seg, list):
        seg = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    else:
        seg = {"size": seg["size"], "counts": seg["counts"].encode()}
    return mask_utils.decode(seg).astype(bool)


def _blob(h, w):
    yy, xx = np.mgrid[:h, :w]
    return ((xx - w / 2 + 0.5) ** 2 / (w / 2) ** 2 + (yy - h / 2 + 0.5) ** 2 / (h / 2) ** 2) <= 1


def test_labelme_mask_and_polygon_of_one_group_are_one_region(annot, tmp_path):
    """A mask shape and a polygon with the same (label, group_id): one
    instance whose pixels are labelme's own placement of the mask
    (``shapes_to_label``) joined with the polygon as pycocotools rasterises it."""
    from labelme.utils.shape import shapes_to_label

    crop = _blob(7, 9)
    mask = _shape("ant", [(4, 3), (12, 9)], "mask", group=1, mask=_png(crop))
    poly = [(20, 15), (33, 16), (26, 27)]
    lone = _shape("bee", [(30, 2), (38, 2), (38, 6)])
    coco, skipped = _skip(annot, _lm(tmp_path, [mask, _shape("ant", poly, group=1), lone]), tmp_path / "o.json",
                          fmt="labelme")
    assert skipped == []
    names = {c["id"]: c["name"] for c in coco["categories"]}
    (a, b) = coco["annotations"]
    assert names[a["category_id"]] == "ant" and names[b["category_id"]] == "bee" and a["iscrowd"] == 0
    cls, _ = shapes_to_label((H, W), [{**mask, "mask": crop}], {"ant": 1})
    want = (cls > 0) | _pixels([[v for p in poly for v in p]])
    got = _pixels(a["segmentation"])
    assert (got == want).all()
    assert a["area"] == want.sum()
    ys, xs = np.nonzero(want)
    assert a["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
    assert b["segmentation"] == [[30, 2, 38, 2, 38, 6]]


@pytest.mark.parametrize("x, y", [(-3, -2), (35, 25), (-3, 25), (35, -2), (10, 10)])
def test_labelme_mask_over_the_border_keeps_its_pixels_inside(annot, tmp_path, x, y):
    """A mask placed at int(points[0]) partly outside the image: the pixels
    that fall inside are the instance, the rest is cut off."""
    crop = _blob(8, 10)
    crop[0, :] = True  # a full first row and last column: a cut shows
    crop[:, -1] = True
    shape = _shape("ant", [(x + 0.7, y + 0.2), (x + 9, y + 7)], "mask", mask=_png(crop))
    coco, skipped = _skip(annot, _lm(tmp_path, [shape]), tmp_path / "o.json", fmt="labelme")
    px, py = int(x + 0.7), int(y + 0.2)  # labelme's rule: int() of the first point, towards zero
    canvas = np.zeros((H + 20, W + 20), bool)
    canvas[py + 10 : py + 18, px + 10 : px + 20] = crop
    want = canvas[10 : H + 10, 10 : W + 10]
    (a,) = coco["annotations"]
    assert skipped == [] and (_pixels(a["segmentation"]) == want).all() and a["area"] == want.sum()


def test_labelme_mask_problems(annot, tmp_path):
    """Entirely outside the image: an empty mask, dropped with a warning (no
    error); no 'mask' data, an undecodable PNG or a PNG larger than the
    image: that shape is skipped."""
    crop = np.ones((4, 4), bool)
    shapes = [_shape("ant", [(W + 5, 2), (W + 8, 5)], "mask", mask=_png(crop)),
              _shape("ant", [(2, 2), (5, 5)], "mask"),
              _shape("ant", [(2, 2), (5, 5)], "mask", mask=base64.b64encode(b"not a png").decode()),
              _shape("ant", [(0, 0), (W, H)], "mask", mask=_png(np.ones((H + 1, W + 1), bool))),
              _shape("ant", [(1, 1), (4, 4)], "mask", mask=_png(crop))]
    res = annot("convert", "labelme", "coco", _lm(tmp_path, shapes), "-o", tmp_path / "o.json", "--on-error",
                "skip")
    assert res.code == 0, res
    assert "empty mask shape skipped" in res.err
    skipped = [s["item"] for s in load(tmp_path / "o.json.report.json")["skipped"]]
    assert skipped == ["shape[1]", "shape[2]", "shape[3]"]
    (a,) = load(tmp_path / "o.json")["annotations"]
    assert a["bbox"] == [1, 1, 4, 4] and a["area"] == 16


@pytest.mark.parametrize("crowd_flag", [False, True])
def test_labelme_ignore_shapes_are_crowd_regions_only_when_asked(annot, tmp_path, crowd_flag):
    """__ignore__ shapes are dropped, or with --ignore-as-crowd an RLE crowd
    region of every category (their pixels the polygon's)."""
    poly = [(5, 5), (20, 5), (20, 15), (5, 15)]
    shapes = [_shape("__ignore__", poly), _shape("ant", [(22, 2), (30, 2), (26, 9)]),
              _shape("bee", [(32, 2), (38, 2), (36, 9)])]
    extra = ("--ignore-as-crowd",) if crowd_flag else ()
    coco, skipped = _skip(annot, _lm(tmp_path, shapes), tmp_path / "o.json", *extra, fmt="labelme")
    assert skipped == []
    names = {c["id"]: c["name"] for c in coco["categories"]}
    got = [(names[a["category_id"]], a["iscrowd"]) for a in coco["annotations"]]
    if not crowd_flag:
        assert got == [("ant", 0), ("bee", 0)]
        return
    assert got == [("ant", 0), ("bee", 0), ("ant", 1), ("bee", 1)]
    want = _pixels([[v for p in poly for v in p]])
    for crowd in coco["annotations"][2:]:
        assert isinstance(crowd["segmentation"], dict)  # crowd regions are RLE in COCO
        assert (_pixels(crowd["segmentation"]) == want).all() and crowd["area"] == want.sum()


def test_labelme_labels_option_and_group_ids(annot, tmp_path):
    """--labels: a shape whose label is not listed is skipped (the others
    are read); group ids merge shapes per (label, group_id) whatever their
    type (number or text), and a group id that is neither is skipped."""
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\nbee\nant\n")
    t1, t2, t3 = [(1, 1), (6, 1), (3, 5)], [(10, 1), (16, 1), (13, 5)], [(20, 1), (26, 1), (23, 5)]
    shapes = [_shape("ant", t1, group="g"), _shape("dog", t2), _shape("ant", t2, group="g"),
              _shape("bee", t3, group="g"), _shape("ant", t3, group={"x": 1}), _shape("bee", t1, group=2.0),
              _shape("bee", t2, group=2.0)]
    coco, skipped = _skip(annot, _lm(tmp_path, shapes), tmp_path / "o.json", "--labels", labels, fmt="labelme")
    assert skipped == ["shape[1]", "shape[4]"]
    assert [c["name"] for c in coco["categories"]] == ["bee", "ant"]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    flat = lambda t: [float(v) for p in t for v in p]  # noqa: E731
    assert [(names[a["category_id"]], a["segmentation"]) for a in coco["annotations"]] == [
        ("ant", [flat(t1), flat(t2)]), ("bee", [flat(t3)]), ("bee", [flat(t1), flat(t2)])]


@pytest.mark.parametrize("plain", [True, False])
def test_labelme_shapes_become_the_polygons_their_type_defines(annot, tmp_path, plain):
    """Each shape type's polygon, with the plain (all-polygon) fast path and
    the checked path (a point shape in the file) alike."""
    shapes = [_shape("a", [(30, 20), (10, 5)], "rectangle"),
              _shape("a", [(5, 25), (15, 21), (9, 28), (2, 22)], "rectangle"),
              _shape("a", [(1, 1), (9, 2), (8, 9), (0, 8)], "oriented_rectangle"),
              _shape("a", [(20, 2), (30, 2), (25, 9), (21, 7)]),
              _shape("a", [(30, 20), (34, 20)], "circle")]
    if not plain:
        shapes.append(_shape("a", [(3, 3)], "point"))
    coco, skipped = _skip(annot, _lm(tmp_path, shapes), tmp_path / "o.json", fmt="labelme")
    segs = [a["segmentation"] for a in coco["annotations"]]
    assert skipped == [] and len(segs) == 5
    assert segs[0] == [[10, 5, 30, 5, 30, 20, 10, 20]]
    assert segs[1] == [[2, 21, 15, 21, 15, 28, 2, 28]]
    assert segs[2] == [[1, 1, 9, 2, 8, 9, 0, 8]]
    assert segs[3] == [[20, 2, 30, 2, 25, 9, 21, 7]]
    pts = np.array(segs[4][0]).reshape(-1, 2)
    assert np.hypot(pts[:, 0] - 30, pts[:, 1] - 20) == pytest.approx(4.0)
    assert coco["annotations"][0]["bbox"] == [10, 5, 20, 15] and coco["annotations"][0]["area"] == 300


@pytest.mark.parametrize("shape, message", [
    (_shape("a", [(1, 1), (5, 5), (9, 1)], "rectangle"), "rectangle has 3 points, needs 2 corners"),
    (_shape("a", [(1, 1), (1, 5)], "rectangle"), "rectangle has zero width or height"),
    (_shape("a", [(1, 1), (5, 1)], "rectangle"), "rectangle has zero width or height"),
    (_shape("a", [(1, 1), (1, 5), (1, 7), (1, 9)], "rectangle"), "rectangle has zero width or height"),
    (_shape("a", [(1, 1), (5, 1), (7, 1), (9, 1)], "rectangle"), "rectangle has zero width or height"),
    (_shape("a", [(5, 5), (5, 5)], "circle"), "circle has zero radius"),
    (_shape("a", [(5, 5), (6, 6), (7, 7)], "circle"), "circle has 3 points, needs centre and a point on it"),
    (_shape("a", [(1, 1), (5, 1), (5, 5)], "oriented_rectangle"), "oriented_rectangle has 3 points, needs 4"),
    (_shape("a", [(1, 1), (5, 1)]), "polygon has 2 point(s), needs at least 3"),
    (_shape("", [(1, 1), (5, 1), (5, 5)]), "missing label"),
    (_shape("a", [(1, 1), (5, 1), (5, 5)], kind=3), "shape_type must be a string, not int"),
    (_shape("a", [(1, 1), (5, 1), (5, 5)], kind="spline"), "unknown shape_type 'spline'"),
    ({**_shape("a", []), "points": [[1, 1], [5], [5, 5]]}, "'points' must be a non-empty list of [x, y] number pairs"),
    ({**_shape("a", []), "points": [[1, 1], [5, "x"], [5, 5]]}, "'points' must be a non-empty list of [x, y] number pairs"),
    ({**_shape("a", []), "points": []}, "'points' must be a non-empty list of [x, y] number pairs"),
    ({**_shape("a", []), "points": [[1, 1], [5, "inf"], [5, 5]]}, "'points' holds a non-finite number"),
    ("shape", "shape is not an object"),
])
def test_labelme_bad_shapes_are_skipped_alone(annot, tmp_path, shape, message):
    good = _shape("b", [(20, 20), (30, 20), (25, 28)])
    src = _lm(tmp_path, [shape, good])
    coco, skipped = _skip(annot, src, tmp_path / "o.json", fmt="labelme")
    assert skipped == ["shape[0]"] and [a["segmentation"] for a in coco["annotations"]] == [[[20, 20, 30, 20, 25, 28]]]
    err = _fails(annot, src, tmp_path, fmt="labelme")
    assert err.strip() == f"annot: error: {src}:shape[0]: {message}"


def test_labelme_image_names_and_sizes(annot, tmp_path):
    """Absolute Windows and POSIX imagePaths become their file names; an
    image without a stored size takes its file's (found under --image-root
    when it is not beside the JSON); only imageData: named after the JSON
    with the embedded image's type; --extract-images writes its bytes."""
    pics = tmp_path / "pics"
    pics.mkdir()
    Image.new("RGB", (17, 13)).save(pics / "c.png")
    (tmp_path / "lm").mkdir()
    Image.new("RGB", (19, 11)).save(tmp_path / "lm/d.png")
    Image.new("RGB", (29, 7)).save(pics / "d.png")  # the one beside the JSON wins
    buf = io.BytesIO()
    Image.new("RGB", (21, 9), (200, 10, 10)).save(buf, "JPEG")
    emb = base64.b64encode(buf.getvalue()).decode()
    tri = [_shape("a", [(1, 1), (6, 1), (3, 5)])]
    _lm(tmp_path, tri, "a.json", imagePath="C:\\data\\imgs\\a.png")
    _lm(tmp_path, tri, "b.json", imagePath="/abs/dir/b.png")
    _lm(tmp_path, tri, "c.json", imagePath="c.png", imageWidth=None, imageHeight=None)
    _lm(tmp_path, tri, "d.json", imagePath="d.png", imageWidth=None, imageHeight=0)
    _lm(tmp_path, tri, "e.json", imagePath="", imageData=emb, imageWidth=None, imageHeight=None)
    _lm(tmp_path, tri, "f.json", imagePath="e.txt", imageData=None)
    _lm(tmp_path, tri, "g.json", imagePath="", imageData="@@@", imageWidth=None, imageHeight=None)
    _lm(tmp_path, tri, "h.json", imagePath=7)
    _lm(tmp_path, tri, "i.json", imagePath="gone.png", imageWidth=None, imageHeight=None)
    _lm(tmp_path, tri, "j.json", imagePath="j.png", imageWidth=3000, imageHeight=1)  # over --max-pixels
    out = tmp_path / "o.json"
    coco, skipped = _skip(annot, tmp_path / "lm", out, "--image-root", pics, "--extract-images", tmp_path / "x",
                          "--max-pixels", "2500", fmt="labelme")
    got = [(i["file_name"], i["width"], i["height"]) for i in coco["images"]]
    assert got == [("a.png", W, H), ("b.png", W, H), ("c.png", 17, 13), ("d.png", 19, 11), ("e.jpg", 21, 9)]
    assert [Path(i["source"]).name for i in coco["images"]] == ["a.json", "b.json", "c.json", "d.json", "e.json"]
    assert len(skipped) == 5
    assert (tmp_path / "x/e.jpg").read_bytes() == buf.getvalue()
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["e.jpg"]


# --- Label Studio, CreateML, label configs ----------------------------------------------------------

def _ls_rect(rid, x, y, w, h, label="car", size=(200, 100), **extra):
    r = {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
         "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}, **extra}
    if size is not None:
        r["original_width"], r["original_height"] = size
    return r


def _ls(tmp_path: Path, tasks: list) -> Path:
    p = tmp_path / "ls.json"
    p.write_text(json.dumps(tasks))
    return p


def test_labelstudio_regions_after_a_choice_and_with_their_own_size(annot, tmp_path):
    """A classification result and an unsupported region type before the
    regions are passed over, not the end of the list; each region's percentages are of its own
    original_width/height (Label Studio's x_px = x / 100 * original_width)."""
    choice = {"id": "c", "type": "choices", "from_name": "cls", "to_name": "image", "value": {"choices": ["day"]}}
    ellipse = {"id": "e", "type": "ellipselabels", "from_name": "el", "to_name": "image",
               "value": {"x": 5, "y": 5, "radiusX": 2, "radiusY": 2, "ellipselabels": ["car"]}}
    results = [choice, ellipse, _ls_rect("a", 10, 20, 30, 40), _ls_rect("b", 10, 10, 20, 20, size=(400, 200)),
               _ls_rect("c", 50, 50, 10, 10, size=None)]
    task = {"id": 3, "data": {"image": "/data/upload/1/a.png"}, "annotations": [{"id": 1, "result": results}]}
    coco, skipped = _skip(annot, _ls(tmp_path, [task]), tmp_path / "o.json", fmt="labelstudio")
    assert skipped == [] and coco["images"][0]["width"] == 200
    assert [a["bbox"] for a in coco["annotations"]] == [[20, 20, 60, 40], [40, 20, 80, 40], [100, 50, 20, 10]]


def test_labelstudio_task_with_image_outside_data(annot, tmp_path):
    """A task with "annotations" but no "data" (the image at the top) is a
    task, not a JSON_MIN record."""
    task = {"id": 4, "image": "/data/upload/1/a.png", "annotations": [{"id": 1, "result": [_ls_rect("a", 10, 20, 30, 40)]}]}
    coco, skipped = _skip(annot, _ls(tmp_path, [task]), tmp_path / "o.json", fmt="labelstudio")
    assert skipped == [] and [a["bbox"] for a in coco["annotations"]] == [[20, 20, 60, 40]]


def test_labelstudio_scores_belong_to_predictions_only(annot, tmp_path):
    """--annotations predictions: a region without a score takes its
    prediction's; an annotation's "score" field never makes its regions scored."""
    task = {"id": 5, "data": {"image": "/data/upload/1/a.png"},
            "annotations": [{"id": 1, "score": 0.5, "result": [_ls_rect("a", 10, 20, 30, 40)]}],
            "predictions": [{"id": 2, "score": 0.75, "result": [_ls_rect("p", 10, 20, 30, 40),
                                                                _ls_rect("q", 50, 20, 30, 40, score=0.25)]}]}
    src = _ls(tmp_path, [task])
    coco, _ = _skip(annot, src, tmp_path / "o.json", fmt="labelstudio")
    assert [a.get("score") for a in coco["annotations"]] == [None]
    coco, _ = _skip(annot, src, tmp_path / "p.json", "--annotations", "predictions", fmt="labelstudio")
    assert [a.get("score") for a in coco["annotations"]] == [0.75, 0.25]


def test_labelstudio_image_size_from_the_predictions(annot, tmp_path):
    """--predictions: when no annotation region gives the image size, the
    predictions' regions do."""
    task = {"id": 6, "data": {"image": "/data/upload/1/a.png"}, "annotations": [{"id": 1, "result": []}],
            "predictions": [{"id": 2, "score": 0.5, "result": [_ls_rect("p", 10, 20, 30, 40)]}]}
    coco, skipped = _skip(annot, _ls(tmp_path, [task]), tmp_path / "o.json", "--predictions", fmt="labelstudio")
    assert skipped == [] and [(i["width"], i["height"]) for i in coco["images"]] == [(200, 100)]
    preds = load(tmp_path / "o.predictions.json")
    assert [(p["bbox"], p["score"]) for p in preds] == [([20, 20, 60, 40], 0.5)]


def test_createml_images_name_their_source_file_in_a_folder(annot, tmp_path):
    (tmp_path / "cm").mkdir()
    Image.new("RGB", (50, 40)).save(tmp_path / "cm/a.png")
    doc = [{"image": "a.png", "annotations": [{"label": "ant", "coordinates": {"x": 20, "y": 15, "width": 10,
                                                                                   "height": 6}}]}]
    (tmp_path / "cm/boxes.json").write_text(json.dumps(doc))
    coco, skipped = _skip(annot, tmp_path / "cm", tmp_path / "o.json", fmt="createml")
    assert skipped == []
    assert [(i["file_name"], i["width"], i["height"], i["source"]) for i in coco["images"]] == [
        ("a.png", 50, 40, str(tmp_path / "cm/boxes.json"))]
    assert [a["bbox"] for a in coco["annotations"]] == [[15, 12, 10, 6]]


def test_label_config_predicted_values_and_smart_tools():
    """A model class matches its label by name (any case) or through the
    label's predicted_values; smart="true" marks a smart tool."""
    from annot.converters.labelstudio_config import LabelConfig

    cfg = LabelConfig.from_xml(
        '<View><Image name="img" value="$photo"/>'
        '<RectangleLabels name="box" toName="img" smart="True">'
        '<Label value="Vehicle" predicted_values="car, Truck,"/><Label value="person"/></RectangleLabels>'
        '<PolygonLabels name="poly" toName="img"><Label value="tree"/></PolygonLabels></View>')
    assert [cfg.label_for(n) for n in ("car", "TRUCK", " vehicle ", "Person", "bus", "", "xxxx")] == [
        "Vehicle", "Vehicle", "Vehicle", "person", None, None, None]
    assert [(c.kind, c.name, c.smart) for c in cfg.controls] == [("rectangle", "box", True), ("polygon", "poly", False)]
    assert cfg.data_key == "photo"


def test_labelme_mask_group_is_measured_in_its_own_box(annot, tmp_path):
    """A mask far from the image's origin is measured in the box it spans
    (50 x 50 px, a few KB), never in one reaching from the origin or over the
    whole 3000 x 100 image (MBs): a 1 MB budget passes it."""
    crop = _blob(50, 50)
    shape = _shape("ant", [(2900, 40), (2949, 89)], "mask", mask=_png(crop))
    src = _lm(tmp_path, [shape], imageWidth=3000, imageHeight=100)
    coco, skipped = _skip(annot, src, tmp_path / "o.json", "--max-memory", "1M", fmt="labelme")
    (a,) = coco["annotations"]
    assert skipped == [] and a["area"] == crop.sum() and a["bbox"][:2] == [2900, 40]


def test_labelme_polygon_over_the_memory_budget_is_skipped_alone(annot, tmp_path):
    """--max-memory applies to rasterising a labelme polygon: over it, that
    shape is skipped and the others are read; a larger budget reads both."""
    shapes = [_shape("ant", [(5, 5), (4990, 5), (2000, 4900)]), _shape("ant", [(5, 5), (20, 5), (20, 15)])]
    src = _lm(tmp_path, shapes, imageWidth=5000, imageHeight=5000)
    # the triangle needs 1.7 MB (3 points, 5000 px apart): over 1.5 MB, under 1.5x that
    coco, skipped = _skip(annot, src, tmp_path / "o.json", "--max-memory", "1.5M", fmt="labelme")
    assert skipped == ["shape[0]"] and [a["segmentation"] for a in coco["annotations"]] == [[[5, 5, 20, 5, 20, 15]]]
    coco, skipped = _skip(annot, src, tmp_path / "p.json", "--max-memory", "64M", fmt="labelme")
    assert skipped == [] and len(coco["annotations"]) == 2


def test_coco_small_and_whole_image_areas_are_the_files(annot, tmp_path):
    """A stored area is kept when it is positive and at most the image's
    pixel count: 0.5 px and exactly width x height included."""
    tri = [[3.5, 2.0, 25.0, 4.0, 9.0, 21.5]]
    anns = [{"segmentation": tri, "area": 0.5}, {"segmentation": tri, "area": W * H}]
    coco, skipped = _skip(annot, _coco(tmp_path, anns), tmp_path / "o.json")
    assert skipped == [] and [a["area"] for a in coco["annotations"]] == [0.5, W * H]


def test_labelstudio_json_min_keypoints_follow_their_region_id(annot, tmp_path):
    """JSON_MIN (per control name, a list of region values): a keypoint's
    parentID names its region's id; x, y in percent of its own
    original_width/height."""
    task = {"image": "/data/upload/1/a.png", "id": 9,
            "label": [{"id": "r1", "x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0,
                       "rectanglelabels": ["car"], "original_width": 200, "original_height": 100}],
            "kp": [{"id": "k1", "parentID": "r1", "x": 15, "y": 30, "keypointlabels": ["nose"],
                    "original_width": 400, "original_height": 200}]}
    coco, skipped = _skip(annot, _ls(tmp_path, [task]), tmp_path / "o.json", fmt="labelstudio")
    assert skipped == [] and [c.get("keypoints") for c in coco["categories"]] == [["nose"]]
    assert [(a["bbox"], a["keypoints"]) for a in coco["annotations"]] == [([20, 20, 60, 40], [60, 60, 2])]


def test_labelme_labels_option_on_plain_files_and_files_that_are_not_labelme(annot, tmp_path):
    """--labels also applies to a file of plain polygons; a JSON file that
    is not a labelme file (no 'shapes' list) is skipped alone."""
    labels = tmp_path / "labels.txt"
    labels.write_text("ant\n")
    _lm(tmp_path, [_shape("ant", [(1, 1), (6, 1), (3, 5)]), _shape("dog", [(10, 1), (16, 1), (13, 5)])])
    (tmp_path / "lm/b.json").write_text(json.dumps({"version": "5.3.1", "imagePath": "b.png"}))
    (tmp_path / "lm/c.json").write_text(json.dumps([1, 2]))
    res = annot("convert", "labelme", "coco", tmp_path / "lm", "-o", tmp_path / "o.json", "--labels", labels,
                "--on-error", "skip", "-q")
    assert res.code == 0, res
    skipped = [(Path(s["path"]).name, s["item"]) for s in load(tmp_path / "o.json.report.json")["skipped"]]
    assert skipped == [("a.json", "shape[1]"), ("b.json", None), ("c.json", None)]
    assert [a["segmentation"] for a in load(tmp_path / "o.json")["annotations"]] == [[[1, 1, 6, 1, 3, 5]]]


def test_coco_reads_the_json_file_of_a_folder(annot, tmp_path):
    (tmp_path / "d").mkdir()
    _coco(tmp_path / "d", [{"segmentation": BOX}], name="only.json")
    coco, skipped = _skip(annot, tmp_path / "d", tmp_path / "o.json")
    assert skipped == [] and [a["bbox"] for a in coco["annotations"]] == [[2.0, 2.0, 10.0, 8.0]]
