"""Untrusted annotation files (tests/hostile/, see its README) through every
reader and writer, each run in a subprocess under a 2 GiB address-space
limit and a time limit: exit 0 or one clean error line, never a traceback,
MemoryError, OOM kill or crash in C code, and nothing written outside the
output folder (the sandbox is listed before and after)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

HOSTILE = Path(__file__).parent / "hostile"
AS_LIMIT = 2 << 30
TIMEOUT = 120
RUN = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({AS_LIMIT}, {AS_LIMIT})); "
       "from annot.cli import entry; entry()")
WRITERS = ["coco", "labelme", "labelstudio", "yolo", "voc"]
# inputs sit in DEPTH and outputs in OUT_DIR, each four folders down, so that a name climbing out of
# either with ../../../../outside/ lands in the sandbox's outside/ (where it shows), not elsewhere
DEPTH = "in/a/b/c"
OUT_DIR = "out/o/p"


def _generated(folder: Path) -> dict[str, Path]:
    """The hostile files too big to keep in the repository."""
    folder.mkdir(parents=True, exist_ok=True)
    zigzag = [[0.0 if k % 2 else 60000.0, float(k % 60000)] for k in range(1_000_000)]
    files = {}
    files["labelme"] = folder / "million_points.json"
    files["labelme"].write_text(json.dumps({"shapes": [{"label": "a", "points": zigzag, "shape_type": "polygon"}],
                                            "imagePath": "x.png", "imageHeight": 60000, "imageWidth": 60000}))
    files["coco"] = folder / "million_points_coco.json"
    files["coco"].write_text(json.dumps({
        "images": [{"id": 1, "file_name": "x.png", "width": 60000, "height": 60000}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 60000, 60000],
                         "segmentation": [[v for p in zigzag for v in p]]}],
        "categories": [{"id": 1, "name": "a"}]}))
    files["base64"] = folder / "huge_image_data.json"
    with open(files["base64"], "w") as f:
        f.write('{"shapes": [], "imagePath": "", "imageHeight": 6, "imageWidth": 8, "imageData": "')
        f.write("A" * (150 << 20))
        f.write('"}')
    return files


def _cases(generated: dict[str, Path]) -> list[tuple[str, list, str | None]]:
    """(id, argv after `annot`, a text the error must contain, or None for "exit 0 or any clean error")."""
    h = HOSTILE
    cases = [
        ("labelme traversal extract", ["convert", "labelme", "coco", h / "labelme/traversal_extract.json",
                                       "-o", "OUT/c.json", "--extract-images", "OUT/imgs"], "leads outside"),
        ("labelme mask PNG bomb", ["convert", "labelme", "coco", h / "labelme/mask_png_bomb.json", "-o", "OUT/c.json"],
         "mask PNG is 200000x200000"),
        ("labelme imageData bomb", ["convert", "labelme", "coco", h / "labelme/image_data_bomb.json", "-o",
                                    "OUT/c.json"], "70000x70000"),
        ("labelme million points", ["convert", "labelme", "coco", generated["labelme"], "-o", "OUT/c.json"],
         "over the memory budget"),
        ("labelme 150 MB imageData", ["convert", "labelme", "coco", generated["base64"], "-o", "OUT/c.json"],
         "over the memory budget"),
        ("coco million points", ["convert", "coco", "coco", generated["coco"], "-o", "OUT/c.json"],
         "over the memory budget"),
        ("labelstudio brush 60000 px", ["convert", "labelstudio", "coco", h / "labelstudio/brush_60000px.json",
                                        "-o", "OUT/c.json"], "over the memory budget"),
        ("labelstudio brush header", ["convert", "labelstudio", "coco", h / "labelstudio/brush_header_lies.json",
                                      "-o", "OUT/c.json"], "4294967295 values"),
        # the file leading out exists: found only if the name were followed
        ("labelstudio local-files traversal", ["convert", "labelstudio", "coco",
                                               h / "labelstudio/local_files_traversal.json", "-o", "OUT/c.json",
                                               "--image-root", DEPTH], "image size unknown"),
        ("voc traversal", ["convert", "voc", "coco", h / "voc/traversal_filename.xml", "-o", "OUT/c.json"],
         "not found"),
        ("voc billion laughs", ["convert", "voc", "coco", h / "voc/billion_laughs.xml", "-o", "OUT/c.json"],
         "cannot read XML"),
        ("voc external entity", ["convert", "voc", "coco", h / "voc/external_entity.xml", "-o", "OUT/c.json"],
         "cannot read XML"),
        ("createml traversal", ["convert", "createml", "coco", h / "createml/traversal_image.json", "-o",
                                "OUT/c.json"], "not found"),
        ("coco traversal", ["convert", "coco", "coco", h / "coco/traversal_file_name.json", "-o", "OUT/c.json"],
         "not found"),
        ("coco RLE past its size", ["convert", "coco", "coco", h / "coco/rle_counts_past_size.json", "-o",
                                    "OUT/c.json"], "RLE counts sum to 5,000,005 pixels"),
        ("coco RLE string past its size", ["convert", "coco", "coco", h / "coco/rle_string_past_size.json", "-o",
                                           "OUT/c.json"], "RLE counts sum to"),
        ("validate RLE past its size", ["validate", "coco", h / "coco/rle_string_past_size.json"], "RLE counts sum"),
    ]
    for f in sorted((h / "labelme").glob("*.json")):
        cases.append((f"labelme {f.stem}", ["convert", "labelme", "coco", f, "-o", "OUT/c.json"], None))
    for f in sorted((h / "labelstudio").glob("*.json")):
        cases.append((f"labelstudio {f.stem}", ["convert", "labelstudio", "labelstudio", f, "-o", "OUT/t.json"], None))
    for f in sorted((h / "voc").glob("*.xml")):
        cases.append((f"voc {f.stem}", ["convert", "voc", "voc", f, "-o", "OUT/v"], None))
    for f in sorted((h / "createml").glob("*.json")):
        cases.append((f"createml {f.stem}", ["convert", "createml", "coco", f, "-o", "OUT/c.json"], None))
    cases.append(("yolo", ["convert", "yolo", "coco", h / "yolo", "-o", "OUT/c.json"], None))
    for f in sorted((h / "fuzz").glob("*.json")):  # what tests/fuzz/fuzz_readers.py found, kept
        fmt = f.stem.rsplit("_", 1)[0]
        cases.append((f"fuzz {f.stem}", ["convert", fmt, "coco", f, "-o", "OUT/c.json"], None))
    for f in sorted((h / "coco").glob("*.json")):
        cases.append((f"validate {f.stem}", ["validate", "coco", f], None))
        for w in WRITERS:
            out = "OUT/x.json" if w in ("coco", "labelstudio") else "OUT/x"
            cases.append((f"coco {f.stem} -> {w}", ["convert", "coco", w, f, "-o", out], None))
    return cases


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _run(sandbox: Path, argv: list) -> tuple[int, str, set[str]]:
    """Run annot in its own sandbox (inputs copied in, a real image where
    traversal would lead); returns (exit code, stderr, new paths outside OUT)."""
    (sandbox / DEPTH).mkdir(parents=True)
    (sandbox / OUT_DIR).mkdir(parents=True)
    (sandbox / "outside").mkdir()
    Image.new("RGB", (8, 6)).save(sandbox / "outside" / "escaped.png")
    args = []
    for a in argv:
        if isinstance(a, Path):
            target = sandbox / DEPTH / a.name
            (shutil.copytree if a.is_dir() else shutil.copy)(a, target)
            a = target
        args.append(str(a).replace("OUT/", f"{sandbox / OUT_DIR}/"))
    before = _tree(sandbox)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        proc = subprocess.run([sys.executable, "-c", RUN, *args], cwd=sandbox, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT} s", set()
    escaped = {p for p in _tree(sandbox) - before if Path(p).parts[0] != "out"}
    return proc.returncode, proc.stderr, escaped


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case run once (two at a time: each is a process of its own)."""
    root = tmp_path_factory.mktemp("hostile")
    cases = _cases(_generated(root / "generated"))
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda kc: _run(root / f"case{kc[0]}", kc[1][1]), enumerate(cases)))
    return [(case_id, expect, *outcome) for (case_id, _, expect), outcome in zip(cases, outcomes)]


def test_every_hostile_input_ends_cleanly(results):
    problems = []
    for case_id, expect, code, err, escaped in results:
        lines = err.strip().splitlines()
        clean = code == 0 or (code == 2 and len(lines) == 1 and lines[0].startswith("annot: error: ")) or (
            code == 1 and case_id.startswith("validate") and lines and lines[-1].startswith("annot: "))
        if not clean or any(w in err for w in ("Traceback", "MemoryError", "internal error")):
            problems.append(f"{case_id}: exit {code}: {err.strip()[-300:]}")
        elif expect is not None and (code == 0 or expect not in err):
            problems.append(f"{case_id}: expected an error with {expect!r}, got exit {code}: {err.strip()[-300:]}")
        if escaped:
            problems.append(f"{case_id}: wrote outside its output: {sorted(escaped)}")
    assert not problems, "\n".join(problems)
    assert len(results) > 100


def test_the_two_confirmed_cases(results):
    by_id = {r[0]: r for r in results}
    # the path traversal: refused, and escaped.png's folder holds only the image put there
    assert by_id["labelme traversal extract"][2] == 2
    # the memory bomb: converted in the mask's box to labelme (what the format allows), refused
    # by the budget where the format needs the full image (a Label Studio brush)
    assert by_id["coco rle_60000px_square -> labelme"][2] == 0
    assert by_id["coco rle_60000px_square -> yolo"][2] == 0
    code, err = by_id["coco rle_60000px_square -> labelstudio"][2:4]
    assert code == 2 and "a 60000x60000 Label Studio brush mask needs 53.6 GB, over the memory budget" in err
