"""The COCO-shaped core model.

Every reader yields a :class:`Dataset`; every writer consumes one. Geometry is
COCO's: ``bbox`` is ``[x, y, w, h]`` in 0-based continuous pixel coordinates
(the top-left corner of the image is ``(0, 0)``, a pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)``), ``segmentation`` is a list of polygons (flat
``[x0, y0, x1, y1, ...]`` lists) or one compressed RLE (``{"size": [h, w],
"counts": str}``), ``area`` is the number of mask pixels as pycocotools
rasterises the segmentation.

Readers do not assign ids themselves: they hand :class:`Instance` drafts with a
label name to :class:`DatasetBuilder`, which numbers images and annotations
from 1 and maps names to stable category ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Polygons = list[list[float]]  # readers may use 1-D float arrays; the builder makes them lists

IGNORE_LABEL = "__ignore__"  # labelme / labels.txt convention for "don't care" regions
BACKGROUND_LABEL = "_background_"
RLE = dict[str, Any]


@dataclass(slots=True)
class Category:
    id: int
    name: str
    supercategory: str = ""
    keypoints: list[str] | None = None
    skeleton: list[list[int]] | None = None

    def to_coco(self) -> dict:
        d = {"id": self.id, "name": self.name, "supercategory": self.supercategory}
        if self.keypoints is not None:
            d["keypoints"] = list(self.keypoints)
            d["skeleton"] = [list(e) for e in (self.skeleton or [])]
        return d


@dataclass(slots=True)
class Image:
    id: int
    file_name: str
    width: int
    height: int
    # Format-specific facts a writer may need back (Label Studio task id, the
    # source annotation file, ...). Written to COCO under the same keys.
    extra: dict = field(default_factory=dict)

    def to_coco(self) -> dict:
        d = {"id": self.id, "file_name": self.file_name, "width": self.width, "height": self.height}
        d.update(self.extra)
        return d


@dataclass(slots=True)
class Annotation:
    id: int
    image_id: int
    category_id: int
    bbox: list[float]
    area: float
    segmentation: Polygons | RLE | None = None
    iscrowd: int = 0
    keypoints: list[float] | None = None
    num_keypoints: int | None = None
    score: float | None = None
    extra: dict = field(default_factory=dict)

    def to_coco(self) -> dict:
        d = {
            "id": self.id,
            "image_id": self.image_id,
            "category_id": self.category_id,
            "bbox": self.bbox,
            "area": self.area,
            "iscrowd": self.iscrowd,
            "segmentation": [] if self.segmentation is None else self.segmentation,
        }
        if self.keypoints is not None:
            d["keypoints"] = self.keypoints
            d["num_keypoints"] = self.num_keypoints
        if self.score is not None:
            d["score"] = self.score
        if self.extra:
            d.update(self.extra)
        return d


@dataclass(slots=True)
class Dataset:
    images: list[Image]
    categories: list[Category]
    annotations: list[Annotation]
    info: dict = field(default_factory=dict)
    # Model predictions over the same images and categories (COCO results);
    # only readers asked for them (Label Studio ``--predictions``) fill this.
    predictions: list[Annotation] = field(default_factory=list)

    def to_coco(self) -> dict:
        return {
            "info": self.info,
            "images": [i.to_coco() for i in self.images],
            "annotations": [a.to_coco() for a in self.annotations],
            "categories": [c.to_coco() for c in self.categories],
        }

    def category_names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.categories}

    def per_image(self):
        """``(image, its annotations)`` for every image, in image order."""
        out: dict[int, list[Annotation]] = {i.id: [] for i in self.images}
        for a in self.annotations:
            out[a.image_id].append(a)
        return [(img, out[img.id]) for img in self.images]


@dataclass(slots=True)
class Instance:
    """An annotation before ids are known: what a reader produces per shape."""

    label: str
    bbox: list[float]
    area: float
    segmentation: Polygons | RLE | None = None
    iscrowd: int = 0
    keypoints: list[float] | None = None
    keypoint_names: list[str] | None = None
    score: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass(slots=True)
class ImageDraft:
    file_name: str
    width: int
    height: int
    instances: list[Instance] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    predictions: list[Instance] = field(default_factory=list)


class DatasetBuilder:
    """Numbers images and annotations from 1 and assigns category ids.

    Category ids are 1..N in the order of ``labels`` when given (the labelme
    ``labels.txt`` convention), else in sorted name order, so the same label
    set always gets the same ids. Keypoint names attach to the category the
    first time an instance with keypoints is seen.
    """

    def __init__(self, labels: list[str] | None = None):
        self.labels = list(labels) if labels is not None else None
        self.images: list[ImageDraft] = []
        self._keypoints: dict[str, list[str]] = {}

    def add(self, draft: ImageDraft) -> None:
        self.images.append(draft)

    def unknown_labels(self, draft: ImageDraft) -> list[str]:
        if self.labels is None:
            return []
        known = set(self.labels)
        return sorted({i.label for i in draft.instances if i.label not in known})

    def build(self, info: dict | None = None) -> Dataset:
        if self.labels is not None:
            names = self.labels
        else:
            found = {i.label for d in self.images for i in (*d.instances, *d.predictions)}
            names = sorted(found - {IGNORE_LABEL})
        ids = {n: k for k, n in enumerate(names, start=1)}
        kp_names: dict[str, list[str]] = {}
        images, anns, preds = [], [], []
        for img_id, d in enumerate(self.images, start=1):
            images.append(Image(img_id, d.file_name, d.width, d.height, d.extra))
            for inst in self._expand_ignore(d.instances, names):
                if inst.keypoints is not None:
                    kp_names.setdefault(inst.label, inst.keypoint_names or [])
                anns.append(_annotation(len(anns) + 1, img_id, ids[inst.label], inst))
            for inst in d.predictions:
                preds.append(_annotation(len(preds) + 1, img_id, ids[inst.label], inst))
        cats = [Category(ids[n], n, keypoints=kp_names.get(n)) for n in names]
        return Dataset(images, cats, anns, info or {}, preds)

    @staticmethod
    def _expand_ignore(instances: list[Instance], names: list[str]):
        """An ``__ignore__`` region kept as crowd is a "don't care" area for
        every class; COCOeval ignores a crowd region only within its own
        category, so it is written once per category."""
        for inst in instances:
            if inst.label != IGNORE_LABEL:
                yield inst
                continue
            for n in names:
                yield Instance(n, inst.bbox, inst.area, inst.segmentation, 1, extra=inst.extra)


def _annotation(ann_id: int, image_id: int, category_id: int, inst: Instance) -> Annotation:
    seg = inst.segmentation
    if isinstance(seg, list) and seg and not isinstance(seg[0], list):
        # readers may hand polygons as 1-D numpy arrays (cheap to pass between processes)
        seg = [p.tolist() for p in seg]
    num_kp = None
    if inst.keypoints is not None:
        num_kp = sum(1 for v in inst.keypoints[2::3] if v > 0)
    return Annotation(
        id=ann_id,
        image_id=image_id,
        category_id=category_id,
        bbox=inst.bbox,
        area=inst.area,
        segmentation=seg,
        iscrowd=inst.iscrowd,
        keypoints=inst.keypoints,
        num_keypoints=num_kp,
        score=inst.score,
        extra=inst.extra,
    )
