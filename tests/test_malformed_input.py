"""Malformed input never crashes the converters.

Real sample files with values of the wrong type put at random places (a list
where a label was, a string for a coordinate, a huge integer for a size, a
deleted key, ...) must give either one error line and exit 2, or, with
``--on-error skip``, a COCO file that passes ``annot validate``. Never an
internal error. ``annot validate`` and ``annot predict --gt`` get the same
treatment on COCO files.

CI runs a fixed set of cases; ``ANNOT_FUZZ_EXAMPLES=5000 .venv/bin/pytest
tests/test_malformed_input.py`` explores new random ones.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import LABELME, LS_DATA, SAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annot.cli import main
from annot.validate import load_valid_coco

pytestmark = pytest.mark.samples  # reads ../shared/samples

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}

JSON_SOURCES = {
    "labelme": [
        LABELME / "examples/primitives/primitives.json",
        LABELME / "examples/tutorial/apc2016_obj3.json",
        LABELME / "examples/semantic_segmentation/data_annotated/2011_000003.json",
        LABELME / "examples/video_annotation/data_annotated/00000100.json",
        LABELME / "examples/classification/data_annotated/0001.json",
        LABELME / "history/v3.16.7/examples/primitives/primitives.json",
    ],
    "labelstudio": [
        LS_DATA / "test_export_coco/data.json",
        LS_DATA / "test_export_yolo/data_obb.json",
        LS_DATA / "test_export_yolo/data_polygons.json",
        LS_DATA / "test_export_yolo/data_keypoints.json",
        LS_DATA / "test_export_json_min/data.json",
    ],
    "coco": [
        SAMPLES / "fcakyon-labelme2coco/tests/data/coco_true_1.json",
        SAMPLES / "openvinotoolkit-datumaro/tests/assets/coco_dataset/coco/annotations/instances_train.json",
        SAMPLES / "openvinotoolkit-datumaro/tests/assets/coco_dataset/coco/annotations/person_keypoints_train.json",
    ],
}
VOC_SOURCES = [
    SAMPLES / "datitran-raccoon_dataset/annotations/raccoon-1.xml",
    SAMPLES / "openvinotoolkit-datumaro/tests/assets/voc_dataset/voc_dataset2/Annotations/b.xml",
]
YOLO_SOURCE = LS_DATA / "test_import_yolo_data"

# Values of every JSON type, including the awkward ones: huge integers,
# non-finite floats, numeric strings, nested containers.
json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "x", "1", "-3.5", "1e400", "nan", "polygon", "rectangle", "circle", "mask", "rle"]),
    st.sampled_from([[], [1], [[1, 2]], [[None, "a"]], ["a", "b"], {}, {"x": 1}, [{"x": 1}]]),
)
xml_texts = st.sampled_from(["", " ", "x", "-1", "0", "1e400", "nan", "12.5", "100000000000000000000"])


def test_sources_exist():
    sources = [p for ps in JSON_SOURCES.values() for p in ps] + VOC_SOURCES + [YOLO_SOURCE]
    assert [p for p in sources if not p.exists()] == []


def _paths(obj, prefix=()):
    """Every place in a JSON document (the first 4 items of each list)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield from _paths(v, (*prefix, i))


def _mutate(doc, data):
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(list(_paths(doc))), label="path")
        if not path:
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if isinstance(parent, dict) and data.draw(st.booleans(), label="delete"):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(data.draw(json_values, label="value"))
    return doc


def _mutated_sample(fmt: str, data, work: Path) -> tuple[Path, Path]:
    """(a sample of ``fmt``, a mutated copy of it written in ``work``)."""
    src = data.draw(st.sampled_from(JSON_SOURCES[fmt]), label="sample")
    doc = _mutate(json.loads(src.read_text(encoding="utf-8-sig")), data)
    inp = work / src.name
    inp.write_text(json.dumps(doc))
    return src, inp


def _link_images(src_dir: Path, dst_dir: Path) -> None:
    for f in src_dir.iterdir():
        if f.suffix.lower() in IMAGE_SUFFIXES:
            os.symlink(f, dst_dir / f.name)


def _convert_both_ways(fmt: str, inp: Path, work: Path) -> None:
    """Run ``annot convert FMT coco`` with both error policies; assert the outcome."""
    for policy in ("fail", "skip"):
        out = work / f"out_{policy}.json"
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["convert", fmt, "coco", str(inp), "-o", str(out), "-q", "-j", "1",
                         "--on-error", policy, "--overwrite"])
        text = err.getvalue()
        assert code in (0, 2), (policy, code, text)
        assert "internal error" not in text and "Traceback" not in text, text
        if code == 2:
            lines = [ln for ln in text.splitlines() if ln.strip()]
            assert len(lines) == 1, text  # one line naming the file, the item and the reason
            assert str(inp.name) in lines[0] or str(work) in lines[0], lines[0]
            assert not out.exists()  # nothing half-written
        else:
            load_valid_coco(out)  # raises with the problems when the written COCO is invalid


def _case_dir():
    return tempfile.TemporaryDirectory(prefix="annot-malformed-")


_EXPLORE = int(os.environ.get("ANNOT_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_EXPLORE or 120, deadline=None, derandomize=not _EXPLORE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("fmt", sorted(JSON_SOURCES))
@SETTINGS
@given(data=st.data())
def test_json_formats_never_crash(fmt, data):
    with _case_dir() as d:
        work = Path(d)
        src, inp = _mutated_sample(fmt, data, work)
        if fmt == "labelme":
            _link_images(src.parent, work)
        _convert_both_ways(fmt, inp, work)


@settings(SETTINGS, max_examples=_EXPLORE or 400)  # a case takes milliseconds
@given(data=st.data())
def test_validate_never_crashes(data):
    with _case_dir() as d:
        _, inp = _mutated_sample("coco", data, Path(d))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["validate", "coco", str(inp)])
        text = err.getvalue()
        assert code in (0, 1, 2), (code, text)  # valid, problems listed, unreadable
        assert "internal error" not in text and "Traceback" not in text, text


@settings(SETTINGS, max_examples=_EXPLORE or 400)
@given(data=st.data())
def test_predict_ground_truth_never_crashes(data):
    from annot.errors import AnnotError
    from annot.plugins.ground_truth import GroundTruth

    with _case_dir() as d:
        _, inp = _mutated_sample("coco", data, Path(d))
        try:
            GroundTruth.read(inp)  # what `annot predict --gt` reads
        except AnnotError as e:
            assert str(e).startswith(str(inp))


@SETTINGS
@given(data=st.data())
def test_voc_never_crashes(data):
    src = data.draw(st.sampled_from(VOC_SOURCES), label="sample")
    tree = ET.parse(src)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        parents = [(p, c) for p in tree.iter() for c in p]
        parent, child = data.draw(st.sampled_from(parents), label="element")
        action = data.draw(st.sampled_from(["text", "remove", "duplicate"]), label="action")
        if action == "text":
            child.text = data.draw(xml_texts, label="text")
        elif action == "remove":
            parent.remove(child)
        else:
            parent.append(copy.deepcopy(child))
    with _case_dir() as d:
        work = Path(d)
        tree.write(work / src.name, encoding="utf-8")
        _convert_both_ways("voc", work / src.name, work)


@settings(SETTINGS, max_examples=_EXPLORE or 60)  # each case reads 7 real images
@given(data=st.data())
def test_yolo_never_crashes(data):
    with _case_dir() as d:
        work = Path(d) / "yolo"
        shutil.copytree(YOLO_SOURCE / "labels", work / "labels")
        shutil.copy(YOLO_SOURCE / "classes.txt", work)
        (work / "images").mkdir()
        _link_images(YOLO_SOURCE / "images", work / "images")
        files = sorted((work / "labels").glob("*.txt")) + [work / "classes.txt"]
        target = data.draw(st.sampled_from(files), label="file")
        lines = target.read_text().splitlines() or [""]
        k = data.draw(st.integers(0, len(lines) - 1), label="line")
        tokens = lines[k].split() or [""]
        j = data.draw(st.integers(0, len(tokens) - 1), label="token")
        tokens[j] = data.draw(st.one_of(xml_texts, st.sampled_from(["", "7", "-2", "1 2", "0.5 0.5"])), label="new")
        if data.draw(st.booleans(), label="drop rest"):
            tokens = tokens[: j + 1]
        lines[k] = " ".join(tokens)
        target.write_text("\n".join(lines) + "\n")
        _convert_both_ways("yolo", work, Path(d))


@SETTINGS
@given(data=st.data())
def test_createml_never_crashes(data, synthetic_project):
    src = synthetic_project["createml"] / "annotations.json"
    doc = _mutate(json.loads(src.read_text()), data)
    with _case_dir() as d:
        work = Path(d)
        (work / "annotations.json").write_text(json.dumps(doc))
        _link_images(src.parent, work)
        _convert_both_ways("createml", work / "annotations.json", work)


@pytest.fixture(scope="module")
def synthetic_project(tmp_path_factory):
    from synthetic import write_project

    return write_project(tmp_path_factory.mktemp("synthetic"), n_images=3)
