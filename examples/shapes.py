"""A seeded synthetic shapes dataset for training: squares, discs and triangles
on textured backgrounds, with their exact outlines as COCO polygons.

``python examples/shapes.py OUT [--images 300] [--size 128] [--seed 0]``
writes ``OUT/images/*.png`` and ``OUT/shapes.coco.json``. The class is the
shape, never the colour (colours are drawn per object), so a model has to
learn outlines; objects may overlap, and the later one hides the earlier
(its outline is cut out of the earlier mask). ``annot train`` learns it
from scratch on a CPU in minutes: the training goal in docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["square", "disc", "triangle"]
CATEGORIES = [{"id": i, "name": c} for i, c in enumerate(CLASSES, start=1)]


def outline(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """The polygon of a shape centred at (cx, cy) with circumradius r."""
    n = {"square": 4, "disc": 32, "triangle": 3}[kind]
    start = angle if kind != "disc" else 0.0
    return [(cx + r * math.cos(start + 2 * math.pi * i / n), cy + r * math.sin(start + 2 * math.pi * i / n))
            for i in range(n)]


def _mask(poly, size: int) -> np.ndarray:
    m = Image.new("L", (size, size))
    ImageDraw.Draw(m).polygon(poly, fill=1)
    return np.asarray(m, dtype=bool)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth noise in a random tint: no flat colour to lean on."""
    coarse = rng.integers(60, 190, (size // 16 + 1, size // 16 + 1, 3), dtype=np.uint8)
    bg = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR), dtype=np.int16)
    return np.clip(bg + rng.integers(-12, 13, (size, size, 3)), 0, 255).astype(np.uint8)


def scene(rng: np.random.Generator, size: int, objects_per_image=(1, 4), radius=(0.08, 0.22), weights=None
          ) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """An image and its (class, visible mask) instances: ``objects_per_image``
    (at least, at most) shapes of circumradius ``radius`` (fractions of the
    side); ``weights``: how often each class is drawn (None: equally)."""
    image = _background(rng, size)
    objects: list[tuple[str, np.ndarray]] = []
    for _ in range(int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))):
        kind = CLASSES[int(rng.integers(len(CLASSES)))] if weights is None else \
            CLASSES[int(rng.choice(len(CLASSES), p=weights))]
        r = float(rng.uniform(*radius)) * size
        cx, cy = rng.uniform(r, size - r, 2)
        poly = outline(kind, float(cx), float(cy), r, float(rng.uniform(0, 2 * math.pi)))
        m = _mask(poly, size)
        image[m] = rng.integers(0, 256, 3)
        objects = [(k, old & ~m) for k, old in objects]  # the new shape hides what it covers
        objects.append((kind, m))
    return image, [(k, m) for k, m in objects if m.sum() >= 16]


def near_duplicate(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """The same picture a moment later: brightness shifted a little, fresh sensor noise."""
    shifted = image.astype(np.int16) + int(rng.integers(-10, 11)) + rng.integers(-3, 4, image.shape)
    return np.clip(shifted, 0, 255).astype(np.uint8)


def shapes_coco(out: Path, n_images: int = 300, size: int = 128, seed: int = 0, objects_per_image=(1, 4),
                radius=(0.08, 0.22), weights=None, duplicates: float = 0.0) -> dict:
    """Write the images under ``out/images`` and return the COCO document.
    ``weights``: class frequencies (e.g. 0.7, 0.2, 0.1); ``duplicates``: the
    share of images that are near-duplicates of an earlier one (same shapes)."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    made: list[tuple[np.ndarray, list]] = []
    for k in range(1, n_images + 1):
        if duplicates and made and rng.random() < duplicates:
            original, objects = made[int(rng.integers(len(made)))]
            image = near_duplicate(rng, original)
        else:
            image, objects = scene(rng, size, objects_per_image, radius, weights)
            made.append((image, objects))
        name = f"images/shape_{k:04d}.png"
        Image.fromarray(image).save(out / name)
        images.append({"id": k, "file_name": name, "width": size, "height": size})
        anns += coco_annotations(k, objects, len(anns) + 1)
    return {"images": images, "annotations": anns, "categories": CATEGORIES}


def coco_annotations(image_id: int, objects: list[tuple[str, np.ndarray]], first_id: int) -> list[dict]:
    """COCO annotations (RLE masks) of an image's (class, visible mask) objects."""
    from annot.geometry import mask_instance

    anns = []
    for kind, m in objects:
        rle, bbox, area = mask_instance(m)
        anns.append({"id": first_id + len(anns), "image_id": image_id, "category_id": CLASSES.index(kind) + 1,
                     "segmentation": rle, "bbox": bbox, "area": area, "iscrowd": 0})
    return anns


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    doc = shapes_coco(args.out, args.images, args.size, args.seed)
    (args.out / "shapes.coco.json").write_text(json.dumps(doc))
    print(f"wrote {args.out / 'shapes.coco.json'}: {len(doc['images'])} images, {len(doc['annotations'])} shapes")


if __name__ == "__main__":
    main()
