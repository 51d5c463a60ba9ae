"""``annot validate coco``: structure first, then pycocotools.

Structural checks give one line per problem with its JSON path. Only a
structurally valid file goes on to pycocotools: it must load, and evaluating
the ground truth against itself (every non-crowd annotation as a detection
with score 1) must give bbox and segm AP of exactly 1.0. Anything less means
annotations pycocotools cannot match to themselves (degenerate geometry).

A results list (model output) is checked against the dataset its ids refer
to (``--gt``, else ``<stem>.images.json`` beside it): that file's structure,
then each result's image, category, score and geometry, then pycocotools'
``loadRes`` must take it.
"""

from __future__ import annotations

import contextlib
import difflib
import io
from pathlib import Path

from .errors import AnnotError, DatasetInvalid
from .geometry import rle_problem
from .values import is_int, is_number, size_problem

EDGE_TOLERANCE = 1e-3  # px a bbox may pass the image border (float round-off)


def _missing(doc: dict, key: str) -> str:
    close = difflib.get_close_matches(key, [k for k in doc if isinstance(k, str)], n=1, cutoff=0.6)
    hint = f" (found {close[0]!r}: a misspelling?)" if close else ""
    return f"{key}: missing{hint}"


def _id_problems(p: str, obj: dict, seen) -> list[str]:
    if "id" not in obj:
        return [f"{p}.id: missing"]
    if not is_int(obj["id"]):
        return [f"{p}.id: must be an int, found {obj['id']!r}"]
    if obj["id"] in seen:
        return [f"{p}.id: duplicate id {obj['id']}"]
    return []


def structural_problems(doc) -> list[str]:
    from .formats import not_coco

    if not isinstance(doc, dict):
        return ["$: top level must be an object with images, annotations, categories"]
    if problem := not_coco(doc):
        return [f"$: {problem}"]
    problems: list[str] = []
    sections = {}
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            problems.append(_missing(doc, key))
        elif not isinstance(doc[key], list):
            problems.append(f"{key}: must be a list, found {type(doc[key]).__name__}")
        else:
            sections[key] = doc[key]
    images: dict[int, tuple[float, float]] = {}
    for i, im in enumerate(sections.get("images", [])):
        p = f"images[{i}]"
        if not isinstance(im, dict):
            problems.append(f"{p}: must be an object")
            continue
        problems += _id_problems(p, im, images)
        if not isinstance(im.get("file_name"), str) or not im.get("file_name"):
            problems.append(f"{p}.file_name: missing or not a string")
        size_ok = True
        for k in ("width", "height"):
            if k not in im:
                problems.append(f"{p}.{k}: missing")
                size_ok = False
            elif not (is_int(im[k]) and im[k] > 0):
                problems.append(f"{p}.{k}: must be a positive int, found {im[k]!r}")
                size_ok = False
        why = size_problem(im["width"], im["height"]) if size_ok else None
        if why:
            problems.append(f"{p}: {why}")
            size_ok = False
        if is_int(im.get("id")) and im["id"] not in images:
            images[im["id"]] = (im["width"], im["height"]) if size_ok else None
    cats: set[int] = set()
    names: set[str] = set()
    for i, c in enumerate(sections.get("categories", [])):
        p = f"categories[{i}]"
        if not isinstance(c, dict):
            problems.append(f"{p}: must be an object")
            continue
        id_problems = _id_problems(p, c, cats)
        problems += id_problems
        if not id_problems:
            cats.add(c["id"])
        if not isinstance(c.get("name"), str) or not c.get("name"):
            problems.append(f"{p}.name: missing or not a string")
        elif c["name"] in names:
            problems.append(f"{p}.name: duplicate name {c['name']!r}")
        else:
            names.add(c["name"])
    ann_ids: set[int] = set()
    for i, a in enumerate(sections.get("annotations", [])):
        problems += _annotation_problems(f"annotations[{i}]", a, images, cats, ann_ids)
    return problems


def _annotation_problems(p: str, a, images, cats, ann_ids) -> list[str]:
    if not isinstance(a, dict):
        return [f"{p}: must be an object"]
    out = _id_problems(p, a, ann_ids)
    if not out:
        ann_ids.add(a["id"])
    size = None
    if "image_id" not in a:
        out.append(f"{p}.image_id: missing")
    elif not is_int(a["image_id"]) or a["image_id"] not in images:
        out.append(f"{p}.image_id: {a['image_id']!r} is not an image id")
    else:
        size = images[a["image_id"]]
    if "category_id" not in a:
        out.append(f"{p}.category_id: missing")
    elif not is_int(a["category_id"]) or a["category_id"] not in cats:
        out.append(f"{p}.category_id: {a['category_id']!r} is not a category id")
    if a.get("iscrowd", 0) not in (0, 1) or isinstance(a.get("iscrowd", 0), bool):
        out.append(f"{p}.iscrowd: must be 0 or 1, found {a.get('iscrowd')!r}")
    bbox = a.get("bbox")
    if bbox is None:
        out.append(f"{p}.bbox: missing")
    elif not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
        out.append(f"{p}.bbox: must be [x, y, w, h] numbers, found {bbox!r}")
    elif bbox[2] <= 0 or bbox[3] <= 0:
        out.append(f"{p}.bbox: width and height must be > 0, found {bbox}")
    elif size is not None:
        w, h = size
        x, y, bw, bh = bbox
        if x < -EDGE_TOLERANCE or y < -EDGE_TOLERANCE or x + bw > w + EDGE_TOLERANCE or y + bh > h + EDGE_TOLERANCE:
            out.append(f"{p}.bbox: {bbox} extends outside the {w}x{h} image")
    if "area" not in a:
        out.append(f"{p}.area: missing")
    elif not (is_number(a["area"]) and a["area"] > 0):
        out.append(f"{p}.area: must be a number > 0, found {a['area']!r}")
    if "segmentation" not in a:
        out.append(f"{p}.segmentation: missing")
    else:
        out += _segmentation_problems(f"{p}.segmentation", a["segmentation"], size)
    return out


def _segmentation_problems(p: str, seg, size) -> list[str]:
    if isinstance(seg, dict):
        rle_size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(is_int(v) for v in rle_size)):
            return [f"{p}.size: RLE needs size [height, width], found {rle_size!r}"]
        if not isinstance(counts, (str, list)):
            return [f"{p}.counts: must be a string (compressed) or a list of ints"]
        if size is not None and rle_size != [size[1], size[0]]:
            return [f"{p}.size: RLE size {rle_size} is not the image's [height, width] = [{size[1]}, {size[0]}]"]
        if isinstance(counts, list) and not all(is_int(c) and c >= 0 for c in counts):
            return [f"{p}.counts: uncompressed RLE counts must be ints >= 0"]
        # pycocotools trusts the counts: summing past height x width, its decoder writes past its buffer
        why = rle_problem(seg)
        return [f"{p}.counts: {why}"] if why else []
    if not isinstance(seg, list):
        return [f"{p}: must be a list of polygons or an RLE object"]
    out = []
    for j, poly in enumerate(seg):
        if not isinstance(poly, list):
            out.append(f"{p}: must be a list of polygons ([[x0, y0, x1, y1, ...], ...]), found a {type(poly).__name__} at [{j}]")
            break
        if len(poly) < 6 or len(poly) % 2:
            out.append(f"{p}[{j}]: polygon needs an even number >= 6 of coordinates, has {len(poly)}")
        elif not all(is_number(v) for v in poly):
            out.append(f"{p}[{j}]: polygon coordinates must be numbers")
    return out


# Instances of one category that COCOeval compares with each other at once.
# Its matching is a Python loop over ground truth per detection: quadratic in
# the instances of an (image, category) pair, with an n x n IoU matrix beside
# it (20,000 boxes in one image: 3.2 GB and hours). Evaluating them in groups
# gives the same verdict: against itself every detection has its own ground
# truth at IoU 1, so no other instance can take its match away.
EVAL_GROUP = 10


def _grouped(doc: dict) -> dict:
    """``doc`` with each image's instances of a category split over images of
    at most EVAL_GROUP (copies of the image, new ids); crowd regions stay on
    the original image. Annotations are shallow copies (COCOeval rewrites
    segmentations in place)."""
    images = list(doc["images"])
    by_id = {img["id"]: img for img in images}
    next_id = max(by_id, default=0) + 1
    seen: dict[tuple, int] = {}
    extra: dict[tuple, int] = {}
    anns = []
    for a in doc["annotations"]:
        a = dict(a)
        if not a.get("iscrowd"):
            key = (a["image_id"], a["category_id"])
            k = seen[key] = seen.get(key, -1) + 1
            if k >= EVAL_GROUP:
                group = (*key, k // EVAL_GROUP)
                if group not in extra:
                    extra[group] = next_id
                    images.append({**by_id[a["image_id"]], "id": next_id})
                    next_id += 1
                a["image_id"] = extra[group]
        anns.append(a)
    return {**doc, "images": images, "annotations": anns}


def coco_index(doc: dict):
    """pycocotools' ``COCO`` over a dataset already in memory, without its prints."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = doc
        gt.createIndex()
    return gt


def self_evaluation(doc: dict) -> dict[str, float]:
    """bbox and segm AP of the ground truth evaluated against itself."""
    from pycocotools.cocoeval import COCOeval

    doc = _grouped(doc)
    gt = coco_index(doc)
    with contextlib.redirect_stdout(io.StringIO()):
        dets = [a for a in doc["annotations"] if not a.get("iscrowd")]
        if not dets:
            return {}
        out = {}
        for iou_type in ("bbox", "segm"):
            if iou_type == "segm" and not all(a.get("segmentation") for a in dets):
                continue
            res = []
            for a in dets:
                r = {"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0, "bbox": a["bbox"]}
                if iou_type == "segm":
                    r["segmentation"] = gt.annToRLE(a)
                res.append(r)
            dt = gt.loadRes(res)
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            # AP@[.5:.95], all areas, 100 detections per image and category
            # (>= EVAL_GROUP): what summarize() prints first, without printing.
            precision = ev.eval["precision"][:, :, :, 0, -1]
            valid = precision[precision > -1]
            out[iou_type] = float(valid.mean()) if valid.size else -1.0
    return out


def validate_coco(doc) -> tuple[list[str], dict[str, float]]:
    problems = structural_problems(doc)
    if problems:
        return problems, {}
    try:
        aps = self_evaluation(doc)
    except Exception as e:  # pycocotools' own assertion on something we did not check
        return [f"$: pycocotools cannot load it: {type(e).__name__}: {e}"], {}
    for iou_type, ap in aps.items():
        if abs(ap - 1.0) > 1e-9:
            problems.append(f"$: self-evaluation {iou_type} AP = {ap:.4f}, must be 1.0 (degenerate or unmatched annotations)")
    return problems, aps


def load_valid_coco(path: Path) -> tuple[dict, dict[str, float]]:
    """The parsed file and its self-evaluation APs; raises DatasetInvalid with
    every problem when it is not a valid COCO dataset."""
    doc = _read_json(path)
    return doc, _checked(path, doc)


def _checked(path: Path, doc) -> dict[str, float]:
    problems, aps = validate_coco(doc)
    if problems:
        raise DatasetInvalid(path, problems)
    return aps


def result_problems(results: list, doc: dict) -> list[str]:
    """What is wrong with each detection of a results list for the dataset ``doc``."""
    sizes = {im["id"]: (im["width"], im["height"]) for im in doc["images"]}
    cats = {c["id"] for c in doc["categories"]}
    out = []
    for i, r in enumerate(results):
        p = f"[{i}]"
        if not isinstance(r, dict):
            out.append(f"{p}: must be an object")
            continue
        size = sizes.get(r.get("image_id")) if is_int(r.get("image_id")) else None
        if size is None:
            out.append(f"{p}.image_id: {r.get('image_id')!r} is not an image id of the dataset")
        if not is_int(r.get("category_id")) or r["category_id"] not in cats:
            out.append(f"{p}.category_id: {r.get('category_id')!r} is not a category id of the dataset")
        if not is_number(r.get("score")):
            out.append(f"{p}.score: must be a number, found {r.get('score')!r}")
        if "bbox" not in r and "segmentation" not in r:
            out.append(f"{p}: needs a bbox or a segmentation")
        bbox = r.get("bbox")
        if bbox is not None and not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)
                                     and bbox[2] >= 0 and bbox[3] >= 0):
            out.append(f"{p}.bbox: must be [x, y, w, h] numbers with w, h >= 0, found {bbox!r}")
        if "segmentation" in r:
            out += _segmentation_problems(f"{p}.segmentation", r["segmentation"], size)
        probs = r.get("class_probs")
        if probs is not None and not (isinstance(probs, list) and all(is_number(v) for v in probs)):
            out.append(f"{p}.class_probs: must be a list of numbers")
    return out


def validate_results(results: list, doc: dict) -> list[str]:
    problems = structural_problems(doc)
    if problems:
        return [f"dataset: {p}" for p in problems]
    problems = result_problems(results, doc)
    if problems:
        return problems
    try:
        gt = coco_index(doc)
        with contextlib.redirect_stdout(io.StringIO()):
            if results:
                gt.loadRes([dict(r) for r in results])  # loadRes adds ids and areas in place
    except Exception as e:
        return [f"$: pycocotools' loadRes refuses it: {type(e).__name__}: {e}"]
    return []


def _results_summary(path: Path, results: list, gt: Path | None) -> str:
    from .formats import not_coco

    if problem := not_coco(results):
        raise DatasetInvalid(path, [f"$: {problem}"])
    meta = gt or Path(path).with_name(Path(path).stem + ".images.json")
    if not Path(meta).is_file():
        raise AnnotError(f"{path}: a COCO results list; its images and categories are in the file its ids refer to: "
                         f"{Path(meta).name} beside it is not there; pass --gt COCO.json")
    doc = _read_json(meta)
    if not isinstance(doc, dict):
        raise DatasetInvalid(meta, ["$: top level must be an object with images, annotations, categories"])
    problems = validate_results(results, {**doc, "annotations": doc.get("annotations", [])})
    if problems:
        raise DatasetInvalid(path, problems)
    scores = [r["score"] for r in results]
    span = f"; scores {min(scores):.3f}..{max(scores):.3f}" if scores else ""
    return (f"{len(results)} results on {len({r['image_id'] for r in results})} of {len(doc['images'])} images, "
            f"{len(doc['categories'])} categories (from {Path(meta).name}){span}")


def _read_json(path: Path):
    import orjson

    try:
        return orjson.loads(Path(path).read_bytes())
    except OSError as e:
        raise AnnotError(f"{path}: cannot read: {e.strerror or e}") from None
    except orjson.JSONDecodeError as e:
        raise DatasetInvalid(path, [f"$: not valid JSON: {e}"]) from None


def validate_coco_file(path: Path, gt: Path | None = None) -> str:
    """One line of what a valid file holds; raises DatasetInvalid listing every problem."""
    doc = _read_json(path)
    if isinstance(doc, list):
        return _results_summary(path, doc, gt)
    if gt is not None:
        raise AnnotError(f"--gt {gt}: {path} is a COCO dataset; --gt names the dataset of a results list")
    aps = _checked(path, doc)
    ap_text = ", ".join(f"{k} AP {v:.3f}" for k, v in aps.items()) or "no non-crowd annotations to evaluate"
    return (
        f"{len(doc['images'])} images, {len(doc['annotations'])} annotations, "
        f"{len(doc['categories'])} categories; {ap_text}"
    )
