"""What the writers put in their files, checked against the tools that read
them and the real sample files (benchmarks/MUTATION.md: each test here kills
mutants that the round trips let live).

- labelme: the files annot writes are loaded by labelme's own reader
  (labelme 6.3.1, a dependency) and rasterised by labelme's
  ``shapes_to_label``; the pixels must be the source's.
- Pascal VOC: the raccoon dataset's labelImg XML, read and written back,
  gives the same elements, values and layout as the file labelImg wrote.
- YOLO, Label Studio, COCO: small hand-written inputs whose expected output
  follows from the format's definition, in tables.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES, load
from PIL import Image
from pycocotools import mask as mask_utils

RACCOON = SAMPLES / "datitran-raccoon_dataset/annotations"


def coco_file(tmp_path: Path, anns: list[dict], W=60, H=40, cats=("zebra", "ant", "cat"), images=None,
              name="in.json") -> Path:
    doc = {"images": images or [{"id": 1, "file_name": "sub/a.png", "width": W, "height": H}],
           "categories": [{"id": k + 1, "name": n} for k, n in enumerate(cats)],
           "annotations": [{"id": k + 1, "image_id": 1, "iscrowd": 0, **a} for k, a in enumerate(anns)]}
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def rle(m: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


def poly_ann(cat, poly, **kw):
    xs, ys = poly[0::2], poly[1::2]
    return {"category_id": cat, "segmentation": [poly], "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
            "area": 1.0, **kw}


def mask_ann(cat, m, **kw):
    r = rle(m)
    rb = {"size": r["size"], "counts": r["counts"].encode()}
    return {"category_id": cat, "segmentation": r, "bbox": [float(v) for v in mask_utils.toBbox(rb)],
            "area": float(mask_utils.area(rb)), **kw}


def disc(H, W, cx, cy, r, hole=0.0):
    yy, xx = np.mgrid[:H, :W]
    d = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2
    return (d <= r * r) & (d > hole * hole)


# --- labelme: what labelme itself reads -------------------------------------------------------------

def test_labelme_files_load_in_labelme_with_the_source_pixels(convert, tmp_path):
    """Masks (one with a hole), a triangle, a box, two two-polygon instances
    of one label and a crowd region shared by two categories, written for
    images under --image-root: labelme's own reader accepts every file (it
    checks imagePath and the declared size against the image), and its
    rasteriser gives back the source's pixels, instance by instance."""
    from labelme._label_file import read_label_file
    from labelme.utils.shape import shapes_to_label

    W, H = 60, 40
    ring = disc(H, W, 20, 20, 12, hole=5)
    blob = disc(H, W, 45, 12, 6)
    crowd = np.zeros((H, W), bool)
    crowd[30:38, 40:58] = True
    crowd2 = np.zeros((H, W), bool)
    crowd2[0:4, 0:30] = True
    anns = [
        mask_ann(1, ring),
        mask_ann(1, crowd, iscrowd=1),
        mask_ann(2, crowd, iscrowd=1),  # the same region in another category: one __ignore__ shape
        poly_ann(2, [2, 2, 14, 3, 8, 11]),
        poly_ann(3, [30, 30, 50, 30, 50, 38, 30, 38]),  # an axis-aligned box: a labelme rectangle
        {**poly_ann(2, [40, 2, 44, 2, 42, 6]), "segmentation": [[40, 2, 44, 2, 42, 6], [50, 2, 54, 2, 52, 6]]},
        {**poly_ann(2, [40, 20, 44, 20, 42, 24]), "segmentation": [[40, 20, 44, 20, 42, 24], [50, 20, 54, 20, 52, 24]]},
        mask_ann(3, blob),
        mask_ann(3, crowd2, iscrowd=1),
        {**poly_ann(1, BOX), "segmentation": [], "bbox": [12.5, 8, 20, 10]},  # no segmentation: its box
        {**poly_ann(3, BOX), "segmentation": [[2, 30, 8, 30, 8, 36, 2, 36], [10, 30, 14, 30, 12, 36]]},
    ]
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (W, H)).save(root / "sub/a.png")
    out = convert("coco", "labelme", coco_file(tmp_path, anns), extra=("--image-root", root))
    (f,) = sorted(out.rglob("*.json"))
    assert f.relative_to(out) == Path("sub/a.json")
    doc = json.loads(f.read_text())
    assert doc["version"].split(".")[0] in ("4", "5")  # a format version labelme 5.x / 6.x reads
    assert (doc["imageWidth"], doc["imageHeight"], doc["imageData"], doc["flags"]) == (W, H, None, {})
    assert doc["imagePath"] == "../../images/sub/a.png"  # relative to the JSON file
    data = read_label_file(str(f))  # raises when imagePath does not lead to the image or the size is wrong
    shapes = data.shapes
    assert [(s["label"], s["shape_type"]) for s in shapes] == [
        ("zebra", "mask"), ("__ignore__", "mask"), ("ant", "polygon"), ("cat", "rectangle"), ("ant", "polygon"),
        ("ant", "polygon"), ("ant", "polygon"), ("ant", "polygon"), ("cat", "mask"), ("__ignore__", "mask"),
        ("zebra", "rectangle"), ("cat", "rectangle"), ("cat", "polygon")]
    assert all(s["description"] == "" and s["flags"] == {} for s in shapes)
    # the keys labelme 5.x / 6.x writes for every shape, no others
    assert all(set(s) == {"label", "points", "group_id", "description", "shape_type", "flags", "mask"}
               for s in doc["shapes"])
    assert [s["points"] for s in shapes[2:4]] == [[[2, 2], [14, 3], [8, 11]], [[30, 30], [50, 38]]]
    assert shapes[10]["points"] == [[12.5, 8], [32.5, 18]]
    # the two multi-polygon instances: one group each, different groups
    groups = [s["group_id"] for s in shapes]
    assert groups[4] == groups[5] and groups[6] == groups[7] and groups[4] != groups[6]
    assert None not in groups[4:8] and groups[:4] == [None] * 4 and groups[8:11] == [None] * 3
    assert groups[11] == groups[12] and groups[11] is not None and groups[11] not in (groups[4], groups[6])
    names = {"__ignore__": 4, "zebra": 1, "ant": 2, "cat": 3}

    def pixels(k):
        cls, _ = shapes_to_label((H, W), [shapes[k]], names)
        return cls > 0

    assert (pixels(0) == ring).all()
    assert (pixels(1) == crowd).all()
    assert (pixels(8) == blob).all()
    assert (pixels(9) == crowd2).all()


def test_labelme_image_path_without_image_root(convert, tmp_path):
    """Without --image-root the JSON names the image beside it."""
    out = convert("coco", "labelme", coco_file(tmp_path, [poly_ann(1, [1, 1, 9, 1, 5, 7])]))
    assert json.loads((out / "sub/a.json").read_text())["imagePath"] == "a.png"


# --- Pascal VOC: the layout labelImg writes ---------------------------------------------------------

def _elements(root: ET.Element):
    """(path, text, tail) of every element below the root, in document order."""
    out = []

    def walk(el, path):
        for child in el:
            p = f"{path}/{child.tag}"
            out.append((p, child.text, child.tail))
            walk(child, p)

    walk(root, "")
    return out


@pytest.mark.samples
def test_voc_written_like_labelimg_writes_it(convert, tmp_path):
    """The raccoon dataset's labelImg files -> COCO -> VOC: every element,
    value and whitespace of the original, but ``folder`` and ``path`` (the
    author's desktop; annot writes the COCO file name), ``truncated`` and
    ``depth`` (COCO keeps neither: written 0 and 3)."""
    coco = convert("voc", "coco", RACCOON)
    out = convert("coco", "voc", coco)
    files = sorted(RACCOON.glob("*.xml"))
    assert len(files) == 200 and len(list(out.glob("*.xml"))) == 200
    for src in files:
        a, b = ET.parse(src).getroot(), ET.parse(out / src.name).getroot()
        lost = {"/object/truncated": "0", "/size/depth": "3"}
        want = [(p, lost.get(p, t), tail) for p, t, tail in _elements(a) if p not in ("/folder", "/path")]
        got = [e for e in _elements(b) if e[0] not in ("/folder", "/path")]
        assert got == want, src.name
        assert b.findtext("path") == b.findtext("filename") == a.findtext("filename")
        assert b.findtext("folder") == ""


@pytest.mark.samples
def test_voc_bytes_are_labelimgs_for_a_non_ascii_label(convert, tmp_path):
    """labelImg's layout byte for byte (no XML declaration, tab indents, UTF-8
    text, as in the raccoon files), here for labelImg's own test image name
    and a non-ASCII label."""
    name = "臉書.jpg"
    assert (SAMPLES / "HumanSignal-labelImg/tests" / name).is_file()
    images = [{"id": 1, "file_name": name, "width": 30, "height": 20}]
    ann = {**poly_ann(1, [0, 0, 1, 0, 0, 1]), "bbox": [2, 3, 10, 5], "segmentation": []}
    out = convert("coco", "voc", coco_file(tmp_path, [ann], images=images, cats=("臉",)))
    raw = (out / "臉書.xml").read_bytes()
    sample = (RACCOON / "raccoon-1.xml").read_text(encoding="utf-8")
    want = (sample.replace('<annotation verified="yes">', "<annotation>")
            .replace("<folder>images</folder>", "<folder />")
            .replace("<path>/Users/datitran/Desktop/raccoon/images/raccoon-1.jpg</path>", f"<path>{name}</path>")
            .replace("raccoon-1.jpg", name).replace("raccoon", "臉")
            .replace("<width>650</width>", "<width>30</width>").replace("<height>417</height>", "<height>20</height>")
            .replace("<xmin>81</xmin>", "<xmin>2</xmin>").replace("<ymin>88</ymin>", "<ymin>3</ymin>")
            .replace("<xmax>522</xmax>", "<xmax>12</xmax>").replace("<ymax>408</ymax>", "<ymax>8</ymax>"))
    assert raw.rstrip(b"\n") == want.encode("utf-8").rstrip(b"\n")


@pytest.mark.parametrize("convention, box, want", [
    ("continuous", [10, 5, 20, 8], ("10", "5", "30", "13")),
    ("voc1", [10, 5, 20, 8], ("11", "6", "30", "13")),  # 1-based inclusive pixel indices
    ("continuous", [10.5, 5.25, 20, 8], ("10.5", "5.25", "30.5", "13.25")),  # no rounding
])
def test_voc_box_conventions(convert, tmp_path, convention, box, want):
    ann = {**poly_ann(2, [0, 0, 1, 0, 0, 1]), "bbox": box, "segmentation": [], "iscrowd": 1}
    out = convert("coco", "voc", coco_file(tmp_path, [ann]), extra=("--pixel-convention", convention))
    obj = ET.parse(out / "sub/a.xml").getroot().find("object")
    assert tuple(obj.find("bndbox").findtext(t) for t in ("xmin", "ymin", "xmax", "ymax")) == want
    assert (obj.findtext("name"), obj.findtext("difficult")) == ("ant", "1")
    root = ET.parse(out / "sub/a.xml").getroot()
    assert [root.findtext(t) for t in ("folder", "filename", "path")] == ["sub", "a.png", "sub/a.png"]


# --- YOLO -------------------------------------------------------------------------------------------

TRI = [6, 4, 30, 4, 18, 20]
BOX = [12, 8, 36, 8, 36, 28, 12, 28]
ROT = [30.0, 10.0, 40.0, 20.0, 30.0, 30.0, 20.0, 20.0]  # a square turned 45 degrees


@pytest.mark.parametrize("segs, segment", [
    ([[BOX]], False),
    ([[BOX], [[0, 0, 10, 0, 10, 10, 0, 10]]], False),
    ([[BOX], [TRI]], True),
    ([[BOX], [ROT]], True),  # a rectangle, but not axis-aligned
    ([[BOX, [0, 0, 10, 0, 10, 10, 0, 10]]], True),  # two polygons in one instance
    ([[BOX], "mask"], True),
    ([[BOX], [[0, 0, 10, 0, 10, 10, 5, 10]]], True),  # 4 points, not a rectangle
])
def test_yolo_detect_or_segment(convert, tmp_path, segs, segment):
    W, H = 60, 40
    anns = []
    for s in segs:
        if s == "mask":
            anns.append(mask_ann(1, disc(H, W, 40, 20, 6)))
        else:
            anns.append({**poly_ann(1, s[0]), "segmentation": s})
    out = convert("coco", "yolo", coco_file(tmp_path, anns))
    lines = (out / "sub/a.txt").read_text().splitlines()
    assert all((len(ln.split()) == 5) != segment for ln in lines), lines
    if not segment:
        assert lines[0] == "0 0.400000 0.450000 0.400000 0.500000"  # centre (24, 18), size 24 x 20 of 60 x 40
    else:
        assert lines[0] == "0 " + " ".join(f"{v / (W if i % 2 == 0 else H):.6f}" for i, v in enumerate(BOX))


def test_yolo_classes_and_crowd(convert, tmp_path):
    anns = [poly_ann(3, TRI), poly_ann(2, BOX, iscrowd=1), poly_ann(1, BOX)]
    out = convert("coco", "yolo", coco_file(tmp_path, anns))
    assert (out / "classes.txt").read_text() == "zebra\nant\ncat\n"
    lines = (out / "sub/a.txt").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["2", "0"]  # class index = category position; crowd not written


# --- Label Studio -----------------------------------------------------------------------------------

def test_labelstudio_predictions_scores_and_model_version(convert, tmp_path):
    anns = [poly_ann(1, BOX, score=0.25), poly_ann(2, TRI, score=0.75), poly_ann(3, ROT)]
    tasks = load(convert("coco", "labelstudio", coco_file(tmp_path, anns), extra=("--as", "predictions")))
    (pred,) = tasks[0]["predictions"]
    assert pred["model_version"] == "annot" and pred["score"] == 0.5  # mean of the scores given
    assert [r.get("score") for r in pred["result"]] == [0.25, 0.75, None]
    assert all(r["image_rotation"] == 0 for r in pred["result"])
    assert [r["id"] for r in pred["result"]] == ["a1", "a2", "a3"]
    rot = pred["result"][2]["value"]
    assert rot["rotation"] == pytest.approx(45.0) and rot["x"] == pytest.approx(50.0) and rot["y"] == pytest.approx(25.0)
    assert rot["width"] == pytest.approx(100 * 200 ** 0.5 / 60) and rot["height"] == pytest.approx(100 * 200 ** 0.5 / 40)
    none = load(convert("coco", "labelstudio", coco_file(tmp_path, [poly_ann(1, BOX)], name="n.json"),
                        extra=("--as", "predictions")))
    assert none[0]["predictions"][0]["score"] == 0.0  # no region scored


def test_labelstudio_keypoints_and_split_polygons(convert, tmp_path):
    """Keypoints become keypointlabels regions linked to their region, in
    percent, of width 0.5; invisible ones (v = 0) are not written. An
    instance of two polygons becomes two regions, a<id> and a<id>-1."""
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 100}],
           "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "eye"]}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 40, 40], "area": 1600,
                "segmentation": [[10, 10, 50, 10, 50, 50, 10, 50]], "keypoints": [20, 30, 2, 0, 0, 0],
                "num_keypoints": 1},
               {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [100, 0, 60, 50], "area": 100,
                "segmentation": [[100, 0, 120, 0, 110, 20], [140, 30, 160, 30, 150, 50]]}]}
    p = tmp_path / "kp.json"
    p.write_text(json.dumps(doc))
    (task,) = load(convert("coco", "labelstudio", p))
    res = task["annotations"][0]["result"]
    assert [(r["id"], r["type"]) for r in res] == [
        ("a1", "rectanglelabels"), ("a1-kp0", "keypointlabels"), ("a2", "polygonlabels"), ("a2-1", "polygonlabels")]
    kp = res[1]
    assert kp["parentID"] == "a1" and kp["from_name"] == "keypoints" and kp["to_name"] == "image"
    assert set(kp) == {"id", "type", "parentID", "from_name", "to_name", "value", "original_width",
                       "original_height", "image_rotation"}
    assert kp["value"] == {"x": 10.0, "y": 30.0, "width": 0.5, "keypointlabels": ["nose"]}
    assert res[3]["value"]["points"] == [[70.0, 30.0], [80.0, 30.0], [75.0, 50.0]]


@pytest.mark.parametrize("extra, image, want", [
    ((), {}, "/data/local-files/?d=d/a.png"),
    ((), {"coco_url": "s3://b/a.png"}, "s3://b/a.png"),
    (("--image-url-prefix", "https://h/i/"), {"coco_url": "s3://b/a.png"}, "https://h/i/d/a.png"),
])
def test_labelstudio_image_urls(convert, tmp_path, extra, image, want):
    images = [{"id": 1, "file_name": "d/a.png", "width": 60, "height": 40, **image}]
    tasks = load(convert("coco", "labelstudio", coco_file(tmp_path, [poly_ann(1, TRI)], images=images), extra=extra))
    assert tasks[0]["data"]["image"] == want


# --- COCO -------------------------------------------------------------------------------------------

def test_coco_writer_drops_short_polygons(annot, tmp_path):
    """Polygons of fewer than 3 points are dropped (pycocotools would read 4
    numbers as a box), with a counted warning."""
    anns = [{**poly_ann(1, TRI), "segmentation": [TRI, [1, 1, 5, 5]]}]
    res = annot("convert", "coco", "coco", coco_file(tmp_path, anns), "-o", tmp_path / "o.json")
    assert res.code == 0 and "polygons with fewer than 3 points dropped" in res.out + res.err, res
    assert load(tmp_path / "o.json")["annotations"][0]["segmentation"] == [TRI]


def test_predictions_file_is_written_and_named(annot, tmp_path):
    """Label Studio predictions read with --predictions: OUT and
    <OUT stem>.predictions.json, both named in the summary, the results
    readable by pycocotools' loadRes against OUT."""
    from pycocotools.coco import COCO

    task = {"id": 7, "data": {"image": "/data/local-files/?d=a.png"}, "annotations": [{"id": 1, "result": []}],
            "predictions": [{"model_version": "m", "score": 0.5, "result": [
                {"id": "r1", "type": "polygonlabels", "from_name": "label", "to_name": "image",
                 "original_width": 200, "original_height": 100, "score": 0.9,
                 "value": {"points": [[10, 10], [30, 10], [20, 40]], "polygonlabels": ["car"]}}]}]}
    src = tmp_path / "ls.json"
    src.write_text(json.dumps([task]))
    (tmp_path / "img").mkdir()
    Image.new("RGB", (200, 100)).save(tmp_path / "img/a.png")
    res = annot("convert", "labelstudio", "coco", src, "-o", tmp_path / "b.json", "--predictions",
                "--image-root", tmp_path / "img")
    assert res.code == 0 and "b.predictions.json" in res.out, res
    again = annot("convert", "labelstudio", "coco", src, "-o", tmp_path / "b.json", "--predictions",
                  "--image-root", tmp_path / "img", "--overwrite")  # replaces both files
    assert again.code == 0, again
    gt = COCO(str(tmp_path / "b.json"))
    dt = gt.loadRes(str(tmp_path / "b.predictions.json"))
    (d,) = dt.loadAnns(dt.getAnnIds())
    assert d["score"] == 0.9 and d["segmentation"] == [[20.0, 10.0, 60.0, 10.0, 40.0, 40.0]]
    assert d["bbox"] == [20.0, 10.0, 40.0, 30.0] and d["image_id"] == gt.getImgIds()[0]


# --- every writer: output files, folders, --overwrite -----------------------------------------------

WRITTEN = {"labelme": "d1/d2/a.json", "voc": "d1/d2/a.xml", "yolo": "d1/d2/a.txt", "labelstudio": None, "coco": None}


@pytest.mark.parametrize("fmt", sorted(WRITTEN))
def test_writers_nest_folders_and_overwrite_only_when_asked(annot, tmp_path, fmt):
    """A file name two folders deep is written two folders deep; an existing
    OUT is an error without --overwrite (and stays as it was), replaced with it."""
    images = [{"id": 1, "file_name": "d1/d2/a.png", "width": 60, "height": 40}]
    first = coco_file(tmp_path, [poly_ann(1, TRI)], images=images, name="first.json")
    second = coco_file(tmp_path, [poly_ann(2, BOX)], images=images, name="second.json")
    out = tmp_path / ("out.json" if WRITTEN[fmt] is None else "out")
    assert annot("convert", "coco", fmt, first, "-o", out, "-q").code == 0
    if WRITTEN[fmt]:
        assert (out / WRITTEN[fmt]).is_file()
    before = sorted((p.relative_to(tmp_path), p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
    res = annot("convert", "coco", fmt, second, "-o", out, "-q")
    assert res.code != 0 and "overwrite" in res.err, res
    assert sorted((p.relative_to(tmp_path), p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()) == before
    assert annot("convert", "coco", fmt, second, "-o", out, "-q", "--overwrite").code == 0
    back = tmp_path / "back.json"
    extra = {"yolo": ("--image-root", tmp_path / "img"), "labelstudio": ("--image-root", tmp_path / "img")}.get(fmt, ())
    (tmp_path / "img/d1/d2").mkdir(parents=True)
    Image.new("RGB", (60, 40)).save(tmp_path / "img/d1/d2/a.png")
    assert annot("convert", fmt, "coco", out, "-o", back, "-q", *extra).code == 0
    doc = load(back)
    assert [c["name"] for c in doc["categories"] if c["id"] == doc["annotations"][0]["category_id"]] == ["ant"]


def test_labelme_writer_counts_keypoints_it_cannot_write(annot, tmp_path):
    ann = {**poly_ann(1, TRI), "keypoints": [10, 10, 2], "num_keypoints": 1}
    res = annot("convert", "coco", "labelme", coco_file(tmp_path, [ann]), "-o", tmp_path / "lm")
    assert res.code == 0 and "keypoints not written to labelme" in res.out + res.err, res


def test_labelme_files_are_indented_like_labelme_writes_them(convert, tmp_path):
    text = (convert("coco", "labelme", coco_file(tmp_path, [poly_ann(1, TRI)])) / "sub/a.json").read_text()
    assert text.splitlines()[1].startswith('  "') and not text.splitlines()[1].startswith('   ')


# --- Label Studio: each geometry into each kind of control tag ---------------------------------------

def _config(tmp_path: Path, tag: str) -> Path:
    p = tmp_path / f"{tag}.xml"
    p.write_text(f'<View><Image name="image" value="$image"/><{tag} name="ctl" toName="image">'
                 '<Label value="zebra"/></' + tag + '></View>')
    return p


def _brush_mask(region, H, W):
    from label_studio_sdk.converter.brush import decode_rle

    return decode_rle(region["value"]["rle"]).reshape(H, W, 4)[:, :, 3] >= 128


def _raster(polys, H, W):
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, H, W))).astype(bool)


@pytest.mark.parametrize("geometry", ["box", "rotated", "triangle", "two", "bbox_only", "mask"])
@pytest.mark.parametrize("tag", ["RectangleLabels", "PolygonLabels", "BrushLabels"])
def test_labelstudio_routes_every_geometry_to_every_control(convert, tmp_path, tag, geometry):
    """What Label Studio receives when the config has a single control kind:
    RectangleLabels get the instance's box (a rectangle keeps its rotation),
    PolygonLabels the polygons (a mask's traced outline, within its boundary
    pixels), BrushLabels the rasterised region (bit-exact, decoded with the
    SDK). Checked against the source geometry and pycocotools."""
    W, H = 60, 40
    m = disc(H, W, 30, 20, 9)
    src = {"box": poly_ann(1, BOX), "rotated": poly_ann(1, ROT), "triangle": poly_ann(1, TRI),
           "two": {**poly_ann(1, TRI), "segmentation": [TRI, [40, 30, 50, 30, 45, 38]], "bbox": [6, 4, 44, 34]},
           "bbox_only": {**poly_ann(1, BOX), "segmentation": []},
           "mask": mask_ann(1, m)}[geometry]
    tasks = load(convert("coco", "labelstudio", coco_file(tmp_path, [src]),
                         extra=("--label-config", _config(tmp_path, tag), "--simplify", "0")))
    res = tasks[0]["annotations"][0]["result"]
    kind = tag.lower()
    assert {r["type"] for r in res} == {kind} and all(r["from_name"] == "ctl" for r in res)
    assert all(r[k] == v for r in res for k, v in (("to_name", "image"), ("original_width", W),
                                                    ("original_height", H), ("image_rotation", 0)))
    assert all(r["value"][kind] == ["zebra"] for r in res)
    seg = src["segmentation"] or [[6 + 0.0, 4, 30, 4, 30, 20, 6, 20]]
    if geometry == "bbox_only":
        seg = [BOX]
    if tag == "RectangleLabels":
        (r,) = res
        x, y, w, h = src["bbox"]
        want = (x, y, w, h, 0.0)
        if geometry == "rotated":
            want = (30.0, 10.0, 200 ** 0.5, 200 ** 0.5, 45.0)
        v = r["value"]
        got = (v["x"] * W / 100, v["y"] * H / 100, v["width"] * W / 100, v["height"] * H / 100, v["rotation"])
        assert got == pytest.approx(want, abs=1e-9)
    elif tag == "PolygonLabels":
        assert all(r["value"]["closed"] is True for r in res)
        polys = [[c for x, y in r["value"]["points"] for c in (x * W / 100, y * H / 100)] for r in res]
        if geometry == "mask":
            got = _raster(polys, H, W)
            assert len(polys) == 1 and not ((got ^ m) & ~(_grow(m) & ~_shrink(m))).any()
        else:
            assert len(polys) == len(seg)
            for p, q in zip(polys, seg):
                assert p == pytest.approx(q, abs=1e-9)
        assert [r["id"] for r in res] == ["a1", "a1-1"][: len(res)]
    else:
        (r,) = res
        assert r["value"]["format"] == "rle"
        want = m if geometry == "mask" else _raster(seg, H, W)
        assert (_brush_mask(r, H, W) == want).all()


def _grow(m):
    P, (H, W) = np.pad(m, 1), m.shape
    return np.logical_or.reduce([P[1 + a : 1 + a + H, 1 + b : 1 + b + W] for a in (-1, 0, 1) for b in (-1, 0, 1)])


def _shrink(m):
    return ~_grow(~m)


@pytest.mark.parametrize("fmt", ["yolo", "labelstudio"])
def test_simplify_keeps_a_subset_of_the_traced_corners(convert, tmp_path, fmt):
    """--simplify px: the traced outline of a mask loses corners (Douglas-Peucker
    keeps a subset of them), each dropped corner within the tolerance of the result."""
    W, H = 60, 40
    m = disc(H, W, 30, 20, 15)
    src = coco_file(tmp_path, [mask_ann(1, m)])
    cfg = ("--label-config", _config(tmp_path, "PolygonLabels")) if fmt == "labelstudio" else ()

    def corners(*extra):
        out = convert("coco", fmt, src, extra=(*cfg, *extra))
        if fmt == "yolo":
            (ln,) = (out / "sub/a.txt").read_text().splitlines()
            v = [float(t) for t in ln.split()[1:]]
            return [(round(v[i] * W, 3), round(v[i + 1] * H, 3)) for i in range(0, len(v), 2)]
        (r,) = load(out)[0]["annotations"][0]["result"]
        return [(round(x * W / 100, 3), round(y * H / 100, 3)) for x, y in r["value"]["points"]]

    full, simple = corners("--simplify", "0"), corners("--simplify", "1.5")
    assert 3 <= len(simple) < len(full) and set(simple) <= set(full)
    assert len(corners("--simplify", "0.5")) < len(full)  # a tolerance under 1 px simplifies too


def test_yolo_traces_a_three_corner_mask(convert, tmp_path):
    """A staircase triangle of pixels traces to 3 corners: still a polygon."""
    W, H = 40, 40
    m = np.tril(np.ones((20, 20), bool))
    full = np.zeros((H, W), bool)
    full[5:25, 5:25] = m
    out = convert("coco", "yolo", coco_file(tmp_path, [mask_ann(1, full)], W=W, H=H))
    (ln,) = (out / "sub/a.txt").read_text().splitlines()
    assert len(ln.split()) == 1 + 6


def test_labelstudio_annotations_carry_no_scores(convert, tmp_path):
    tasks = load(convert("coco", "labelstudio", coco_file(tmp_path, [poly_ann(1, TRI, score=0.5)])))
    assert "score" not in tasks[0]["annotations"][0]["result"][0]


# --- geometry through the writers: what is a rectangle ----------------------------------------------

FOUR = {
    "rhombus": ([20, 5, 35, 20, 20, 35, 5, 20], "rectangle"),  # a square turned 45 degrees: it is a rectangle
    "parallelogram": ([10, 10, 40, 10, 50, 30, 20, 30], None),  # equal opposite sides, no right angle
    "kite": ([20, 5, 30, 15, 20, 35, 10, 15], None),
    "trapezoid": ([10, 10, 40, 10, 50, 30, 0, 30], None),
    "ccw_rotated": ([30.0, 10.0, 20.0, 20.0, 30.0, 30.0, 40.0, 20.0], "rectangle"),  # ROT, counter-clockwise
    "axis_ccw": ([12, 8, 12, 28, 36, 28, 36, 8], "rectangle"),
    "cw_30": ([20.0, 10.0, 37.32050807568877, 20.0, 33.32050807568877, 26.92820323027551, 16.0, 16.92820323027551],
              "rectangle"),  # 20 x 8 turned 30 degrees clockwise on screen about (20, 10)
    "ccw_30": ([20.0, 10.0, 16.0, 16.92820323027551, 33.32050807568877, 26.92820323027551, 37.32050807568877, 20.0],
               "rectangle"),
}


@pytest.mark.parametrize("name", sorted(FOUR))
def test_four_point_polygons_keep_their_corners(convert, tmp_path, name):
    """Label Studio gets a rectangle only for real rectangles; read back,
    every polygon has the source's corners (any start and direction)."""
    poly, kind = FOUR[name]
    src = coco_file(tmp_path, [poly_ann(1, poly)])
    tasks = load(convert("coco", "labelstudio", src))
    (r,) = tasks[0]["annotations"][0]["result"]
    assert r["type"] == (kind or "polygon") + "labels"
    for fmt, extra in (("labelstudio", ()), ("labelme", ())):
        back = load(convert(fmt, "coco", convert("coco", fmt, src), extra=extra))
        (got,) = back["annotations"][0]["segmentation"]
        ring = np.reshape(got, (-1, 2))
        want = np.reshape(poly, (-1, 2)).astype(float)
        assert len(ring) == len(want), (fmt, got)
        assert any(np.allclose(np.roll(r_, k, axis=0), want, atol=1e-9)
                   for r_ in (ring, ring[::-1]) for k in range(4)), (fmt, got)


@pytest.mark.parametrize("r", [0.5, 1.0, 1.2, 2.0, 7.5, 40.0])
def test_labelme_circles_are_multiples_of_four_with_the_circles_bbox(convert, tmp_path, r):
    """README: circles become polygons whose vertex count is a multiple of 4,
    so the bbox is the circle's exactly, within 1 px of the circle."""
    W = H = 100
    doc = {"version": "5.3.1", "flags": {}, "imagePath": "c.png", "imageData": None, "imageHeight": H,
           "imageWidth": W, "shapes": [{"label": "zebra", "points": [[50.5, 50.5], [50.5 + r, 50.5]], "group_id": None,
                                        "shape_type": "circle", "flags": {}}]}
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm/c.json").write_text(json.dumps(doc))
    coco = load(convert("labelme", "coco", tmp_path / "lm"))
    (a,) = coco["annotations"]
    (p,) = a["segmentation"]
    assert (len(p) // 2) % 4 == 0 and len(p) >= 16
    assert a["bbox"] == pytest.approx([50.5 - r, 50.5 - r, 2 * r, 2 * r], abs=1e-9)
    pts = np.reshape(p, (-1, 2)) - 50.5
    assert np.allclose(np.hypot(pts[:, 0], pts[:, 1]), r)
    mid = (pts + np.roll(pts, -1, axis=0)) / 2  # chord midpoints: the farthest points from the circle
    assert (r - np.hypot(mid[:, 0], mid[:, 1])).max() <= 1.0 + 1e-9


@pytest.mark.parametrize("names, config, want", [
    (None, None, ["kp0", "kp2"]),  # a category without keypoint names: kp<index>
    (["nose", "eye", "ear"], None, ["nose", "ear"]),
    (["nose", "eye", "ear"], '<KeyPointLabels name="kps" toName="image"><Label value="ear"/></KeyPointLabels>', ["ear"]),
    (["nose", "eye", "ear"], "", []),  # no KeyPointLabels: skipped, with a warning
])
def test_labelstudio_keypoint_names_and_controls(annot, tmp_path, names, config, want):
    cat = {"id": 1, "name": "zebra", **({"keypoints": names} if names else {})}
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 100}], "categories": [cat],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 40, 40],
                            "area": 1600, "segmentation": [[10, 10, 50, 10, 50, 50, 10, 50]],
                            "keypoints": [20, 30, 2, 0, 0, 0, 40, 10, 1], "num_keypoints": 2}]}
    p = tmp_path / "kp.json"
    p.write_text(json.dumps(doc))
    extra = ()
    if config is not None:
        cfg = tmp_path / "cfg.xml"
        cfg.write_text('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
                       f'<Label value="zebra"/></RectangleLabels>{config}</View>')
        extra = ("--label-config", cfg)
    res = annot("convert", "coco", "labelstudio", p, "-o", tmp_path / "o.json", *extra)
    assert res.code == 0, res
    (task,) = load(tmp_path / "o.json")
    kps = [r for r in task["annotations"][0]["result"] if r["type"] == "keypointlabels"]
    assert [r["value"]["keypointlabels"] for r in kps] == [[n] for n in want]
    pos = {"kp0": (10.0, 30.0), "nose": (10.0, 30.0), "kp2": (20.0, 10.0), "ear": (20.0, 10.0)}
    assert [(r["value"]["x"], r["value"]["y"]) for r in kps] == [pos[n] for n in want]
    assert all(r["parentID"] == "a1" and r["value"]["width"] == 0.5 for r in kps)
    index = {"kp0": 0, "nose": 0, "kp2": 2, "ear": 2}
    assert [r["id"] for r in kps] == [f"a1-kp{index[n]}" for n in want]
    if config is not None:
        assert all(r["from_name"] == "kps" for r in kps)
    skipped = len(want) < 2  # two keypoints are visible (v > 0)
    assert ("keypoint with no KeyPointLabels control skipped" in res.out + res.err) == skipped


# --- labelImg readers: what labelImg and other tools leave out ---------------------------------------

def _voc_xml(objects: str, filename="<filename>x.jpg</filename>", size="<size><width>80</width><height>60</height></size>"):
    return f"<annotation>{filename}{size}{objects}</annotation>"


BOX_OBJ = "<object><name>ant</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object>"


@pytest.mark.parametrize("case", ["no_filename", "no_size_jpegimages", "no_size_images", "width_only", "image_root"])
def test_voc_reader_fills_in_name_and_size(convert, tmp_path, case):
    """No <filename>: the XML's name with .jpg; no (complete) <size>: the
    image's, found beside the XML or in ../JPEGImages or ../images."""
    ann = tmp_path / "ds/Annotations"
    ann.mkdir(parents=True)
    size = {"no_size_jpegimages": "", "no_size_images": "", "width_only": "<size><width>80</width></size>",
            "image_root": ""}.get(case, "<size><width>80</width><height>60</height></size>")
    filename = "" if case == "no_filename" else "<filename>x.jpg</filename>"
    (ann / "x.xml").write_text(_voc_xml(BOX_OBJ, filename, size))
    folder = tmp_path / {"no_size_images": "ds/images", "image_root": "pics"}.get(case, "ds/JPEGImages")
    if case != "no_filename":
        folder.mkdir()
        Image.new("RGB", (80, 60)).save(folder / "x.jpg")
    coco = load(convert("voc", "coco", ann, extra=("--image-root", folder) if case == "image_root" else ()))
    assert [(i["file_name"], i["width"], i["height"]) for i in coco["images"]] == [("x.jpg", 80, 60)]
    assert coco["images"][0]["source"] == str(ann / "x.xml")
    assert [a["bbox"] for a in coco["annotations"]] == [[10.0, 10.0, 20.0, 10.0]]


@pytest.mark.parametrize("bad", [
    "<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>",  # no <name>
    BOX_OBJ.replace("<name>ant</name>", "<name> </name>"),
    BOX_OBJ.replace("<name>ant</name>", "<name>dog</name>"),  # not in --labels
    "<object><name>ant</name></object>",  # no <bndbox>
    BOX_OBJ.replace("<xmin>10</xmin>", "<xmin>ten</xmin>"),
    BOX_OBJ.replace("<xmax>30</xmax>", ""),
    BOX_OBJ.replace("<xmax>30</xmax>", "<xmax>10</xmax>"),  # empty box
    BOX_OBJ.replace("<ymin>10</ymin><xmax>30</xmax><ymax>20</ymax>", "<ymin>70</ymin><xmax>30</xmax><ymax>90</ymax>"),
])
def test_voc_reader_skips_only_the_bad_objects(annot, tmp_path, bad):
    """--on-error skip: the bad object is listed, the objects after it are read."""
    (tmp_path / "v").mkdir()
    (tmp_path / "v/x.xml").write_text(_voc_xml(bad + BOX_OBJ + BOX_OBJ.replace("<xmax>30</xmax>", "<xmax>50</xmax>")))
    labels = tmp_path / "labels.txt"
    labels.write_text("ant\n")
    res = annot("convert", "voc", "coco", tmp_path / "v", "-o", tmp_path / "o.json", "--labels", labels,
                "--on-error", "skip", "-q")
    assert res.code == 0, res
    coco = load(tmp_path / "o.json")
    assert [a["bbox"] for a in coco["annotations"]] == [[10.0, 10.0, 20.0, 10.0], [10.0, 10.0, 40.0, 10.0]]
    assert [c["name"] for c in coco["categories"]] == ["ant"]
    skipped = load(tmp_path / "o.json.report.json")["skipped"]  # OUT + .report.json
    assert [s["item"] for s in skipped] == ["object[0]"]


@pytest.mark.parametrize("xmin", ["", "inf", "nan"])
def test_voc_reader_refuses_missing_and_non_finite_coordinates(annot, tmp_path, xmin):
    (tmp_path / "v").mkdir()
    (tmp_path / "v/x.xml").write_text(_voc_xml(BOX_OBJ.replace("<xmin>10</xmin>", f"<xmin>{xmin}</xmin>")))
    res = annot("convert", "voc", "coco", tmp_path / "v", "-o", tmp_path / "o.json")
    assert res.code == 2 and "object[0]: bndbox needs xmin, ymin, xmax, ymax" in res.err, res


YOLO_LINE = "0 0.250000 0.500000 0.250000 0.500000\n"  # on 80 x 60: box [10, 15, 20, 30]


@pytest.mark.parametrize("label_dir, image", [
    ("ds/labels", "ds/labels/x.png"),  # beside the label file
    ("ds/labels/train", "ds/images/train/x.png"),  # Ultralytics: labels/<split> <-> images/<split>
    ("ds/labels/train/labels", "ds/labels/train/images/x.png"),  # the last "labels" of the path
    ("ds/txt", "ds/images/x.png"),
    ("ds/txt", "ds/Images/x.png"),
    ("ds/txt", "ds/JPEGImages/x.png"),
    ("ds/txt", "ds/txt/x.PNG"),  # upper-case suffix
])
def test_yolo_reader_finds_the_image_of_each_label_file(convert, tmp_path, label_dir, image):
    (tmp_path / label_dir).mkdir(parents=True)
    (tmp_path / label_dir / "x.txt").write_text(YOLO_LINE)
    (tmp_path / label_dir / "classes.txt").write_text("ant\n")
    (tmp_path / image).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (80, 60)).save(tmp_path / image, format="PNG")
    coco = load(convert("yolo", "coco", tmp_path / label_dir))
    assert [(i["width"], i["height"]) for i in coco["images"]] == [(80, 60)]
    assert [a["bbox"] for a in coco["annotations"]] == [[10.0, 15.0, 20.0, 30.0]]


def test_yolo_reader_labels_option_and_image_root(convert, tmp_path):
    """--labels wins over classes.txt; with --image-root the image beside the
    label file is still found."""
    (tmp_path / "y").mkdir()
    (tmp_path / "y/x.txt").write_text(YOLO_LINE + YOLO_LINE.replace("0 ", "1 ", 1))
    (tmp_path / "y/classes.txt").write_text("ant\nbee\n")
    Image.new("RGB", (80, 60)).save(tmp_path / "y/x.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    (tmp_path / "elsewhere").mkdir()
    coco = load(convert("yolo", "coco", tmp_path / "y", extra=("--labels", labels, "--image-root", tmp_path / "elsewhere")))
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert [names[a["category_id"]] for a in coco["annotations"]] == ["cat", "dog"]


@pytest.mark.parametrize("bad", [
    "0 a b c d",  # not numbers
    "1 0.5 0.5 0.1 0.1",  # class 1 of a one-class list
    "0 nan 0.5 0.1 0.1",
    "0 0.5 0.5 0 0.1",  # empty box
    "0 5 5 0.1 0.1",  # outside the image
    "0 0.1 0.1 0.2",  # 3 coordinates
    "0 0.1 0.1 0.2 0.1 0.2 0.2 0.3",  # 7 coordinates
])
def test_yolo_reader_skips_only_the_bad_line(annot, tmp_path, bad):
    """--on-error skip: the bad line is listed, the lines after it (and
    after a blank line) are read."""
    (tmp_path / "y").mkdir()
    (tmp_path / "y/x.txt").write_text(bad + "\n" + YOLO_LINE + "\n" + YOLO_LINE)
    (tmp_path / "y/classes.txt").write_text("ant\n")
    Image.new("RGB", (80, 60)).save(tmp_path / "y/x.png")
    res = annot("convert", "yolo", "coco", tmp_path / "y", "-o", tmp_path / "o.json", "--on-error", "skip", "-q")
    assert res.code == 0, res
    assert [a["bbox"] for a in load(tmp_path / "o.json")["annotations"]] == [[10.0, 15.0, 20.0, 30.0]] * 2
    assert [s["item"] for s in load(tmp_path / "o.json.report.json")["skipped"]] == ["line 1"]


def test_yolo_reader_bom_thin_boxes_and_clipped_polygons(convert, tmp_path):
    """A UTF-8 BOM (Windows editors) in the label and class files; a box one
    pixel wide is a box; a polygon running off the image is clipped to its
    border; every image records its label file."""
    (tmp_path / "y").mkdir()
    thin = "0 0.506250 0.500000 0.012500 0.500000\n0 0.500000 0.508333 0.500000 0.016667\n"  # 1 px wide, 1 px tall
    poly = "0 0.5 0.5 1.5 0.5 1.5 1.0\n"
    (tmp_path / "y/x.txt").write_bytes(("\ufeff" + thin + poly).encode("utf-8"))
    (tmp_path / "y/classes.txt").write_bytes("\ufeffant\n".encode("utf-8"))
    Image.new("RGB", (80, 60)).save(tmp_path / "y/x.png")
    coco = load(convert("yolo", "coco", tmp_path / "y"))
    assert [c["name"] for c in coco["categories"]] == ["ant"]
    (img,) = coco["images"]
    assert img["source"] == str(tmp_path / "y/x.txt")
    box, flat, tri = coco["annotations"]
    assert box["bbox"] == pytest.approx([40.0, 15.0, 1.0, 30.0]) and box["iscrowd"] == 0
    assert flat["bbox"] == pytest.approx([20.0, 30.0, 40.0, 1.0], abs=1e-4)
    assert tri["segmentation"] == [[40.0, 30.0, 80.0, 30.0, 80.0, 60.0]] and tri["iscrowd"] == 0


def test_boxes_partly_outside_are_clipped_with_a_warning(annot, tmp_path):
    """README: a shape partly outside is clipped to the border with a counted
    warning; one pixel left inside is still a box, and so is a 1 x 1 box."""
    (tmp_path / "v").mkdir()
    objs = "".join(BOX_OBJ.replace("<xmin>10</xmin><ymin>10</ymin><xmax>30</xmax><ymax>20</ymax>", c) for c in (
        "<xmin>-10</xmin><ymin>10</ymin><xmax>1</xmax><ymax>20</ymax>",
        "<xmin>10</xmin><ymin>50</ymin><xmax>30</xmax><ymax>70</ymax>",
        "<xmin>5</xmin><ymin>5</ymin><xmax>6</xmax><ymax>6</ymax>"))
    (tmp_path / "v/x.xml").write_text(_voc_xml(objs))
    res = annot("convert", "voc", "coco", tmp_path / "v", "-o", tmp_path / "o.json")
    assert res.code == 0 and "2 x boxes outside the image clipped to its border" in res.err, res
    anns = load(tmp_path / "o.json")["annotations"]
    assert [(a["bbox"], a["area"]) for a in anns] == [
        ([0.0, 10.0, 1.0, 10.0], 10.0), ([10.0, 50.0, 20.0, 10.0], 200.0), ([5.0, 5.0, 1.0, 1.0], 1.0)]


def test_yolo_reader_skips_a_shape_that_covers_no_pixel(annot, tmp_path):
    (tmp_path / "y").mkdir()
    (tmp_path / "y/x.txt").write_text("0 0.1 0.1 0.2 0.2 0.3 0.3\n" + YOLO_LINE)  # collinear
    (tmp_path / "y/classes.txt").write_text("ant\n")
    Image.new("RGB", (80, 60)).save(tmp_path / "y/x.png")
    res = annot("convert", "yolo", "coco", tmp_path / "y", "-o", tmp_path / "o.json", "--on-error", "skip", "-q")
    assert res.code == 0, res
    assert [a["bbox"] for a in load(tmp_path / "o.json")["annotations"]] == [[10.0, 15.0, 20.0, 30.0]]
    skipped = load(tmp_path / "o.json.report.json")["skipped"]
    assert [(s["item"], s["reason"]) for s in skipped] == [("line 1", "shape covers no pixel inside the image")]


def test_yolo_folder_with_only_a_class_file_is_a_one_line_error(annot, tmp_path):
    (tmp_path / "y").mkdir()
    (tmp_path / "y/classes.txt").write_text("ant\n")
    res = annot("convert", "yolo", "coco", tmp_path / "y", "-o", tmp_path / "o.json")
    assert res.code == 2 and res.err.startswith("annot: error:") and len(res.err.strip().splitlines()) == 1, res
