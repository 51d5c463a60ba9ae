"""All polygon instances of one image at once.

Readers gather an image's instances as entries, in output order: a polygon
entry is ``PolygonEntry(label, polygons, items, score)`` with flat pixel
polygons, anything else a ready :class:`~annot.model.Instance` (masks, crowd
regions). :func:`to_columns` clips, boxes and measures every polygon with a
handful of numpy and pycocotools calls instead of a dozen per shape (for a
batch of images at once: :func:`columns_of_images`), and the
resulting :class:`Columns` is what a worker process sends back: a few arrays
pickle in microseconds where lists of floats would cost more than parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import accumulate, chain, groupby
from typing import NamedTuple

import numpy as np
import orjson

from annot.errors import ParseError
from annot.geometry import polygon_areas
from annot.limits import POLYGON_BYTES_PER_PX, human, polygon_bytes
from annot.model import (
    IGNORE_LABEL,
    Annotation,
    DatasetBuilder,
    ImageDraft,
    Instance,
    render_geometry,
)
from annot.report import Report


@dataclass(slots=True)
class PolygonEntry:
    label: str
    polys: list  # flat pixel polygons (lists or 1-D arrays), each >= 3 points
    items: list[str]  # where each polygon came from, for messages
    score: float | None = None


@dataclass(slots=True)
class Columns:
    labels: list[str]
    scores: list[float | None]
    bbox: np.ndarray  # (n, 4) float64, one row per polygon entry
    area: np.ndarray  # (n,)
    coords: np.ndarray  # every polygon's coordinates, entry by entry
    poly_len: list[int]  # coordinates in each polygon
    poly_count: list[int]  # polygons of each entry
    others: dict[int, Instance]  # output position -> ready instance
    keypoints: dict[int, dict[str, tuple[float, float]]] = field(default_factory=dict)  # position -> named points
    render: bool = False  # the writer copies rendered COCO JSON (ConvertOptions.render_json)

    def __reduce__(self):
        # Sent back by every worker call. For a writer that copies COCO JSON,
        # plain polygon images (the common case) travel as that JSON, rendered
        # here in the worker: the main process copies bytes instead of building
        # floats. Otherwise raw numbers and a plain tuple, several times faster
        # to pickle than arrays in slots-dataclass state.
        if self.render and self.plain:
            return RenderedColumns, (self.labels, self.scores, self.rendered())
        numbers = np.concatenate([self.bbox.ravel(), self.area, self.coords]).tobytes()
        return _unpickle, (self.labels, self.scores, numbers, self.poly_len, self.poly_count, self.others,
                           self.keypoints, self.render)

    @property
    def plain(self) -> bool:
        """Polygon instances only: no masks, crowd regions or keypoints."""
        return not self.others and not self.keypoints and IGNORE_LABEL not in self.labels

    def rendered(self) -> list[bytes]:
        """Each polygon entry's geometry as COCO JSON (``Annotation``'s ``rendered=``)."""
        return [render_geometry(bbox, area, seg)
                for bbox, area, seg in zip(self.bbox.tolist(), self.area.tolist(), self.segmentations())]

    def segmentations(self) -> list[list[list[float]]]:
        """Each polygon entry's polygons as lists of floats."""
        coords = self.coords.tolist()
        bounds = accumulate(self.poly_len, initial=0)
        a = next(bounds)
        out = []
        for n in self.poly_count:
            seg = []
            for _ in range(n):
                b = next(bounds)
                seg.append(coords[a:b])
                a = b
            out.append(seg)
        return out

    def instances(self) -> list[Instance]:
        """The image's instances in their original order (call once, in the main process)."""
        out = [
            Instance(label, bbox, area, seg, 0, None, None, score)
            for label, score, bbox, area, seg in zip(
                self.labels, self.scores, self.bbox.tolist(), self.area.tolist(), self.segmentations()
            )
        ]
        for pos in sorted(self.others):  # masks and crowd regions back at their places
            out.insert(pos, self.others[pos])
        return out

    def add_to(self, builder: DatasetBuilder, draft: ImageDraft) -> list[Annotation | None]:
        """``builder.add(draft)`` with these instances; polygons only (the
        common case) go straight to annotations, without Instance objects."""
        if not self.plain or draft.predictions:
            draft.instances = self.instances()
            return builder.add(draft)
        if self.render:
            return builder.add_rendered(draft, self.labels, self.rendered(), self.scores)
        return builder.add_polygons(draft, self.labels, self.bbox.tolist(), self.area.tolist(),
                                    self.segmentations(), self.scores)


@dataclass(slots=True)
class RenderedColumns:
    """Plain :class:`Columns` after the trip from a worker: labels, scores and
    each instance's geometry as COCO JSON."""

    labels: list[str]
    scores: list[float | None]
    geometry: list[bytes]
    keypoints: dict = field(default_factory=dict)  # never any: Columns with keypoints are not plain

    def instances(self) -> list[Instance]:
        out = []
        for label, score, g in zip(self.labels, self.scores, self.geometry):
            d = orjson.loads(b"{" + g)
            out.append(Instance(label, d["bbox"], d["area"], d["segmentation"], 0, None, None, score))
        return out

    def add_to(self, builder: DatasetBuilder, draft: ImageDraft) -> list[Annotation | None]:
        if draft.predictions:
            draft.instances = self.instances()
            return builder.add(draft)
        return builder.add_rendered(draft, self.labels, self.geometry, self.scores)


def _unpickle(labels, scores, numbers, poly_len, poly_count, others, keypoints, render) -> Columns:
    a = np.frombuffer(numbers, np.float64)
    n = len(labels)
    return Columns(labels, scores, a[: 4 * n].reshape(n, 4), a[4 * n : 5 * n], a[5 * n :], poly_len, poly_count,
                   others, keypoints, render)


class ImageEntries(NamedTuple):
    """One image's entries, in output order, with what measuring them needs."""

    entries: list  # PolygonEntry | Instance
    width: int
    height: int
    path: object  # for messages
    rep: Report
    budget: int | None = None  # bytes rasterising one polygon may take (--max-memory); None: unchecked


def to_columns(entries: list, width: int, height: int, path, rep: Report, render: bool = False,
               budget: int | None = None) -> Columns:
    """Columns of one image's ``entries``: :func:`columns_of_images` of one image."""
    return columns_of_images([ImageEntries(entries, width, height, path, rep, budget)], render)[0]


def read_then_measure(items: Iterable, read_one: Callable, measure: Callable[[list], list]) -> list:
    """``measure([read_one(x) for x in items])``: each item (a file, a task)
    read on its own, then all of them measured together.

    Reading raises ParseError at an item's first error under ``--on-error
    fail``; measuring finds shapes covering no pixel, also errors. So that
    the first error in input order wins, the items read before a failing one
    are measured first: an error of theirs is raised instead."""
    parsed: list = []
    try:
        for x in items:
            parsed.append(read_one(x))
    except ParseError:
        measure(parsed)
        raise
    return measure(parsed)


def columns_of_images(images: list[ImageEntries], render: bool = False) -> list[Columns]:
    """Columns of each image's entries (PolygonEntry or Instance), all images
    measured together: the numpy calls are made once for a batch of images,
    and pycocotools once per run of images of the same size.

    Polygons outside their image are clipped to its border, counted as a
    warning. A polygon entry that covers no pixel of its image (outside it,
    or collinear points) is an error for its item and is removed from the
    image's ``entries``, and so is one that pycocotools would need more than
    the image's ``budget`` to rasterise. ``render``: see :attr:`Columns.render`.
    """
    per_image = [[e for e in im.entries if isinstance(e, PolygonEntry)] for im in images]
    entries = list(chain.from_iterable(per_image))
    flats = [p for e in entries for p in e.polys]
    lens = [len(p) for p in flats]
    counts = [len(e.polys) for e in entries]
    if all(type(p) is list for p in flats):
        coords = np.fromiter(chain.from_iterable(flats), np.float64, sum(lens))
    else:
        coords = np.concatenate(flats).astype(np.float64, copy=False) if flats else np.zeros(0)
    xy = coords.reshape(-1, 2)  # a view: clipping it clips coords
    # where each image's entries, polygons and coordinates start and end
    entry_at = list(accumulate(map(len, per_image), initial=0))
    poly_at = list(accumulate(counts, initial=0))
    coord_at = list(accumulate(lens, initial=0))
    image_polys = [(poly_at[entry_at[k]], poly_at[entry_at[k + 1]]) for k in range(len(images))]
    n = len(entries)
    bbox, area, over = np.zeros((0, 4)), np.zeros(0), {}
    if n:
        point_starts = np.fromiter(coord_at[:-1], np.intp, len(lens)) // 2
        lo, hi = np.minimum.reduceat(xy, point_starts), np.maximum.reduceat(xy, point_starts)  # per polygon
        size = np.repeat([(im.width, im.height) for im in images], [b - a for a, b in image_polys], axis=0)
        if lo.min() < 0 or (hi > size).any():
            _clip(images, per_image, image_polys, coord_at, xy, (lo < 0).any(axis=1) | (hi > size).any(axis=1))
            lo, hi = np.minimum.reduceat(xy, point_starts), np.maximum.reduceat(xy, point_starts)
        over = _over_budget(images, image_polys, lens, size, coords, coord_at, poly_at)
        if len(lens) > n:  # several polygons in an instance: reduce once more per entry
            lo, hi = np.minimum.reduceat(lo, poly_at[:-1]), np.maximum.reduceat(hi, poly_at[:-1])
        bbox = np.concatenate([lo, hi - lo], axis=1)
        polys = [coords[a:b] for a, b in zip(coord_at, coord_at[1:])]
        for j in over:  # never handed to pycocotools: a triangle of no area stands in
            polys[j] = np.zeros(6)
        groups = [polys[a:b] for a, b in zip(poly_at, poly_at[1:])] if len(polys) > n else [[p] for p in polys]
        area = np.empty(n)
        for (width, height), run in groupby(range(len(images)), key=lambda k: (images[k].width, images[k].height)):
            run = list(run)
            a, b = entry_at[run[0]], entry_at[run[-1] + 1]
            if b > a:
                area[a:b] = polygon_areas(groups[a:b], height, width)
    empty = (area <= 0) | (bbox[:, 2:] <= 0).any(axis=1) if n else None
    reasons = {int(np.searchsorted(poly_at, j, "right")) - 1: why for j, why in over.items()} if n else {}
    for e in reasons:
        empty[e] = True
    out = []
    for k, im in enumerate(images):
        a, b = entry_at[k], entry_at[k + 1]
        (pa, pb), (ca, cb) = image_polys[k], (coord_at[image_polys[k][0]], coord_at[image_polys[k][1]])
        cols = Columns([], [], bbox[a:b], area[a:b], coords[ca:cb], lens[pa:pb], counts[a:b], {}, render=render)
        kept = per_image[k]
        if empty is not None and empty[a:b].any():
            kept = _drop_empty(cols, kept, empty[a:b], im, {e - a: why for e, why in reasons.items() if a <= e < b})
        cols.labels, cols.scores = [e.label for e in kept], [e.score for e in kept]
        cols.others = {pos: e for pos, e in enumerate(im.entries) if not isinstance(e, PolygonEntry)}
        out.append(cols)
    return out


def _clip(images: list[ImageEntries], per_image: list, image_polys: list, coord_at: list, xy: np.ndarray,
          bad: np.ndarray) -> None:
    """Clip the points of images with polygons outside them to their border, with a warning each."""
    for im, entries, (pa, pb) in zip(images, per_image, image_polys):
        if pb > pa and bad[pa:pb].any():
            items = [it for e in entries for it in e.items]
            im.rep.warn("points outside the image clipped to its border",
                        f"{im.path}:{items[int(np.argmax(bad[pa:pb]))]}", int(bad[pa:pb].sum()))
            pts = xy[coord_at[pa] // 2 : coord_at[pb] // 2]
            np.clip(pts, 0, (im.width, im.height), out=pts)


def _over_budget(images, image_polys, lens, size, coords, coord_at, poly_at) -> dict[int, str]:
    """Polygon index -> why, for polygons pycocotools would need more than
    their image's budget to rasterise. Clipped points are at most the
    image's longer side apart, so only polygons with many points need their
    outline measured."""
    budget = np.repeat([im.budget if im.budget is not None else np.inf for im in images],
                       [b - a for a, b in image_polys])
    bound = np.asarray(lens) / 2 * size.max(axis=1) * POLYGON_BYTES_PER_PX
    out = {}
    for j in np.flatnonzero(bound > budget):
        need = polygon_bytes(coords[coord_at[j] : coord_at[j + 1]])
        if need > budget[j]:
            out[int(j)] = (f"rasterising this polygon needs {human(need)}, over the memory budget of "
                           f"{human(budget[j])} (--max-memory)")
    return out


def _drop_empty(cols: Columns, entries: list[PolygonEntry], empty: np.ndarray, im: ImageEntries,
                reasons: dict[int, str]) -> list:
    """Remove the polygon entries covering no pixel (or too big to measure:
    ``reasons``) from ``cols`` and from the image's entries, each an error
    for its item; returns the entries kept."""
    for k in np.flatnonzero(empty):
        im.rep.error(im.path, entries[k].items[0], reasons.get(int(k), "shape covers no pixel inside the image"))
    dropped = {id(entries[k]) for k in np.flatnonzero(empty)}
    im.entries[:] = [e for e in im.entries if id(e) not in dropped]
    keep = ~empty
    poly_keep = np.repeat(keep, cols.poly_count)
    cols.coords = cols.coords[np.repeat(poly_keep, cols.poly_len)]
    cols.poly_len = [m for m, k in zip(cols.poly_len, poly_keep) if k]
    cols.poly_count = [c for c, k in zip(cols.poly_count, keep) if k]
    cols.bbox, cols.area = cols.bbox[keep], cols.area[keep]
    return [e for e, k in zip(entries, keep) if k]
