"""The path rule (annot.paths) and the memory budget (annot.limits), on their own."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from annot.errors import ParseError
from annot.geometry import encode_mask, mask_in_box, rle_box_mask, rle_counts, rle_problem
from annot.limits import Limits, parse_size, polygon_bytes, usable_memory
from annot.paths import confined, find_image, output_path, require_confined


@pytest.mark.parametrize("name, inside", [
    ("a.png", "a.png"), ("sub/a.png", "sub/a.png"), ("sub/../a.png", "a.png"), ("./a.png", "a.png"),
    ("sub\\a.png", "sub/a.png"),
    ("../a.png", None), ("sub/../../a.png", None), ("/etc/passwd", None), ("C:/x/a.png", None),
    ("C:\\x\\a.png", None), ("\\\\host\\share\\a.png", None), ("a\0.png", None), ("..", None),
])
def test_names_stay_inside_their_root(tmp_path, name, inside):
    got = confined(tmp_path, name)
    assert got == (None if inside is None else tmp_path / inside)


def test_symlinks_leading_out_of_the_root_are_not_followed(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "secret.png").write_bytes(b"x")
    (root / "sub" / "own.png").write_bytes(b"x")
    os.symlink(elsewhere / "secret.png", root / "link.png")
    os.symlink(elsewhere, root / "linkdir")
    os.symlink(root / "sub" / "own.png", root / "inner.png")  # a link that stays inside is fine
    assert confined(root, "link.png") is None and confined(root, "linkdir/secret.png") is None
    assert confined(root, "inner.png") == root / "inner.png"
    assert find_image("link.png", [root]) is None and find_image("x/inner.png", [root]) == root / "inner.png"
    # a root reached through a link is the folder it points to
    os.symlink(root, tmp_path / "alias")
    assert confined(tmp_path / "alias", "sub/own.png") == tmp_path / "alias" / "sub" / "own.png"
    with pytest.raises(ParseError, match=r"f.json:imagePath: 'linkdir/secret.png' leads outside"):
        require_confined(root, "linkdir/secret.png", "f.json", "imagePath")


@pytest.mark.parametrize("name, placed", [
    ("a.png", "a.json"), ("../../x/a.png", "x/a.json"), ("/abs/a.png", "abs/a.json"), ("C:\\d\\a.png", "d/a.json"),
    ("..", "_"), ("", "_"),
])
def test_output_paths_stay_in_the_output_folder(tmp_path, name, placed):
    assert output_path(tmp_path, name, ".json" if placed != "_" else None) == tmp_path / placed


def test_sizes_and_the_default_budget():
    assert parse_size("4G") == 4 << 30 and parse_size("512M") == 512 << 20 and parse_size("1.5GiB") == 3 << 29
    assert parse_size("2000") == 2000
    with pytest.raises(Exception, match="expected a size like 4G"):
        parse_size("lots")
    assert Limits.default().max_memory == usable_memory() // 2
    # a process limited in address space budgets half of that limit
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30));"
            "from annot.limits import Limits; print(Limits.default().max_memory)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) <= (3 << 30) // 2
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY or usable_memory() > 0


def test_polygon_bytes_follow_the_outline():
    square = [0, 0, 100, 0, 100, 100, 0, 100]
    assert polygon_bytes(square) == (400 + 4) * 120
    zigzag = [v for k in range(1000) for v in ((0, k) if k % 2 else (5000, k))]
    assert polygon_bytes(zigzag) > 1000 * 5000 * 120


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1), st.floats(0, 1))
def test_rle_counts_and_boxes_agree_with_pycocotools(h, w, seed, density):
    rng = np.random.default_rng(seed)
    mask = rng.random((h, w)) < density
    rle = encode_mask(mask)
    counts = rle_counts(rle)
    assert mask_utils.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)["counts"].decode() \
        == rle["counts"]
    assert rle_problem(rle) is None
    x0, x1 = sorted(rng.integers(0, w + 1, 2))
    y0, y1 = sorted(rng.integers(0, h + 1, 2))
    assert np.array_equal(rle_box_mask(rle, (x0, y0, x1, y1)), mask[y0:y1, x0:x1])
    crop, (x, y) = mask_in_box(rle, h, w)
    if mask.any():
        ys, xs = np.nonzero(mask)
        assert (x, y) == (xs.min(), ys.min())
        assert np.array_equal(crop, mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


@pytest.mark.parametrize("rle, why", [
    ({"size": [10, 10], "counts": [5, 200]}, "RLE counts sum to 205 pixels, not height x width = 100"),
    ({"size": [10, 10], "counts": [5, -5, 100]}, "a negative run length"),
    ({"size": [10, 10], "counts": "0"}, "RLE counts sum to 0 pixels"),
    ({"size": [10, 10], "counts": "\x7f"}, "characters outside pycocotools' alphabet"),
    ({"size": [10, 10], "counts": "o"}, "ends in the middle of a count"),
    ({"size": [10, 10], "counts": "oooooooo1"}, "longer than 7 characters"),
])
def test_untrustworthy_rles_are_named(rle, why):
    assert why in rle_problem(rle)


def test_a_mask_on_a_huge_image_is_decoded_in_its_box_only():
    h = w = 60000
    counts = [h * 30000 + 100, 10, h - 10, 10, h * w - h * 30000 - 100 - 10 - (h - 10) - 10]
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    crop, origin = mask_in_box(rle, h, w)
    assert crop.shape == (10, 2) and crop.all() and origin == (30000, 100)


def _brush_task(w, h):
    from annot.converters.labelstudio_rle import mask_to_rle

    mask = np.zeros((h, w), bool)
    mask[2:5, 3:7] = True
    return [{"id": 1, "data": {"image": "/data/upload/1/abcd1234-a.png"}, "annotations": [{"id": 1, "result": [
        {"id": "r", "type": "brushlabels", "from_name": "tag", "to_name": "image", "original_width": w,
         "original_height": h, "value": {"format": "rle", "rle": mask_to_rle(mask), "brushlabels": ["a"]}}]}]}]


def test_max_memory_and_max_pixels_on_the_command_line(annot, tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(_brush_task(400, 300)))
    args = ("convert", "labelstudio", "coco", tmp_path / "t.json", "-o", tmp_path / "o.json")
    res = annot(*args, "--max-memory", "1M")
    assert res.code == 2 and res.err == (f"annot: error: {tmp_path / 't.json'}:task 1.result[0]: decoding a 400x300 "
                                         "Label Studio brush region needs 1.8 MB, over the memory budget of 1.0 MB "
                                         "(--max-memory)\n")
    assert not (tmp_path / "o.json").exists()
    res = annot(*args, "--max-pixels", "100000")
    assert res.code == 2 and "image is 400x300 = 120,000 pixels, over the limit of 100,000 (--max-pixels)" in res.err
    res = annot(*args, "--max-memory", "3M", "--on-error", "skip", "-q")
    assert res.code == 0 and json.loads((tmp_path / "o.json").read_text())["annotations"][0]["area"] == 12
    res = annot(*args, "--max-memory", "plenty", "--overwrite")
    assert res.code == 2 and "--max-memory 'plenty': expected a size like 4G" in res.err
