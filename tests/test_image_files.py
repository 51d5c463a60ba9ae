"""Image files beside annotations: one that cannot be read is a one-line error
naming it; one above PIL's decompression-bomb guard (~179 Mpx: aerial and
slide images) is measured from its header, and hashed into the store."""

from __future__ import annotations

import json
import os
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

BIG = 13_500  # 182 Mpx: above PIL's default guard


@pytest.fixture(scope="module")
def big_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "a.png"
    im = Image.new("1", (BIG, BIG))  # one bit per pixel: 23 MB in memory, ~20 kB as PNG
    im.paste(1, (100, 100, 400, 300))
    im.save(path)
    return path


def _corrupt(folder, name="a.png"):
    (folder / name).write_bytes(b"not an image at all")
    return folder / name


def _yolo(d):
    (d / "a.txt").write_text("0 0.5 0.5 0.1 0.2\n")
    (d / "classes.txt").write_text("cat\n")
    return d


def _createml(d):
    (d / "a.json").write_text(json.dumps([{"image": "a.png", "annotations": [
        {"label": "cat", "coordinates": {"x": 20, "y": 20, "width": 10, "height": 10}}]}]))
    return d / "a.json"


def _voc(d):
    (d / "a.xml").write_text("<annotation><filename>a.png</filename><object><name>cat</name>"
                             "<bndbox><xmin>10</xmin><ymin>10</ymin><xmax>20</xmax><ymax>20</ymax></bndbox>"
                             "</object></annotation>")
    return d / "a.xml"


def _coco(d):
    (d / "c.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [],
                                          "categories": [{"id": 1, "name": "cat"}]}))
    return d / "c.json"


def _labelstudio(d):
    (d / "ls.json").write_text(json.dumps([{"id": 7, "data": {"image": "/data/upload/1/0123abcd-a.png"},
                                            "annotations": [{"id": 1, "result": []}]}]))
    return d / "ls.json"


@pytest.mark.parametrize("fmt, make, where", [
    ("yolo", _yolo, "a.txt"),
    ("createml", _createml, "a.json:[0]"),
    ("voc", _voc, "a.xml:size"),
    ("coco", _coco, "c.json:images[0]"),
    ("labelstudio", _labelstudio, "ls.json:task 7"),
])
def test_unreadable_image_is_one_line_naming_it(annot, tmp_path, fmt, make, where):
    image = _corrupt(tmp_path)
    src = make(tmp_path)
    res = annot("convert", fmt, "coco", src, "-o", tmp_path / "out.json", "--image-root", tmp_path)
    assert res.code == 2, res.err
    assert res.err.strip() == (f"annot: error: {tmp_path / where}: cannot read the size of image {image}: "
                               "not an image PIL can read")
    assert not (tmp_path / "out.json").exists()


def test_image_above_pils_guard_is_measured_from_its_header(annot, tmp_path, big_png):
    (tmp_path / "a.png").symlink_to(big_png)
    res = annot("convert", "yolo", "coco", _yolo(tmp_path), "-o", tmp_path / "out.json", "-q")
    assert res.code == 0, res.err
    doc = json.loads((tmp_path / "out.json").read_text())
    assert (doc["images"][0]["width"], doc["images"][0]["height"]) == (BIG, BIG)
    assert doc["annotations"][0]["bbox"] == [6075.0, 5400.0, 1350.0, 2700.0]


def test_store_hashes_large_images_and_names_unreadable_ones(annot, tmp_path, big_png, monkeypatch):
    monkeypatch.setenv("ANNOT_DB", f"sqlite:///{tmp_path / 'annot.db'}")
    monkeypatch.setenv("ANNOT_STORE", str(tmp_path / "store"))
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    os.link(big_png, good / "a.png")  # a symlink leading out of the image root would not be followed
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": BIG, "height": BIG}],
                                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [100, 100, 300, 200],
                                                 "area": 60000, "iscrowd": 0, "segmentation": []}],
                                "categories": [{"id": 1, "name": "cat"}]}))
    res = annot("dataset", "import", "big", coco, "--image-root", good, "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["images"] == 1
    image = _corrupt(bad)
    res = annot("dataset", "import", "broken", coco, "--image-root", bad)
    assert res.code == 2
    assert res.err.strip() == f"annot: error: {image}: cannot read image: not an image PIL can read"


SQUARE = [[65000, 10], [65010, 10], [65010, 20], [65000, 20]]  # 10x10 px near the right edge


def _labelme_file(d, side):
    (d / "a.json").write_text(json.dumps({
        "version": "5.3.1", "flags": {}, "imagePath": "a.png", "imageData": None, "imageWidth": side,
        "imageHeight": side, "shapes": [{"label": "cat", "points": SQUARE, "shape_type": "polygon",
                                         "group_id": None, "flags": {}}]}))
    return d / "a.json"


@pytest.mark.parametrize("fmt, where", [("labelme", "a.json"), ("voc", "a.xml:size"), ("coco", "c.json:images[0]"),
                                        ("labelstudio", "ls.json:task 7")])
def test_images_of_2_to_the_32_pixels_are_refused(annot, tmp_path, fmt, where):
    """pycocotools counts pixels in 32 bits: beyond, its areas and boxes are wrong without an error."""
    side = 65_536
    if fmt == "labelme":
        src = _labelme_file(tmp_path, side)
    elif fmt == "voc":
        src = tmp_path / "a.xml"
        src.write_text(f"<annotation><filename>a.png</filename><size><width>{side}</width><height>{side}</height>"
                       "</size><object><name>cat</name><bndbox><xmin>65000</xmin><ymin>10</ymin><xmax>65010</xmax>"
                       "<ymax>20</ymax></bndbox></object></annotation>")
    elif fmt == "coco":
        src = tmp_path / "c.json"
        src.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": side, "height": side}],
                                   "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                                    "bbox": [65000, 10, 10, 10], "iscrowd": 0,
                                                    "segmentation": [sum(SQUARE, [])]}],
                                   "categories": [{"id": 1, "name": "cat"}]}))
    else:
        src = tmp_path / "ls.json"
        src.write_text(json.dumps([{"id": 7, "data": {"image": "a.png"}, "annotations": [{"id": 1, "result": [
            {"id": "r", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
             "original_width": side, "original_height": side,
             "value": {"x": 99.18, "y": 0.02, "width": 0.02, "height": 0.02, "rectanglelabels": ["cat"]}}]}]}]))
    res = annot("convert", fmt, "coco", src, "-o", tmp_path / "out.json")
    assert res.code == 2, res.err
    assert res.err.strip() == (f"annot: error: {tmp_path / where}: image is 65536x65536 = 4,294,967,296 pixels; "
                               "COCO RLE and pycocotools areas count at most 4,294,967,295")
    if fmt == "coco":
        res = annot("validate", "coco", src)
        assert res.code == 1 and "images[0]: image is 65536x65536 = 4,294,967,296 pixels" in res.out + res.err


def test_one_pixel_short_of_2_to_the_32_converts_exactly(annot, tmp_path):
    res = annot("convert", "labelme", "coco", _labelme_file(tmp_path, 65_535), "-o", tmp_path / "out.json", "-q")
    assert res.code == 0, res.err
    (ann,) = json.loads((tmp_path / "out.json").read_text())["annotations"]
    assert ann["area"] == 100.0 and ann["bbox"] == [65000.0, 10.0, 10.0, 10.0]


def _encoded(fmt: str) -> bytes:
    import io

    import numpy as np

    im = Image.fromarray((np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8))
    buf = io.BytesIO()
    if fmt in ("JPEG", "PNG", "TIFF", "WEBP"):  # with an EXIF orientation to parse
        exif = Image.Exif()
        exif[0x0112] = 6
        im.save(buf, fmt, exif=exif)
    else:
        im.save(buf, fmt)
    return buf.getvalue()


FORMATS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp"}


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(sorted(FORMATS)), edits=st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)),
                                                             min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 400)))
def test_corrupted_image_headers_never_break_a_conversion(annot, tmp_path_factory, fmt, edits, cut):
    """Sizes come from image headers for YOLO: any corruption is a size or one line naming the image."""
    d = tmp_path_factory.mktemp("fuzz")
    data = bytearray(_encoded(fmt))
    for at, value in edits:
        data[at % len(data)] = value
    image = d / f"a{FORMATS[fmt]}"
    image.write_bytes(bytes(data[:cut] if cut is not None else data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL warns about the corrupt TIFF/EXIF tags it skips
        res = annot("convert", "yolo", "coco", _yolo(d), "-o", d / "out.json", "-q")
    assert res.code in (0, 2), res.err
    if res.code == 2:
        assert res.err.count("\n") == 1 and f"cannot read the size of image {image}" in res.err
