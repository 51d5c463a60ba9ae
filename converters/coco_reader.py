"""COCO JSON -> COCO core, normalised.

Real COCO files from other tools drift from the spec; this reader accepts and
fixes: string or numeric-string ids (renumbered 1..N, references followed),
``"iscrowd": "false"``/``true``/booleans, uncompressed RLE, a missing ``area``
(pycocotools pixel count) or ``bbox`` (from the segmentation). Category order
is the file's (by position) unless ``--labels`` gives one. What cannot be
fixed (a reference to a missing image or category, a non-list section) is an
error naming the JSON path.
"""

from __future__ import annotations

from pathlib import Path

from annot.errors import AnnotError
from annot.geometry import compress_rle, polygon_areas, polygons_bbox, rle_area_bbox
from annot.images import image_size
from annot.model import Annotation, DatasetBuilder, ImageDraft, Instance
from annot.options import ConvertOptions
from annot.report import Report

from .discovery import find_files, find_image, load_json

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
    doc = _load(path)
    if isinstance(doc, list):
        raise AnnotError(f"{path}: a COCO results list, not a dataset (no images/categories)")
    if not isinstance(doc, dict):
        raise AnnotError(f"{path}: not a COCO dataset (top level is not an object)")
    sections = {}
    for key in ("images", "annotations", "categories"):
        v = doc.get(key, [] if key == "annotations" else None)
        if not isinstance(v, list):
            raise AnnotError(f"{path}:{key}: missing or not a list")
        sections[key] = v

    cat_name: dict[object, str] = {}
    for k, c in enumerate(sections["categories"]):
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            report.error(path, f"categories[{k}]", "category needs 'id' and a string 'name'")
            continue
        cat_name[_key(c["id"])] = c["name"]
    names = list(dict.fromkeys(cat_name.values()))
    kp_names = {
        c["name"]: c["keypoints"]
        for c in sections["categories"]
        if isinstance(c, dict) and isinstance(c.get("keypoints"), list)
    }
    builder = DatasetBuilder(opts.labels if opts.labels is not None else names)

    drafts: dict[object, ImageDraft] = {}
    for k, im in enumerate(sections["images"]):
        where = f"images[{k}]"
        if not isinstance(im, dict) or "id" not in im:
            report.error(path, where, "image needs an 'id'")
            continue
        fname = im.get("file_name")
        if not isinstance(fname, str) or not fname:
            report.error(path, where, "image needs a 'file_name'")
            continue
        w, h = im.get("width"), im.get("height")
        if not (isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0):
            img = find_image(fname, [opts.image_root, path.parent])
            if img is None:
                report.error(path, where, f"no width/height and image {fname!r} not found (use --image-root)")
                continue
            w, h = image_size(img)[:2]
        extra = {k2: v for k2, v in im.items() if k2 not in ("id", "file_name", "width", "height")}
        key = _key(im["id"])
        if key in drafts:
            report.error(path, where, f"duplicate image id {im['id']!r}")
            continue
        drafts[key] = ImageDraft(fname, int(w), int(h), extra=extra)

    polys_pending: list[tuple[Instance, ImageDraft]] = []
    for k, a in enumerate(sections["annotations"]):
        where = f"annotations[{k}]"
        inst = _instance(a, where, path, drafts, cat_name, report)
        if inst is None:
            continue
        draft = drafts[_key(a["image_id"])]
        if inst.keypoints is not None:
            inst.keypoint_names = kp_names.get(inst.label)
        draft.instances.append(inst)
        if inst.area < 0:
            polys_pending.append((inst, draft))
    for inst, draft in polys_pending:
        inst.area = polygon_areas([inst.segmentation], draft.height, draft.width)[0]
    for d in drafts.values():
        builder.add(d)
    return builder.build(info=doc.get("info") if isinstance(doc.get("info"), dict) else None)


def _key(v):
    """Ids compare as their text so 1 and "1" are the same image."""
    return str(v)


def _instance(a, where, path, drafts, cat_name, report: Report) -> Instance | None:
    if not isinstance(a, dict):
        report.error(path, where, "annotation is not an object")
        return None
    if "image_id" not in a or _key(a["image_id"]) not in drafts:
        report.error(path, where, f"image_id {a.get('image_id')!r} is not an image of this file")
        return None
    if "category_id" not in a or _key(a["category_id"]) not in cat_name:
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
        try:
            seg = compress_rle(seg)
            seg_area, seg_bbox = rle_area_bbox(seg)
        except Exception as e:
            report.error(path, where, f"bad RLE segmentation: {e}")
            return None
    elif isinstance(seg, list) and all(isinstance(p, list) for p in seg):
        seg = [[float(v) for v in p] for p in seg if p]
        seg_area, seg_bbox = -1.0, (polygons_bbox(seg) if seg else None)
        if not seg:
            seg = None
    elif seg in (None, []):
        seg, seg_area, seg_bbox = None, None, None
    else:
        report.error(path, where, "segmentation must be a list of polygons or an RLE object")
        return None
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
        if seg_bbox is None:
            report.error(path, where, "no bbox and no segmentation to derive it from")
            return None
        bbox = seg_bbox
    bbox = [float(v) for v in bbox]
    if not isinstance(area, (int, float)):
        area = seg_area if seg_area is not None else bbox[2] * bbox[3]
    kps = a.get("keypoints")
    score = a.get("score")
    return Instance(
        cat_name[_key(a["category_id"])],
        bbox,
        float(area),
        seg,
        crowd,
        keypoints=[float(v) for v in kps] if isinstance(kps, list) and kps else None,
        score=float(score) if isinstance(score, (int, float)) else None,
    )


def read_results(path: Path) -> list[Annotation]:
    """A COCO results list (detections) as annotations with scores."""
    doc = _load(path)
    if not isinstance(doc, list):
        raise AnnotError(f"{path}: a COCO results file is a JSON list")
    out = []
    for k, r in enumerate(doc):
        if not isinstance(r, dict) or "image_id" not in r or "category_id" not in r:
            raise AnnotError(f"{path}:[{k}]: a result needs image_id and category_id")
        seg = r.get("segmentation")
        if isinstance(seg, dict):
            seg = compress_rle(seg)
        bbox = r.get("bbox")
        area = r.get("area")
        if isinstance(seg, dict):
            seg_area, seg_bbox = rle_area_bbox(seg)
            bbox = bbox or seg_bbox
            area = seg_area if area is None else area
        out.append(
            Annotation(
                id=k + 1,
                image_id=int(r["image_id"]),
                category_id=int(r["category_id"]),
                bbox=[float(v) for v in bbox] if bbox else [],
                area=float(area) if area is not None else 0.0,
                segmentation=seg,
                keypoints=r.get("keypoints"),
                score=float(r.get("score", 1.0)),
            )
        )
    return out
