"""Bad input: one clear line, a non-zero exit, nothing half-written."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from conftest import LABELME, load

pytestmark = pytest.mark.samples  # reads ../shared/samples


def _good(path, n=3):
    doc = {"version": "5.3.1", "flags": {}, "imagePath": "x.png", "imageData": None, "imageWidth": 100,
           "imageHeight": 80, "shapes": [{"label": "a", "points": [[1, 1], [n + 10, 1], [n + 10, 20]],
                                         "shape_type": "polygon", "group_id": None, "flags": {}}]}
    path.write_text(json.dumps(doc))


def _project(tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    for k in range(3):
        _good(d / f"{k}.json", k)
    bad = json.loads((d / "1.json").read_text())
    bad["shapes"].append({"label": "b", "points": [[1, 1], [2, 2]], "shape_type": "polygon"})
    (d / "1.json").write_text(json.dumps(bad))
    (d / "2.json").write_text("{ not json")
    return d


def test_fail_stops_at_first_error_without_output(annot, tmp_path):
    d = _project(tmp_path)
    out = tmp_path / "o.json"
    res = annot("convert", "labelme", "coco", d, "-o", out)
    assert res.code == 2
    assert res.err.strip() == f"annot: error: {d / '1.json'}:shape[1]: polygon has 2 point(s), needs at least 3"
    assert "Traceback" not in res.err
    assert not out.exists() and list(tmp_path.iterdir()) == [d]  # no temp file left either


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_first_error_in_file_order_wins_across_stages(annot, tmp_path, jobs):
    # Files are read in batches: shapes are measured after every file of a
    # batch is parsed. A shape found to cover no pixel in 0100.json must still
    # be reported before the unreadable 0101.json that follows it.
    d = tmp_path / "many"
    d.mkdir()
    for k in range(260):  # enough for worker processes under -j 2
        _good(d / f"{k:04d}.json")
    doc = json.loads((d / "0100.json").read_text())
    doc["shapes"][0]["points"] = [[1, 1], [5, 5], [9, 9]]  # collinear: no pixel
    (d / "0100.json").write_text(json.dumps(doc))
    (d / "0101.json").write_text("{ not json")
    res = annot("convert", "labelme", "coco", d, "-o", tmp_path / "o.json", "-j", jobs)
    assert res.code == 2
    assert res.err.strip() == f"annot: error: {d / '0100.json'}:shape[0]: shape covers no pixel inside the image"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_first_error_in_task_order_wins_across_stages(annot, tmp_path, jobs):
    # The same for Label Studio tasks, read in batches of an export.
    def task(k, points):
        region = {"type": "polygonlabels", "from_name": "label", "to_name": "image", "original_width": 100,
                  "original_height": 80, "value": {"points": points, "polygonlabels": ["a"]}}
        return {"id": k, "data": {"image": f"/data/upload/1/0123abcd-{k}.jpg"},
                "annotations": [{"id": k, "result": [region]}]}

    tasks = [task(k, [[10, 10], [50, 10], [50, 50]]) for k in range(260)]
    tasks[100] = task(100, [[10, 10], [20, 20], [30, 30]])  # collinear: no pixel
    tasks[101] = "not a task"
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    res = annot("convert", "labelstudio", "coco", export, "-o", tmp_path / "o.json", "-j", jobs)
    assert res.code == 2
    assert res.err.strip() == f"annot: error: {export}:task 100.result[0]: shape covers no pixel inside the image"
    # a keypoint error (found while reading) before a later task's empty shape (found while measuring)
    tasks[100] = task(100, [[10, 10], [50, 10], [50, 50]])
    region = tasks[100]["annotations"][0]["result"][0]
    region["id"] = "r1"
    tasks[100]["annotations"][0]["result"].append(
        {"type": "keypointlabels", "from_name": "kp", "to_name": "image", "parentID": "r1", "original_width": 100,
         "original_height": 80, "value": {"x": "oops", "y": 5, "keypointlabels": ["nose"]}})
    tasks[101] = task(101, [[10, 10], [20, 20], [30, 30]])
    export.write_text(json.dumps(tasks))
    res = annot("convert", "labelstudio", "coco", export, "-o", tmp_path / "o.json", "-j", jobs)
    assert res.code == 2
    assert res.err.strip() == f"annot: error: {export}:task 100.result[1]: keypoint x and y must be numbers"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_task_that_only_its_own_parse_refuses_is_named(annot, tmp_path, jobs):
    # The export is split into tasks in the main process (syntax checked) and
    # each task parsed by a worker: 1e400 is valid syntax that orjson refuses.
    tasks = [{"id": k, "data": {"image": f"{k}.jpg", "n": "BIG" if k == 150 else k},
              "annotations": [{"id": k, "result": [{
                  "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 100,
                  "original_height": 80, "value": {"x": 10, "y": 10, "width": 20, "height": 20,
                                                   "rectanglelabels": ["a"]}}]}]} for k in range(260)]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks).replace('"BIG"', "1e400"))
    res = annot("convert", "labelstudio", "coco", export, "-o", tmp_path / "o.json", "-j", jobs)
    assert res.code == 2 and not (tmp_path / "o.json").exists()
    assert res.err.strip().startswith(f"annot: error: {export}:[150]: cannot read JSON: number is infinity")
    res = annot("convert", "labelstudio", "coco", export, "-o", tmp_path / "o.json", "-j", jobs, "--on-error", "skip")
    assert res.code == 0
    images = load(tmp_path / "o.json")["images"]
    assert len(images) == 259 and "150.jpg" not in {im["file_name"] for im in images}


def test_group_id_that_is_not_a_number_is_one_line(annot, tmp_path):
    _good(tmp_path / "g.json")
    doc = json.loads((tmp_path / "g.json").read_text())
    doc["shapes"][0]["group_id"] = [1]
    (tmp_path / "g.json").write_text(json.dumps(doc))
    res = annot("convert", "labelme", "coco", tmp_path / "g.json", "-o", tmp_path / "o.json")
    assert res.code == 2
    assert res.err.strip() == f"annot: error: {tmp_path / 'g.json'}:shape[0]: group_id must be a number or null, not list"


def test_skip_writes_output_report_and_summary(annot, tmp_path):
    d = _project(tmp_path)
    out = tmp_path / "o.json"
    res = annot("convert", "labelme", "coco", d, "-o", out, "--on-error", "skip")
    assert res.code == 0
    coco = load(out)
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 2  # the bad shape and the bad file skipped
    report = load(tmp_path / "o.json.report.json")
    assert [(s["path"], s["item"]) for s in report["skipped"]] == [(str(d / "1.json"), "shape[1]"), (str(d / "2.json"), None)]
    assert "cannot read JSON" in report["skipped"][1]["reason"]
    assert "skipped 2 item(s)" in res.err


def test_existing_output_is_not_overwritten_without_flag(annot, tmp_path):
    out = tmp_path / "o.json"
    out.write_text("precious")
    src = LABELME / "examples/primitives/primitives.json"
    res = annot("convert", "labelme", "coco", src, "-o", out)
    assert res.code == 2 and "already exists; pass --overwrite" in res.err
    assert out.read_text() == "precious"
    assert annot("convert", "labelme", "coco", src, "-o", out, "--overwrite", "-q").code == 0
    assert load(out)["images"][0]["file_name"] == "primitives.jpg"


def test_devices_are_written_to_not_replaced(annot, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    res = annot("convert", "labelme", "coco", LABELME / "examples/primitives/primitives.json", "-o", fifo, "-q")
    reader.join(timeout=30)
    assert res.code == 0, res
    assert json.loads(received[0])["images"][0]["file_name"] == "primitives.jpg"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a pipe, not a file renamed over it


def test_folder_outputs_keep_what_else_the_folder_holds(annot, tmp_path):
    """labelme keeps its JSON beside the images: writing labelme files into an
    image folder adds them and, with --overwrite, replaces the same-named
    ones, but never removes anything else (a user's images, notes)."""
    out = tmp_path / "lm"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    (out / "primitives.jpg").write_bytes(b"an image")
    coco = tmp_path / "c.json"
    assert annot("convert", "labelme", "coco", LABELME / "examples/primitives/primitives.json", "-o", coco, "-q").code == 0
    assert annot("convert", "coco", "labelme", coco, "-o", out, "-q").code == 0  # nothing of the same name there
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt", "primitives.jpg", "primitives.json"]
    res = annot("convert", "coco", "labelme", coco, "-o", out)
    assert res.code == 2 and "1 of the 1 files this writes are there already (first: primitives.json); pass " \
        "--overwrite" in res.err
    (out / "primitives.json").write_text("{}")
    assert annot("convert", "coco", "labelme", coco, "-o", out, "--overwrite", "-q").code == 0
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt", "primitives.jpg", "primitives.json"]
    assert (out / "mine.txt").read_text() == "keep" and (out / "primitives.jpg").read_bytes() == b"an image"
    assert json.loads((out / "primitives.json").read_text())["shapes"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lm")]  # no temp folder left


def test_two_images_never_write_one_file(annot, tmp_path):
    coco = {"images": [{"id": k + 1, "file_name": n, "width": 8, "height": 6} for k, n in
                       enumerate(["a.jpg", "sub/b.jpg", "sub/b.png"])],
            "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    for fmt in ("labelme", "voc", "yolo"):
        res = annot("convert", "coco", fmt, tmp_path / "c.json", "-o", tmp_path / fmt)
        assert res.code == 2 and "images 'sub/b.jpg' and 'sub/b.png' would both be written as sub/b." in res.err
        assert not (tmp_path / fmt).exists()


@pytest.mark.parametrize("args, message", [
    (("convert", "labelmee", "coco", "x", "-o", "y"), "unknown format 'labelmee'; known: coco, createml, labelme, labelstudio, voc, yolo"),
    (("convert", "coco", "createml", "x", "-o", "y"), "createml can only be read"),
    (("convert", "labelme", "coco", "x", "-o", "y", "--pixel-convention", "voc1"), "--pixel-convention does not apply to labelme -> coco"),
    (("convert", "labelme", "coco", "/nonexistent/dir", "-o", "y"), "/nonexistent/dir: no such file or directory"),
    (("validate", "coco", "/nonexistent.json"), "/nonexistent.json: cannot read"),
])
def test_user_errors_are_one_line(annot, args, message):
    res = annot(*args)
    assert res.code == 2
    assert message in res.err and "Traceback" not in res.err


def test_parallel_matches_serial_and_progress_is_silent_off_tty(annot, tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for k in range(260):  # above the threshold where worker processes start
        _good(d / f"{k:04d}.json", k % 50)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    ra = annot("convert", "labelme", "coco", d, "-o", a, "-j", "2")
    rb = annot("convert", "labelme", "coco", d, "-o", b, "-j", "1", "-q")
    assert ra.code == rb.code == 0
    assert a.read_bytes() == b.read_bytes()
    assert "it/s" not in ra.err and "file/s" not in ra.err  # stdout is not a TTY: no progress bar
    # a writer other than COCO gets numbers from the workers, not rendered JSON: same output
    ls_a, ls_b = tmp_path / "a.ls.json", tmp_path / "b.ls.json"
    assert annot("convert", "labelme", "labelstudio", d, "-o", ls_a, "-j", "2", "-q").code == 0
    assert annot("convert", "labelme", "labelstudio", d, "-o", ls_b, "-j", "1", "-q").code == 0
    assert ls_a.read_bytes() == ls_b.read_bytes()


def test_console_script_exits_promptly_with_everything_written(tmp_path):
    # The installed `annot` ends with os._exit after flushing its output and
    # running atexit handlers: the file, the summary on stdout, an error on
    # stderr and the exit status must all come through, also into pipes.
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("annot")
    d = _project(tmp_path)
    (d / "1.json").unlink()  # the other two files are valid
    (d / "2.json").unlink()
    out = tmp_path / "o.json"
    ok = subprocess.run([script, "convert", "labelme", "coco", d, "-o", out], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "total" in ok.stdout and "Traceback" not in ok.stderr
    assert len(load(out)["annotations"]) == 1
    bad = subprocess.run([script, "convert", "labelme", "coco", tmp_path / "missing", "-o", tmp_path / "p.json"],
                         capture_output=True, text=True)
    assert (bad.returncode, bad.stderr.strip()) == (2, f"annot: error: {tmp_path / 'missing'}: no such file or directory")
    hook = ("import atexit, sys; atexit.register(lambda: print('atexit ran', flush=True)); "
            "sys.argv = ['annot', 'formats']; from annot.cli import entry; entry()")
    ran = subprocess.run([sys.executable, "-c", hook], capture_output=True, text=True)
    assert ran.returncode == 0 and "coco" in ran.stdout and ran.stdout.rstrip().endswith("atexit ran")
