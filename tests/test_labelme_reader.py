from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
from conftest import LABELME, load
from labelme.utils import img_b64_to_arr

from annot.geometry import segmentation_to_mask

pytestmark = pytest.mark.samples  # reads ../shared/samples

PRIMITIVES = LABELME / "examples/primitives/primitives.json"


def by_label(coco):
    names = {c["id"]: c["name"] for c in coco["categories"]}
    out = {}
    for a in coco["annotations"]:
        out.setdefault(names[a["category_id"]], []).append(a)
    return out


def test_primitives_every_shape_type(convert, annot, tmp_path):
    res = annot("convert", "labelme", "coco", PRIMITIVES, "-o", tmp_path / "p.json")
    assert res.code == 0, res
    for kind in ("line", "point", "linestrip"):  # not instances: skipped, counted per type
        assert f"warning: 1 x {kind} shape skipped (not an instance)" in res.err
    coco = load(tmp_path / "p.json")
    assert [c["name"] for c in coco["categories"]] == ["circle", "octagon", "polygon", "rectangle"]
    assert coco["images"] == [{"id": 1, "file_name": "primitives.jpg", "width": 560, "height": 450,
                               "source": str(PRIMITIVES)}]
    shapes = by_label(coco)
    r1, r2 = shapes["rectangle"]
    assert r1["bbox"] == [32, 35, 100, 100] and r1["area"] == 10000
    assert r1["segmentation"] == [[32, 35, 132, 35, 132, 135, 32, 135]]
    assert r2["bbox"] == [391, 33, 151, 102] and r2["area"] == 151 * 102
    (poly,) = shapes["polygon"]
    assert poly["segmentation"] == [[69, 318, 45, 403, 173, 406, 198, 321]]
    assert poly["bbox"] == [45, 318, 153, 88]
    (circle,) = shapes["circle"]
    r = math.hypot(225 - 195, 125 - 84)
    pts = np.array(circle["segmentation"][0]).reshape(-1, 2)
    assert np.hypot(pts[:, 0] - 195, pts[:, 1] - 84) == pytest.approx(r)
    assert circle["bbox"] == pytest.approx([195 - r, 84 - r, 2 * r, 2 * r])  # extreme points are vertices
    assert abs(circle["area"] - math.pi * r * r) < 2 * math.pi * r  # within one px of the true disc


def test_mask_shape_matches_labelme_placement(convert):
    coco = load(convert("labelme", "coco", PRIMITIVES))
    (octagon,) = by_label(coco)["octagon"]
    shape = next(s for s in load(PRIMITIVES)["shapes"] if s["shape_type"] == "mask")
    # labelme's own rule (utils.shapes_to_label): crop pasted at int(points[0])
    expected = np.zeros((450, 560), bool)
    (x1, y1), (x2, y2) = np.asarray(shape["points"]).astype(int)
    expected[y1 : y2 + 1, x1 : x2 + 1] = img_b64_to_arr(shape["mask"]).astype(bool)
    got = segmentation_to_mask(octagon["segmentation"], 450, 560).astype(bool)
    assert isinstance(octagon["segmentation"], dict)
    assert np.array_equal(got, expected)
    assert octagon["area"] == expected.sum()


def _png_b64(mask: np.ndarray) -> str:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_mask_shapes_of_one_group_are_joined_in_their_box(annot, tmp_path):
    """Mask shapes are measured in the box they span, not at full size: a group of
    two (one hanging over the border, clipped) and one entirely outside must give
    what pasting them into a full-size mask gives."""
    rng = np.random.default_rng(3)
    w, h = 300, 200
    crops = [rng.random((30, 40)) < 0.6, rng.random((50, 25)) < 0.6, rng.random((10, 10)) < 0.6]
    corners = [(20, 30), (285, 170), (400, 10)]  # the second hangs over the right and bottom edges
    shapes = [{"label": "cell", "group_id": 1 if k < 2 else 2, "shape_type": "mask", "flags": {},
               "points": [[x, y], [x + c.shape[1] - 1, y + c.shape[0] - 1]], "mask": _png_b64(c)}
              for k, (c, (x, y)) in enumerate(zip(crops, corners))]
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"version": "5.6.0", "flags": {}, "shapes": shapes, "imagePath": "m.png",
                             "imageData": None, "imageHeight": h, "imageWidth": w}))
    res = annot("convert", "labelme", "coco", f, "-o", tmp_path / "out.json")
    assert res.code == 0, res.err
    assert "warning: 1 x empty mask shape skipped" in res.err  # group 2 lies outside the image
    (ann,) = load(tmp_path / "out.json")["annotations"]
    full = np.zeros((h + 60, w + 150), bool)  # room for the overhang, cut to the image below
    for c, (x, y) in zip(crops[:2], corners[:2]):
        full[y : y + c.shape[0], x : x + c.shape[1]] |= c
    full = full[:h, :w]
    assert np.array_equal(segmentation_to_mask(ann["segmentation"], h, w).astype(bool), full)
    ys, xs = np.nonzero(full)
    assert ann["area"] == full.sum()
    assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]


@pytest.mark.parametrize("version", ["v3.16.7", "v5.6.0"])
def test_history_formats_give_the_same_instances(convert, annot, tmp_path, version):
    old_file = LABELME / f"history/{version}/examples/primitives/primitives.json"
    image_root = LABELME / "examples/primitives"
    if version == "v3.16.7":
        # 3.x stores no image size: without the image it cannot be known, and the error says so
        res = annot("convert", "labelme", "coco", old_file, "-o", tmp_path / "x.json")
        assert res.code == 2 and "image size unknown" in res.err and "--image-root" in res.err
        assert not (tmp_path / "x.json").exists()
    old = load(convert("labelme", "coco", old_file, extra=("--image-root", image_root)))
    new = load(convert("labelme", "coco", PRIMITIVES))
    assert [c["name"] for c in old["categories"]] == ["circle", "polygon", "rectangle"]  # no mask shape in 3.x/4.x
    assert (old["images"][0]["width"], old["images"][0]["height"]) == (560, 450)
    old_by, new_by = by_label(old), by_label(new)
    for label in ("rectangle", "polygon", "circle"):
        for a, b in zip(old_by[label], new_by[label], strict=True):
            # 3.16.7 rounded the line strip points only; instance shapes are identical
            assert a["bbox"] == pytest.approx(b["bbox"]) and a["area"] == b["area"]


def test_tutorial_image_data_only(convert, tmp_path):
    out = convert("labelme", "coco", LABELME / "examples/tutorial/apc2016_obj3.json",
                  extra=("--extract-images", tmp_path / "imgs"))
    coco = load(out)
    (img,) = coco["images"]
    # imagePath points at the JSON itself: the name comes from the file, the size from imageData
    assert img["file_name"] == "apc2016_obj3.jpg" and (img["width"], img["height"]) == (1210, 907)
    data = base64.b64decode(load(LABELME / "examples/tutorial/apc2016_obj3.json")["imageData"])
    assert (tmp_path / "imgs/apc2016_obj3.jpg").read_bytes() == data
    assert len(coco["annotations"]) == 4


def test_semantic_segmentation_labels_file_and_ignore(convert, annot):
    src = LABELME / "examples/semantic_segmentation/data_annotated"
    labels = LABELME / "examples/semantic_segmentation/labels.txt"
    coco = load(convert("labelme", "coco", src, extra=("--labels", labels)))
    names = [c["name"] for c in coco["categories"]]
    assert names[:3] == ["aeroplane", "bicycle", "bird"] and len(names) == 20
    assert "__ignore__" not in names and "_background_" not in names
    assert all(a["iscrowd"] == 0 for a in coco["annotations"])
    n_plain = len(coco["annotations"])
    crowd = load(convert("labelme", "coco", src, extra=("--labels", labels, "--ignore-as-crowd")))
    crowds = [a for a in crowd["annotations"] if a["iscrowd"]]
    n_ignore = sum(s["label"] == "__ignore__" for f in sorted(src.glob("*.json")) for s in load(f)["shapes"])
    assert n_ignore > 0
    assert len(crowds) == n_ignore * 20  # once per category
    assert all(isinstance(a["segmentation"], dict) for a in crowds)
    assert len(crowd["annotations"]) == n_plain + len(crowds)


def test_video_annotation(convert):
    coco = load(convert("labelme", "coco", LABELME / "examples/video_annotation/data_annotated"))
    assert [i["file_name"] for i in coco["images"]] == [f"0000010{k}.jpg" for k in range(5)]
    assert {c["name"] for c in coco["categories"]} == {"car", "track"}
    assert all(i["width"] == 1000 and i["height"] == 563 for i in coco["images"])


def _labelme_file(path, shapes, **kw):
    doc = {"version": "5.3.1", "flags": {}, "shapes": shapes, "imagePath": "x.png", "imageData": None,
           "imageHeight": 100, "imageWidth": 200, **kw}
    path.write_text(json.dumps(doc))
    return path


def shape(label, points, kind="polygon", group_id=None):
    return {"label": label, "points": points, "group_id": group_id, "shape_type": kind, "flags": {}}


def test_group_id_merges_polygons_into_one_instance(convert, tmp_path):
    f = _labelme_file(tmp_path / "a.json", [
        shape("car", [[0, 0], [10, 0], [10, 10]], group_id=1),
        shape("car", [[20, 20], [30, 20], [30, 30], [20, 30]], group_id=1),
        shape("car", [[50, 50], [60, 50], [60, 60]]),
        shape("person", [[0, 0], [10, 0], [10, 10]], group_id=1),  # same group id, other label
    ])
    coco = load(convert("labelme", "coco", f))
    car = [a for a in coco["annotations"] if a["category_id"] == 1]
    assert len(car) == 2 and len(coco["annotations"]) == 3
    assert car[0]["segmentation"] == [[0, 0, 10, 0, 10, 10], [20, 20, 30, 20, 30, 30, 20, 30]]
    assert car[0]["bbox"] == [0, 0, 30, 30]
    assert car[0]["area"] == segmentation_to_mask(car[0]["segmentation"], 100, 200).sum()


def test_rectangle_corners_any_order_and_oriented_rectangle(convert, tmp_path):
    f = _labelme_file(tmp_path / "a.json", [
        shape("a", [[40, 30], [10, 5]], "rectangle"),
        shape("b", [[10, 0], [20, 10], [10, 20], [0, 10]], "oriented_rectangle"),
    ])
    coco = load(convert("labelme", "coco", f))
    a, b = coco["annotations"]
    assert a["bbox"] == [10, 5, 30, 25] and a["area"] == 750
    assert b["segmentation"] == [[10, 0, 20, 10, 10, 20, 0, 10]] and b["bbox"] == [0, 0, 20, 20]


def test_windows_paths_and_encodings(convert, tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "imgs" / "圖片.png")
    doc = {"version": "4.0.0", "flags": {}, "imagePath": "imgs\\圖片.png", "imageData": None,
           "shapes": [shape("貓", [[1, 1], [9, 1], [9, 9]])]}
    text = json.dumps(doc, ensure_ascii=False)
    (tmp_path / "gb.json").write_bytes(text.encode("gb18030"))
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    coco = load(convert("labelme", "coco", tmp_path / "gb.json", tmp_path / "bom.json"))
    assert [i["file_name"] for i in coco["images"]] == ["imgs/圖片.png"] * 2
    assert all((i["width"], i["height"]) == (64, 48) for i in coco["images"])  # from the image header
    assert coco["categories"][0]["name"] == "貓"


def test_exif_rotated_image_size_is_displayed_size(convert, annot, tmp_path):
    from PIL import Image

    img = Image.new("RGB", (80, 40))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 on display
    img.save(tmp_path / "r.jpg", exif=exif)
    doc = {"version": "5.0.0", "flags": {}, "imagePath": "r.jpg", "imageData": None,
           "shapes": [shape("a", [[1, 1], [9, 1], [9, 9]])]}
    (tmp_path / "r.json").write_text(json.dumps(doc))
    coco = load(convert("labelme", "coco", tmp_path / "r.json"))
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (40, 80)
    doc.update(imageWidth=80, imageHeight=40)  # stored as the raw, unrotated size
    (tmp_path / "r.json").write_text(json.dumps(doc))
    res = annot("convert", "labelme", "coco", tmp_path / "r.json", "-o", tmp_path / "o.json")
    assert res.code == 0
    assert "stored image size differs from the displayed image size" in res.err and "EXIF" in res.err
