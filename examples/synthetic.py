"""A small synthetic labelling project, written as each tool would save it.

``python examples/synthetic.py OUT`` draws a few images with coloured shapes
and writes their labels in labelme JSON, labelImg Pascal VOC / YOLO / CreateML
and a Label Studio JSON export (rectangles, a rotated rectangle, polygons and
a brush mask). The geometry is known exactly, so ``make demo`` and the tests
can check every conversion against it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["bicycle", "car", "person"]
WIDTH, HEIGHT = 320, 240


def scene(k: int, rng: np.random.Generator) -> list[dict]:
    """Objects of image k: each a class, a box and a polygon outline."""
    objs = []
    for _ in range(int(rng.integers(2, 5))):
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        w, h = int(rng.integers(30, 90)), int(rng.integers(30, 90))
        x, y = int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h))
        kind = ["rectangle", "polygon", "circle"][int(rng.integers(3))]
        if kind == "polygon":
            n = 6
            cx, cy = x + w / 2, y + h / 2
            pts = [(cx + w / 2 * math.cos(2 * math.pi * i / n), cy + h / 2 * math.sin(2 * math.pi * i / n)) for i in range(n)]
        elif kind == "circle":
            r = min(w, h) / 2
            pts = [(x + r, y + r), (x + 2 * r, y + r)]  # labelme: centre, point on the circle
        else:
            pts = [(x, y), (x + w, y + h)]
        objs.append({"label": cls, "kind": kind, "points": [list(map(float, p)) for p in pts]})
    return objs


def bbox_of(obj) -> tuple[float, float, float, float]:
    if obj["kind"] == "circle":
        (cx, cy), (px, py) = obj["points"]
        r = math.hypot(px - cx, py - cy)
        return cx - r, cy - r, cx + r, cy + r
    xs = [p[0] for p in obj["points"]]
    ys = [p[1] for p in obj["points"]]
    return min(xs), min(ys), max(xs), max(ys)


def draw(objs, rng) -> Image.Image:
    img = Image.fromarray(rng.integers(90, 160, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    d = ImageDraw.Draw(img)
    colours = {"bicycle": (200, 40, 40), "car": (40, 200, 40), "person": (40, 40, 200)}
    for o in objs:
        c = colours[o["label"]]
        if o["kind"] == "rectangle":
            d.rectangle(bbox_of(o), fill=c)
        elif o["kind"] == "circle":
            d.ellipse(bbox_of(o), fill=c)
        else:
            d.polygon([tuple(p) for p in o["points"]], fill=c)
    return img


def write_project(out: Path, n_images: int = 6, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    out = Path(out)
    dirs = {k: out / k for k in ("images", "labelme", "voc", "yolo", "createml", "labelstudio")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    createml, tasks = [], []
    (dirs["yolo"] / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (out / "labels.txt").write_text("__ignore__\n_background_\n" + "\n".join(CLASSES) + "\n")
    for k in range(n_images):
        name = f"scene_{k:03d}.png"
        objs = scene(k, rng)
        img = draw(objs, rng)
        img.save(dirs["images"] / name)
        img.save(dirs["labelme"] / name)
        img.save(dirs["yolo"] / name)
        # labelme: shapes as drawn
        shapes = [
            {"label": o["label"], "points": o["points"], "group_id": None, "description": "",
             "shape_type": o["kind"], "flags": {}, "mask": None}
            for o in objs
        ]
        (dirs["labelme"] / f"scene_{k:03d}.json").write_text(json.dumps(
            {"version": "5.3.1", "flags": {}, "shapes": shapes, "imagePath": name, "imageData": None,
             "imageHeight": HEIGHT, "imageWidth": WIDTH}, indent=2))
        # labelImg: boxes only
        boxes = [(o["label"], bbox_of(o)) for o in objs]
        (dirs["voc"] / f"scene_{k:03d}.xml").write_text(voc_xml(name, boxes))
        (dirs["yolo"] / f"scene_{k:03d}.txt").write_text("".join(
            f"{CLASSES.index(lb)} {(x0 + x1) / 2 / WIDTH:.6f} {(y0 + y1) / 2 / HEIGHT:.6f} "
            f"{(x1 - x0) / WIDTH:.6f} {(y1 - y0) / HEIGHT:.6f}\n" for lb, (x0, y0, x1, y1) in boxes))
        createml.append({"image": name, "verified": False, "annotations": [
            {"label": lb, "coordinates": {"x": (x0 + x1) / 2, "y": (y0 + y1) / 2, "width": x1 - x0, "height": y1 - y0}}
            for lb, (x0, y0, x1, y1) in boxes]})
        tasks.append(ls_task(k, name, objs))
    (dirs["createml"] / "annotations.json").write_text(json.dumps(createml, indent=2))
    for k in range(n_images):
        (dirs["createml"] / f"scene_{k:03d}.png").write_bytes((dirs["images"] / f"scene_{k:03d}.png").read_bytes())
    (dirs["labelstudio"] / "export.json").write_text(json.dumps(tasks, indent=2))
    return dirs


def voc_xml(name: str, boxes, width: int = WIDTH, height: int = HEIGHT) -> str:
    objs = "".join(
        f"\t<object>\n\t\t<name>{lb}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{x0:g}</xmin>\n\t\t\t<ymin>{y0:g}</ymin>\n"
        f"\t\t\t<xmax>{x1:g}</xmax>\n\t\t\t<ymax>{y1:g}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for lb, (x0, y0, x1, y1) in boxes
    )
    return (f"<annotation>\n\t<folder>images</folder>\n\t<filename>{name}</filename>\n\t<size>\n"
            f"\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
            f"\t<segmented>0</segmented>\n{objs}</annotation>\n")


def ls_task(k: int, name: str, objs) -> dict:
    """A Label Studio export task: polygons as polygonlabels, rectangles as
    rectanglelabels (every third one rotated), circles painted as brush."""
    from annot.converters.labelstudio_rle import mask_to_rle

    results = []
    for j, o in enumerate(objs):
        base = {"id": f"r{k}-{j}", "from_name": "label", "to_name": "image", "original_width": WIDTH,
                "original_height": HEIGHT, "image_rotation": 0, "origin": "manual"}
        x0, y0, x1, y1 = bbox_of(o)
        if o["kind"] == "polygon":
            pts = [[p[0] * 100 / WIDTH, p[1] * 100 / HEIGHT] for p in o["points"]]
            results.append({**base, "type": "polygonlabels", "value": {"points": pts, "closed": True, "polygonlabels": [o["label"]]}})
        elif o["kind"] == "rectangle":
            rot = 15.0 if j % 3 == 2 else 0.0
            results.append({**base, "type": "rectanglelabels", "value": {
                "x": x0 * 100 / WIDTH, "y": y0 * 100 / HEIGHT, "width": (x1 - x0) * 100 / WIDTH,
                "height": (y1 - y0) * 100 / HEIGHT, "rotation": rot, "rectanglelabels": [o["label"]]}})
        else:
            mask = Image.new("L", (WIDTH, HEIGHT))
            ImageDraw.Draw(mask).ellipse((x0, y0, x1, y1), fill=255)
            m = np.asarray(mask) > 0
            m[int((y0 + y1) / 2) - 3 : int((y0 + y1) / 2) + 3, int((x0 + x1) / 2) - 3 : int((x0 + x1) / 2) + 3] = False  # a hole
            results.append({**base, "from_name": "tag", "type": "brushlabels",
                            "value": {"format": "rle", "rle": mask_to_rle(m), "brushlabels": [o["label"]]}})
    return {"id": 100 + k, "data": {"image": f"/data/upload/1/{k:08x}-{name}"},
            "annotations": [{"id": 1000 + k, "result": results, "was_cancelled": False, "ground_truth": False,
                             "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}],
            "predictions": []}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "build/demo")
    for fmt, d in write_project(target).items():
        print(f"{fmt:12} {d}")
