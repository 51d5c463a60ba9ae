"""The Detections container: shapes checked in one place, indexing, and the
bridge to the COCO core checked against pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annot.detections import CLASS_PROBS, IOU_PREDICTION, MASK_UNCERTAINTY, Detections
from annot.model import Instance

NAMES = ("cat", "dog")


def _masks(n, h=20, w=30):
    m = np.zeros((n, h, w), bool)
    for k in range(n):
        m[k, 2 + k : 8 + 2 * k, 3 : 10 + 3 * k] = True
    return m


def _dets(n=3, **kw):
    masks = _masks(n)
    args = dict(class_id=np.arange(n) % 2, confidence=np.linspace(0.9, 0.5, n), class_names=NAMES,
                data={CLASS_PROBS: np.full((n, 3), 1 / 3), MASK_UNCERTAINTY: np.arange(n) / 10},
                columns={CLASS_PROBS: ("__background__", *NAMES)})
    args.update(kw)
    return Detections.from_masks(masks, **args)


@pytest.mark.parametrize("change, message", [
    ({}, None),  # the empty case: valid
    ({"xyxy": np.zeros((0, 3))}, r"xyxy must have shape \(n, 4\), got \(0, 3\)"),
    ({"xyxy": np.zeros(4)}, r"xyxy must have shape \(n, 4\), got \(4,\)"),
    ({"class_id": np.zeros(1, np.int64)}, r"class_id must be 0 integers \(shape \(0,\)\), got \(1,\)"),
    ({"confidence": np.zeros(2)}, r"confidence must be 0 finite numbers \(shape \(0,\)\), got \(2,\)"),
    ({"mask": np.zeros((1, 4, 4), bool)}, r"mask must be bool with shape \(0, H, W\), got \(1, 4, 4\) bool"),
    ({"data": {CLASS_PROBS: np.zeros((5, 3))}}, r"data\['class_probs'\] must have one row per detection"),
])
def test_empty_detections_and_their_shape_checks(change, message):
    args = dict(xyxy=np.zeros((0, 4)), class_id=np.zeros(0, np.int64), confidence=np.zeros(0), class_names=NAMES,
                mask=np.zeros((0, 4, 4), bool))
    args.update(change)
    if message is None:
        d = Detections(**args)
        assert len(d) == 0 and d.labels == [] and d.to_instances() == []
        assert len(Detections.empty(NAMES, (4, 4))) == 0
    else:
        with pytest.raises(ValueError, match=message):
            Detections(**args)


@pytest.mark.parametrize("change, message", [
    ({"class_id": np.array([0, 1, 2])}, r"class_id must index the 2 class names, got 0..2"),
    ({"class_id": np.array([0.0, 1.0, 0.0])}, r"class_id must be 3 integers"),
    ({"confidence": np.array([0.5, np.nan, 0.1])}, r"confidence must be 3 finite numbers"),
    ({"confidence": np.ones((3, 1))}, r"got \(3, 1\)"),
    # (5, 3) class_probs for three detections: one row per detection
    ({"data": {CLASS_PROBS: np.zeros((5, 3))}, "columns": {}}, r"data\['class_probs'\] must have one row per detection "
                                                                r"\(3, \.\.\.\), got \(5, 3\)"),
    ({"columns": {CLASS_PROBS: ("a", "b")}}, r"columns\['class_probs'\] names 2 columns but data\['class_probs'\] "
                                              r"has shape \(3, 3\)"),
    ({"columns": {"other": ("a",)}}, r"columns\['other'\] names 1 columns but data\['other'\] has shape none"),
    ({"mask": _masks(3).astype(np.uint8)}, r"mask must be bool with shape \(3, H, W\), got \(3, 20, 30\) uint8"),
    ({"xyxy": np.array([[5, 5, 4, 9]] * 3, float)}, r"x1 >= x0 and y1 >= y0"),
    ({"xyxy": np.array([[0, 0, np.inf, 9]] * 3, float)}, r"finite"),
])
def test_every_shape_is_checked_with_expected_and_actual(change, message):
    base = _dets()
    args = dict(xyxy=base.xyxy, class_id=base.class_id, confidence=base.confidence, class_names=NAMES,
                mask=base.mask, data=base.data, columns=base.columns)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        Detections(**args)


def test_indexing_with_ints_slices_index_arrays_and_boolean_masks():
    d = _dets(4)
    assert len(d) == 4 and d.labels == ["cat", "dog", "cat", "dog"]
    for index, picked in [(2, [2]), (np.int64(1), [1]), (slice(1, 3), [1, 2]), ([3, 0], [3, 0]),
                          (np.array([0, 0]), [0, 0]), (d.confidence > 0.7, [0, 1]), (d.class_id == 1, [1, 3])]:
        sub = d[index]
        assert len(sub) == len(picked)
        assert np.array_equal(sub.xyxy, d.xyxy[picked]) and np.array_equal(sub.mask, d.mask[picked])
        assert np.array_equal(sub.confidence, d.confidence[picked]) and sub.labels == [d.labels[k] for k in picked]
        assert np.array_equal(sub.data[MASK_UNCERTAINTY], d.data[MASK_UNCERTAINTY][picked])
        assert sub.columns == d.columns and sub.class_names == NAMES
    with pytest.raises(IndexError, match=r"a boolean index must have shape \(4,\), got \(3,\)"):
        d[np.array([True, False, True])]
    assert len(d[d.confidence > 1]) == 0


def test_boxes_follow_the_masks_in_coco_pixels():
    d = _dets(2)
    assert d.xyxy.tolist() == [[3, 2, 10, 8], [3, 3, 13, 10]]
    assert d.xywh.tolist() == [[3, 2, 7, 6], [3, 3, 10, 7]]


def test_to_instances_agrees_with_pycocotools_and_comes_back():
    d = _dets(3, data={CLASS_PROBS: np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25]]),
                       IOU_PREDICTION: np.array([0.9, 0.8, 0.7])})
    insts = d.to_instances()
    assert [i.label for i in insts] == d.labels and [i.score for i in insts] == d.confidence.tolist()
    for inst, m in zip(insts, d.mask):
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert inst.area == float(mask_utils.area(rle)) and inst.bbox == mask_utils.toBbox(rle).tolist()
        assert np.array_equal(mask_utils.decode(inst.segmentation).astype(bool), m)
    assert insts[1].extra == {CLASS_PROBS: [0.2, 0.2, 0.6], IOU_PREDICTION: 0.8}
    back = Detections.from_instances(insts, NAMES, (20, 30), columns=d.columns)
    assert np.array_equal(back.mask, d.mask) and np.array_equal(back.xyxy, d.xyxy)
    assert np.array_equal(back.class_id, d.class_id) and np.array_equal(back.confidence, d.confidence)
    assert np.array_equal(back.data[CLASS_PROBS], d.data[CLASS_PROBS]) and back.columns == d.columns
    with pytest.raises(ValueError, match=r"labels \['bird'\] are not among the class names"):
        Detections.from_instances([Instance("bird", [0, 0, 1, 1], 1.0)], NAMES, None)


def test_empty_masks_are_dropped_and_masks_upsampled_to_the_displayed_size():
    masks = np.zeros((2, 10, 10), bool)
    masks[1, 2:6, 4:8] = True  # the first is empty: no COCO annotation can be made of it
    d = Detections.from_masks(masks, [0, 1], [0.9, 0.8], NAMES)
    assert d.xyxy[0].tolist() == [0, 0, 0, 0]
    (inst,) = d.to_instances(size=(20, 20))  # the model saw the image at half size
    assert inst.label == "dog" and inst.segmentation["size"] == [20, 20]
    assert inst.bbox == [8.0, 4.0, 8.0, 8.0] and inst.area == 64.0


def test_box_only_detections_become_box_instances():
    d = Detections(np.array([[1.0, 2.0, 11.0, 7.0]]), [1], [0.4], NAMES)
    (inst,) = d.to_instances(size=(50, 50))
    assert (inst.label, inst.bbox, inst.area, inst.segmentation, inst.score) == ("dog", [1, 2, 10, 5], 50, None, 0.4)
