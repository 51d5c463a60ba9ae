"""``annot merge``: several COCO datasets into one.

Teams label disjoint batches of images in different tools; after ``annot
convert`` each batch is a COCO file with its own ids. Merging:

- categories are matched **by name** (ids differ between files); the merged
  ids follow ``labels`` when given, else the order names first appear;
- images and annotations are renumbered from 1, in input order;
- an image (by ``file_name``) in two inputs is refused: two labellings of one
  image are a review question, not something to concatenate silently.

Geometry is carried as read (an annotation's pre-rendered JSON stays as it
is), so merging costs what reading costs.
"""

from __future__ import annotations

from pathlib import Path

from .errors import AnnotError
from .model import Annotation, Category, Dataset, Image


def merge(parts: list[tuple[Path, Dataset]], labels: list[str] | None = None) -> Dataset:
    names = _category_order(parts, labels)
    ids = {name: k for k, name in enumerate(names, start=1)}
    categories: dict[str, Category] = {}
    images: list[Image] = []
    annotations: list[Annotation] = []
    seen: dict[str, Path] = {}
    for path, ds in parts:
        for c in ds.categories:
            first = categories.setdefault(c.name, Category(ids[c.name], c.name, c.supercategory, c.keypoints,
                                                           c.skeleton))
            if first.keypoints != c.keypoints:
                raise AnnotError(f"{path}: category {c.name!r} has other keypoints than in an earlier input")
        cat_of = {c.id: ids[c.name] for c in ds.categories}
        image_of: dict[int, int] = {}
        for im in ds.images:
            if im.file_name in seen:
                raise AnnotError(f"{path}: image {im.file_name!r} is also in {seen[im.file_name]}; "
                                 "merge takes each image from one input")
            seen[im.file_name] = path
            image_of[im.id] = len(images) + 1
            images.append(Image(image_of[im.id], im.file_name, im.width, im.height, dict(im.extra)))
        for a in ds.annotations:
            annotations.append(_renumbered(a, len(annotations) + 1, image_of[a.image_id], cat_of[a.category_id]))
    return Dataset(images=images, categories=[categories.get(n) or Category(ids[n], n) for n in names],
                   annotations=annotations, info={"description": f"annot merge of {len(parts)} datasets"})


def _category_order(parts: list[tuple[Path, Dataset]], labels: list[str] | None) -> list[str]:
    found = list(dict.fromkeys(c.name for _, ds in parts for c in ds.categories))
    if labels is None:
        return found
    missing = [n for n in found if n not in labels]
    if missing:
        where = next(p for p, ds in parts if any(c.name == missing[0] for c in ds.categories))
        raise AnnotError(f"{where}: category {missing[0]!r} is not in --labels")
    return list(labels)


def _renumbered(a: Annotation, ann_id: int, image_id: int, category_id: int) -> Annotation:
    if a._rendered is not None:  # the geometry as the reader rendered it: copied, never parsed
        return Annotation(ann_id, image_id, category_id, iscrowd=a.iscrowd, keypoints=a.keypoints,
                          num_keypoints=a.num_keypoints, score=a.score, extra=a.extra, rendered=a._rendered)
    return Annotation(ann_id, image_id, category_id, a.bbox, a.area, a.segmentation, a.iscrowd, a.keypoints,
                      a.num_keypoints, a.score, a.extra)
