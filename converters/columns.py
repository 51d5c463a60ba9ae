"""All polygon instances of one image at once.

Readers gather an image's instances as entries, in output order: a polygon
entry is ``PolygonEntry(label, polygons, items, score)`` with flat pixel
polygons, anything else a ready :class:`~annot.model.Instance` (masks, crowd
regions). :func:`to_columns` clips, boxes and measures every polygon with a
handful of numpy and pycocotools calls instead of a dozen per shape, and the
resulting :class:`Columns` is what a worker process sends back: a few arrays
pickle in microseconds where lists of floats would cost more than parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate, chain

import numpy as np
import orjson

from annot.geometry import polygon_areas
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


def to_columns(entries: list, width: int, height: int, path, rep: Report, render: bool = False) -> Columns:
    """Columns of ``entries`` (PolygonEntry or Instance); polygons outside the
    image are clipped to its border, counted as a warning. A polygon entry
    that covers no pixel of the image (outside it, or collinear points) is an
    error for its item and is removed from ``entries``. ``render``: see
    :attr:`Columns.render`."""
    polys_entries = [e for e in entries if isinstance(e, PolygonEntry)]
    flats = [p for e in polys_entries for p in e.polys]
    lens = [len(p) for p in flats]
    counts = [len(e.polys) for e in polys_entries]
    if all(type(p) is list for p in flats):
        coords = np.fromiter(chain.from_iterable(flats), np.float64, sum(lens))
    else:
        coords = np.concatenate(flats).astype(np.float64, copy=False) if flats else np.zeros(0)
    xy = coords.reshape(-1, 2)  # a view: clipping it clips coords
    n = len(polys_entries)
    bbox = np.zeros((0, 4))
    area: list[float] = []
    if n:
        point_starts = np.fromiter(accumulate(lens[:-1], initial=0), np.intp, len(lens)) // 2
        lo, hi = np.minimum.reduceat(xy, point_starts), np.maximum.reduceat(xy, point_starts)  # per polygon
        if lo.min() < 0 or hi[:, 0].max() > width or hi[:, 1].max() > height:
            bad = (lo < 0).any(axis=1) | (hi[:, 0] > width) | (hi[:, 1] > height)
            items = [it for e in polys_entries for it in e.items]
            rep.warn("points outside the image clipped to its border", f"{path}:{items[int(np.argmax(bad))]}",
                     int(bad.sum()))
            np.clip(xy, 0, (width, height), out=xy)
            lo, hi = np.minimum.reduceat(xy, point_starts), np.maximum.reduceat(xy, point_starts)
        if len(lens) > n:  # several polygons in an instance: reduce once more per entry
            first = list(accumulate(counts[:-1], initial=0))
            lo, hi = np.minimum.reduceat(lo, first), np.maximum.reduceat(hi, first)
        bbox = np.concatenate([lo, hi - lo], axis=1)
        bounds = list(accumulate(lens, initial=0))
        polys = [coords[a:b] for a, b in zip(bounds, bounds[1:])]
        if len(polys) == n:
            groups = [[p] for p in polys]
        else:
            cb = list(accumulate(counts, initial=0))
            groups = [polys[a:b] for a, b in zip(cb, cb[1:])]
        area = polygon_areas(groups, height, width)
    area = np.asarray(area, np.float64)
    if n and (area.min() <= 0 or bbox[:, 2:].min() <= 0):
        keep = (area > 0) & (bbox[:, 2:].min(axis=1) > 0)
        empty = np.flatnonzero(~keep)
        for k in empty:
            rep.error(path, polys_entries[k].items[0], "shape covers no pixel inside the image")
        dropped = {id(polys_entries[k]) for k in empty}
        entries[:] = [e for e in entries if id(e) not in dropped]
        poly_keep = np.repeat(keep, counts)
        coords = coords[np.repeat(poly_keep, lens)]
        lens = [m for m, k in zip(lens, poly_keep) if k]
        counts = [c for c, k in zip(counts, keep) if k]
        polys_entries = [e for e, k in zip(polys_entries, keep) if k]
        bbox, area = bbox[keep], area[keep]
    others = {pos: e for pos, e in enumerate(entries) if not isinstance(e, PolygonEntry)}
    return Columns(
        [e.label for e in polys_entries], [e.score for e in polys_entries], bbox, area, coords, lens, counts, others,
        render=render,
    )
