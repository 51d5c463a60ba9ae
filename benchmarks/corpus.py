"""Seeded synthetic annotation corpora for the benchmarks.

``labelme_corpus(dir, n)`` writes n labelme files of ~20 shapes each
(polygons, rectangles, circles, some multi-polygon groups) on 1280x720
images; ``labelstudio_export(path, n)`` writes the same scenes as one Label
Studio JSON export (rectangles, some rotated, and polygons).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

W, H = 1280, 720
LABELS = ["person", "car", "bicycle", "dog", "cat", "bus", "truck", "bird"]


def _scene(rng: np.random.Generator, shapes: int = 20):
    out = []
    group = 0
    for k in range(shapes):
        label = LABELS[int(rng.integers(len(LABELS)))]
        cx, cy = rng.uniform(60, W - 60), rng.uniform(60, H - 60)
        r = rng.uniform(10, 55)
        kind = rng.choice(["polygon", "polygon", "rectangle", "circle"], p=[0.45, 0.15, 0.25, 0.15])
        gid = None
        if kind == "polygon" and rng.random() < 0.1 and k:
            group += 1
            gid = group
        if kind == "polygon":
            n = int(rng.integers(5, 16))
            t = np.sort(rng.uniform(0, 2 * math.pi, n))
            rad = r * rng.uniform(0.6, 1.0, n)
            pts = np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], 1).round(2).tolist()
        elif kind == "rectangle":
            pts = [[round(cx - r, 2), round(cy - r / 2, 2)], [round(cx + r, 2), round(cy + r / 2, 2)]]
        else:
            pts = [[round(cx, 2), round(cy, 2)], [round(cx + r, 2), round(cy, 2)]]
        out.append({"label": label, "points": pts, "group_id": gid, "shape_type": str(kind), "flags": {},
                    "description": "", "mask": None})
        if gid is not None:  # a second part of the same instance, beside the first, inside the image
            shift = r * 2.5 if cx + r * 3.5 < W else -r * 2.5
            out.append({**out[-1], "points": (np.array(pts) + [shift, 0]).clip(0, W - 1).round(2).tolist()})
    return out


def labelme_corpus(folder: Path, n: int, seed: int = 0) -> int:
    """Returns the number of shapes written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        shapes = _scene(rng)
        total += len(shapes)
        doc = {"version": "5.3.1", "flags": {}, "shapes": shapes, "imagePath": f"img_{i:05d}.jpg",
               "imageData": None, "imageHeight": H, "imageWidth": W}
        (folder / f"img_{i:05d}.json").write_text(json.dumps(doc, indent=2))
    return total


def labelstudio_export(path: Path, n: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    tasks, total = [], 0
    for i in range(n):
        results = []
        for j, s in enumerate(_scene(rng)):
            base = {"id": f"r{i}-{j}", "from_name": "label", "to_name": "image", "original_width": W,
                    "original_height": H, "image_rotation": 0, "origin": "manual"}
            p = np.array(s["points"], float)
            if s["shape_type"] == "rectangle":
                (x0, y0), (x1, y1) = p
                results.append({**base, "type": "rectanglelabels", "value": {
                    "x": x0 * 100 / W, "y": y0 * 100 / H, "width": (x1 - x0) * 100 / W,
                    "height": (y1 - y0) * 100 / H, "rotation": float(rng.choice([0, 0, 0, 15, 330])),
                    "rectanglelabels": [s["label"]]}})
            else:
                if s["shape_type"] == "circle":
                    (cx, cy), (px, _) = p
                    t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
                    p = np.stack([cx + (px - cx) * np.cos(t), cy + (px - cx) * np.sin(t)], 1)
                results.append({**base, "type": "polygonlabels", "value": {
                    "points": (p * [100 / W, 100 / H]).tolist(), "closed": True, "polygonlabels": [s["label"]]}})
        total += len(results)
        tasks.append({"id": i + 1, "data": {"image": f"/data/upload/1/{i:08x}-img_{i:05d}.jpg"},
                      "annotations": [{"id": i + 1, "result": results, "was_cancelled": False, "ground_truth": False,
                                       "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}],
                      "predictions": []})
    path.write_text(json.dumps(tasks))
    return total


LABEL_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="label" toName="image">' + "".join(f'<Label value="{v}"/>' for v in LABELS)
    + '</RectangleLabels><PolygonLabels name="label" toName="image">'
    + "".join(f'<Label value="{v}"/>' for v in LABELS) + "</PolygonLabels></View>"
)
