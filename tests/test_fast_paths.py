"""The conversion hot path's shortcuts give exactly what the checked path gives.

Each shortcut (plain labelme shapes, polygons straight to annotations, the
compact pickles workers send back, the directory walk, Label Studio polygon
scaling) has a slower general counterpart; these tests hold them equal.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import LABELME, SAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from annot.converters import coco_writer, labelme_reader
from annot.converters.coco_writer import coco_dict, coco_json_chunks
from annot.converters.columns import (
    ImageEntries,
    PolygonEntry,
    RenderedColumns,
    columns_of_images,
    to_columns,
)
from annot.converters.discovery import find_files, load_json, read_bytes
from annot.converters.labelstudio_reader import _scaled_points
from annot.io import dumps_json
from annot.limits import Limits
from annot.model import Annotation, DatasetBuilder, ImageDraft, Instance, render_geometry
from annot.parallel import bulk, map_batches
from annot.report import Report

W, H = 640, 480
coord = st.one_of(st.integers(0, W), st.floats(0, W, allow_nan=False).map(lambda v: round(v, 2)))
point = st.tuples(coord, coord).map(list)


@st.composite
def shape(draw):
    kind = draw(st.sampled_from(["polygon", "rectangle", "circle", "oriented_rectangle", None]))
    n = {"rectangle": 2, "circle": 2, "oriented_rectangle": 4}.get(kind, draw(st.integers(3, 8)))
    s = {"label": draw(st.sampled_from(["a", "b", "c"])), "points": draw(st.lists(point, min_size=n, max_size=n)),
         "group_id": draw(st.one_of(st.none(), st.integers(1, 2))), "shape_type": kind}
    if kind is None:
        del s["shape_type"]  # labelme 3.x: no shape_type means polygon
    return s


def checked(shapes, labels=None, report=None):
    report = report if report is not None else Report("skip")
    return labelme_reader._checked_entries(shapes, Path("f.json"), report, W, H, labels, False, Limits.default())


def plain(data: bytes | list, labels=None):
    """The shortcut's instances of a labelme file (bytes) or of a file holding
    these shapes, or None when it declines (msgspec's typed parse rejects the
    file, or a shape needs a message)."""
    if isinstance(data, list):
        data = orjson.dumps({"shapes": data})
    try:
        parsed = labelme_reader._parse_plain(data)
    except ValueError:
        return None
    return labelme_reader._plain_entries(parsed.shapes, labels)


def as_tuples(entries):
    return [(e.label, [[float(v) for v in p] for p in e.polys], e.items) for e in entries]


@settings(max_examples=200, deadline=None)
@given(shapes=st.lists(shape(), max_size=12))
def test_plain_shapes_give_the_checked_instances(shapes):
    fast = plain(shapes)
    report = Report("skip")
    slow = checked(shapes, report=report)
    if fast is None:  # the shortcut declines only when a shape needs a message (here: a zero-size box or circle)
        assert report.skips
    else:
        assert not report.skips and not report.warnings
        assert as_tuples(fast) == as_tuples(slow)


@pytest.mark.parametrize("bad", [
    {"label": "a", "points": [[1, 2], [3, 4]], "shape_type": "line"},  # not an instance: warned
    {"label": "__ignore__", "points": [[1, 2], [30, 4], [5, 60]]},  # dropped with a warning
    {"label": "a", "points": [[1, 2], [3, "x"], [5, 6]]},  # not a number
    {"label": "a", "points": [[1, 2], [3, 4]]},  # a polygon of 2 points
    {"label": "", "points": [[1, 2], [30, 4], [5, 60]]},
    {"label": "a", "points": [[1, 2, 3], [4, 5], [6]]},  # odd points whose count still adds up
    {"label": "a", "shape_type": "rectangle", "points": [[5, 5], [5, 9]]},  # zero width
    {"label": "z", "points": [[1, 2], [30, 4], [5, 60]]},  # not in the labels file
    "not a shape",
])
def test_any_shape_needing_a_message_takes_the_checked_path(bad):
    good = {"label": "a", "points": [[1, 2], [30, 4], [5, 60]]}
    assert plain([good, bad], frozenset({"a"})) is None
    assert plain([good], frozenset({"a"})) is not None


@pytest.mark.samples
def test_labelme_samples_plain_or_checked_agree():
    plain_files = 0
    for path, _root in find_files([LABELME], (".json",)):
        fast = plain(read_bytes(path))
        if fast is not None:
            plain_files += 1
            assert as_tuples(fast) == as_tuples(checked(load_json(path)["shapes"])), path
    assert plain_files >= 5  # the shortcut is exercised on real files, not only on generated ones


def polygon_columns(render=False):
    entries = [PolygonEntry("b", [[1.5, 2, 40, 2, 40, 30]], ["s0"], 0.9),
               PolygonEntry("a", [[0, 0, 10, 0, 10, 10, 0, 10], [20, 20, 30, 20, 30, 30]], ["s1", "s2"])]
    return entries, to_columns(entries, W, H, "f.json", Report(), render)


def test_columns_and_reports_survive_the_worker_pickle():
    entries, cols = polygon_columns()
    mask = Instance("m", [1.0, 1.0, 2.0, 2.0], 4.0, {"size": [H, W], "counts": "abc"})
    entries.insert(1, mask)
    cols = to_columns(entries, W, H, "f.json", Report())
    back = pickle.loads(pickle.dumps(cols))
    assert back.instances() == cols.instances()
    assert [i.label for i in back.instances()] == ["b", "m", "a"]
    assert back.instances()[2].segmentation == [[0, 0, 10, 0, 10, 10, 0, 10], [20, 20, 30, 20, 30, 30]]
    rep = Report("skip")
    rep.warn("kind", "where", 3)
    rep.error("f.json", "shape[1]", "bad")
    back = pickle.loads(pickle.dumps(rep))
    assert back.to_dict() == rep.to_dict() and back.on_error == "skip"
    assert pickle.loads(pickle.dumps(Report("skip"))).on_error == "skip"


def test_images_measured_together_equal_each_measured_alone():
    # columns_of_images batches images of several sizes; each image must come
    # out as to_columns makes it alone: clipping, dropped empty shapes, other
    # instances at their places, images without polygons.
    def images():
        mask = Instance("m", [1.0, 1.0, 2.0, 2.0], 4.0, {"size": [H, W], "counts": "abc"})
        return [
            ([PolygonEntry("a", [[0, 0, 10, 0, 10, 10]], ["s0"])], W, H),
            ([PolygonEntry("b", [[-5, 0, 700, 0, 700, 10.5]], ["s0"]),  # clipped to 640 x 480
              PolygonEntry("a", [[1, 1, 2, 2, 3, 3]], ["s1"]),  # collinear: dropped
              mask,
              PolygonEntry("c", [[0, 0, 5, 0, 5, 5], [8, 8, 9, 8, 9, 9]], ["s2", "s3"], 0.5)], W, H),
            ([], 100, 50),
            ([mask], 100, 50),
            ([PolygonEntry("a", [[0, 0, 200, 0, 200, 90]], ["s0"]),  # clipped to 100 x 50
              PolygonEntry("b", [np.array([10.0, 10, 20, 10, 20, 20])], ["s1"])], 100, 50),  # an array
            ([PolygonEntry("d", [[300, 300, 400, 300, 400, 400]], ["s0"])], 320, 240),  # outside: dropped
        ]

    alone = []
    for k, (entries, w, h) in enumerate(images()):
        rep = Report("skip")
        alone.append((to_columns(entries, w, h, f"{k}.json", rep), entries, rep.to_dict()))
    together = [ImageEntries(e, w, h, f"{k}.json", Report("skip")) for k, (e, w, h) in enumerate(images())]
    columns = columns_of_images(together)
    assert len(columns) == len(alone)
    for (cols, entries, report), batched, im in zip(alone, columns, together):
        assert batched.instances() == cols.instances()
        assert (batched.poly_len, batched.poly_count, batched.labels) == (cols.poly_len, cols.poly_count, cols.labels)
        assert im.rep.to_dict() == report
        assert [getattr(e, "label", None) for e in im.entries] == [getattr(e, "label", None) for e in entries]
    assert [c.labels for c, _, _ in alone] == [["a"], ["b", "c"], [], [], ["a", "b"], []]
    assert alone[1][0].bbox.tolist()[0] == [0.0, 0.0, 640.0, 10.5]
    assert alone[4][0].bbox.tolist()[0] == [0.0, 0.0, 100.0, 50.0]
    assert [len(r["skipped"]) for _, _, r in alone] == [0, 1, 0, 0, 0, 1]
    assert [sum(w["count"] for w in r["warnings"]) for _, _, r in alone] == [0, 1, 0, 0, 1, 1]  # clipped, then empty


@pytest.mark.parametrize("render", [False, True])
def test_polygons_straight_to_annotations_equal_the_instance_path(render):
    _, cols = polygon_columns(render)
    fast, shipped, slow = DatasetBuilder(), DatasetBuilder(), DatasetBuilder()
    for builder in (fast, shipped, slow):
        builder.add(ImageDraft("first.jpg", W, H, [Instance("c", [0, 0, 1, 1], 1.0, [[0, 0, 1, 0, 1, 1]])]))
    cols.add_to(fast, ImageDraft("x.jpg", W, H, extra={"k": 1}))
    back = pickle.loads(pickle.dumps(cols))  # as a worker sends it: rendered JSON only for a COCO writer
    assert isinstance(back, RenderedColumns) == render and back.instances() == cols.instances()
    back.add_to(shipped, ImageDraft("x.jpg", W, H, extra={"k": 1}))
    slow.add(ImageDraft("x.jpg", W, H, cols.instances(), {"k": 1}))
    # a score is never rendered; without render nothing is
    assert [a.rendered_geometry() is not None for a in fast.annotations] == [False, False, render]
    assert [a.rendered_geometry() is not None for a in shipped.annotations] == [False, False, render]
    assert fast.build().to_coco() == shipped.build().to_coco() == slow.build().to_coco()
    assert [a.score for a in fast.annotations] == [None, 0.9, None]


def mixed_dataset():
    """Rendered polygons between annotations that take the dict path: a
    crowd RLE with bytes counts, keypoints, a score, extra keys, a polygon
    too short for COCO, and an image without annotations."""
    b = DatasetBuilder()
    _, cols = polygon_columns(render=True)
    cols.add_to(b, ImageDraft("a.jpg", W, H))
    b.add(ImageDraft("b.jpg", W, H, [
        Instance("m", [1.0, 1.0, 2.0, 2.0], 4.0, {"size": [H, W], "counts": b"PPYo0"}, 1),
        Instance("k", [0.0, 0.0, 5.0, 5.0], 25.0, [[0, 0, 5, 0, 5, 5]], keypoints=[1.0, 2.0, 2], keypoint_names=["p"]),
        Instance("e", [0.0, 0.0, 5.0, 5.0], 25.0, [[0, 0, 5, 0, 5, 5], [1, 1, 2, 2]], extra={"note": "x"}),
    ]))
    b.add(ImageDraft("empty.jpg", W, H))
    pickle.loads(pickle.dumps(cols)).add_to(b, ImageDraft("c.jpg", W, H))
    return b.build({"description": "t"})


@pytest.mark.parametrize("chunk", [4096, 1])
def test_coco_json_chunks_are_the_dict_path_byte_for_byte(chunk, monkeypatch):
    monkeypatch.setattr(coco_writer, "CHUNK_ANNOTATIONS", chunk)  # 1: pieces cut between every two parts
    ds = mixed_dataset()
    assert [a.rendered_geometry() is not None for a in ds.annotations] == [False, True, False, False, False, False, True]
    report, dict_report = Report(), Report()
    chunks = list(coco_json_chunks(ds, report))
    assert len(chunks) == (3 if chunk > 7 else 5)  # head, annotations (6 pieces: 1 or 3 chunks), categories
    fast = b"".join(chunks)
    assert fast == dumps_json(coco_dict(mixed_dataset(), dict_report))
    assert report.to_dict() == dict_report.to_dict() and report.warnings["polygons with fewer than 3 points dropped"]
    out = orjson.loads(fast)
    assert out["annotations"][2]["segmentation"] == {"size": [H, W], "counts": "PPYo0"}
    assert [a["id"] for a in out["annotations"]] == list(range(1, 8)) and len(out["images"]) == 4


def test_rendered_geometry_is_parsed_on_use_and_dropped_when_set():
    bbox, seg = [1.5, 2.0, 38.5, 28.0], [[1.5, 2.0, 40.0, 2.0, 40.0, 30.0]]
    a = Annotation(7, 2, 3, rendered=render_geometry(bbox, 539.0, seg))
    plain = Annotation(7, 2, 3, bbox, 539.0, seg)
    assert b'{"id":7,"image_id":2,"category_id":3,' + a.rendered_geometry() == orjson.dumps(plain.to_coco())
    assert pickle.loads(pickle.dumps(a)) == a == plain  # comparing parses the geometry
    assert a.rendered_geometry() is None  # parsed: written from the fields from now on
    b = Annotation(7, 2, 3, rendered=render_geometry(bbox, 539.0, seg))
    b.area = 1.0
    assert (b.bbox, b.area, b.segmentation) == (bbox, 1.0, seg) and b.rendered_geometry() is None
    c = Annotation(7, 2, 3, rendered=render_geometry(bbox, 539.0, seg))
    c.iscrowd = 1  # outside the rendering: the dict path writes it
    assert c.rendered_geometry() is None and c.to_coco()["iscrowd"] == 1 and c.to_coco()["bbox"] == bbox


def test_bulk_pauses_collection_then_hands_what_it_built_to_the_oldest_generation():
    assert gc.isenabled()
    with bulk():
        assert not gc.isenabled()
        with bulk():  # nested: the outer block decides
            built = [[k] for k in range(50_000)]
        assert not gc.isenabled()
    assert gc.isenabled() and len(built) == 50_000
    # the new lists went straight to the oldest generation: no young
    # collection walks them (without the hand-over they would sit in a young
    # one after the first collection)
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert id(built[0]) in oldest and id(built[-1]) in oldest


def _doubled(batch):
    return [2 * k for k in batch]


def _fails_at_250(batch):
    if 250 in batch:
        raise ValueError("item 250")
    return list(batch)


def test_worker_results_travel_through_temp_files_removed_after_use(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    results = map_batches(_doubled, list(range(300)), jobs=2)
    assert next(results) == 0
    spill = list(tmp_path.iterdir())  # while the workers run: their folder, each read result already deleted
    assert [p.name.startswith("annot-") and p.is_dir() for p in spill] == [True]
    assert [*results] == [2 * k for k in range(1, 300)]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="item 250"):
        list(map_batches(_fails_at_250, list(range(300)), jobs=2))
    assert list(tmp_path.iterdir()) == []  # also after a worker failed


def test_json_lists_split_into_raw_items_parsed_later(tmp_path):
    import msgspec

    from annot.converters.discovery import load_json_items, parse_item

    items = [{"id": 1, "t": "\u4e2d"}, [1, 2.5], "x", None]
    path = tmp_path / "list.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(items, ensure_ascii=False).encode())
    raw = load_json_items(path)
    assert all(isinstance(r, msgspec.Raw) for r in raw)
    assert [parse_item(r) for r in raw] == items
    path.write_text('{"id": 1}')  # not a list: parsed whole, as load_json does
    assert load_json_items(path) == {"id": 1}
    path.write_bytes(json.dumps(items, ensure_ascii=False).encode("gb18030"))  # not UTF-8: the GB18030 fallback
    assert [parse_item(r) for r in load_json_items(path)] == items
    path.write_text('[{"id": 1},')
    with pytest.raises(ValueError, match="line 1 column 12"):  # orjson's message, with its position
        load_json_items(path)


def test_file_walk_order_hidden_files_and_symlinked_folders(tmp_path):
    for rel in ("b.json", "a/z.json", "a-b/y.json", "a/.hidden.json", "a/n.txt", "a/deep/x.JSON"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    os.symlink(tmp_path / "a", tmp_path / "link")
    found = [f.relative_to(tmp_path).as_posix() for f, root in find_files([tmp_path], (".json",))]
    assert found == ["a/deep/x.JSON", "a/z.json", "a-b/y.json", "b.json"]  # Path order: "a" before "a-b"
    assert found == [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path.rglob("*"))
                     if p.suffix.lower() == ".json" and p.is_file() and not p.name.startswith(".")
                     and "link" not in p.parts]


_coordinate = st.one_of(st.floats(0, 100), st.integers(0, 100), st.floats(0, 100).map(repr))


@given(pts=st.lists(st.lists(_coordinate, min_size=2, max_size=3), min_size=1, max_size=20),
       sx=st.floats(0.01, 100), sy=st.floats(0.01, 100))
def test_labelstudio_polygon_scaling(pts, sx, sy):
    # plain [x, y] pairs take the fast path; extra values or numeric strings the general one
    expected = [v for p in pts for v in (float(p[0]) * sx, float(p[1]) * sy)]
    assert _scaled_points(pts, sx, sy) == expected


def test_labelstudio_points_with_extra_values_keep_x_y():
    assert _scaled_points([[10, 20, 1], [30, 40, 1], [50, 60, 1]], 2, 0.5) == [20, 10, 60, 20, 100, 30]
    assert _scaled_points([["10", 20], [30, 40]], 2, 1) == [20, 20, 60, 40]  # numbers as strings, as before


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples not found")
def test_shared_samples_walk_matches_rglob():
    found = [f for f, _ in find_files([SAMPLES], (".json",))]
    expected = sorted(p for p in SAMPLES.rglob("*")
                      if p.suffix.lower() == ".json" and p.is_file() and not p.name.startswith("."))
    assert found == expected
