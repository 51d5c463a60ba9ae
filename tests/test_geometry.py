from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annot.geometry import (
    BoxMode,
    box_to_xywh,
    circle_polygon,
    mask_instance,
    polygon_areas,
    polygons_bbox,
    rectangle_of,
    rotated_rectangle,
    segmentation_to_mask,
    xywh_to_box,
)

coord = st.floats(0, 2000, allow_nan=False, allow_infinity=False)
size = st.floats(0.5, 1000, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(
    "mode, box, expected",
    [
        (BoxMode.XYXY, [81, 88, 522, 408], [81, 88, 441, 320]),
        (BoxMode.XYXY, [522, 408, 81, 88], [81, 88, 441, 320]),  # corners in any order
        (BoxMode.VOC1, [1, 1, 10, 10], [0, 0, 10, 10]),  # pixels 1..10 inclusive, 1-based
        (BoxMode.CXCYWH_REL, [0.5, 0.5, 1.0, 1.0], [0, 0, 200, 100]),
        (BoxMode.CXCYWH, [100, 50, 20, 10], [90, 45, 20, 10]),
        (BoxMode.XYWH_PERCENT, [10, 20, 50, 50], [20, 20, 100, 50]),
    ],
)
def test_box_modes(mode, box, expected):
    assert box_to_xywh(box, mode, 200, 100) == pytest.approx(expected)


@given(x=coord, y=coord, w=size, h=size, mode=st.sampled_from(list(BoxMode)))
def test_box_modes_invert(x, y, w, h, mode):
    back = box_to_xywh(xywh_to_box([x, y, w, h], mode, 640, 480), mode, 640, 480)
    assert back == pytest.approx([x, y, w, h], abs=1e-6)


@given(x=coord, y=coord, w=size, h=size, deg=st.floats(0, 359.999))
def test_rotated_rectangle_is_a_rectangle_and_inverts(x, y, w, h, deg):
    poly = rotated_rectangle(x, y, w, h, deg)
    p = np.array(poly).reshape(4, 2)
    e = np.roll(p, -1, 0) - p
    assert np.hypot(*e[0]) == pytest.approx(w, rel=1e-9)
    assert np.hypot(*e[1]) == pytest.approx(h, rel=1e-9)
    assert abs(np.dot(e[0], e[1])) <= 1e-6 * max(w, h) ** 2
    got = rectangle_of(poly, tol=1e-7)
    assert got is not None
    # the same rectangle, possibly described from another corner
    q = np.array(rotated_rectangle(*got)).reshape(4, 2)
    dist = np.hypot(*(q[:, None, :] - p[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    assert dist.max() <= 1e-6 * (1 + max(x, y, w, h))
    if got[4] != 0.0:  # not axis-aligned: exactly the rectangle that was drawn
        assert got == pytest.approx((x, y, w, h, deg), abs=1e-6 * (1 + max(x, y, w, h)))


@given(x=coord, y=coord, w=size, h=size, deg=st.floats(1, 89))
def test_rectangle_of_counter_clockwise_corners_keep_their_anchor(x, y, w, h, deg):
    poly = rotated_rectangle(x, y, w, h, deg)
    ccw = poly[:2] + poly[6:8] + poly[4:6] + poly[2:4]  # same corners, other way round
    got = rectangle_of(ccw, tol=1e-7)
    assert got[:2] == (poly[0], poly[1])  # still anchored at the first point
    assert got == pytest.approx(rectangle_of(poly, tol=1e-7), abs=1e-6 * (1 + max(x, y, w, h)))


@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=6, max_size=40).filter(lambda p: len(p) % 2 == 0),
                min_size=1, max_size=4))
def test_polygons_bbox_of_lists_and_arrays_agree(polys):
    xs = [v for p in polys for v in p[0::2]]
    ys = [v for p in polys for v in p[1::2]]
    want = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    assert polygons_bbox(polys) == want
    assert polygons_bbox([np.array(p) for p in polys]) == want


def test_rotation_is_clockwise_on_screen():
    # y points down: a 90 degree clockwise turn sends the top edge downwards
    assert rotated_rectangle(10, 10, 4, 2, 90) == pytest.approx([10, 10, 10, 14, 8, 14, 8, 10])


def test_rectangle_of_axis_aligned_any_order():
    assert rectangle_of([5, 7, 5, 3, 1, 3, 1, 7]) == (1.0, 3.0, 4.0, 4.0, 0.0)
    assert rectangle_of([0, 0, 4, 0, 5, 3, 0, 3]) is None  # not a rectangle


@given(cx=st.floats(50, 500), cy=st.floats(50, 500), r=st.floats(0.5, 400))
def test_circle_chord_error_within_one_pixel(cx, cy, r):
    poly = np.array(circle_polygon(cx, cy, r)).reshape(-1, 2)
    radii = np.hypot(poly[:, 0] - cx, poly[:, 1] - cy)
    assert radii == pytest.approx(r)
    mid = (poly + np.roll(poly, -1, 0)) / 2  # chord midpoints are the farthest from the circle
    assert (r - np.hypot(mid[:, 0] - cx, mid[:, 1] - cy)).max() <= 1.0 + 1e-9


@settings(max_examples=50)
@given(x=st.integers(0, 100), y=st.integers(0, 100), w=st.integers(1, 100), h=st.integers(1, 100))
def test_integer_box_area_is_exact(x, y, w, h):
    poly = [x, y, x + w, y, x + w, y + h, x, y + h]
    assert polygon_areas([[poly]], 300, 300) == [w * h]
    mask = segmentation_to_mask([poly], 300, 300)
    assert mask.sum() == w * h
    assert mask[y, x] and mask[y + h - 1, x + w - 1]  # corners in, the pixel past the edge out
    assert not mask[y + h - 1, x + w] and not mask[y + h, x + w - 1]


def test_grouped_polygons_union():
    a = [0, 0, 10, 0, 10, 10, 0, 10]
    b = [5, 0, 15, 0, 15, 10, 5, 10]  # overlaps a by 50 px
    assert polygon_areas([[a, b], [a]], 20, 20) == [150, 100]


def _pycocotools_instance(m: np.ndarray):
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray((m != 0).astype(np.uint8)))
    return rle["counts"].decode("ascii"), [float(v) for v in mask_utils.toBbox(rle)], float(mask_utils.area(rle))


@st.composite
def masks(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    style = draw(st.sampled_from(["random", "box", "edges"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if style == "random":
        m = rng.random((h, w)) < draw(st.floats(0, 1))
    elif style == "box":  # a detection-like blob somewhere, maybe touching the borders
        m = np.zeros((h, w), bool)
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        m[y0 : draw(st.integers(y0 + 1, h)), x0 : draw(st.integers(x0 + 1, w))] = True
    else:  # single pixels in the corners: runs that start or end the image
        m = np.zeros((h, w), bool)
        for y, x in draw(st.lists(st.sampled_from([(0, 0), (h - 1, 0), (0, w - 1), (h - 1, w - 1)]))):
            m[y, x] = True
    dtype = draw(st.sampled_from([bool, np.uint8]))
    m = m.astype(dtype) * (255 if dtype is np.uint8 and draw(st.booleans()) else 1)
    return m.T.copy().T if draw(st.booleans()) else m  # Fortran-ordered input too


@settings(max_examples=400, deadline=None, derandomize=True)
@given(masks())
def test_mask_instance_equals_pycocotools(m):
    rle, bbox, area = mask_instance(m)
    assert rle["size"] == list(m.shape)
    expected = _pycocotools_instance(m)
    assert (rle["counts"], bbox, area) == expected
    # the same mask given as any window that holds all its pixels, placed in the image
    ys, xs = np.nonzero(m)
    r0, c0 = (ys.min(), xs.min()) if len(ys) else (0, 0)
    r1, c1 = (ys.max() + 1, xs.max() + 1) if len(ys) else (0, 0)
    r0, c0 = r0 // 2, c0 // 2  # grown towards the top-left corner by an arbitrary margin
    window = m[r0:r1, c0:c1]
    rle, bbox, area = mask_instance(window, (int(c0), int(r0)), m.shape)
    assert rle["size"] == list(m.shape) and (rle["counts"], bbox, area) == expected


def test_mask_instance_bbox_area():
    m = np.zeros((20, 30), np.uint8)
    m[2:5, 3:9] = 1
    m[3, 4] = 0  # a hole
    rle, bbox, area = mask_instance(m)
    assert bbox == [3, 2, 6, 3] and area == 17 and isinstance(rle["counts"], str)
    assert (segmentation_to_mask(rle, 20, 30) == m).all()
