"""COCO JSON -> COCO core, normalised.

Real COCO files from other tools drift from the spec; this reader accepts and
fixes: string or numeric-string ids (renumbered 1..N, references followed),
``"iscrowd": "false"``/``true``/booleans, uncompressed RLE, a missing ``area``
(pycocotools pixel count) or ``bbox`` (from the segmentation), a bbox over the
image border (clipped, counted as a warning). Category order is the file's (by
position) unless ``--labels`` gives one. What cannot be fixed (a reference to
a missing image or category, a non-list section, a value of the wrong type, a
bbox or polygon with nothing inside the image) is an error naming the JSON
path.

A COCO *results* list (model output: detections with ``image_id``,
``category_id`` and ``score``, what ``COCO.loadRes`` reads) is read as the
dataset of the file its ids refer to: ``--gt FILE``, else ``<stem>.images.json``
beside it (what ``annot predict --format coco`` writes). Its images and
categories come from that file, its annotations are the results, with their
scores and the per-detection extras annot writes (``class_probs``,
``mask_uncertainty``, ``iou_prediction``).
"""

from __future__ import annotations

from pathlib import Path

from annot.detections import SERIALISED
from annot.errors import AnnotError, ParseError
from annot.formats import not_coco
from annot.geometry import compress_rle, polygon_areas, polygons_bbox, rle_area_bbox, rle_problem
from annot.limits import Limits, polygon_bytes
from annot.model import DatasetBuilder, ImageDraft, Instance
from annot.options import ConvertOptions
from annot.paths import find_image
from annot.report import Report
from annot.values import is_id, is_number, is_side, numbers_to_floats, to_floats

from .discovery import find_files, load_json, read_image_size, size_fits

_FALSE = {"false", "0", "no", ""}
_TRUE = {"true", "1", "yes"}


def _load(path: Path):
    try:
        return load_json(path)
    except (OSError, ValueError) as e:
        raise AnnotError(f"{path}: cannot read JSON: {e}") from None


def read(inputs: list[Path], opts: ConvertOptions, report: Report):
    files = find_files(inputs, (".json",))
    if len(files) != 1:
        raise AnnotError(f"coco: expected one JSON file, got {len(files)}")
    path = files[0][0]
    opts.limits.json_file(path)
    doc = _load(path)
    if isinstance(doc, list):
        doc = _results_dataset(path, doc, opts.gt)
    elif opts.gt is not None:
        raise AnnotError(f"--gt {opts.gt}: {path} is a COCO dataset; --gt names the dataset of a results list")
    if not isinstance(doc, dict):
        raise AnnotError(f"{path}: not a COCO dataset (top level is not an object)")
    if problem := not_coco(doc):
        raise AnnotError(f"{path}: {problem}")
    sections = {}
    for key in ("images", "annotations", "categories"):
        v = doc.get(key, [] if key == "annotations" else None)
        if not isinstance(v, list):
            raise AnnotError(f"{path}:{key}: missing or not a list")
        sections[key] = v

    cat_name: dict[object, str] = {}
    kp_names: dict[str, list[str]] = {}
    for k, c in enumerate(sections["categories"]):
        if not isinstance(c, dict) or not is_id(c.get("id")) or not isinstance(c.get("name"), str) or not c["name"]:
            report.error(path, f"categories[{k}]", "category needs an int or string 'id' and a non-empty 'name'")
            continue
        cat_name[_key(c["id"])] = c["name"]
        kps = c.get("keypoints")
        if isinstance(kps, list) and all(isinstance(n, str) for n in kps):
            kp_names[c["name"]] = kps
    names = list(dict.fromkeys(cat_name.values()))
    builder = DatasetBuilder(opts.labels if opts.labels is not None else names)

    drafts: dict[object, ImageDraft] = {}
    for k, im in enumerate(sections["images"]):
        where = f"images[{k}]"
        if not isinstance(im, dict) or not is_id(im.get("id")):
            report.error(path, where, "image needs an int or string 'id'")
            continue
        fname = im.get("file_name")
        if not isinstance(fname, str) or not fname:
            report.error(path, where, "image needs a 'file_name'")
            continue
        w, h = im.get("width"), im.get("height")
        if not (is_side(w) and is_side(h)):
            img = find_image(fname, [opts.image_root, path.parent])
            if img is None:
                report.error(path, where, f"no width/height and image {fname!r} not found (use --image-root)")
                continue
            size = read_image_size(img, path, where, report)
            if size is None:
                continue
            w, h = size
        if not size_fits(int(w), int(h), path, where, report, opts.limits.max_pixels):
            continue
        extra = {k2: v for k2, v in im.items() if k2 not in ("id", "file_name", "width", "height")}
        key = _key(im["id"])
        if key in drafts:
            report.error(path, where, f"duplicate image id {im['id']!r}")
            continue
        drafts[key] = ImageDraft(fname, int(w), int(h), extra=extra)

    for k, a in enumerate(sections["annotations"]):
        where = f"annotations[{k}]"
        found = _instance(a, where, path, drafts, cat_name, report)
        if found is None:
            continue
        inst, draft = found
        if not _fit(inst, draft, where, path, report, opts.limits):
            continue
        if inst.keypoints is not None:
            inst.keypoint_names = kp_names.get(inst.label)
        draft.instances.append(inst)
    for d in drafts.values():
        builder.add(d)
    return builder.build(info=doc.get("info") if isinstance(doc.get("info"), dict) else None)


def images_path(results: Path) -> Path:
    """Where ``annot predict --format coco`` writes the images and categories of its results."""
    return Path(results).with_name(Path(results).stem + ".images.json")


def _results_dataset(path: Path, results: list, gt: Path | None) -> dict:
    """A results list as the dataset of the file its ids refer to."""
    if problem := not_coco(results):
        raise AnnotError(f"{path}: {problem}")
    meta = gt or images_path(path)
    if not meta.is_file():
        raise AnnotError(f"{path}: a COCO results list; its images and categories are in the file its ids refer "
                         f"to: {meta.name} beside it (annot predict writes one) is not there; pass --gt COCO.json")
    base = _load(meta)
    if not isinstance(base, dict):
        raise AnnotError(f"{meta}: not a COCO dataset (top level is not an object)")
    for k, r in enumerate(results):
        if isinstance(r, dict) and "score" not in r:
            raise AnnotError(f"{path}:[{k}]: a result needs a 'score' (a list of annotations is not a results "
                             "file; COCO datasets are objects with images, annotations and categories)")
    annotations = [{**r, "id": k + 1} if isinstance(r, dict) else r for k, r in enumerate(results)]
    return {**base, "annotations": annotations}


def _fit(inst: Instance, draft: ImageDraft, where: str, path: Path, report: Report, limits: Limits) -> bool:
    """Make an instance valid for its image (a bbox over the border is
    clipped, a missing polygon area measured), or report why it cannot be."""
    w, h = draft.width, draft.height
    seg = inst.segmentation
    if isinstance(seg, dict) and list(seg["size"]) != [h, w]:
        report.error(path, where, f"RLE size {list(seg['size'])} is not the image's [height, width] [{h}, {w}]")
        return False
    if isinstance(seg, list) and any(len(p) % 2 for p in seg):
        report.error(path, where, "polygon with an odd number of coordinates")
        return False
    x, y, bw, bh = inst.bbox
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + bw, w), min(y + bh, h)
    if not (x1 > x0 and y1 > y0):
        report.error(path, where, f"bbox {inst.bbox} has no area inside the {w}x{h} image")
        return False
    if (x0, y0, x1, y1) != (x, y, x + bw, y + bh):
        report.warn("bboxes over the image border clipped to it", f"{path}:{where}")
        inst.bbox = [x0, y0, x1 - x0, y1 - y0]
    if inst.area > w * h:  # more pixels than the image has: not a pixel count (COCOeval's ranges end at 1e10)
        report.warn("areas larger than the image measured again", f"{path}:{where}")
        if isinstance(seg, dict):
            inst.area = rle_area_bbox(seg)[0]
        else:
            inst.area = -1.0 if seg else inst.bbox[2] * inst.bbox[3]
    if inst.area < 0:  # polygons without a stored area: the pycocotools pixel count
        try:
            for p in seg:
                limits.allocation(polygon_bytes(p), "rasterising this polygon", path, where)
        except ParseError as e:
            report.error(e.path, e.item, e.reason)
            return False
        inst.area = polygon_areas([seg], h, w)[0]
        if inst.area <= 0:
            report.error(path, where, "segmentation covers no pixel of the image")
            return False
    return True


def _key(v):
    """Ids compare as their text so 1 and "1" are the same image."""
    return str(v)


def _instance(a, where, path, drafts, cat_name, report: Report) -> tuple[Instance, ImageDraft] | None:
    """The annotation as an instance of its image's draft, or None after report.error."""
    if not isinstance(a, dict):
        report.error(path, where, "annotation is not an object")
        return None
    draft = drafts.get(_key(a["image_id"])) if "image_id" in a else None
    if draft is None:
        report.error(path, where, f"image_id {a.get('image_id')!r} is not an image of this file")
        return None
    label = cat_name.get(_key(a["category_id"])) if "category_id" in a else None
    if label is None:
        report.error(path, where, f"category_id {a.get('category_id')!r} is not a category of this file")
        return None
    crowd = a.get("iscrowd", 0)
    if isinstance(crowd, str):
        if crowd.strip().lower() not in _FALSE | _TRUE:
            report.error(path, where, f"iscrowd {crowd!r} is not a boolean")
            return None
        crowd = crowd.strip().lower() in _TRUE
    crowd = 1 if crowd else 0
    seg = a.get("segmentation")
    bbox = a.get("bbox")
    area = a.get("area")
    if isinstance(seg, dict):
        # checked before pycocotools sees it: counts summing past height x width make it write past its buffer
        why = rle_problem(seg) if isinstance(seg.get("counts"), (str, list)) and isinstance(seg.get("size"), list) \
            else "RLE needs 'size' [height, width] and 'counts'"
        if why:
            report.error(path, where, why)
            return None
        try:
            seg = compress_rle(seg)
            seg_area, seg_bbox = rle_area_bbox(seg)
        except Exception as e:
            report.error(path, where, f"bad RLE segmentation: {e}")
            return None
        if seg_area == 0:
            report.error(path, where, "RLE segmentation is empty")
            return None
    elif isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
        polys = [to_floats(p) for p in seg if p]
        if None in polys:
            report.error(path, where, "segmentation polygons must be lists of numbers")
            return None
        if any(len(p) < 6 for p in polys):  # pycocotools reads a 4-number "polygon" as a box: not a polygon
            report.warn("polygons with fewer than 3 points dropped", f"{path}:{where}")
            polys = [p for p in polys if len(p) >= 6]
        if polys:  # area -1: measured by _fit once the image size is known; bbox only when missing
            seg, seg_area, seg_bbox = polys, -1.0, None
        else:
            seg, seg_area, seg_bbox = None, None, None
    elif seg is None or seg == []:
        seg, seg_area, seg_bbox = None, None, None
    else:
        report.error(path, where, "segmentation must be a list of polygons or an RLE object")
        return None
    bbox = numbers_to_floats(bbox) if isinstance(bbox, list) and len(bbox) == 4 else None
    if bbox is None:
        if seg_bbox is None and isinstance(seg, list):
            seg_bbox = polygons_bbox(seg)
        if seg_bbox is None:
            report.error(path, where, "no bbox and no segmentation to derive it from")
            return None
        bbox = [float(v) for v in seg_bbox]
    if not (is_number(area) and area > 0):
        area = seg_area if seg_area is not None else bbox[2] * bbox[3]
    kps = a.get("keypoints")
    if kps is not None and kps != []:
        kps = to_floats(kps)
        if kps is None or len(kps) % 3:
            report.error(path, where, "keypoints must be a list of numbers, three per point")
            return None
    score = a.get("score")
    if score is not None and not is_number(score):
        report.error(path, where, f"score {score!r} is not a number")
        return None
    extra = {k: a[k] for k in SERIALISED if k in a}
    inst = Instance(
        label,
        bbox,
        float(area),
        seg,
        crowd,
        keypoints=kps or None,
        score=float(score) if score is not None else None,
        extra=extra or None,
    )
    return inst, draft
