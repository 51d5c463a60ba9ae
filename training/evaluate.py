"""COCO evaluation of a model's detections against a dataset's ground truth.

The AP figures are pycocotools' own (``COCOeval``: AP over IoU 0.50:0.95,
AP50, AP75, by object size, AR; per class, the mean of its precision over
IoU thresholds and recall points, as detectron2 reports it). Beside them, what
a labelling team reads off one operating point: precision, recall and F1 of
the detections scoring at least ``score_threshold``, and the confusion matrix
of those detections matched to ground truth at IoU >= ``match_iou``.

Matching for the operating point is class-agnostic and greedy by IoU (the
largest pair first), as confusion matrices in detection toolkits are built:
a matched pair of the same class is a true positive, of another class a
confusion; an unmatched detection is a false positive (the "background" row),
an unmatched ground-truth instance a miss (the "background" column). A
detection overlapping a crowd region (IoU as COCO computes it for crowds:
intersection over the detection's area) by ``match_iou`` and matched to
nothing else is ignored, and crowd regions are never missed, as in COCOeval.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

from annot.validate import coco_index

IOU_TYPES = ("bbox", "segm")
# COCOeval.stats, in order (summarize(): maxDets 100 for AP, 1/10/100 for AR)
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
BACKGROUND = "background"


@dataclass
class Evaluation:
    """What :func:`evaluate` measured; ``metrics()`` is the JSON a model version stores."""

    coco: dict[str, dict[str, float]]  # iou type -> STAT_NAMES -> value (-1: nothing to measure, as COCOeval)
    per_class: dict[str, dict[str, float | None]]  # class name -> iou type -> AP (None: no ground truth)
    score_threshold: float
    match_iou: float
    match_type: str
    precision: float
    recall: float
    f1: float
    confusion: list[list[int]]  # rows: ground-truth classes + background; columns: detected classes + background
    labels: list[str] = field(default_factory=list)  # the class names, in the matrix's order
    curves: dict[str, list] = field(default_factory=dict)  # iou type -> per class (recall points, precision at IoU .5)

    def metrics(self) -> dict:
        return {
            **{t: dict(v) for t, v in self.coco.items()},
            "per_class": self.per_class,
            "at_threshold": {"score_threshold": self.score_threshold, "match_iou": self.match_iou,
                             "iou_type": self.match_type, "precision": self.precision, "recall": self.recall,
                             "f1": self.f1},
            "confusion": {"labels": [*self.labels, BACKGROUND], "matrix": self.confusion},
        }


def evaluate(gt_doc: dict, results: list[dict], score_threshold: float = 0.5, match_iou: float = 0.5,
             iou_types: tuple[str, ...] = IOU_TYPES) -> Evaluation:
    """Evaluate ``results`` (a COCO results list) against the COCO dataset ``gt_doc``.

    ``segm`` is left out when a result has no segmentation. Results of images
    or categories ``gt_doc`` does not have are ignored, as pycocotools does.
    """
    from pycocotools.cocoeval import COCOeval

    # COCOeval rewrites ground-truth segmentations as RLE in place: copies, not the caller's
    gt = coco_index({**gt_doc, "annotations": [dict(a) for a in gt_doc["annotations"]]})
    cat_ids = sorted(gt.getCatIds())
    names = {c["id"]: c["name"] for c in gt_doc["categories"]}
    img_ids = set(gt.getImgIds())
    results = [dict(r) for r in results if r["image_id"] in img_ids and r["category_id"] in names]
    types = [t for t in iou_types if t != "segm" or all(r.get("segmentation") for r in results)]
    coco: dict[str, dict[str, float]] = {}
    per_class: dict[str, dict[str, float | None]] = {names[c]: {} for c in cat_ids}
    curves: dict[str, list] = {}
    for iou_type in types:
        if not results:  # pycocotools refuses an empty results list: nothing found scores 0
            coco[iou_type] = {n: 0.0 for n in STAT_NAMES}
            for c in cat_ids:
                per_class[names[c]][iou_type] = 0.0 if gt.getAnnIds(catIds=[c], iscrowd=False) else None
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes([dict(r) for r in results])  # loadRes and COCOeval write into what they get
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        coco[iou_type] = {n: float(v) for n, v in zip(STAT_NAMES, ev.stats)}
        precision = ev.eval["precision"]  # [iou thresholds, recall points, classes, areas, max dets]
        curves[iou_type] = []
        for k, c in enumerate(ev.params.catIds):
            p = precision[:, :, k, 0, -1]
            valid = p[p > -1]
            per_class[names[c]][iou_type] = float(valid.mean()) if valid.size else None
            curves[iou_type].append({"class": names[c], "recall": ev.params.recThrs.tolist(),
                                     "precision": np.maximum(precision[0, :, k, 0, -1], 0).tolist()})
    match_type = "segm" if "segm" in types else "bbox"
    labels = [names[c] for c in cat_ids]
    confusion, tp = _confusion(gt, cat_ids, results, score_threshold, match_iou, match_type)
    n_dt = int(confusion[:, :-1].sum())
    n_gt = int(confusion[:-1, :].sum())
    precision_at = tp / n_dt if n_dt else 0.0
    recall_at = tp / n_gt if n_gt else 0.0
    f1 = 2 * precision_at * recall_at / (precision_at + recall_at) if precision_at + recall_at else 0.0
    return Evaluation(coco, per_class, score_threshold, match_iou, match_type, precision_at, recall_at, f1,
                      confusion.tolist(), labels, curves)


def _confusion(gt, cat_ids: list[int], results: list[dict], score_threshold: float, match_iou: float,
               iou_type: str) -> tuple[np.ndarray, int]:
    """The (classes + 1) x (classes + 1) matrix of matches at one operating point, and its true positives."""
    from pycocotools import mask as mask_utils

    index = {c: k for k, c in enumerate(cat_ids)}
    bg = len(cat_ids)
    matrix = np.zeros((bg + 1, bg + 1), np.int64)
    by_image: dict[int, list[dict]] = {}
    for r in results:
        if r["score"] >= score_threshold:
            by_image.setdefault(r["image_id"], []).append(r)
    geometry = _geometry(gt, iou_type)
    for img_id in gt.getImgIds():
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[img_id]))
        truth = [a for a in anns if not a.get("iscrowd")]
        crowd = [a for a in anns if a.get("iscrowd")]
        dets = by_image.get(img_id, [])
        g_geom, c_geom = [geometry(a) for a in truth], [geometry(a) for a in crowd]
        d_geom = [_result_geometry(r, iou_type) for r in dets]
        iou = (np.asarray(mask_utils.iou(d_geom, g_geom, [0] * len(truth)), float).reshape(len(dets), len(truth))
               if dets and truth else np.zeros((len(dets), len(truth))))
        matched_d, matched_g = set(), set()
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            d, g = divmod(int(flat), len(truth))
            if iou[d, g] < match_iou:
                break
            if d in matched_d or g in matched_g:
                continue
            matched_d.add(d)
            matched_g.add(g)
            matrix[index[truth[g]["category_id"]], index[dets[d]["category_id"]]] += 1
        for g, a in enumerate(truth):
            if g not in matched_g:
                matrix[index[a["category_id"]], bg] += 1
        crowd_iou = (np.asarray(mask_utils.iou(d_geom, c_geom, [1] * len(crowd)), float).reshape(len(dets), -1)
                     if dets and crowd else np.zeros((len(dets), 0)))
        for d, r in enumerate(dets):
            if d not in matched_d and not (crowd_iou.shape[1] and crowd_iou[d].max() >= match_iou):
                matrix[bg, index[r["category_id"]]] += 1
    return matrix, int(np.trace(matrix[:bg, :bg]))


def _geometry(gt, iou_type: str):
    if iou_type == "bbox":
        return lambda a: a["bbox"]
    return gt.annToRLE


def _result_geometry(r: dict, iou_type: str):
    if iou_type == "bbox":
        return r["bbox"]
    return r["segmentation"]
