"""``make demo``: convert the bundled synthetic project from every tool's
format to COCO, validate each result and print one summary table; then turn
the labelImg boxes into masks with GrabCut (``annot predict``, offline) as
Label Studio pre-annotations, scored against the labelme outlines.

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

import numpy as np
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synthetic import write_project  # noqa: E402

OUT = HERE.parent / "build" / "demo"
LABEL_CONFIG = HERE / "label_config.xml"


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
    failed |= not boxes_to_masks(console, dirs)
    return 1 if failed else 0


def boxes_to_masks(console: Console, dirs: dict[str, Path]) -> bool:
    """labelImg boxes -> GrabCut masks (offline, no weights), scored against the labelme outlines."""
    from pycocotools import mask as mask_utils

    masks = OUT / "grabcut.results.json"
    tasks = OUT / "grabcut.labelstudio.json"
    common = ["predict", "--model", "grabcut", str(dirs["images"]), "--gt", str(OUT / "voc.coco.json"), "-q"]
    for extra in (["--format", "coco", "-o", str(masks)], ["-o", str(tasks), "--label-config", str(LABEL_CONFIG)]):
        res = run(console, *common, *extra)
        if res.returncode:
            console.print(f"[red]{res.stderr.strip()}[/red]")
            return False
    truth = json.loads((OUT / "labelme.coco.json").read_text())
    boxes = json.loads((OUT / "voc.coco.json").read_text())
    ids = {im["file_name"]: im["id"] for im in truth["images"]}
    names = {im["id"]: im["file_name"] for im in boxes["images"]}
    size = {im["id"]: (im["height"], im["width"]) for im in truth["images"]}
    predicted = json.loads(masks.read_text())
    gc_iou, box_iou = [], []
    for a in truth["annotations"]:
        h, w = size[a["image_id"]]
        gt = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], h, w)) \
            if isinstance(a["segmentation"], list) else a["segmentation"]
        mine = [p["segmentation"] for p in predicted
                if ids[names[p["image_id"]]] == a["image_id"] and p["category_id"] == a["category_id"]]
        if mine:
            gc_iou.append(float(mask_utils.iou(mine, [gt], [0]).max()))
            box = mask_utils.frPyObjects(np.array([a["bbox"]], dtype=np.float64), h, w)
            box_iou.append(float(mask_utils.iou(box, [gt], [0])[0][0]))
    console.print(f"GrabCut masks from the labelImg boxes: mean mask IoU {sum(gc_iou) / len(gc_iou):.3f} against "
                  f"the labelme outlines (the boxes themselves: {sum(box_iou) / len(box_iou):.3f}), "
                  f"{len(gc_iou)} objects; for review in Label Studio: {tasks}")
    return True


if __name__ == "__main__":
    sys.exit(main())
