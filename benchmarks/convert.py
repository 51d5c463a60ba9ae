"""Conversion throughput: annot against a bare baseline and the Label Studio SDK.

    python benchmarks/convert.py [--files 5000] [--jobs N] [--workdir DIR] [--writers] [--no-validate]

Generates a seeded synthetic corpus (``benchmarks/corpus.py``: ~20 shapes per
image: polygons, rectangles, circles, multi-polygon groups) as labelme files
and as one Label Studio export, then times, in one run:

* baseline: one process, ``json.load`` + pycocotools ``frPyObjects``/``area``
  per shape, every shape rasterised (what a hand-written labelme2coco loop
  does; no checks, grouping or output);
* ``annot convert labelme coco`` (a subprocess: start-up, all cores, output written);
* ``annot convert labelstudio coco`` (same);
* ``label_studio_sdk.converter.Converter.convert_to_coco`` on the same export
  (in-process, its import not counted);
* the Label Studio floor (``benchmarks/labelstudio_floor.py``, a subprocess
  like annot): annot's split and workers doing only the parse, percent to
  pixels and pycocotools areas, writing nothing: what no converter giving
  pycocotools areas can skip.

Runs that are compared are interleaved (the baseline with annot labelme;
annot Label Studio with the SDK and the floor), ``--repeat`` rounds, the
median of each reported: the machine's speed drifts over minutes.

Prints files/s and shapes/s for each and the ratios, then runs ``annot
validate`` on both annot outputs (exit 1 when either is invalid). Not a test: figures
depend on the machine; the README records the ones measured there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import LABEL_CONFIG, labelme_corpus, labelstudio_export  # noqa: E402


def baseline(folder: Path) -> float:
    """A hand-written labelme -> COCO loop doing the same geometry work as
    annot (every shape rasterised; rectangles as 4 corners, circles as the
    same polygon) without grouping, checks, clipping or output."""
    from pycocotools import mask as mask_utils

    from annot.geometry import circle_polygon

    files = sorted(folder.glob("*.json"))
    t = time.perf_counter()
    for f in files:
        with open(f) as fh:
            doc = json.load(fh)
        h, w = doc["imageHeight"], doc["imageWidth"]
        for s in doc["shapes"]:
            (x0, y0), (x1, y1), *_ = s["points"]
            if s["shape_type"] == "rectangle":
                flat = [x0, y0, x1, y0, x1, y1, x0, y1]
            elif s["shape_type"] == "circle":
                flat = circle_polygon(x0, y0, ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5)
            else:
                flat = [v for p in s["points"] for v in p]
            rle = mask_utils.frPyObjects([flat], h, w)
            mask_utils.area(rle)
            mask_utils.toBbox(rle)
    return time.perf_counter() - t


def byte_compile() -> None:
    """Write annot's .pyc files before timing it, as ``pip install`` does.

    An editable checkout normally gets them on its first run, but where
    PYTHONDONTWRITEBYTECODE is set (this project's machines) every run would
    compile annot's modules again (~25 ms of each conversion) and the figures
    would not be what an installed annot gives."""
    import compileall
    import importlib

    for name in ("annot", "annot.converters", "annot.plugins", "annot.active_learning", "annot.db"):
        for folder in importlib.import_module(name).__path__:
            compileall.compile_dir(folder, quiet=1, maxlevels=0)


def annot_cli(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "annot.cli", *args, "-q", "--overwrite"], check=True)
    return time.perf_counter() - t


def floor(export: Path, jobs: int | None) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).with_name("labelstudio_floor.py")), str(export),
                    *(["--jobs", str(jobs)] if jobs else [])], check=True)
    return time.perf_counter() - t


def sdk(export: Path, out: Path) -> float:
    from label_studio_sdk.converter import Converter

    t = time.perf_counter()
    Converter(config=LABEL_CONFIG, project_dir=None, download_resources=False).convert_to_coco(
        input_data=str(export), output_dir=str(out), is_dir=False
    )
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--jobs", type=int, default=None, help="annot worker processes (default: all cores)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the corpus here (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--writers", action="store_true",
                    help="also time `annot convert coco DST` from the labelme output, for every writer")
    ap.add_argument("--no-validate", action="store_true",
                    help="skip `annot validate` of annot's outputs (about a minute each at 5,000 images)")
    args = ap.parse_args()
    byte_compile()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="annot-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    console = Console()
    console.print(f"corpus: {args.files} images in {work} ({os.cpu_count()} cores)")
    lm_dir, ls_file = work / "labelme", work / "export.json"
    shapes = labelme_corpus(lm_dir, args.files) if not (lm_dir / "img_00000.json").exists() else None
    regions = labelstudio_export(ls_file, args.files) if not ls_file.exists() else None
    shapes = shapes or sum(len(json.loads(f.read_text())["shapes"]) for f in lm_dir.glob("*.json"))
    regions = regions or sum(len(t["annotations"][0]["result"]) for t in json.loads(ls_file.read_text()))
    jobs = ["-j", str(args.jobs)] if args.jobs else []

    def median(run) -> float:
        return statistics.median(run() for _ in range(args.repeat))

    def run_sdk() -> float:
        shutil.rmtree(work / "sdk", ignore_errors=True)
        return sdk(ls_file, work / "sdk")

    rows = []
    # what is compared is timed interleaved, so that the machine's drift over
    # minutes does not land on one side of a ratio
    lm_runs = [(baseline(lm_dir),
                annot_cli("convert", "labelme", "coco", str(lm_dir), "-o", str(work / "labelme.coco.json"), *jobs))
               for _ in range(args.repeat)]
    t_base, t_lm = (statistics.median(col) for col in zip(*lm_runs))
    rows.append(("baseline: bare labelme loop, every shape, 1 process", args.files, shapes, t_base))
    rows.append(("annot convert labelme coco", args.files, shapes, t_lm))
    ls_runs = [(annot_cli("convert", "labelstudio", "coco", str(ls_file), "-o", str(work / "ls.coco.json"), *jobs),
                run_sdk(), floor(ls_file, args.jobs)) for _ in range(args.repeat)]
    t_ls, t_sdk, t_floor = (statistics.median(col) for col in zip(*ls_runs))
    rows.append(("annot convert labelstudio coco", args.files, regions, t_ls))
    rows.append(("label_studio_sdk Converter (COCO)", args.files, regions, t_sdk))
    rows.append(("floor: Label Studio parse + pycocotools areas only", args.files, regions, t_floor))

    table = Table(title=f"annot convert benchmark (median of {args.repeat})")
    for col in ("run", "files", "shapes", "seconds", "files/s", "shapes/s"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, n, s, t in rows:
        table.add_row(name, str(n), str(s), f"{t:.2f}", f"{n / t:,.0f}", f"{s / t:,.0f}")
    console.print(table)
    console.print(f"labelme: annot / baseline = {t_base / t_lm:.2f}x")
    console.print(f"Label Studio: annot / SDK = {t_sdk / t_ls:.2f}x "
                  "(the SDK shears rotated boxes and skips brush masks; annot converts both)")
    console.print(f"Label Studio floor: SDK / floor = {t_sdk / t_floor:.2f}x; "
                  f"annot takes {t_ls / t_floor:.2f}x the floor's time")
    if args.writers:
        coco = str(work / "labelme.coco.json")
        n_anns = len(json.loads(Path(coco).read_text())["annotations"])
        wt = Table(title=f"annot convert coco DST, {n_anns:,} annotations (median of {args.repeat})")
        for col in ("writer", "seconds", "annotations/s"):
            wt.add_column(col, justify="left" if col == "writer" else "right")
        for dst in ("labelstudio", "labelme", "yolo", "voc"):
            out = str(work / f"written.{dst}")
            t = median(lambda dst=dst, out=out: annot_cli("convert", "coco", dst, coco, "-o", out, *jobs))
            wt.add_row(dst, f"{t:.2f}", f"{n_anns / t:,.0f}")
        console.print(wt)
    status = 0
    if not args.no_validate:  # a fast converter that writes invalid COCO measures nothing
        for out in ("labelme.coco.json", "ls.coco.json"):
            res = subprocess.run([sys.executable, "-m", "annot.cli", "validate", "coco", str(work / out)],
                                 capture_output=True, text=True)
            console.print(f"annot validate {out}: {(res.stdout or res.stderr).strip().splitlines()[-1]}")
            status |= res.returncode
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
