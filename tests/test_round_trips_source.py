"""COCO -> X -> COCO for every writable format, compared with the SOURCE.

tests/test_round_trips.py compares a second pass with the first; a writer
that drops what it cannot write (every mask, say) passes that. Here the
dataset read back is compared with the generated source dataset, under what
each format documents it keeps (README "the matrix", the writers'
docstrings):

=========== ====================================================================
labelme     polygons, boxes, masks exactly; crowd regions as ``__ignore__``,
            read back (``--ignore-as-crowd``) as one crowd RLE per category
voc         every instance's bbox exactly; crowd as ``difficult=1``
yolo        boxes, or polygons when any instance is not a box, to 6 decimals
            of the image side; masks as their traced outer outline (holes
            dropped), one line per polygon; crowd regions not written
labelstudio rectangles (rotation kept), polygons (percent, float error only),
            masks bit-exact; with ``--as predictions`` each region's score
coco        everything, scores and crowd included
=========== ====================================================================

Expected values come from the source dataset and pycocotools, never from a
second pass or from annot's own geometry helpers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from annot.cli import main

LABELS = ["zebra", "ant", "cat"]  # not sorted: ids must follow the labels, not the names' order
SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- the source datasets ------------------------------------------------------------------------

def rle_of(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def ellipse(H, W, cx, cy, rx, ry) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0


def measure(seg, H, W) -> tuple[float, list[float]]:
    """(area, bbox) as the COCO spec defines them: pycocotools' pixel count; a
    polygon's bbox is the envelope of its points, an RLE's ``toBbox``."""
    if isinstance(seg, dict):
        r = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        return float(mask_utils.area(r)), [float(v) for v in mask_utils.toBbox(r)]
    area = float(sum(mask_utils.area(mask_utils.frPyObjects(seg, H, W))))
    xs = [v for p in seg for v in p[0::2]]
    ys = [v for p in seg for v in p[1::2]]
    return area, [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def rotated(cx, cy, w, h, deg) -> list[float]:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    out = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out += [cx + dx * c - dy * s, cy + dx * s + dy * c]
    return out


KINDS = ("box", "polygon", "rotated", "multi", "disc", "ring")


@st.composite
def sources(draw, kinds=KINDS, crowd=False, scores=False):
    """1-3 images, 1-5 instances each: integer boxes, concave polygons with
    quarter-pixel vertices, rotated rectangles, two-polygon instances, disc
    masks and elliptic rings (masks with a hole) as RLE; optionally crowd
    regions (a mask or a polygon) and scores."""
    images, anns = [], []
    q = st.integers(0, 3).map(lambda k: k / 4)
    for i in range(draw(st.integers(1, 3))):
        W, H = draw(st.integers(24, 96)), draw(st.integers(24, 96))
        images.append({"id": i + 1, "file_name": f"img{i}.png", "width": W, "height": H})
        n = draw(st.integers(1, 5))
        for k in range(n):
            kind = draw(st.sampled_from(kinds))
            is_crowd = crowd and k == n - 1 and draw(st.booleans())
            x0, y0 = draw(st.integers(0, W - 12)), draw(st.integers(0, H - 12))
            x1, y1 = draw(st.integers(x0 + 8, W)), draw(st.integers(y0 + 8, H))
            if kind == "box":
                seg = [[x0, y0, x1, y0, x1, y1, x0, y1]]
            elif kind == "polygon":  # a concave pentagon: a box with a notch in its bottom edge
                xm, ym = (x0 + x1) / 2 + draw(q), (y0 + y1) / 2 + draw(q)
                seg = [[x0 + draw(q), y0 + draw(q), x1 - draw(q), y0, x1, y1, xm, ym, x0, y1]]
            elif kind == "rotated":
                side = min(x1 - x0, y1 - y0)  # corners within side / 2 of the centre: inside the image
                seg = [rotated((x0 + x1) / 2, (y0 + y1) / 2, side * 0.6, side * 0.35, draw(st.sampled_from([15.0, 30.0, 45.0, 60.0])))]
            elif kind == "multi":  # one instance of two triangles
                xm = (x0 + x1) / 2
                seg = [[x0, y0, xm - 1, y0, x0, y1], [xm + 1, y1, x1, y1, x1, y0 + 0.5]]
            else:
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
                m = ellipse(H, W, cx, cy, rx, ry)
                if kind == "ring":
                    m &= ~ellipse(H, W, cx, cy, rx / 2, ry / 2)
                seg = rle_of(m)
            area, bbox = measure(seg, H, W)
            if area == 0:
                continue
            a = {"id": len(anns) + 1, "image_id": i + 1, "category_id": draw(st.integers(1, 3)), "bbox": bbox,
                 "area": area, "iscrowd": int(is_crowd), "segmentation": seg}
            if scores:
                a["score"] = draw(st.floats(0.05, 1.0, allow_nan=False)) if draw(st.integers(0, 5)) else 1.0
            anns.append(a)
    return {"images": images, "annotations": anns,
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(LABELS)]}


# --- running the converters ---------------------------------------------------------------------

def run(*args):
    assert main([str(a) for a in args]) == 0, args


def write_inputs(tmp: Path, coco: dict) -> tuple[Path, Path, Path]:
    src, labels, images = tmp / "src.json", tmp / "labels.txt", tmp / "images"
    src.write_text(json.dumps(coco))
    labels.write_text("\n".join(LABELS) + "\n")
    images.mkdir(exist_ok=True)
    for im in coco["images"]:
        Image.new("RGB", (im["width"], im["height"])).save(images / im["file_name"])
    return src, labels, images


def through(tmp: Path, coco: dict, fmt: str, out_opts=(), in_opts=()) -> dict:
    """coco -> fmt -> coco; the COCO dict read back."""
    src, labels, images = write_inputs(tmp, coco)
    mid, back = tmp / f"mid_{fmt}", tmp / "back.json"
    if fmt in ("labelstudio", "coco"):
        mid = mid.with_suffix(".json")
    run("convert", "coco", fmt, src, "-o", mid, "-q", "--overwrite", *out_opts)
    opts = {"labelme": ("--labels", labels), "voc": ("--labels", labels), "yolo": ("--image-root", images),
            "labelstudio": ("--labels", labels, "--image-root", images), "coco": ()}[fmt]
    run("convert", fmt, "coco", mid, "-o", back, "-q", "--overwrite", *opts, *in_opts)
    run("validate", "coco", back, "-q")
    return json.loads(back.read_text())


# --- comparing with the source -------------------------------------------------------------------

def to_mask(seg, H, W) -> np.ndarray:
    if isinstance(seg, dict):
        counts = seg["counts"]
        r = {"size": seg["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        if isinstance(counts, list):
            r = mask_utils.frPyObjects(seg, H, W)
        return mask_utils.decode(r).astype(bool)
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, H, W))).astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = mask_utils.encode(np.asfortranarray(a.astype(np.uint8))), mask_utils.encode(np.asfortranarray(b.astype(np.uint8)))
    return float(mask_utils.iou([ra], [rb], [0])[0][0])


def same_ring(a: list[float], b: list[float], tol: float) -> bool:
    """The same closed polygon within ``tol`` px per coordinate, whatever the
    starting vertex and the direction."""
    pa, pb = np.reshape(a, (-1, 2)), np.reshape(b, (-1, 2))
    if pa.shape != pb.shape:
        return False
    for ring in (pb, pb[::-1]):
        for k in range(len(ring)):
            if np.allclose(np.roll(ring, k, axis=0), pa, rtol=0, atol=tol):
                return True
    return False


def box_ring(b) -> list[float]:
    x, y, w, h = b
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def per_image(coco: dict) -> dict:
    """file name -> (image, [annotation with category *name*]) in file order."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    out = {im["file_name"]: (im, []) for im in coco["images"]}
    by_id = {im["id"]: im["file_name"] for im in coco["images"]}
    for a in coco["annotations"]:
        out[by_id[a["image_id"]]][1].append({**a, "label": names[a["category_id"]]})
    return out


def check_images_and_categories(src: dict, back: dict):
    assert sorted((i["file_name"], i["width"], i["height"]) for i in back["images"]) == \
        sorted((i["file_name"], i["width"], i["height"]) for i in src["images"])
    assert [c["name"] for c in sorted(back["categories"], key=lambda c: c["id"])] == LABELS


def check_instance(s: dict, o: dict, H: int, W: int, fmt: str, where: str):
    """One source instance ``s`` against the instance read back ``o``."""
    assert o["label"] == s["label"], where
    assert o["iscrowd"] == s["iscrowd"], where
    assert o["area"] == float(mask_utils.area(mask_utils.merge(_rles(o["segmentation"], H, W)))), where  # spec's area
    seg = s["segmentation"]
    tol = {"yolo": 1e-6 * max(W, H),  # 6 decimals of cx and w/2: 0.75e-6 of the side
           "labelstudio": 1e-9}.get(fmt, 0.0)
    if isinstance(seg, dict):  # masks: pixel-exact in every format that keeps them
        assert isinstance(o["segmentation"], dict), where
        assert mask_iou(to_mask(seg, H, W), to_mask(o["segmentation"], H, W)) == 1.0, where
        assert o["bbox"] == pytest.approx(s["bbox"], abs=0), where
        assert o["area"] == s["area"], where
        return
    assert len(o["segmentation"]) == len(seg), where
    for p, q in zip(seg, o["segmentation"]):
        assert same_ring(p, q, tol), (where, p, q)
    assert o["bbox"] == pytest.approx(s["bbox"], abs=tol), where
    if tol == 0:
        assert o["area"] == s["area"], where


def _rles(seg, H, W):
    if isinstance(seg, dict):
        return [{"size": seg["size"], "counts": seg["counts"].encode("ascii")}]
    return mask_utils.frPyObjects(seg, H, W)


def check_plain(src: dict, back: dict, fmt: str, expect=lambda a: [a]):
    """Every image's instances, in order, against the source's (each source
    instance turned into what ``fmt`` keeps of it by ``expect``; a bbox it
    leaves None is measured from the instance's segmentation)."""
    check_images_and_categories(src, back)
    theirs = per_image(back)
    for name, (im, anns) in per_image(src).items():
        H, W = im["height"], im["width"]
        want = [e for a in anns for e in expect(a)]
        got = theirs[name][1]
        assert len(got) == len(want), (name, len(got), len(want))
        for k, (s, o) in enumerate(zip(want, got)):
            if s["bbox"] is None:
                s = {**s, "bbox": measure(s["segmentation"], H, W)[1]}
            check_instance(s, o, H, W, fmt, f"{name}[{k}]")


# --- the tests -----------------------------------------------------------------------------------

@SETTINGS
@given(coco=sources(crowd=True))
def test_labelme_keeps_the_source(tmp_path_factory, coco):
    tmp = tmp_path_factory.mktemp("lm")
    back = through(tmp, coco, "labelme", in_opts=("--ignore-as-crowd",))
    plain = {**back, "annotations": [a for a in back["annotations"] if not a["iscrowd"]]}
    src_plain = {**coco, "annotations": [a for a in coco["annotations"] if not a["iscrowd"]]}
    check_plain(src_plain, plain, "labelme")
    # each crowd region comes back once per category (README: COCOeval ignores it only in its own)
    theirs = per_image(back)
    for name, (im, anns) in per_image(coco).items():
        H, W = im["height"], im["width"]
        want = {to_mask(a["segmentation"], H, W).tobytes() for a in anns if a["iscrowd"]}
        got = {}
        for a in theirs[name][1]:
            if a["iscrowd"]:
                assert isinstance(a["segmentation"], dict)
                got.setdefault(a["label"], []).append(to_mask(a["segmentation"], H, W).tobytes())
        for label in LABELS if want else ():
            assert sorted(got.get(label, [])) == sorted(want), (name, label)
        assert not want and not got or set(got) == set(LABELS)


@SETTINGS
@given(coco=sources(crowd=True))
def test_voc_keeps_every_box_and_crowd(tmp_path_factory, coco):
    tmp = tmp_path_factory.mktemp("voc")
    back = through(tmp, coco, "voc", in_opts=("--difficult-as-crowd",))

    def as_box(a):
        b = [float(v) for v in a["bbox"]]
        area = float(mask_utils.area(mask_utils.frPyObjects([box_ring(b)], 10**4, 10**4))[0])
        return [{**a, "segmentation": [box_ring(b)], "bbox": b, "area": area}]

    check_plain(coco, back, "voc", as_box)


def _yolo_expect(segment: bool):
    def expect(a):
        if a["iscrowd"]:
            return []  # YOLO has no ignore regions
        if not segment:
            return [{**a, "segmentation": [box_ring(a["bbox"])]}]
        if isinstance(a["segmentation"], dict):
            return [{**a, "traced": True}]
        return [{**a, "segmentation": [p], "bbox": None} for p in a["segmentation"]]  # one line per polygon
    return expect


@SETTINGS
@given(coco=sources(crowd=True))
def test_yolo_keeps_polygons_and_mask_outlines(tmp_path_factory, coco):
    tmp = tmp_path_factory.mktemp("yolo")
    back = through(tmp, coco, "yolo", out_opts=("--simplify", "0"))  # masks traced exactly
    segment = any(isinstance(a["segmentation"], dict) or len(a["segmentation"]) > 1
                  or len(a["segmentation"][0]) != 8 or a["segmentation"][0][1] != a["segmentation"][0][3]
                  for a in coco["annotations"])
    assert [c["name"] for c in back["categories"]] == LABELS  # classes.txt order
    assert sorted((i["file_name"], i["width"], i["height"]) for i in back["images"]) == \
        sorted((i["file_name"], i["width"], i["height"]) for i in coco["images"])
    theirs = per_image(back)
    for name, (im, anns) in per_image(coco).items():
        H, W = im["height"], im["width"]
        want = [e for a in anns for e in _yolo_expect(segment)(a)]
        got = theirs[name][1]
        assert len(got) == len(want), (name, len(got), len(want))
        for k, (s, o) in enumerate(zip(want, got)):
            where = f"{name}[{k}]"
            if s.get("traced"):
                check_traced(s, o, H, W, where)
                continue
            if s["bbox"] is None:
                s = {**s, "area": None, "bbox": measure(s["segmentation"], H, W)[1]}
            check_instance(s, o, H, W, "yolo", where)


def check_traced(s: dict, o: dict, H: int, W: int, where: str):
    """A mask written as its traced outer outline (vertices on pixel corners,
    README): holes filled, and what it loses is the mask's own boundary pixels."""
    assert o["label"] == s["label"] and o["iscrowd"] == 0, where
    src = to_mask(s["segmentation"], H, W)
    filled = fill_holes(src)
    got = to_mask(o["segmentation"], H, W)
    band = neighbourhood(filled, any) & ~neighbourhood(filled, all)  # 8-neighbour boundary, both sides
    assert not ((got ^ filled) & ~band).any(), where  # differs only along the source's outline
    assert mask_iou(got, filled) > 0.5, where


def neighbourhood(m: np.ndarray, how) -> np.ndarray:
    """Pixels with any (``how=any``) or all (``how=all``) of their 3x3 neighbourhood in ``m``."""
    P, (H, W) = np.pad(m, 1), m.shape
    stack = [P[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.logical_or.reduce(stack) if how is any else np.logical_and.reduce(stack)


def fill_holes(m: np.ndarray) -> np.ndarray:
    """The mask with every background region not reaching the border filled."""
    H, W = m.shape
    outside = np.zeros((H + 2, W + 2), bool)
    bg = np.pad(~m, 1, constant_values=True)
    outside[0, :] = outside[-1, :] = outside[:, 0] = outside[:, -1] = True
    while True:
        grown = outside.copy()
        grown[1:, :] |= outside[:-1, :]
        grown[:-1, :] |= outside[1:, :]
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown &= bg
        if (grown == outside).all():
            return ~outside[1:-1, 1:-1]
        outside = grown


@SETTINGS
@given(coco=sources(kinds=("box",)))
def test_yolo_boxes_stay_boxes(tmp_path_factory, coco):
    """Boxes only: detect lines ``c cx cy w h``, read back within 6 decimals."""
    tmp = tmp_path_factory.mktemp("yolo_boxes")
    back = through(tmp, coco, "yolo", out_opts=("--simplify", "0"))  # masks traced exactly
    for f in (tmp / "mid_yolo").glob("img*.txt"):
        assert all(len(ln.split()) == 5 for ln in f.read_text().splitlines()), f
    check_plain(coco, back, "yolo")


def _ls_expect(a):
    if isinstance(a["segmentation"], dict) or len(a["segmentation"]) == 1:
        return [a]
    return [{**a, "segmentation": [p], "bbox": None, "area": None} for p in a["segmentation"]]


@SETTINGS
@given(coco=sources())
def test_labelstudio_keeps_the_source(tmp_path_factory, coco):
    tmp = tmp_path_factory.mktemp("ls")
    back = through(tmp, coco, "labelstudio")
    check_plain(coco, back, "labelstudio", _ls_expect)


@SETTINGS
@given(coco=sources(crowd=True, scores=True))
def test_coco_keeps_everything(tmp_path_factory, coco):
    tmp = tmp_path_factory.mktemp("coco")
    back = through(tmp, coco, "coco")
    assert [(c["id"], c["name"]) for c in back["categories"]] == [(c["id"], c["name"]) for c in coco["categories"]]
    check_plain(coco, back, "coco")
    assert [a.get("score") for a in back["annotations"]] == [a["score"] for a in coco["annotations"]]


@SETTINGS
@given(coco=sources(scores=True))
def test_labelstudio_predictions_carry_the_source_scores(tmp_path_factory, coco):
    """``--as predictions``: every region carries its instance's score, the
    task's prediction the mean of them; read back (``--predictions``) as a
    COCO results list with the source's geometry and scores."""
    tmp = tmp_path_factory.mktemp("lsp")
    src, labels, images = write_inputs(tmp, coco)
    mid = tmp / "mid.json"
    run("convert", "coco", "labelstudio", src, "-o", mid, "-q", "--overwrite", "--as", "predictions",
        "--model-version", "m7")
    tasks = json.loads(mid.read_text())
    by_file = per_image(coco)
    assert len(tasks) == len(coco["images"])
    for task, (name, (_, anns)) in zip(tasks, by_file.items()):
        assert task["data"]["image"] == f"/data/local-files/?d={name}"
        assert "annotations" not in task and len(task["predictions"]) == 1
        pred = task["predictions"][0]
        assert pred["model_version"] == "m7"
        scores = [a["score"] for a in anns]
        assert pred["score"] == pytest.approx(sum(scores) / len(scores) if scores else 0.0, abs=1e-12)
        want = [a["score"] for a in anns for _ in _ls_expect(a)]
        assert [r["score"] for r in pred["result"]] == want
        assert [r["value"][r["type"]] for r in pred["result"]] == [[a["label"]] for a in anns for _ in _ls_expect(a)]
    # Label Studio exports a task that someone opened with an (empty) annotation beside the
    # predictions; annot reads the predictions of such tasks (and those without one: the test below)
    for task in tasks:
        task["annotations"] = [{"id": 1, "result": []}]
    exported = tmp / "export.json"
    exported.write_text(json.dumps(tasks))
    back = tmp / "back.json"
    run("convert", "labelstudio", "coco", exported, "-o", back, "-q", "--overwrite", "--labels", labels,
        "--image-root", images, "--predictions")
    doc = json.loads(back.read_text())
    assert doc["annotations"] == []
    results = json.loads(back.with_name("back.predictions.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    files = {i["id"]: i["file_name"] for i in doc["images"]}
    got = {}
    for r in results:
        got.setdefault(files[r["image_id"]], []).append({**r, "label": names[r["category_id"]], "iscrowd": 0,
                                                          "area": r.get("area")})
    for name, (im, anns) in by_file.items():
        H, W = im["height"], im["width"]
        want = [e for a in anns for e in _ls_expect(a)]
        assert len(got.get(name, [])) == len(want), name
        for k, (s, o) in enumerate(zip(want, got.get(name, []))):
            assert o["score"] == s["score"], (name, k)
            if s["bbox"] is None:
                s = {**s, "bbox": measure(s["segmentation"], H, W)[1]}
            o = {**o, "area": measure(o["segmentation"], H, W)[0]}
            check_instance(s, o, H, W, "labelstudio", f"{name}[{k}]")


def test_labelstudio_predictions_only_tasks_read_back(tmp_path):
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [5, 5, 10, 10], "area": 100.0,
                             "iscrowd": 0, "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]], "score": 0.75}],
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(LABELS)]}
    src, labels, images = write_inputs(tmp_path, coco)
    run("convert", "coco", "labelstudio", src, "-o", tmp_path / "t.json", "-q", "--as", "predictions")
    run("convert", "labelstudio", "coco", tmp_path / "t.json", "-o", tmp_path / "b.json", "-q", "--labels", labels,
        "--image-root", images, "--predictions")
    results = json.loads((tmp_path / "b.predictions.json").read_text())
    assert [(r["bbox"], r["score"]) for r in results] == [([5.0, 5.0, 10.0, 10.0], 0.75)]


def test_yolo_never_turns_a_short_polygon_into_another_box(tmp_path):
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100.0,
                             "iscrowd": 0, "segmentation": [[5, 5, 15, 15]]}],
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(LABELS)]}
    back = through(tmp_path, coco, "yolo")
    for a in back["annotations"]:  # dropped, or kept inside the source instance's box
        x, y, w, h = a["bbox"]
        assert 5 <= x and 5 <= y and x + w <= 15 and y + h <= 15, a["bbox"]
