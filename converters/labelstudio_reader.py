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
regions. Cancelled annotations are skipped.
"""

from __future__ import annotations

import math
from pathlib import Path

import orjson

from annot.errors import UnknownName
from annot.geometry import (
    mask_instance,
    polygon_areas,
    polygons_bbox,
    rectangle_polygon,
    rotated_rectangle,
)
from annot.images import image_size
from annot.model import DatasetBuilder, ImageDraft, Instance
from annot.options import ConvertOptions
from annot.report import Report

from .discovery import find_files, find_image, read_text
from .labelstudio_refs import file_name_of
from .labelstudio_rle import rle_to_mask

LABEL_KEYS = ("rectanglelabels", "polygonlabels", "brushlabels", "keypointlabels")
# Geometry-less control tags and the non-image regions of a mixed project.
NON_GEOMETRY = {"choices", "textarea", "rating", "relation", "taxonomy", "labels", "number", "datetime", "pairwise"}
SELECT_MODES = ("latest", "ground-truth", "all")


def read(inputs: list[Path], opts: ConvertOptions, report: Report):
    if opts.annotations not in SELECT_MODES:
        raise UnknownName("--annotations mode", opts.annotations, SELECT_MODES)
    builder = DatasetBuilder(opts.labels)
    reader = _TaskReader(opts, report)
    for path, _root in find_files(inputs, (".json",)):
        try:
            doc = orjson.loads(read_text(path))
        except (OSError, UnicodeDecodeError, orjson.JSONDecodeError) as e:
            report.error(path, None, f"cannot read JSON: {e}")
            continue
        tasks = doc if isinstance(doc, list) else [doc]
        for k, task in enumerate(tasks):
            if not isinstance(task, dict):
                report.error(path, f"[{k}]", "task is not an object")
                continue
            draft = reader.task(path, k, task)
            if draft is not None:
                builder.add(draft)
    reader.finish_keypoints()
    return builder.build()


def _when(ann: dict):
    return (ann.get("updated_at") or ann.get("created_at") or "", ann.get("id") or 0)


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
    for key, v in data.items():
        if isinstance(v, str) and (v.startswith(("/data/", "s3://", "gs://", "http://", "https://"))):
            return v
    return None


class _TaskReader:
    def __init__(self, opts: ConvertOptions, report: Report):
        self.opts, self.report = opts, report
        self.known = set(opts.labels) if opts.labels is not None else None
        self.kp_order: dict[str, list[str]] = {}  # category -> keypoint names, first seen first
        self.kp_pending: list[tuple[Instance, dict[str, tuple[float, float]]]] = []

    # -- one task -------------------------------------------------------------
    def task(self, path: Path, k: int, task: dict) -> ImageDraft | None:
        rep, item = self.report, f"task {task.get('id', f'[{k}]')}"
        ref = _image_ref(task)
        if ref is None:
            rep.error(path, item, "no image reference in the task data")
            return None
        if "annotations" in task or "data" in task:
            chosen = self._select(task.get("annotations") or [])
            if chosen is None:
                rep.warn("task without a usable annotation skipped", f"{path}:{item}")
                return None
            results = [r for a in chosen for r in (a.get("result") or [])]
        else:
            results = _min_results(task)
        file_name, url = file_name_of(ref, self.opts.keep_upload_prefix)
        size = self._size(results, file_name)
        if size is None:
            rep.error(path, item, "image size unknown: no region carries original_width/height; pass --image-root")
            return None
        extra = {"ls_task_id": task.get("id")} if task.get("id") is not None else {}
        if url:
            extra["coco_url"] = url
        draft = ImageDraft(file_name, size[0], size[1], extra=extra)
        draft.instances = self._regions(path, item, results, size)
        if self.opts.predictions:
            for p in task.get("predictions") or []:
                if not isinstance(p, dict):
                    continue
                for inst in self._regions(path, f"{item}.predictions", p.get("result") or [], size):
                    if inst.score is None:
                        inst.score = float(p.get("score") if p.get("score") is not None else 1.0)
                    draft.predictions.append(inst)
        return draft

    def _select(self, annotations: list) -> list[dict] | None:
        live = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        gt = [a for a in live if a.get("ground_truth")]
        mode = self.opts.annotations
        if mode == "all":
            return live or None
        pool = gt if (gt or mode == "ground-truth") else live
        return [max(pool, key=_when)] if pool else None

    def _size(self, results: list[dict], file_name: str) -> tuple[int, int] | None:
        for r in results:
            w, h = r.get("original_width"), r.get("original_height")
            if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
                return int(w), int(h)
        if self.opts.image_root is not None:
            img = find_image(file_name, [self.opts.image_root])
            if img is not None:
                return image_size(img)[:2]
        return None

    # -- regions --------------------------------------------------------------
    def _regions(self, path, item, results: list[dict], size) -> list[Instance]:
        rep = self.report
        width, height = size
        polys: list[list[float]] = []
        out: list[Instance] = []
        by_id: dict[str, Instance] = {}
        keypoints: list[tuple[int, dict]] = []
        for i, r in enumerate(results):
            where = f"{item}.result[{i}]"
            if not isinstance(r, dict):
                rep.error(path, where, "result is not an object")
                continue
            kind = (r.get("type") or "").lower()
            if kind in NON_GEOMETRY:
                continue
            value = r.get("value") or {}
            key = kind if kind in LABEL_KEYS else None
            if key is None:
                rep.warn(f"unsupported region type {kind!r} skipped", f"{path}:{where}")
                continue
            names = value.get(key)
            if not names or not isinstance(names, list):
                rep.error(path, where, f"region without a label ({key} is empty)")
                continue
            if len(names) > 1:
                rep.warn("region with several labels: first one used", f"{path}:{where}")
            label = str(names[0])
            if self.known is not None and label not in self.known and kind != "keypointlabels":
                rep.error(path, where, f"label {label!r} is not in the labels file")
                continue
            if kind == "keypointlabels":
                keypoints.append((i, r))
                continue
            score = r.get("score")
            score = float(score) if isinstance(score, (int, float)) else None
            w = r.get("original_width") or width
            h = r.get("original_height") or height
            try:
                inst = self._geometry(kind, label, value, w, h, path, where)
            except (TypeError, ValueError, KeyError) as e:
                rep.error(path, where, f"bad {kind} value: {e}")
                continue
            if inst is None:
                continue
            if isinstance(inst, list):  # a polygon: its area comes later, in one batch
                polys.append(inst)
                inst = Instance(label, polygons_bbox([inst]), -1.0, [inst])
            inst.score = score
            out.append(inst)
            if r.get("id") is not None:
                by_id.setdefault(r["id"], inst)
        areas = iter(polygon_areas([[p] for p in polys], height, width))
        for inst in out:
            if inst.area < 0:
                inst.area = next(areas)
        self._link_keypoints(path, item, keypoints, by_id, width, height)
        return out

    def _geometry(self, kind, label, value, w, h, path, where):
        """A polygon (flat list, area pending) or an Instance, or None."""
        if kind == "rectanglelabels":
            x, y = value["x"] * w / 100, value["y"] * h / 100
            bw, bh = value["width"] * w / 100, value["height"] * h / 100
            if not all(math.isfinite(v) for v in (x, y, bw, bh)) or bw <= 0 or bh <= 0:
                self.report.error(path, where, "rectangle with no area")
                return None
            rot = float(value.get("rotation") or 0.0) % 360.0
            poly = rectangle_polygon(x, y, bw, bh) if rot == 0 else rotated_rectangle(x, y, bw, bh, rot)
            return self._clip(poly, w, h, path, where)
        if kind == "polygonlabels":
            pts = value["points"]
            if len(pts) < 3:
                self.report.error(path, where, f"polygon has {len(pts)} point(s), needs at least 3")
                return None
            poly = [float(c) * (w if k % 2 == 0 else h) / 100 for p in pts for k, c in enumerate(p[:2])]
            return self._clip(poly, w, h, path, where)
        # brushlabels
        if value.get("format", "rle") != "rle" or "rle" not in value:
            self.report.error(path, where, "brush region without 'rle' data")
            return None
        mask = rle_to_mask(value["rle"], int(h), int(w))
        rle, bbox, area = mask_instance(mask)
        if area == 0:
            self.report.warn("empty brush region skipped", f"{path}:{where}")
            return None
        return Instance(label, bbox, area, rle)

    def _clip(self, poly: list[float], w, h, path, where) -> list[float]:
        xs, ys = poly[0::2], poly[1::2]
        if min(xs) >= 0 and min(ys) >= 0 and max(xs) <= w and max(ys) <= h:
            return poly
        self.report.warn("points outside the image clipped to its border", f"{path}:{where}")
        out = poly[:]
        out[0::2] = [min(max(x, 0.0), w) for x in xs]
        out[1::2] = [min(max(y, 0.0), h) for y in ys]
        return out

    # -- keypoints ------------------------------------------------------------
    def _link_keypoints(self, path, item, keypoints, by_id, width, height) -> None:
        points_of: dict[int, dict[str, tuple[float, float]]] = {}
        for i, r in keypoints:
            parent = by_id.get(r.get("parentID"))
            if parent is None:
                self.report.warn("keypoint not linked to a region (no parentID) skipped", f"{path}:{item}.result[{i}]")
                continue
            v = r["value"]
            name = str(v["keypointlabels"][0])
            w = r.get("original_width") or width
            h = r.get("original_height") or height
            if id(parent) not in points_of:
                points_of[id(parent)] = {}
                self.kp_pending.append((parent, points_of[id(parent)]))
            points_of[id(parent)][name] = (v["x"] * w / 100, v["y"] * h / 100)
            order = self.kp_order.setdefault(parent.label, [])
            if name not in order:
                order.append(name)

    def finish_keypoints(self) -> None:
        """Write COCO keypoint triplets once every name of a category is known."""
        for inst, pts in self.kp_pending:
            names = self.kp_order[inst.label]
            flat: list[float] = []
            for n in names:
                flat += [*pts[n], 2] if n in pts else [0, 0, 0]
            inst.keypoints, inst.keypoint_names = flat, names
