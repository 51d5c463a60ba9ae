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

from annot.geometry import polygon_areas
from annot.model import Instance
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

    def instances(self) -> list[Instance]:
        """The image's instances in their original order (call once, in the main process)."""
        coords = self.coords.tolist()
        b = list(accumulate(self.poly_len, initial=0))
        out, k = [], 0
        for label, score, bbox, area, n in zip(
            self.labels, self.scores, self.bbox.tolist(), self.area.tolist(), self.poly_count
        ):
            if n == 1:
                seg = [coords[b[k] : b[k + 1]]]
            else:
                seg = [coords[b[j] : b[j + 1]] for j in range(k, k + n)]
            k += n
            out.append(Instance(label, bbox, area, seg, 0, None, None, score))
        for pos in sorted(self.others):  # masks and crowd regions back at their places
            out.insert(pos, self.others[pos])
        return out


def to_columns(entries: list, width: int, height: int, path, rep: Report) -> Columns:
    """Columns of ``entries`` (PolygonEntry or Instance); polygons outside the
    image are clipped to its border, counted as a warning."""
    polys_entries = [e for e in entries if isinstance(e, PolygonEntry)]
    others = {pos: e for pos, e in enumerate(entries) if not isinstance(e, PolygonEntry)}
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
    return Columns(
        [e.label for e in polys_entries], [e.score for e in polys_entries], bbox,
        np.asarray(area, np.float64), coords, lens, counts, others,
    )
