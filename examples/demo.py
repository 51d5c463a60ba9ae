"""``make demo``: convert the bundled synthetic project from every tool's
format to COCO, validate each result and print one summary table.

The commands it runs are printed first, so the demo doubles as a tour of
``annot convert`` and ``annot validate``.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synthetic import write_project  # noqa: E402

OUT = HERE.parent / "build" / "demo"


def run(console: Console, *args: str) -> subprocess.CompletedProcess:
    console.print(f"[dim]$ annot {shlex.join(args)}[/dim]")
    return subprocess.run([sys.executable, "-m", "annot.cli", *args], capture_output=True, text=True)


def main() -> int:
    console = Console()
    shutil.rmtree(OUT, ignore_errors=True)
    dirs = write_project(OUT)
    labels = str(OUT / "labels.txt")
    jobs = [
        ("labelme", [str(dirs["labelme"]), "--labels", labels]),
        ("voc", [str(dirs["voc"]), "--labels", labels]),
        ("yolo", [str(dirs["yolo"])]),
        ("createml", [str(dirs["createml"] / "annotations.json"), "--labels", labels]),
        ("labelstudio", [str(dirs["labelstudio"] / "export.json"), "--labels", labels]),
    ]
    table = Table(title=f"annot demo: {OUT}")
    for col in ("source", "images", "instances", "polygons", "rle masks", "classes", "annot validate"):
        table.add_column(col, justify="left" if col in ("source", "annot validate") else "right")
    failed = False
    for src, args in jobs:
        out = OUT / f"{src}.coco.json"
        conv = run(console, "convert", src, "coco", *args, "-o", str(out), "--quiet")
        if conv.returncode:
            console.print(f"[red]{conv.stderr.strip()}[/red]")
            failed = True
            continue
        val = run(console, "validate", "coco", str(out))
        coco = json.loads(out.read_text())
        anns = coco["annotations"]
        table.add_row(
            src, str(len(coco["images"])), str(len(anns)),
            str(sum(isinstance(a["segmentation"], list) for a in anns)),
            str(sum(isinstance(a["segmentation"], dict) for a in anns)),
            str(len(coco["categories"])),
            "[green]valid[/green]" if val.returncode == 0 else f"[red]{val.stderr.strip()}[/red]",
        )
        failed |= val.returncode != 0
    # and back: COCO -> Label Studio pre-annotations for review
    back = OUT / "labelme.labelstudio.json"
    conv = run(console, "convert", "coco", "labelstudio", str(OUT / "labelme.coco.json"), "-o", str(back),
               "--as", "predictions", "--model-version", "demo", "--image-url-prefix", "/data/local-files/?d=images/", "-q")
    failed |= conv.returncode != 0
    console.print(table)
    if not conv.returncode:
        console.print(f"Label Studio pre-annotations for review: {back} ({len(json.loads(back.read_text()))} tasks)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
