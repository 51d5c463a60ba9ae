"""annot.training.evaluate against detections whose AP is known by construction.

COCO's AP is the mean over IoU thresholds of the precision interpolated at
101 recall points (0, 0.01, ..., 1). Detections that are exact copies of
ground truth have IoU 1 at every threshold, so a ranking of them and of
detections far from any object has an AP that can be counted by hand.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annot.training.evaluate import BACKGROUND, evaluate

W = H = 100


def square(x, y, s=20):
    return [x, y, x + s, y, x + s, y + s, x, y + s]


def dataset(objects, categories=("person",), crowd=()):
    """objects: per image, a list of (category index, x, y); crowd: (image index, category index, x, y)."""
    anns = []
    for i, objs in enumerate(objects, start=1):
        for c, x, y in objs:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c + 1, "bbox": [x, y, 20, 20],
                         "area": 400, "segmentation": [square(x, y)], "iscrowd": 0})
    for i, c, x, y in crowd:
        anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c + 1, "bbox": [x, y, 40, 40],
                     "area": 1600, "segmentation": [square(x, y, 40)], "iscrowd": 1})
    return {"images": [{"id": i, "file_name": f"{i}.png", "width": W, "height": H} for i in range(1, len(objects) + 1)],
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(categories)], "annotations": anns}


def result(image, c, x, y, score):
    rle = mask_utils.frPyObjects([square(x, y)], H, W)[0]
    rle["counts"] = rle["counts"].decode()
    return {"image_id": image, "category_id": c + 1, "bbox": [x, y, 20, 20], "score": score, "segmentation": rle}


def half_found():
    """10 images with one person each; 5 found exactly (score 0.9), 5 false alarms far away (score 0.8)."""
    gt = dataset([[(0, 10, 10)] for _ in range(10)])
    res = [result(i, 0, 10, 10, 0.9) for i in range(1, 6)] + [result(i, 0, 70, 70, 0.8) for i in range(6, 11)]
    return gt, res


def test_ap_of_a_ranking_counted_by_hand():
    gt, res = half_found()
    ev = evaluate(gt, res)
    # precision 1 up to recall 0.5 (recall points 0.00 ... 0.50: 51 of 101), 0 beyond
    for iou_type in ("bbox", "segm"):
        assert ev.coco[iou_type]["AP"] == pytest.approx(51 / 101, abs=1e-9)
        assert ev.coco[iou_type]["AP50"] == pytest.approx(51 / 101, abs=1e-9)
        assert ev.coco[iou_type]["AP75"] == pytest.approx(51 / 101, abs=1e-9)
        assert ev.coco[iou_type]["AR100"] == pytest.approx(0.5)
        assert ev.per_class["person"][iou_type] == pytest.approx(51 / 101, abs=1e-9)
    curve = ev.curves["segm"][0]
    assert curve["class"] == "person"
    assert curve["precision"][50] == 1.0 and curve["precision"][51] == 0.0


def test_false_alarms_ranked_first_lower_the_ap():
    gt, res = half_found()
    for r in res[5:]:
        r["score"] = 0.95  # the 5 false alarms now come before the 5 hits
    # precision at recall r <= 0.5 is now at best 5/10 (the hits come after 5 misses)
    assert evaluate(gt, res).coco["bbox"]["AP"] == pytest.approx(51 / 101 * 0.5, abs=1e-9)


@pytest.mark.parametrize("threshold, precision, recall", [(0.5, 0.5, 0.5), (0.85, 1.0, 0.5), (0.95, 0.0, 0.0)])
def test_precision_recall_at_a_score_threshold(threshold, precision, recall):
    gt, res = half_found()
    ev = evaluate(gt, res, score_threshold=threshold)
    assert (ev.precision, ev.recall) == (pytest.approx(precision), pytest.approx(recall))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    assert ev.f1 == pytest.approx(f1)


def test_confusion_matrix_rows_are_truth_and_columns_detections():
    gt = dataset([[(0, 10, 10), (1, 60, 60)], [(1, 10, 10)]], categories=("cat", "dog"))
    res = [result(1, 1, 10, 10, 0.9),   # a cat called a dog
           result(2, 1, 11, 10, 0.9),   # a dog found (IoU 19*20/(21*20) = 0.90)
           result(2, 0, 70, 70, 0.9)]   # a cat where there is nothing
    ev = evaluate(gt, res)
    assert ev.metrics()["confusion"]["labels"] == ["cat", "dog", BACKGROUND]
    assert ev.confusion == [[0, 1, 0],   # cat: taken for a dog
                            [0, 1, 1],   # dog: one found, one missed (image 1)
                            [1, 0, 0]]   # background: one false cat
    assert ev.precision == pytest.approx(1 / 3) and ev.recall == pytest.approx(1 / 3)


def test_a_pair_below_the_match_iou_is_a_miss_and_a_false_alarm():
    gt = dataset([[(0, 10, 10)]])
    res = [result(1, 0, 20, 10, 0.9)]  # IoU 10*20 / (30*20) = 1/3
    assert evaluate(gt, res).confusion == [[0, 1], [1, 0]]
    assert evaluate(gt, res, match_iou=0.3).confusion == [[1, 0], [0, 0]]


def test_detections_in_a_crowd_region_are_neither_hits_nor_false_alarms():
    gt = dataset([[(0, 10, 10)]], crowd=[(0, 0, 50, 50)])
    res = [result(1, 0, 10, 10, 0.9), result(1, 0, 55, 55, 0.9)]  # the second lies inside the crowd region
    ev = evaluate(gt, res)
    assert ev.confusion == [[1, 0], [0, 0]]
    assert ev.coco["bbox"]["AP"] == pytest.approx(1.0)  # COCOeval ignores it too


def test_per_class_ap_and_classes_without_ground_truth():
    gt = dataset([[(0, 10, 10), (1, 60, 60)]], categories=("cat", "dog", "bird"))
    ev = evaluate(gt, [result(1, 0, 10, 10, 0.9)])
    assert ev.per_class["cat"]["segm"] == pytest.approx(1.0)
    assert ev.per_class["dog"]["segm"] == pytest.approx(0.0)
    assert ev.per_class["bird"]["segm"] is None
    assert ev.coco["segm"]["AP"] == pytest.approx(0.5)  # the mean over the classes that have ground truth


def test_no_detections_scores_zero_and_boxes_only_results_skip_segm():
    gt, res = half_found()
    empty = evaluate(gt, [])
    assert empty.coco["bbox"]["AP"] == 0.0 and empty.recall == 0.0 and empty.confusion == [[0, 10], [0, 0]]
    boxes = [{k: v for k, v in r.items() if k != "segmentation"} for r in res]
    ev = evaluate(gt, boxes)
    assert set(ev.coco) == {"bbox"} and ev.match_type == "bbox"


def test_the_ground_truth_given_is_left_as_it_was():
    gt, res = half_found()
    before = copy.deepcopy(gt)
    evaluate(gt, res)
    assert gt == before


def test_metrics_are_plain_json():
    import json

    gt, res = half_found()
    m = evaluate(gt, res).metrics()
    assert json.loads(json.dumps(m))["segm"]["AP"] == pytest.approx(51 / 101)
    assert np.isclose(m["at_threshold"]["precision"], 0.5)


def test_a_duplicate_detection_is_a_false_alarm_and_one_detection_matches_one_object():
    gt = dataset([[(0, 10, 10)], [(0, 10, 10), (0, 12, 10)]])
    res = [result(1, 0, 10, 10, 0.9), result(1, 0, 10, 10, 0.8),  # the same person twice
           result(2, 0, 11, 10, 0.9)]                             # one detection over two people
    ev = evaluate(gt, res)
    assert ev.confusion == [[2, 1], [1, 0]]
    assert (ev.precision, ev.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
