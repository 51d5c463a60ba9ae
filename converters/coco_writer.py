"""COCO core -> COCO JSON.

Ids are ints from 1; polygons shorter than 6 numbers (fewer than 3 points)
are dropped with a warning (pycocotools would read a 4-number polygon as a
box); RLE ``counts`` are str; ``area`` is the pycocotools pixel count the
readers computed; images without annotations are kept. When the dataset
carries predictions they go to ``<OUT stem>.predictions.json`` as a COCO
results list whose ids refer to OUT.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from pathlib import Path

from annot.geometry import compress_rle
from annot.io import dumps_json, write_chunks_atomic, write_json_atomic
from annot.model import Annotation, Dataset
from annot.options import ConvertOptions
from annot.report import Report

CHUNK_ANNOTATIONS = 4096  # ~1 MB of polygon annotations per written chunk


def coco_json_chunks(ds: Dataset, report: Report | None = None) -> Iterator[bytes]:
    """The dataset as compact COCO JSON in pieces of about a megabyte, as
    :func:`write` writes them (joining 30 MB at once costs more than the
    writes: a fresh buffer's every page faulted in). Joined, byte for byte
    what ``dumps_json(coco_dict(ds))`` gives: annotations whose geometry
    arrived rendered are copied as bytes, the others go through their dicts."""
    yield b"".join([
        b'{"info":', dumps_json(ds.info),
        b',"images":', dumps_json([i.to_coco() for i in ds.images]),
        b',"annotations":[',
    ])
    parts = _annotations_json(ds.annotations, report)
    if parts:
        parts[0] = parts[0][1:]  # no comma before the first
    step = 2 * CHUNK_ANNOTATIONS  # two pieces per rendered annotation
    for k in range(0, len(parts), step):
        yield b"".join(parts[k : k + step])
    yield b'],"categories":' + dumps_json([c.to_coco() for c in ds.categories]) + b"}"


def _annotations_json(anns: list[Annotation], report: Report | None) -> list[bytes]:
    """The annotations as pieces of JSON to join, each list item led by its comma."""
    geometry = [a.rendered_geometry() for a in anns]
    if None not in geometry:
        return _stitched(anns, geometry)
    parts = []  # each run of annotations without a rendering serialised at once, as dicts
    for rendered, run in groupby(zip(geometry, anns), key=lambda pair: pair[0] is not None):
        run = list(run)
        if rendered:
            parts += _stitched([a for _, a in run], [g for g, _ in run])
        else:
            parts.append(b"," + _as_dicts([a for _, a in run], report))
    return parts


_PREFIX = b',{"id":%d,"image_id":%d,"category_id":%d,'  # what precedes render_geometry's bytes


def _stitched(anns: list[Annotation], geometry: list[bytes]) -> list[bytes]:
    """Each annotation's ids, then its rendered geometry: pieces joined once,
    never concatenated one by one (a third of the writer's time)."""
    parts: list = [None] * (2 * len(anns))
    parts[0::2] = [_PREFIX % (a.id, a.image_id, a.category_id) for a in anns]
    parts[1::2] = geometry
    return parts


def _as_dicts(anns: list[Annotation], report: Report | None) -> bytes:
    """Annotations as COCO dicts, serialised as the inside of a JSON list."""
    return dumps_json([_coco_annotation(a.to_coco(), report) for a in anns])[1:-1]


def coco_dict(ds: Dataset, report: Report | None = None) -> dict:
    out = ds.to_coco()
    for a in out["annotations"]:
        _coco_annotation(a, report)
    return out


def _coco_annotation(a: dict, report: Report | None) -> dict:
    """COCO's rules on one annotation dict: RLE counts as str, polygons of at least 3 points."""
    seg = a["segmentation"]
    if isinstance(seg, dict):
        if not isinstance(seg.get("counts"), str):
            a["segmentation"] = compress_rle(seg)
    elif seg and min(map(len, seg)) < 6:
        a["segmentation"] = [p for p in seg if len(p) >= 6]
        if report is not None:
            report.warn("polygons with fewer than 3 points dropped", f"annotation {a['id']}")
    return a


def results_list(anns: list[Annotation]) -> list[dict]:
    """COCO results (what ``COCO.loadRes`` reads): one dict per detection."""
    out = []
    for a in anns:
        r = {"image_id": a.image_id, "category_id": a.category_id, "bbox": a.bbox, "score": a.score}
        if isinstance(a.segmentation, dict):
            r["segmentation"] = a.segmentation
        elif a.segmentation:
            r["segmentation"] = [p for p in a.segmentation if len(p) >= 6]
        if a.keypoints is not None:
            r["keypoints"] = a.keypoints
        out.append(r)
    return out


def predictions_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + ".predictions.json")


def write(ds: Dataset, out: Path, opts: ConvertOptions, report: Report) -> list[Path]:
    write_chunks_atomic(out, coco_json_chunks(ds, report), overwrite=opts.overwrite)
    written = [Path(out)]
    if ds.predictions:
        write_json_atomic(predictions_path(out), results_list(ds.predictions), overwrite=opts.overwrite)
        written.append(predictions_path(out))
    return written
