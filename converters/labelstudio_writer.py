"""COCO core -> Label Studio import-ready tasks (annotations or predictions).

Geometry: a 4-point polygon that is a rectangle (any rotation) becomes a
``rectanglelabels`` region (rotation kept), other polygons ``polygonlabels``,
RLE masks ``brushlabels`` (Label Studio RLE, byte-identical to the SDK's
encoder), keypoints ``keypointlabels`` linked to their region by
``parentID``. ``--label-config`` decides the control tag of each region (see
:mod:`.labelstudio_config`). With ``--as predictions`` regions carry their
score and each task's prediction a ``score`` (mean region score) and
``model_version``.
"""

from __future__ import annotations

from pathlib import Path

from annot.geometry import (
    BOX_DECODE_BYTES,
    BoxMode,
    rectangle_of,
    rectangle_polygon,
    segmentation_to_mask,
    traced_polygons,
    xywh_to_box,
)
from annot.io import write_json_atomic
from annot.model import Annotation, Category, Dataset, Image, Instance
from annot.options import ConvertOptions
from annot.report import Report

from .labelstudio_config import LabelConfig
from .labelstudio_refs import image_url
from .labelstudio_rle import BRUSH_BYTES_PER_PX, mask_to_rle

KEYPOINT_WIDTH = 0.5  # percent; Label Studio's point size


def write(ds: Dataset, out: Path, opts: ConvertOptions, report: Report) -> list[Path]:
    config = LabelConfig.from_file(opts.label_config) if opts.label_config else LabelConfig.default()
    tasks = to_tasks(ds, config, opts, report)
    write_json_atomic(out, tasks, overwrite=opts.overwrite)
    return [Path(out)]


def to_tasks(ds: Dataset, config: LabelConfig, opts: ConvertOptions, report: Report) -> list[dict]:
    names = ds.category_names()
    kp_names = {c.id: c.keypoints for c in ds.categories}
    as_predictions = opts.as_ == "predictions"
    tasks = []
    for img, anns in ds.per_image():
        results, scores = [], []
        for a in anns:
            regions = _regions(img, a, names[a.category_id], kp_names[a.category_id], config, as_predictions,
                               report, opts)
            results += regions
            if regions and a.score is not None:
                scores.append(a.score)
        if opts.image_url_prefix is None and img.extra.get("coco_url"):
            url = img.extra["coco_url"]
        else:
            url = image_url(img.file_name, opts.image_url_prefix)
        task: dict = {"data": {config.data_key: url}}
        if as_predictions:
            task["predictions"] = [{"model_version": opts.model_version or "annot", "result": results,
                                    "score": task_score(scores)}]
        else:
            task["annotations"] = [{"result": results}]
        tasks.append(task)
    return tasks


def predicted_image(image: Image, instances: list[Instance], label_for) -> tuple[Dataset, list[str]]:
    """One image's predicted instances as a dataset in a project's labels,
    ready for :func:`to_tasks`: ``label_for(class)`` is the label (None: the
    project has none for it). Returns the dataset and the classes left out.
    ``annot predict`` and ``annot serve`` both write their predictions through it."""
    labelled = [(label_for(i.label), i) for i in instances]
    dropped = [i.label for lb, i in labelled if lb is None]
    labelled = [(lb, i) for lb, i in labelled if lb is not None]
    ids = {lb: k for k, lb in enumerate(sorted({lb for lb, _ in labelled}), start=1)}
    anns = [Annotation(k, image.id, ids[lb], i.bbox, i.area, i.segmentation, score=i.score)
            for k, (lb, i) in enumerate(labelled, start=1)]
    return Dataset([image], [Category(k, lb) for lb, k in ids.items()], anns), dropped


def task_score(scores: list[float]) -> float:
    """A task's prediction score: the mean score of the instances written as
    regions (0 when none was). Label Studio's Data Manager sorts tasks on it,
    and its uncertainty sampling reads it."""
    return sum(scores) / len(scores) if scores else 0.0


def _geometry_of(a: Annotation):
    """('rectangle', (x, y, w, h, deg)) | ('polygon', [polys]) | ('brush', rle)."""
    seg = a.segmentation
    if isinstance(seg, dict):
        return "brush", seg
    if seg:
        if len(seg) == 1:
            rect = rectangle_of(seg[0])
            if rect is not None:
                return "rectangle", rect
        return "polygon", seg
    return "rectangle", (*a.bbox, 0.0)


def _regions(img: Image, a: Annotation, label: str, kp_names, config: LabelConfig, as_predictions: bool,
             report: Report, opts: ConvertOptions):
    kind, geom = _geometry_of(a)
    where = f"{img.file_name}:annotation {a.id}"
    if a.iscrowd:
        report.warn("crowd regions written as ordinary regions (Label Studio has no crowd flag)", where)
    control = config.route(kind, label)
    if control is None:
        report.error(where, None, f"label {label!r} is in no control tag of the label config")
        return []
    W, H = img.width, img.height
    base = {"from_name": control.name, "to_name": control.to_name, "original_width": W, "original_height": H,
            "image_rotation": 0}
    if as_predictions and a.score is not None:
        base["score"] = a.score
    if control.kind != kind:
        report.warn(f"{kind} written as {control.kind} (the label config has no {kind} control for it)", where)
    values = _convert(kind, control.kind, geom, a, img, opts)
    regions = []
    for k, value in enumerate(values):
        value[f"{control.kind}labels"] = [label]
        rid = f"a{a.id}" if k == 0 else f"a{a.id}-{k}"
        regions.append({"id": rid, "type": f"{control.kind}labels", "value": value, **base})
    if a.keypoints and regions:
        regions += _keypoints(a, kp_names, regions[0]["id"], config, base, W, H, where, report)
    return regions


def _convert(kind: str, target: str, geom, a: Annotation, img: Image, opts: ConvertOptions) -> list[dict]:
    W, H = img.width, img.height
    if target == "rectangle":
        x, y, w, h, deg = geom if kind == "rectangle" else (*a.bbox, 0.0)
        px, py, pw, ph = xywh_to_box([x, y, w, h], BoxMode.XYWH_PERCENT, W, H)
        return [{"x": px, "y": py, "width": pw, "height": ph, "rotation": deg}]
    if target == "brush":
        # Label Studio's brush RLE is the whole image's RGBA: the format itself needs the full size
        opts.limits.allocation(W * H * BRUSH_BYTES_PER_PX, f"a {W}x{H} Label Studio brush mask", img.file_name,
                               f"annotation {a.id}")
        seg = geom if kind == "brush" else a.segmentation or [rectangle_polygon(*a.bbox)]
        mask = segmentation_to_mask(seg, H, W)
        return [{"format": "rle", "rle": mask_to_rle(mask)}]
    # polygon target
    if kind == "brush":
        opts.limits.allocation(a.bbox[2] * a.bbox[3] * BOX_DECODE_BYTES, "decoding this mask in its box",
                               img.file_name, f"annotation {a.id}")
        polys = traced_polygons(geom, H, W, opts.simplify)
    elif kind == "rectangle":
        polys = a.segmentation or [rectangle_polygon(*a.bbox)]
    else:
        polys = geom
    return [
        {"points": [[p[i] * 100 / W, p[i + 1] * 100 / H] for i in range(0, len(p), 2)], "closed": True}
        for p in polys
    ]


def _keypoints(a: Annotation, names, parent_id: str, config, base, W, H, where, report: Report) -> list[dict]:
    names = names or [f"kp{i}" for i in range(len(a.keypoints) // 3)]
    out = []
    for i in range(0, len(a.keypoints), 3):
        x, y, v = a.keypoints[i : i + 3]
        if v <= 0:
            continue
        name = names[i // 3]
        control = config.route("keypoint", name)
        if control is None:
            report.warn("keypoint with no KeyPointLabels control skipped", where)
            continue
        value = {"x": x * 100 / W, "y": y * 100 / H, "width": KEYPOINT_WIDTH, "keypointlabels": [name]}
        out.append({**base, "id": f"{parent_id}-kp{i // 3}", "type": "keypointlabels", "parentID": parent_id,
                    "from_name": control.name, "to_name": control.to_name, "value": value})
    return out
