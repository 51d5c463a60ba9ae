"""Store throughput: import, split and export a large synthetic dataset.

    python benchmarks/store.py [--images 20000] [--workdir DIR]

Writes N small PNGs (random texture, 64x48; 2 % of them re-encoded near
duplicates of others) and a COCO file with 1-4 boxes per image over 5
classes, then times in one run, on a fresh SQLite store:

* ``annot dataset import`` (validation, sha256 + pHash of every image, the
  version written in one transaction);
* ``annot dataset split`` (near-duplicate grouping by multi-index hashing,
  stratified assignment);
* ``annot dataset export --split train``.

Prints seconds per step against the issue's 60 s goal. Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

GOAL_S = 60.0
CLASSES = ["car", "person", "bicycle", "bus", "dog"]


def make_dataset(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    n_dup = n // 50
    for k in range(n - n_dup):
        name = f"images/{k:06d}.png"
        # smooth random texture: natural-image-like low frequencies, distinct pHashes
        small = rng.integers(0, 255, (6, 8), dtype=np.uint8)
        Image.fromarray(small).resize((64, 48), Image.Resampling.BICUBIC).save(root / name)
        images.append({"id": k + 1, "file_name": name, "width": 64, "height": 48})
    for k in range(n_dup):  # near duplicates: the same picture re-encoded as JPEG
        src = images[int(rng.integers(len(images) - n_dup))]
        name = f"images/dup_{k:05d}.jpg"
        with Image.open(root / src["file_name"]) as im:
            im.convert("RGB").save(root / name, quality=85)
        images.append({"id": len(images) + 1, "file_name": name, "width": 64, "height": 48})
    p = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    for im in images:
        for _ in range(int(rng.integers(1, 5))):
            x, y = int(rng.integers(0, 48)), int(rng.integers(0, 32))
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": int(rng.choice(5, p=p)) + 1,
                         "bbox": [x, y, 16, 16], "area": 256, "iscrowd": 0,
                         "segmentation": [[x, y, x + 16, y, x + 16, y + 16, x, y + 16]]})
    coco = root / "dataset.json"
    coco.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}))
    return coco


def timed(*args: str, env_args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "annot.cli", *args, *env_args], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"annot {' '.join(args)} failed: {res.stderr}")
    return time.perf_counter() - t, res.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="annot-store-bench-"))
    console = Console()
    coco = work / "dataset.json"
    if not coco.exists():
        t = time.perf_counter()
        make_dataset(work, args.images)
        console.print(f"generated {args.images} images in {time.perf_counter() - t:.1f} s under {work}")
    for p in (work / "annot.db", work / "annot.db-wal", work / "annot.db-shm"):
        p.unlink(missing_ok=True)
    shutil.rmtree(work / "store", ignore_errors=True)
    env_args = ["--db", f"sqlite:///{work / 'annot.db'}", "--store", str(work / "store")]
    rows = []
    t, out = timed("dataset", "import", "bench", str(coco), "--image-root", str(work), "--json", env_args=env_args)
    rows.append(("import (validate, hash, record)", t))
    t, out = timed("dataset", "split", "bench", "--json", env_args=env_args)
    split = json.loads(out)
    rows.append(("split (dedup + stratify)", t))
    t, _ = timed("dataset", "export", "bench", "--split", "train", "-o", str(work / "train.json"), "--overwrite",
                 env_args=env_args)
    rows.append(("export --split train", t))
    table = Table(title=f"annot store benchmark: {args.images} images")
    for col in ("step", "seconds", f"goal < {GOAL_S:.0f} s"):
        table.add_column(col)
    for name, t in rows:
        table.add_row(name, f"{t:.1f}", "yes" if t < GOAL_S else "NO")
    console.print(table)
    subs = split["subsets"]
    console.print("split: " + ", ".join(f"{s} {v['images']} images / {v['duplicate_groups']} duplicate groups"
                                       for s, v in subs.items()))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
