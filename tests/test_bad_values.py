"""Values of the wrong type or out of range: one error line naming the item,
or (with ``--on-error skip``) the item skipped and the rest converted.

Each case here was an internal error or an invalid COCO output before; they
were found by ``test_malformed_input.py``.
"""

from __future__ import annotations

import json
import math

import pytest
from conftest import load
from hypothesis import given, settings
from hypothesis import strategies as st

from annot.geometry import MAX_CIRCLE_VERTICES, circle_polygon
from annot.values import numbers_to_floats, to_floats


def _labelme(shapes, **top):
    doc = {"version": "5.3.1", "flags": {}, "imagePath": "x.png", "imageData": None, "imageWidth": 100,
           "imageHeight": 80, "shapes": shapes}
    doc.update(top)
    return doc


def _poly(label="a", pts=((10, 10), (40, 10), (40, 30)), **extra):
    return {"label": label, "points": [list(p) for p in pts], "shape_type": "polygon", "group_id": None, **extra}


def _ls_task(results, **annotation):
    return [{"id": 7, "data": {"image": "/data/upload/1/abcd1234-a.jpg"},
             "annotations": [{"id": 1, "result": results, **annotation}]}]


def _rect(rid="r1", x=10, y=10, w=20, h=20, label="car"):
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": 200, "original_height": 100,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def _keypoint(parent, name="nose", x=15, y=15):
    return {"id": f"k-{parent}", "type": "keypointlabels", "parentID": parent, "from_name": "kp", "to_name": "image",
            "original_width": 200, "original_height": 100, "value": {"x": x, "y": y, "keypointlabels": [name]}}


def _coco(**changes):
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
           "categories": [{"id": 1, "name": "a"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400,
                            "iscrowd": 0, "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]}]}
    for key, value in changes.items():
        section, field = key.split("__")
        doc[section][0][field] = value
    return doc


CASES = {
    "labelme shape_type list": ("labelme", _labelme([_poly(shape_type=["polygon"])]),
                                "shape[0]: shape_type must be a string, not list"),
    "labelme imagePath number": ("labelme", _labelme([_poly()], imagePath=3), "imagePath: must be a string, not int"),
    "labelme collinear polygon": ("labelme", _labelme([_poly(pts=((10, 10), (20, 20), (30, 30)))]),
                                  "shape[0]: shape covers no pixel inside the image"),
    "labelme polygon outside": ("labelme", _labelme([_poly(pts=((200, 10), (240, 10), (240, 30)))]),
                                "shape[0]: shape covers no pixel inside the image"),
    "labelstudio type not a string": ("labelstudio", _ls_task([{**_rect(), "type": ["rectanglelabels"]}]),
                                      "task 7.result[0]: a result needs a string 'type' and an object 'value'"),
    "labelstudio value a list": ("labelstudio", _ls_task([{**_rect(), "value": [1]}]),
                                 "task 7.result[0]: a result needs a string 'type' and an object 'value'"),
    "labelstudio annotations an int": ("labelstudio", [{"id": 7, "data": {"image": "a.jpg"}, "annotations": 3}],
                                       "task 7: 'annotations' is not a list"),
    "labelstudio result a dict": ("labelstudio", _ls_task({"x": 1}), "task 7.annotation 1: 'result' is not a list"),
    "labelstudio empty label": ("labelstudio", _ls_task([_rect(label="")]),
                                "task 7.result[0]: region label must be a non-empty string, found ''"),
    "labelstudio keypoint x text": ("labelstudio", _ls_task([_rect(), _keypoint("r1", x="left")]),
                                    "task 7.result[1]: keypoint x and y must be numbers", 1),
    "coco empty category name": ("coco", _coco(categories__name=""),
                                 "categories[0]: category needs an int or string 'id' and a non-empty 'name'"),
    "coco polygon with text": ("coco", _coco(annotations__segmentation=[[10, 10, "x", 10, 30, 30]]),
                               "annotations[0]: segmentation polygons must be lists of numbers"),
    "coco keypoints not triplets": ("coco", _coco(annotations__keypoints=[1, 2]),
                                    "annotations[0]: keypoints must be a list of numbers, three per point"),
    "coco bbox outside": ("coco", _coco(annotations__bbox=[200, 10, 20, 20], annotations__segmentation=[]),
                          "annotations[0]: bbox [200.0, 10.0, 20.0, 20.0] has no area inside the 100x80 image"),
    "coco empty RLE": ("coco", _coco(annotations__segmentation={"size": [80, 100], "counts": [8000]}),
                       "annotations[0]: RLE segmentation is empty"),
    "coco odd polygon": ("coco", _coco(annotations__segmentation=[[10, 10, 30, 10, 30, 30, 10]]),
                         "annotations[0]: polygon with an odd number of coordinates"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_value_is_one_line_and_skippable(annot, tmp_path, case):
    fmt, doc, message, *kept = CASES[case]
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "out.json"
    res = annot("convert", fmt, "coco", src, "-o", out)
    assert res.code == 2, res
    assert res.err.strip() == f"annot: error: {src}:{message}"
    assert not out.exists()
    res = annot("convert", fmt, "coco", src, "-o", out, "--on-error", "skip", "-q")
    assert res.code == 0, res
    assert len(load(out)["annotations"]) == (kept[0] if kept else 0)  # without the bad region
    assert annot("validate", "coco", out).code == 0


def _voc(path, xmax=20, difficult=0):
    path.write_text(
        "<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size>"
        f"<object><name>a</name><difficult>{difficult}</difficult>"
        f"<bndbox><xmin>10</xmin><ymin>10</ymin><xmax>{xmax}</xmax><ymax>30</ymax></bndbox></object></annotation>")


def test_voc_difficult_out_of_range_is_a_bad_number(annot, tmp_path):
    _voc(tmp_path / "a.xml", difficult="1e400")
    res = annot("convert", "voc", "coco", tmp_path / "a.xml", "-o", tmp_path / "o.json")
    assert res.code == 2
    assert res.err.strip() == f"annot: error: {tmp_path / 'a.xml'}:object[0]: bad number: <difficult> is '1e400'"


def test_coco_bbox_over_the_border_is_clipped(convert, tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(_coco(annotations__bbox=[90, 70, 20, 20],
                                    annotations__segmentation=[[90, 70, 100, 70, 100, 80, 90, 80]])))
    ann = load(convert("coco", "coco", src))["annotations"][0]
    assert ann["bbox"] == [90.0, 70.0, 10.0, 10.0]


def test_coco_area_larger_than_the_image_is_measured_again(convert, tmp_path):
    # COCOeval's area ranges end at 1e10: a larger area makes the annotation invisible to it
    src = tmp_path / "in.json"
    src.write_text(json.dumps(_coco(annotations__area=1e11)))
    ann = load(convert("coco", "coco", src))["annotations"][0]
    assert ann["area"] == 400.0  # the 20 x 20 square's pixel count


def test_labelstudio_keypoints_follow_their_region_when_an_earlier_one_is_dropped(annot, tmp_path):
    # r0 lies right of the image (x = 150 %): dropped; the keypoint must still land on r1
    results = [_rect("r0", x=150), _rect("r1", x=10), _keypoint("r1", x=15, y=15)]
    src = tmp_path / "t.json"
    src.write_text(json.dumps(_ls_task(results)))
    out = tmp_path / "o.json"
    assert annot("convert", "labelstudio", "coco", src, "-o", out, "--on-error", "skip", "-q").code == 0
    (ann,) = load(out)["annotations"]
    assert ann["bbox"] == [20.0, 10.0, 40.0, 20.0]
    assert ann["keypoints"] == [30.0, 15.0, 2]
    (skip,) = load(tmp_path / "o.json.report.json")["skipped"]
    assert (skip["item"], skip["reason"]) == ("task 7.result[0]", "shape covers no pixel inside the image")


def test_labelstudio_mixed_time_stamps_pick_the_dated_annotation(convert, tmp_path):
    task = _ls_task([_rect(label="old")], updated_at=5)
    task[0]["annotations"].append({"id": 2, "result": [_rect(label="new")], "updated_at": "2024-01-01T00:00:00Z"})
    src = tmp_path / "t.json"
    src.write_text(json.dumps(task))
    coco = load(convert("labelstudio", "coco", src))
    assert [c["name"] for c in coco["categories"]] == ["new"]


def test_circle_vertex_count_is_capped_for_absurd_radii():
    assert len(circle_polygon(0, 0, 1e20)) == 2 * MAX_CIRCLE_VERTICES
    assert len(circle_polygon(0, 0, 1e6)) < 2 * MAX_CIRCLE_VERTICES  # the 1 px bound still decides here


@pytest.mark.parametrize("change, problem", [
    ({"annotations__image_id": [1]}, "annotations[0].image_id: [1] is not an image id"),
    ({"annotations__category_id": {"id": 1}}, "annotations[0].category_id: {'id': 1} is not a category id"),
    ({"annotations__segmentation": {"size": [80, 100], "counts": [10, "x"]}},
     "annotations[0].segmentation.counts: uncompressed RLE counts must be ints >= 0"),
])
def test_validate_reports_wrong_types_as_problems(annot, tmp_path, change, problem):
    f = tmp_path / "c.json"
    f.write_text(json.dumps(_coco(**change)))
    res = annot("validate", "coco", f)
    assert res.code == 1, res
    assert f"{f}:{problem}" in res.err.splitlines()


def test_yolo_collinear_polygon_and_voc_sliver_box_cover_no_pixel(annot, tmp_path):
    from PIL import Image

    yolo = tmp_path / "yolo"
    yolo.mkdir()
    Image.new("RGB", (100, 80)).save(yolo / "a.png")
    (yolo / "classes.txt").write_text("a\n")
    (yolo / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.2 0.2 0.3 0.3\n")
    res = annot("convert", "yolo", "coco", yolo, "-o", tmp_path / "y.json")
    assert res.code == 2
    assert res.err.strip() == f"annot: error: {yolo / 'a.txt'}:line 2: shape covers no pixel inside the image"

    _voc(tmp_path / "a.xml", xmax=10.1)
    res = annot("convert", "voc", "coco", tmp_path / "a.xml", "-o", tmp_path / "v.json")
    assert res.code == 2
    assert res.err.strip() == f"annot: error: {tmp_path / 'a.xml'}:object[0]: shape covers no pixel inside the image"


@pytest.mark.parametrize("bbox", [[10, 10, True, 20], [10, 10, "20", 20], [10, 10, 20],
                                  "10 10 20 20", None])
def test_coco_bbox_that_is_not_four_numbers_comes_from_the_polygons(convert, tmp_path, bbox):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(_coco(annotations__bbox=bbox,
                                    annotations__segmentation=[[12.5, 10, 30, 10, 30, 31], [40, 5, 45, 5, 45, 9]])))
    ann = load(convert("coco", "coco", src))["annotations"][0]
    assert ann["bbox"] == [12.5, 5.0, 32.5, 26.0]  # the envelope of both polygons, not the stored box


def test_coco_bbox_ints_become_floats_and_kept(convert, tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(_coco(annotations__bbox=[10, 10.5, 20, 19])))
    bbox = load(convert("coco", "coco", src))["annotations"][0]["bbox"]
    assert bbox == [10.0, 10.5, 20.0, 19.0] and all(type(v) is float for v in bbox)


number_like = st.one_of(st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                        st.sampled_from(["1", "-2.5", "x", "nan", ""]), st.none())


@settings(max_examples=300, deadline=None)
@given(values=st.lists(number_like, max_size=8))
def test_to_floats_fast_path_agrees_with_the_per_value_rule(values):
    def reference(vs):
        try:
            out = [float(v) for v in vs if not isinstance(v, bool)]
        except (TypeError, ValueError):
            return None
        return out if len(out) == len(vs) and math.isfinite(sum(out)) else None

    assert to_floats(values) == reference(values)
    plain = numbers_to_floats(values)
    if all(type(v) in (int, float) for v in values):
        assert plain == reference(values)
    else:  # bools, strings and None are never numbers here
        assert plain is None
