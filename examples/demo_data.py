"""The demo's world: a seeded shapes project, labelled by three teams in three tools.

``write_world(out, plan)`` draws ``examples/shapes.py`` scenes (squares,
discs and triangles; the class is the outline, never the colour) and writes:

- ``teams/labelme/``: the first team's images and labelme JSON (polygons
  traced from each object's visible mask);
- ``teams/labelimg/``: the second team's images and labelImg Pascal VOC XML
  (boxes only: labelImg draws nothing else);
- ``teams/labelstudio/export.json``: the third team's Label Studio JSON
  export (a polygon per object, a brush mask where an object is cut in parts);
- ``data/images/``: every training image, the teams' and the unlabelled pool;
- ``data/truth.coco.json``: the exact masks of every image there, which only
  the simulated annotator reads (it "labels" a picked image by revealing
  them) and the tests compare the teams' converted labels with;
- ``data/test/``: a held-out test set with exact COCO masks, never trained on.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from shapes import CATEGORIES, CLASSES, coco_annotations, scene
from synthetic import voc_xml

from annot.converters.labelstudio_rle import mask_to_rle
from annot.geometry import mask_to_polygons

TEAMS = ("labelme", "labelimg", "labelstudio")


@dataclass(frozen=True)
class World:
    per_team: int  # images each team labelled
    pool: int  # unlabelled images
    test: int  # held-out test images
    size: int  # image side, px
    seed: int = 0


def write_world(out: Path, world: World) -> dict[str, list[str]]:
    """Write everything; returns the file names of each team's images, ``pool`` and ``test``."""
    rng = np.random.default_rng(world.seed)
    names: dict[str, list[str]] = {}
    drawn: dict[str, list] = {}
    counts = [(team, world.per_team) for team in TEAMS] + [("pool", world.pool), ("test", world.test)]
    k = 0
    for part, n in counts:
        names[part], drawn[part] = [], []
        for _ in range(n):
            k += 1
            image, objects = scene(rng, world.size, objects_per_image=(1, 3), radius=(0.15, 0.3))
            names[part].append(f"shape_{k:04d}.png")
            drawn[part].append((image, objects))
    images = out / "data" / "images"
    images.mkdir(parents=True, exist_ok=True)
    for part in (*TEAMS, "pool"):
        for name, (image, _) in zip(names[part], drawn[part]):
            Image.fromarray(image).save(images / name)
    _labelme(out / "teams" / "labelme", names["labelme"], drawn["labelme"], images)
    _labelimg(out / "teams" / "labelimg", names["labelimg"], drawn["labelimg"], images)
    _labelstudio(out / "teams" / "labelstudio", names["labelstudio"], drawn["labelstudio"])
    (out / "teams" / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    parts = (*TEAMS, "pool")
    (out / "data" / "truth.coco.json").write_text(json.dumps(
        _coco([n for p in parts for n in names[p]], [d for p in parts for d in drawn[p]])))
    test = out / "data" / "test"
    (test / "images").mkdir(parents=True, exist_ok=True)
    for name, (image, _) in zip(names["test"], drawn["test"]):
        Image.fromarray(image).save(test / "images" / name)
    (test / "test.coco.json").write_text(json.dumps(_coco([f"images/{n}" for n in names["test"]], drawn["test"])))
    return names


def _coco(names: list[str], drawn: list) -> dict:
    images, anns = [], []
    for image_id, (name, (image, objects)) in enumerate(zip(names, drawn), start=1):
        h, w = image.shape[:2]
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        anns += coco_annotations(image_id, objects, len(anns) + 1)
    return {"images": images, "annotations": anns, "categories": CATEGORIES}


def _outlines(mask: np.ndarray) -> list[list[float]]:
    return [p for p in mask_to_polygons(mask, tolerance=0.5) if len(p) >= 6]


def _labelme(folder: Path, names: list[str], drawn: list, images: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (image, objects) in zip(names, drawn):
        shutil.copyfile(images / name, folder / name)
        shapes = [{"label": kind, "points": np.reshape(poly, (-1, 2)).tolist(), "group_id": g, "description": "",
                   "shape_type": "polygon", "flags": {}, "mask": None}
                  for g, (kind, mask) in enumerate(objects) for poly in _outlines(mask)]
        h, w = image.shape[:2]
        (folder / name).with_suffix(".json").write_text(json.dumps(
            {"version": "5.3.1", "flags": {}, "shapes": shapes, "imagePath": name, "imageData": None,
             "imageHeight": h, "imageWidth": w}, indent=1))


def _labelimg(folder: Path, names: list[str], drawn: list, images: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (image, objects) in zip(names, drawn):
        shutil.copyfile(images / name, folder / name)
        boxes = []
        for kind, mask in objects:
            ys, xs = np.nonzero(mask)
            boxes.append((kind, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)))
        h, w = image.shape[:2]
        (folder / name).with_suffix(".xml").write_text(voc_xml(name, boxes, w, h))


def _labelstudio(folder: Path, names: list[str], drawn: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tasks = []
    for k, (name, (image, objects)) in enumerate(zip(names, drawn)):
        h, w = image.shape[:2]
        base = {"to_name": "image", "original_width": w, "original_height": h, "image_rotation": 0,
                "origin": "manual"}
        results = []
        for j, (kind, mask) in enumerate(objects):
            polys = _outlines(mask)
            rid = {"id": f"t{k}r{j}"}
            if len(polys) == 1:
                pts = [[x * 100 / w, y * 100 / h] for x, y in np.reshape(polys[0], (-1, 2))]
                results.append({**base, **rid, "from_name": "label", "type": "polygonlabels",
                                "value": {"points": pts, "closed": True, "polygonlabels": [kind]}})
            else:  # cut in parts by a shape drawn over it: painted with the brush
                results.append({**base, **rid, "from_name": "tag", "type": "brushlabels",
                                "value": {"format": "rle", "rle": mask_to_rle(mask), "brushlabels": [kind]}})
        tasks.append({"id": k + 1, "data": {"image": f"/data/upload/1/{k:08x}-{name}"},
                      "annotations": [{"id": k + 1, "result": results, "was_cancelled": False,
                                       "ground_truth": False, "created_at": "2026-01-01T00:00:00Z",
                                       "updated_at": "2026-01-01T00:00:00Z"}], "predictions": []})
    (folder / "export.json").write_text(json.dumps(tasks, indent=1))
