"""Property-based fuzzing of the JSON readers (labelme, COCO, Label Studio, CreateML).

    .venv/bin/python tests/fuzz/fuzz_readers.py --minutes 60 [--seed S]

Hypothesis builds documents shaped like each format, with any field replaced
by a wrong or extreme value (huge and non-finite numbers, strings, booleans,
nulls, deep nesting, long lists, unicode), and converts each to COCO through
the command line, in this process, under a 4 GiB address-space limit. Every
run must end with exit 0 or exit 2 and one error line. Anything else (an
internal error, a traceback, a MemoryError) is saved to ``--findings``
(default ``tests/hostile/fuzz/``) once per distinct message, as a regression
file that ``tests/test_hostile_inputs.py`` then runs; a summary is printed at
the end. Not collected by pytest (its name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as seed_fn
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent

# -- values ---------------------------------------------------------------------

weird = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, 2**63, 2**64, -1, 0, 10**9]), st.text(max_size=8),
    st.sampled_from(["", "1", "nan", "../../x.png", "/etc/passwd", "a" * 300]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
coord = st.one_of(st.floats(-50, 250, allow_nan=False), st.integers(-50, 250))


def maybe(strategy):
    """Mostly a well-formed value, sometimes anything."""
    return st.one_of(strategy, strategy, strategy, weird)


def points(n_min=0, n_max=8):
    return maybe(st.lists(maybe(st.lists(maybe(coord), min_size=2, max_size=3)), min_size=n_min, max_size=n_max))


# -- documents --------------------------------------------------------------------

labelme_shape = st.fixed_dictionaries({
    "label": maybe(st.sampled_from(["a", "b", "__ignore__"])),
    "points": points(),
    "shape_type": maybe(st.sampled_from(["polygon", "rectangle", "circle", "point", "line", "mask",
                                         "oriented_rectangle", "linestrip"])),
    "group_id": maybe(st.one_of(st.none(), st.integers(0, 3))),
}, optional={"mask": maybe(st.just("iVBORw0KGgo="))})
labelme_doc = st.fixed_dictionaries({
    "shapes": maybe(st.lists(labelme_shape, max_size=5)),
    "imagePath": maybe(st.sampled_from(["x.png", "../x.png", "sub/x.jpg"])),
    "imageHeight": maybe(st.integers(1, 300)),
    "imageWidth": maybe(st.integers(1, 300)),
}, optional={"imageData": maybe(st.none())})

coco_ann = st.fixed_dictionaries({
    "id": maybe(st.integers(1, 5)), "image_id": maybe(st.integers(1, 3)), "category_id": maybe(st.integers(1, 2)),
    "iscrowd": maybe(st.integers(0, 1)),
}, optional={
    "bbox": maybe(st.lists(maybe(coord), min_size=4, max_size=4)),
    "area": maybe(st.floats(0, 1e5)),
    "segmentation": maybe(st.one_of(
        st.lists(st.lists(maybe(coord), min_size=0, max_size=10), max_size=2),
        st.fixed_dictionaries({"size": maybe(st.lists(st.integers(0, 300), min_size=2, max_size=2)),
                               "counts": maybe(st.one_of(st.lists(st.integers(-5, 400), max_size=6),
                                                         st.text(alphabet="0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVW"
                                                                          "XYZ[\\]^_`abcdefghijklmno", max_size=12)))}))),
    "score": maybe(st.floats(0, 1)),
    "keypoints": maybe(st.lists(maybe(coord), max_size=7)),
})
coco_doc = st.fixed_dictionaries({
    "images": maybe(st.lists(st.fixed_dictionaries({
        "id": maybe(st.integers(1, 3)), "file_name": maybe(st.sampled_from(["a.png", "b.png", "../c.png"])),
        "width": maybe(st.integers(1, 300)), "height": maybe(st.integers(1, 300))}), max_size=3)),
    "annotations": maybe(st.lists(coco_ann, max_size=5)),
    "categories": maybe(st.lists(st.fixed_dictionaries({"id": maybe(st.integers(1, 2)),
                                                        "name": maybe(st.sampled_from(["a", "b"]))}), max_size=3)),
})

ls_value = st.fixed_dictionaries({
    "x": maybe(coord), "y": maybe(coord), "width": maybe(coord), "height": maybe(coord),
    "rotation": maybe(st.floats(-720, 720)), "points": points(),
    "rectanglelabels": maybe(st.just(["a"])), "polygonlabels": maybe(st.just(["b"])),
    "brushlabels": maybe(st.just(["a"])), "format": maybe(st.just("rle")),
    "rle": maybe(st.lists(st.integers(0, 255), max_size=20)),
})
ls_region = st.fixed_dictionaries({
    "id": maybe(st.text(max_size=3)), "type": maybe(st.sampled_from(["rectanglelabels", "polygonlabels",
                                                                     "brushlabels", "keypointlabels", "choices"])),
    "from_name": st.just("label"), "to_name": st.just("image"), "value": maybe(ls_value),
    "original_width": maybe(st.integers(1, 300)), "original_height": maybe(st.integers(1, 300)),
})
ls_task = st.fixed_dictionaries({
    "id": maybe(st.integers(1, 9)),
    "data": maybe(st.fixed_dictionaries({"image": maybe(st.sampled_from(
        ["/data/upload/1/abcdef12-a.png", "/data/local-files/?d=../../x.png", "s3://b/c.png"]))})),
    "annotations": maybe(st.lists(st.fixed_dictionaries({"id": maybe(st.integers()), "result": maybe(
        st.lists(ls_region, max_size=4)), "was_cancelled": maybe(st.booleans())}), max_size=2)),
}, optional={"predictions": maybe(st.lists(st.fixed_dictionaries({"result": maybe(st.lists(ls_region, max_size=3)),
                                                                  "score": maybe(st.floats(0, 1))}), max_size=2))})

createml_doc = st.lists(st.fixed_dictionaries({
    "image": maybe(st.sampled_from(["a.png", "../a.png"])),
    "annotations": maybe(st.lists(st.fixed_dictionaries({"label": maybe(st.just("a")), "coordinates": maybe(
        st.fixed_dictionaries({"x": maybe(coord), "y": maybe(coord), "width": maybe(coord),
                               "height": maybe(coord)}))}), max_size=3)),
}, optional={"imagesize": maybe(st.fixed_dictionaries({"width": maybe(st.integers(1, 300)),
                                                       "height": maybe(st.integers(1, 300))}))}), max_size=3)

FORMATS = {"labelme": labelme_doc, "coco": coco_doc, "labelstudio": st.lists(ls_task, max_size=4),
           "createml": createml_doc}


# -- the run ----------------------------------------------------------------------

def _convert(fmt: str, doc, folder: Path) -> tuple[int, str]:
    from annot.cli import main

    src = folder / "in" / f"doc_{fmt}.json"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(json.dumps(doc))
    (folder / "a.png").touch()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["convert", fmt, "coco", str(src), "-o", str(folder / "out.json"), "-q", "--overwrite",
                         "-j", "1"])
        except BaseException as e:  # noqa: BLE001 - anything escaping main is a finding
            code, err = 99, io.StringIO(f"{type(e).__name__}: {e}")
    return code, err.getvalue()


def _fuzz_format(fmt: str, strategy, until: float, tmp: Path, findings: Path, stats: dict, seed) -> None:
    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def batch(doc):
        code, err = _convert(fmt, doc, tmp)
        stats["runs"] += 1
        stats["exit"][code] = stats["exit"].get(code, 0) + 1
        lines = err.strip().splitlines()
        clean = code == 0 or (code == 2 and len(lines) == 1 and lines[0].startswith("annot: error: "))
        if not clean or "Traceback" in err or "MemoryError" in err:
            signature = f"{fmt}: {lines[-1] if lines else f'exit {code}'}".split(" (rerun")[0]
            if signature not in stats["found"]:
                name = f"{fmt}_{hashlib.sha256(signature.encode()).hexdigest()[:10]}.json"
                (findings / name).write_text(json.dumps(doc))
                stats["found"][signature] = name

    rounds = 0
    while time.monotonic() < until:  # batches of 200 examples, each a fresh random run (or seeded: seed, seed + 1...)
        (seed_fn(seed + rounds) if seed is not None else lambda f: f)(batch)()
        rounds += 1


SLICE_S = 60  # each slice of fuzzing runs in a forked child: hypothesis's own state grows ~25 KB per example


def _slice(fmt: str, until: float, findings: Path, seed, queue) -> None:
    stats = {"runs": 0, "exit": {}, "found": {}}
    with tempfile.TemporaryDirectory() as tmp:
        _fuzz_format(fmt, FORMATS[fmt], until, Path(tmp), findings, stats, seed)
    queue.put(stats)


def fuzz(minutes: float, findings: Path, seed: int | None) -> dict:
    import multiprocessing as mp

    deadline = time.monotonic() + minutes * 60
    stats = {"runs": 0, "exit": {}, "found": {}}
    findings.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork")
    for k, fmt in enumerate(FORMATS):
        until = time.monotonic() + (deadline - time.monotonic()) / (len(FORMATS) - k)  # each format its share
        while time.monotonic() < until:
            queue = ctx.Queue()
            child = ctx.Process(target=_slice, args=(fmt, min(until, time.monotonic() + SLICE_S), findings,
                                                     seed, queue))
            child.start()
            got = queue.get()
            child.join()
            stats["runs"] += got["runs"]
            for code, n in got["exit"].items():
                stats["exit"][code] = stats["exit"].get(code, 0) + n
            for signature, name in got["found"].items():
                stats["found"].setdefault(signature, name)
            if seed is not None:
                seed += 1000
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--findings", type=Path, default=HERE.parent / "hostile" / "fuzz")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    t = time.monotonic()
    stats = fuzz(args.minutes, args.findings, args.seed)
    print(f"{stats['runs']} conversions in {(time.monotonic() - t) / 60:.1f} min; exit codes {stats['exit']}")
    for signature, name in stats["found"].items():
        print(f"  found: {signature}  -> {args.findings / name}")
    if not stats["found"]:
        print("  nothing found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
