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
from itertools import count
from typing import Any

import orjson

Polygons = list[list[float]]

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


class _Geometry:
    """A geometry field of :class:`Annotation`, kept in the slot ``_<name>``
    and parsed from the rendered JSON on first use (read or write)."""

    def __set_name__(self, owner, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, ann, owner=None):
        if ann is None:
            return self
        if ann._rendered is not None:
            ann._parse()
        return getattr(ann, self.slot)

    def __set__(self, ann, value) -> None:
        if ann._rendered is not None:
            ann._parse()
        setattr(ann, self.slot, value)


class Annotation:
    """One COCO annotation.

    Its geometry (``bbox``, ``area``, ``segmentation``) may arrive already
    rendered as COCO JSON (``rendered=``: the bytes after ``"category_id":N,``
    of a plain annotation, from ``"bbox"`` to the closing brace), as reader
    workers send it: the process that assembles the dataset then never builds
    those floats, the COCO writer copies the bytes, and the geometry is parsed
    back only when something reads it. Setting a geometry field drops the
    rendering.
    """

    __slots__ = ("id", "image_id", "category_id", "_bbox", "_area", "_segmentation", "iscrowd", "keypoints",
                 "num_keypoints", "score", "extra", "_rendered")

    def __init__(self, id: int, image_id: int, category_id: int, bbox: list[float] | None = None,
                 area: float | None = None, segmentation: Polygons | RLE | None = None, iscrowd: int = 0,
                 keypoints: list[float] | None = None, num_keypoints: int | None = None,
                 score: float | None = None, extra: dict | None = None, rendered: bytes | None = None):
        self.id, self.image_id, self.category_id = id, image_id, category_id
        self._bbox, self._area, self._segmentation = bbox, area, segmentation
        self.iscrowd, self.keypoints, self.num_keypoints = iscrowd, keypoints, num_keypoints
        self.score, self.extra = score, extra
        self._rendered = rendered

    def _parse(self) -> None:
        d = orjson.loads(b"{" + self._rendered)
        self._bbox, self._area, self._segmentation = d["bbox"], d["area"], d["segmentation"]
        self._rendered = None

    bbox = _Geometry()
    area = _Geometry()
    segmentation = _Geometry()

    def rendered_geometry(self) -> bytes | None:
        """The geometry as it arrived rendered, when nothing outside it (crowd
        flag, keypoints, score, extra keys) needs adding; else None."""
        if self._rendered is None or self.iscrowd or self.keypoints is not None or self.score is not None \
                or self.extra:
            return None
        return self._rendered

    _FIELDS = ("id", "image_id", "category_id", "bbox", "area", "segmentation", "iscrowd", "keypoints",
               "num_keypoints", "score", "extra")  # the constructor's order

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other) -> bool:
        return isinstance(other, Annotation) and self._fields() == other._fields()

    __hash__ = None

    def __repr__(self) -> str:
        return "Annotation(" + ", ".join(f"{n}={v!r}" for n, v in zip(self._FIELDS, self._fields())) + ")"

    def __getstate__(self):
        return self._fields()

    def __setstate__(self, state) -> None:
        Annotation.__init__(self, *state)

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


def render_geometry(bbox: list[float], area: float, segmentation: Polygons) -> bytes:
    """What :class:`Annotation` takes as ``rendered=``: the COCO JSON of a
    plain (not crowd) annotation from ``"bbox"`` to its closing brace."""
    return orjson.dumps({"bbox": bbox, "area": area, "iscrowd": 0, "segmentation": segmentation})[1:]


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
    extra: dict | None = None


@dataclass(slots=True)
class ImageDraft:
    file_name: str
    width: int
    height: int
    instances: list[Instance] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    predictions: list[Instance] = field(default_factory=list)

    def __reduce__(self):  # sent back by every worker call: a plain tuple, every field
        return ImageDraft, tuple(getattr(self, name) for name in self.__slots__)


class DatasetBuilder:
    """Numbers images and annotations from 1 and assigns category ids.

    Category ids are 1..N in the order of ``labels`` when given (the labelme
    ``labels.txt`` convention), else in sorted name order, so the same label
    set always gets the same ids. Images are turned into annotations as they
    are added (while worker processes still parse the next files); without a
    label list, ids are provisional until :meth:`build` renumbers them.
    """

    def __init__(self, labels: list[str] | None = None):
        self.labels = list(labels) if labels is not None else None
        self._ids: dict[str, int] = {n: k for k, n in enumerate(self.labels or (), start=1)}
        self.images: list[Image] = []
        self.annotations: list[Annotation] = []
        self.predictions: list[Annotation] = []
        self.keypoint_names: dict[str, list[str]] = {}
        self._crowd: list[tuple[int, Instance]] = []  # __ignore__ regions, expanded once names are known

    def _category(self, label: str) -> int:
        cid = self._ids.get(label)
        if cid is None:
            if self.labels is not None:
                raise ValueError(f"label {label!r} is not in the label list")
            cid = self._ids[label] = len(self._ids) + 1
        return cid

    def _add_image(self, draft: ImageDraft) -> int:
        img_id = len(self.images) + 1
        self.images.append(Image(img_id, draft.file_name, draft.width, draft.height, draft.extra))
        return img_id

    def add(self, draft: ImageDraft) -> list[Annotation | None]:
        """Add an image and its instances; returns the annotation made of each
        instance (None for ``__ignore__`` regions, expanded by :meth:`build`)."""
        img_id = self._add_image(draft)
        anns = self.annotations
        added = []
        for inst in draft.instances:
            if inst.label == IGNORE_LABEL:
                self._crowd.append((img_id, inst))
                added.append(None)
                continue
            if inst.keypoints is not None and inst.keypoint_names:
                self.keypoint_names.setdefault(inst.label, inst.keypoint_names)
            a = _annotation(len(anns) + 1, img_id, self._category(inst.label), inst)
            anns.append(a)
            added.append(a)
        for inst in draft.predictions:
            self.predictions.append(_annotation(len(self.predictions) + 1, img_id, self._category(inst.label), inst))
        return added

    def add_polygons(self, draft: ImageDraft, labels: list[str], bboxes: list, areas: list[float],
                     segmentations: list, scores: list) -> list[Annotation]:
        """:meth:`add` for an image whose instances are all plain polygon
        instances (no crowd regions, keypoints or predictions), given column
        by column: no Instance objects on the way."""
        img_id = self._add_image(draft)
        ids, anns = self._ids, self.annotations
        first = len(anns) + 1
        added = [
            Annotation(k, img_id, ids.get(label) or self._category(label), bbox, area, seg, 0, None, None, score)
            for k, label, bbox, area, seg, score in zip(count(first), labels, bboxes, areas, segmentations, scores)
        ]
        anns += added
        return added

    def add_rendered(self, draft: ImageDraft, labels: list[str], geometry: list[bytes],
                     scores: list[float | None]) -> list[Annotation]:
        """:meth:`add_polygons` with each instance's geometry rendered by
        :func:`render_geometry`."""
        img_id = self._add_image(draft)
        ids, anns = self._ids, self.annotations
        first = len(anns) + 1
        added = [
            # positional arguments: a third faster than keywords, 100,000 times over
            Annotation(k, img_id, ids.get(label) or self._category(label), None, None, None, 0, None, None, score,
                       None, g)
            for k, label, g, score in zip(count(first), labels, geometry, scores)
        ]
        anns += added
        return added

    def build(self, info: dict | None = None) -> Dataset:
        names = self.labels if self.labels is not None else sorted(self._ids)
        final = {n: k for k, n in enumerate(names, start=1)}
        remap = {self._ids[n]: final[n] for n in names}
        if any(k != v for k, v in remap.items()):
            for a in self.annotations:
                a.category_id = remap[a.category_id]
            for a in self.predictions:
                a.category_id = remap[a.category_id]
        # An __ignore__ region kept as crowd is a "don't care" area for every
        # class; COCOeval ignores a crowd region only within its own category,
        # so it is written once per category.
        for img_id, inst in self._crowd:
            for n in names:
                self.annotations.append(
                    Annotation(len(self.annotations) + 1, img_id, final[n], inst.bbox, inst.area,
                               inst.segmentation, 1, extra=inst.extra)
                )
        cats = [Category(final[n], n, keypoints=self.keypoint_names.get(n)) for n in names]
        return Dataset(self.images, cats, self.annotations, info or {}, self.predictions)


def _annotation(ann_id: int, image_id: int, category_id: int, inst: Instance) -> Annotation:
    num_kp = None
    if inst.keypoints is not None:
        num_kp = sum(1 for v in inst.keypoints[2::3] if v > 0)
    return Annotation(ann_id, image_id, category_id, inst.bbox, inst.area, inst.segmentation, inst.iscrowd,
                      inst.keypoints, num_kp, inst.score, inst.extra)
