"""Label Studio JSON export (and JSON_MIN) -> COCO core.

Regions are in percent of the image; they become pixels here and nowhere
else. ``rectanglelabels`` with a ``rotation`` are rotated in pixel space
(clockwise about the stored top-left corner): the segmentation is the four
rotated corners and the bbox their envelope. ``brushlabels`` are decoded from
Label Studio's RLE to a mask and stored as COCO RLE (holes kept).
``keypointlabels`` linked to a region by ``parentID`` become that region's COCO
keypoints.

One task is one image whatever the number of annotations: ``latest`` (default)
takes the ground-truth annotation if one is marked, else the most recently
updated; ``ground-truth`` only ground truth; ``all`` merges every annotation's
regions; ``predictions`` takes the task's most recent prediction instead
(model output to review in another tool), scores kept. Cancelled annotations
are skipped.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import NamedTuple

from annot.errors import AnnotError, ParseError, UnknownName
from annot.formats import hint, looks_like
from annot.geometry import mask_instance, rectangle_polygon, rotated_rectangle
from annot.limits import Limits
from annot.model import Annotation, DatasetBuilder, ImageDraft, Instance
from annot.options import ConvertOptions
from annot.parallel import map_shared
from annot.paths import find_image
from annot.report import Report
from annot.values import is_id, is_number, is_side, to_floats

from .columns import (
    Columns,
    ImageEntries,
    PolygonEntry,
    columns_of_images,
    read_then_measure,
    to_columns,
)
from .discovery import (
    find_files,
    load_json_items,
    parse_item,
    read_image_size,
    size_fits,
)
from .labelstudio_refs import file_name_of
from .labelstudio_rle import BRUSH_BYTES_PER_PX, rle_to_mask

LABEL_KEYS = ("rectanglelabels", "polygonlabels", "brushlabels", "keypointlabels")
# Geometry-less control tags and the non-image regions of a mixed project.
NON_GEOMETRY = {"choices", "textarea", "rating", "relation", "taxonomy", "labels", "number", "datetime", "pairwise"}
SELECT_MODES = ("latest", "ground-truth", "all", "predictions")
NOTHING_KEPT = {  # why a conversion kept no task, by --annotations mode
    "ground-truth": "none has an annotation marked ground truth (--annotations ground-truth; the default, latest, "
                    "takes each task's latest annotation)",
    "predictions": "none has a prediction (--annotations predictions)",
    "latest": "none has an annotation that is not cancelled (tasks with predictions only: pass --predictions)",
}


def read(inputs: list[Path], opts: ConvertOptions, report: Report):
    if opts.annotations not in SELECT_MODES:
        raise UnknownName("--annotations mode", opts.annotations, SELECT_MODES)
    if opts.annotations == "predictions" and opts.predictions:
        raise AnnotError("--annotations predictions reads the predictions as the annotations; --predictions would "
                         "write them a second time: give one of the two")
    builder = DatasetBuilder(opts.labels)
    keypoints = _Keypoints()
    total = 0
    for path, _root in find_files(inputs, (".json",)):
        try:
            opts.limits.json_file(path)
            doc = load_json_items(path)  # tasks parsed by the workers
        except ParseError as e:  # over the memory budget
            report.error(e.path, e.item, e.reason)
            continue
        except (OSError, ValueError) as e:
            report.error(path, None, f"cannot read JSON: {e}")
            continue
        if isinstance(doc, dict) and looks_like(doc) not in (None, "labelstudio"):
            report.error(path, None, f"not a Label Studio export or task list{hint(doc, 'labelstudio')}")
            continue
        tasks = doc if isinstance(doc, list) else [doc]
        total += len(tasks)
        job = partial(convert_tasks, path=path, opts=opts)
        for draft, columns, predictions, rep in map_shared(job, tasks, opts.jobs, "labelstudio", opts.quiet):
            report.merge(rep)
            if draft is None:
                continue
            if predictions is not None:
                draft.predictions = predictions.instances()
            if columns.keypoints:
                draft.instances = columns.instances()
                keypoints.add(draft.instances, builder.add(draft), columns.keypoints)
            else:
                columns.add_to(builder, draft)
    keypoints.finish(builder)
    if total and not builder.images and not report.skips:  # skipped for errors (--on-error skip): those say why
        raise AnnotError(f"{', '.join(map(str, inputs))}: none of the {total} task(s) could be converted: "
                         f"{NOTHING_KEPT.get(opts.annotations, NOTHING_KEPT['latest'])}")
    return builder.build()


class _Task(NamedTuple):
    """A task read up to its regions' measuring (no draft: skipped)."""

    draft: ImageDraft | None
    regions: _Regions | None
    predictions: Columns | None
    rep: Report


def convert_tasks(tasks: list, start: int, stop: int, path: Path, opts: ConvertOptions) -> list[tuple]:
    """One result per task of ``tasks[start:stop]``: (ImageDraft | None,
    Columns, prediction Columns | None, Report). Each task is read on its
    own, the regions of all of them measured together (columns_of_images)."""
    read_one = partial(_read_task, tasks, path=path, opts=opts)
    return read_then_measure(range(start, stop), read_one, partial(_measured, render=opts.render_json))


def _measured(parsed: list[_Task], render: bool) -> list[tuple]:
    read = [t for t in parsed if t.draft is not None]
    columns = iter(columns_of_images([t.regions.image for t in read], render))
    out = []
    for t in parsed:
        if t.draft is None:
            out.append((None, None, None, t.rep))
            continue
        cols = next(columns)
        t.regions.link_keypoints(cols)
        out.append((t.draft, cols, t.predictions, t.rep))
    return out


def _read_task(tasks: list, k: int, path: Path, opts: ConvertOptions) -> _Task:
    rep = Report(opts.on_error)
    skipped = _Task(None, None, None, rep)
    try:
        task = parse_item(tasks[k])
    except ValueError as e:  # valid syntax that orjson still refuses, such as 1e400
        rep.error(path, f"[{k}]", f"cannot read JSON: {e}")
        return skipped
    if not isinstance(task, dict):
        rep.error(path, f"[{k}]", "task is not an object")
        return skipped
    item = f"task {task.get('id', f'[{k}]')}"
    ref = _image_ref(task)
    if ref is None:
        rep.error(path, item, "no image reference in the task data")
        return skipped
    default_score = None
    if "annotations" in task or "data" in task:
        key = "predictions" if opts.annotations == "predictions" else "annotations"
        annotations = task.get(key) or []
        if not isinstance(annotations, list):
            rep.error(path, item, f"'{key}' is not a list")
            return skipped
        chosen = _select(annotations, opts.annotations)
        predicted = _has_predictions(task)
        if chosen is None and not (opts.predictions and predicted):
            kind = f"task without a usable {key[:-1]} skipped"
            if opts.annotations == "ground-truth":
                kind = "task without a ground-truth annotation skipped (--annotations ground-truth)"
            if predicted and key == "annotations":
                kind = "task with predictions but no annotation skipped (--predictions keeps it)"
            rep.warn(kind, f"{path}:{item}")
            return skipped
        results = []
        for a in chosen or ():
            result = a.get("result") or []
            if not isinstance(result, list):
                rep.error(path, f"{item}.{key[:-1]} {a.get('id')}", "'result' is not a list")
                return skipped
            results += result
        if key == "predictions" and chosen and is_number(chosen[0].get("score")):
            default_score = float(chosen[0]["score"])  # regions without a score of their own take the task's
    else:
        results = _min_results(task)
    file_name, url = file_name_of(ref, opts.keep_upload_prefix)
    size = _size(results + (_prediction_results(task) if opts.predictions else []), file_name, opts.image_root,
                 path, item, rep)
    if size is None or not size_fits(*size, path, item, rep, opts.limits.max_pixels):
        return skipped
    extra = {"ls_task_id": task["id"]} if is_id(task.get("id")) else {}
    if url:
        extra["coco_url"] = url
    known = frozenset(opts.labels) if opts.labels is not None else None
    draft = ImageDraft(file_name, size[0], size[1], extra=extra)
    regions = _Regions.read(path, item, results, size, known, rep, opts.limits, default_score)
    predictions = None
    if opts.predictions:
        entries = []
        raw = task.get("predictions") or []
        for p in raw if isinstance(raw, list) else []:
            result = (p.get("result") or []) if isinstance(p, dict) else None
            if not isinstance(result, list):
                rep.warn("malformed prediction skipped", f"{path}:{item}")
                continue
            default = float(p["score"]) if is_number(p.get("score")) else 1.0
            pred = _regions(path, f"{item}.predictions", result, size, None, rep, opts.limits, default)
            entries += pred.instances()
        predictions = to_columns(entries, size[0], size[1], path, rep, budget=opts.limits.max_memory)
    return _Task(draft, regions, predictions, rep)


def _has_predictions(task: dict) -> bool:
    raw = task.get("predictions")
    return isinstance(raw, list) and any(isinstance(p, dict) for p in raw)


def _prediction_results(task: dict) -> list:
    """Every region of a task's predictions (to find the image size, or to
    tell that a task without annotations has predictions)."""
    raw = task.get("predictions")
    return [r for p in raw if isinstance(p, dict) and isinstance(p.get("result"), list) for r in p["result"]] \
        if isinstance(raw, list) else []


def _when(ann: dict):
    """Sort key of an annotation: its ISO time stamp, then its id."""
    stamp, ann_id = ann.get("updated_at") or ann.get("created_at"), ann.get("id")
    return (stamp if isinstance(stamp, str) else "", ann_id if is_number(ann_id) else 0)


def _select(annotations: list, mode: str) -> list[dict] | None:
    live = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if mode == "all":
        return live or None
    gt = [a for a in live if a.get("ground_truth")]
    pool = gt if (gt or mode == "ground-truth") else live
    return [max(pool, key=_when)] if pool else None


def _min_results(task: dict) -> list[dict]:
    """JSON_MIN stores, per control tag name, a list of region values."""
    out = []
    for key, regions in task.items():
        if not isinstance(regions, list):
            continue
        for r in regions:
            if not isinstance(r, dict):
                continue
            kind = next((k for k in LABEL_KEYS if k in r), None)
            if kind is None:
                continue
            out.append(
                {
                    "type": kind,
                    "from_name": key,
                    "id": r.get("id"),
                    "parentID": r.get("parentID"),
                    "original_width": r.get("original_width"),
                    "original_height": r.get("original_height"),
                    "value": r,
                }
            )
    return out


def _image_ref(task: dict) -> str | None:
    data = task.get("data") if isinstance(task.get("data"), dict) else task
    ref = data.get("image")
    if isinstance(ref, str):
        return ref
    for v in data.values():
        if isinstance(v, str) and v.startswith(("/data/", "s3://", "gs://", "http://", "https://")):
            return v
    return None


def _size(results: list[dict], file_name: str, image_root, path, item, rep: Report) -> tuple[int, int] | None:
    """From the regions, else the image under ``image_root``; None (reported) when neither tells."""
    for r in results:
        w, h = (r.get("original_width"), r.get("original_height")) if isinstance(r, dict) else (None, None)
        if is_side(w) and is_side(h):
            return int(w), int(h)
    img = find_image(file_name, [image_root]) if image_root is not None else None
    if img is None:
        rep.error(path, item, "image size unknown: no region carries original_width/height; pass --image-root")
        return None
    return read_image_size(img, path, item, rep)


def _regions(path, item, results: list[dict], size, known, rep: Report, limits: Limits, default_score=None) -> Columns:
    """Every geometry region of one annotation (or prediction) as Columns."""
    regions = _Regions.read(path, item, results, size, known, rep, limits, default_score)
    columns = to_columns(regions.image.entries, *size, path, rep, budget=limits.max_memory)
    regions.link_keypoints(columns)
    return columns


class _Regions(NamedTuple):
    """The regions of one annotation read as entries; keypoints wait for
    their parent regions' final places (:meth:`link_keypoints`)."""

    image: ImageEntries
    keypoints: list  # (item, parent region's entry or None, name, (x, y) px)

    @classmethod
    def read(cls, path, item, results: list[dict], size, known, rep: Report, limits: Limits,
             default_score=None) -> _Regions:
        width, height = size
        entries: list = []
        regions: list = []  # the result each entry came from, for keypoints' parentID
        keypoints = []
        for i, r in enumerate(results):
            where = f"{item}.result[{i}]"
            if not isinstance(r, dict):
                rep.error(path, where, "result is not an object")
                continue
            kind, value = r.get("type") or "", r.get("value") or {}
            if not isinstance(kind, str) or not isinstance(value, dict):
                rep.error(path, where, "a result needs a string 'type' and an object 'value'")
                continue
            kind = kind.lower()
            if kind in NON_GEOMETRY:
                continue
            if kind not in LABEL_KEYS:
                rep.warn(f"unsupported region type {kind!r} skipped", f"{path}:{where}")
                continue
            names = value.get(kind)
            if not names or not isinstance(names, list):
                rep.error(path, where, f"region without a label ({kind} is empty)")
                continue
            if len(names) > 1:
                rep.warn("region with several labels: first one used", f"{path}:{where}")
            label = names[0]
            if not isinstance(label, str) or not label:
                rep.error(path, where, f"region label must be a non-empty string, found {label!r}")
                continue
            if kind == "keypointlabels":
                keypoints.append((where, r, label))
                continue
            if known is not None and label not in known:
                rep.error(path, where, f"label {label!r} is not in the labels file")
                continue
            score = r.get("score")
            score = default_score if score is None or not is_number(score) else float(score)
            w = r.get("original_width") or width
            h = r.get("original_height") or height
            try:
                entry = _geometry(kind, label, value, w, h, path, where, rep, limits)
            except (TypeError, ValueError, KeyError, IndexError) as e:
                rep.error(path, where, f"bad {kind} value: {e}")
                continue
            except ParseError as e:  # over the memory budget
                rep.error(e.path, e.item, e.reason)
                continue
            if entry is None:
                continue
            entry.score = score
            entries.append(entry)
            regions.append(r)
        if not keypoints:
            return cls(ImageEntries(entries, width, height, path, rep, limits.max_memory), [])
        by_id: dict[object, object] = {}  # region id -> its entry
        for r, entry in zip(regions, entries):
            if isinstance(r.get("id"), (str, int)):
                by_id.setdefault(r["id"], entry)
        linked = []  # (item, parent entry or None, name, (x, y) in pixels or None)
        for where, r, name in keypoints:
            parent = r.get("parentID")
            entry = by_id.get(parent) if isinstance(parent, (str, int)) else None
            xy = None
            if entry is not None:
                w = r.get("original_width") or width
                h = r.get("original_height") or height
                xy = to_floats([r["value"].get("x"), r["value"].get("y"), w, h])
                if xy is None:
                    rep.error(path, where, "keypoint x and y must be numbers")
                    continue
                xy = (xy[0] * xy[2] / 100, xy[1] * xy[3] / 100)
            linked.append((where, entry, name, xy))
        return cls(ImageEntries(entries, width, height, path, rep, limits.max_memory), linked)

    def link_keypoints(self, columns: Columns) -> None:
        """Each keypoint onto its parent region in ``columns`` (measured from
        this image's entries, after empty regions were dropped). Only warns:
        keypoint errors are raised while reading, in task order."""
        im = self.image
        position = {id(e): k for k, e in enumerate(im.entries)}
        for where, entry, name, xy in self.keypoints:
            pos = position.get(id(entry)) if entry is not None else None
            if pos is None:
                im.rep.warn("keypoint not linked to a region (no parentID) skipped", f"{im.path}:{where}")
                continue
            columns.keypoints.setdefault(pos, {})[name] = xy


def _geometry(kind, label, value, w, h, path, where, rep: Report, limits: Limits):
    """A PolygonEntry (rectangles, polygons) or an Instance (brush), or None."""
    if kind == "rectanglelabels":
        x, y = value["x"] * w / 100, value["y"] * h / 100
        bw, bh = value["width"] * w / 100, value["height"] * h / 100
        if not math.isfinite(x + y + bw + bh) or bw <= 0 or bh <= 0:
            rep.error(path, where, "rectangle with no area")
            return None
        rot = float(value.get("rotation") or 0.0) % 360.0
        poly = rectangle_polygon(x, y, bw, bh) if rot == 0 else rotated_rectangle(x, y, bw, bh, rot)
        return PolygonEntry(label, [poly], [where])
    if kind == "polygonlabels":
        pts = value["points"]
        sx, sy = w / 100, h / 100
        poly = _scaled_points(pts, sx, sy)
        if len(poly) < 6:
            rep.error(path, where, f"polygon needs at least 3 [x, y] points, has {len(pts)}")
            return None
        if not math.isfinite(sum(poly)):
            rep.error(path, where, "polygon holds a non-finite number")
            return None
        return PolygonEntry(label, [poly], [where])
    # brushlabels
    if value.get("format", "rle") != "rle" or "rle" not in value:
        rep.error(path, where, "brush region without 'rle' data")
        return None
    # Label Studio's brush RLE is the whole image's RGBA: decoding it needs the full size
    limits.allocation(w * h * BRUSH_BYTES_PER_PX, f"decoding a {w}x{h} Label Studio brush region", path, where)
    mask = rle_to_mask(value["rle"], int(h), int(w))
    rle, bbox, area = mask_instance(mask)
    if area == 0:
        rep.warn("empty brush region skipped", f"{path}:{where}")
        return None
    return Instance(label, bbox, area, rle)


def _scaled_points(pts: list, sx: float, sy: float) -> list[float]:
    """``[[x, y], ...]`` in percent -> flat pixel coordinates."""
    sx, sy = float(sx), float(sy)  # a str coordinate times an int would repeat the string
    try:
        return [v for x, y in pts for v in (x * sx, y * sy)]
    except (TypeError, ValueError):  # not all pairs of numbers: points with extra values, numeric strings
        return [v for x, y, *_ in pts for v in (float(x) * sx, float(y) * sy)]


class _Keypoints:
    """COCO keypoint triplets need every name of a category: names are ordered
    by first appearance over the whole export, so arrays are written last."""

    def __init__(self):
        self.order: dict[str, list[str]] = {}
        self.pending: list[tuple[Annotation, str, dict[str, tuple[float, float]]]] = []

    def add(self, instances: list[Instance], annotations: list, points: dict[int, dict]) -> None:
        for pos, pts in points.items():
            ann, label = annotations[pos], instances[pos].label
            if ann is None:
                continue
            order = self.order.setdefault(label, [])
            order += [n for n in pts if n not in order]
            self.pending.append((ann, label, pts))

    def finish(self, builder: DatasetBuilder) -> None:
        for ann, label, pts in self.pending:
            names = self.order[label]
            flat: list[float] = []
            for n in names:
                flat += [*pts[n], 2] if n in pts else [0, 0, 0]
            ann.keypoints, ann.num_keypoints = flat, len(pts)
        for label, names in self.order.items():
            builder.keypoint_names[label] = names
