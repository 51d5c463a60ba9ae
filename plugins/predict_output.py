"""What ``annot predict`` writes, and how an interrupted run resumes.

``labelstudio``: import-ready tasks, one per image, each with one prediction
(``model_version``, task ``score`` = mean region score); regions go to the
label config's controls through the converters' Label Studio writer (brush
RLE keeps holes; polygons are traced with ``simplify`` px tolerance).

``coco``: a COCO results list (``COCO.loadRes`` reads it) with RLE masks and,
when the model gives them, ``class_probs``, ``mask_uncertainty`` and
``iou_prediction`` per detection; beside it ``<OUT stem>.images.json``, a COCO
file with the images and categories the results refer to
(``COCO(images).loadRes(OUT)`` works without any ground truth), whose
``info.columns`` names the columns of ``class_probs``.

Each predicted image is appended to a journal (``OUT.partial``, JSON lines) the
moment it is done; OUT itself is written atomically at the end and the journal
removed. ``--resume`` keeps what OUT and the journal already hold and predicts
only the rest.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import orjson

from annot.errors import AnnotError
from annot.io import check_writable, is_stream, write_json_atomic
from annot.model import Category, Dataset, Image, Instance
from annot.options import ConvertOptions
from annot.report import Report

from .batch_predict import Predicted
from .inputs import InputImage

FORMATS = ("labelstudio", "coco")
UNUSED = "N/A"


@dataclass
class OutputSpec:
    out: Path
    fmt: str
    model_version: str
    categories: list[Category] | None = None  # None: from the labels predicted, sorted
    label_config: Path | None = None
    image_url_prefix: str | None = None
    simplify: float = 1.0


def images_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + ".images.json")


def journal_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".partial")


class PredictionWriter:
    def __init__(self, spec: OutputSpec, inputs: list[InputImage], resume: bool = False, overwrite: bool = False):
        if spec.fmt not in FORMATS:
            raise AnnotError(f"unknown output format {spec.fmt!r}; known: {', '.join(FORMATS)}")
        self.spec, self.out, self.journal = spec, Path(spec.out), journal_path(spec.out)
        if is_stream(self.out):
            raise AnnotError(f"-o {self.out}: predict writes a file (and a journal beside it), not a device or pipe")
        self.by_name = {im.name: im for im in inputs}
        self.report = Report("skip")
        self._config = None
        self.previous: list[tuple[str | None, object]] = []  # (name, raw record of OUT) kept on resume
        self.previous_images: dict[str, dict] = {}  # coco: name -> image entry of the images file
        self.records: dict[str, dict] = {}  # name -> journal record
        self.added = 0  # images predicted by this run
        self.columns: dict[str, list[str]] = {}  # names of the columns of 2-D extras
        if resume:
            self._load_previous()
        else:
            if self.journal.exists() and not overwrite:
                raise AnnotError(f"{self.journal} is left from an interrupted run: pass --resume to continue it "
                                 "or --overwrite to start over")
            check_writable(self.out, overwrite)
            if spec.fmt == "coco":
                check_writable(images_path(self.out), overwrite)
            self.journal.unlink(missing_ok=True)
        self._fh = None  # the journal opens with the first image, so a run that fails earlier leaves none

    # -- what is already done -------------------------------------------------

    @property
    def done(self) -> set[str]:
        return {n for n, _ in self.previous if n is not None} | set(self.records)

    def _load_previous(self) -> None:
        if self.out.exists():
            try:
                data = orjson.loads(self.out.read_bytes())
                if self.spec.fmt == "coco":
                    self._load_previous_coco(data)
                else:
                    self._load_previous_tasks(data)
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                raise AnnotError(f"{self.out}: cannot resume from it: not a {self.spec.fmt} output of annot "
                                 f"predict ({e})") from None
        if self.journal.exists():
            data = self.journal.read_bytes()
            if data and not data.endswith(b"\n"):  # killed mid-line: new lines must not extend the broken one
                with open(self.journal, "ab") as f:
                    f.write(b"\n")
            for line in data.splitlines():
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:  # the line being written when the run was killed
                    continue
                self.records[rec["name"]] = rec
        for name, _ in self.previous:  # killed between writing OUT and removing the journal: OUT has them
            self.records.pop(name, None)

    def _load_previous_tasks(self, tasks: list) -> None:
        key = self.config.data_key
        by_url = {self._url(n): n for n in self.by_name}
        self.previous = [(by_url.get(t["data"][key]), t) for t in tasks]

    def _load_previous_coco(self, results: list) -> None:
        meta = orjson.loads(images_path(self.out).read_bytes())
        self.previous_images = {im["file_name"]: im for im in meta["images"]}
        if self.spec.categories is None:
            self.spec.categories = [Category(c["id"], c["name"]) for c in meta["categories"]]
        self.columns = dict((meta.get("info") or {}).get("columns") or {})
        for name, im in self.previous_images.items():
            known = self.by_name.get(name)
            if known is not None and known.image_id != im["id"]:
                raise AnnotError(f"{self.out}: {name} has id {im['id']} there but {known.image_id} now: the inputs "
                                 "changed since; write to a new file")
        by_id = defaultdict(list)
        for r in results:
            by_id[r["image_id"]].append(r)
        self.previous = [(name, by_id.get(im["id"], [])) for name, im in self.previous_images.items()]

    # -- adding ---------------------------------------------------------------

    def add(self, p: Predicted) -> None:
        if p.error is not None:
            self.report.error(str(p.item.path), None, p.error)
            return
        if p.empty:
            self.report.warn("empty masks left out (nothing found at the prompt or box)", str(p.item.path), p.empty)
        rec = {"name": p.item.name, "id": p.item.image_id, "height": p.size[0], "width": p.size[1],
               "instances": [{"label": i.label, "bbox": i.bbox, "area": i.area, "segmentation": i.segmentation,
                              "score": i.score, "extra": i.extra} for i in p.instances]}
        if p.columns:
            rec["columns"] = {k: list(v) for k, v in p.columns.items()}
        if self._fh is None:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.journal, "ab")
        self._fh.write(orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        self._fh.flush()
        self.records[p.item.name] = rec
        self.added += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    # -- the final file -------------------------------------------------------

    def finish(self) -> int:
        """Write OUT (and the images file), drop the journal; images in OUT."""
        self.close()
        if self.spec.fmt == "coco":
            n = self._finish_coco()
        else:
            n = self._finish_tasks()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal)
        return n

    @property
    def config(self):
        from annot.converters.labelstudio_config import LabelConfig

        if self._config is None:
            self._config = (LabelConfig.from_file(self.spec.label_config) if self.spec.label_config
                            else LabelConfig.default())
        return self._config

    def _url(self, name: str) -> str:
        from annot.converters.labelstudio_refs import image_url

        return image_url(name, self.spec.image_url_prefix)

    def _categories(self) -> list[Category]:
        if self.spec.categories is not None:
            return self.spec.categories
        labels = sorted({i["label"] for r in self.records.values() for i in r["instances"]})
        return [Category(k, n) for k, n in enumerate(labels, start=1)]

    def label_of(self, name: str) -> str | None:
        """The project's label for a predicted class: the label config's (in
        any case, or through predicted_values), or the name itself without one."""
        return self.config.label_for(name) if self.spec.label_config else name

    def _task_dataset(self, rec: dict) -> Dataset:
        """One image's predictions in the project's labels; classes it does
        not list are left out (counted)."""
        from annot.converters.labelstudio_writer import predicted_image

        instances = [Instance(i["label"], i["bbox"], i["area"], i["segmentation"], score=i["score"])
                     for i in rec["instances"]]
        ds, dropped = predicted_image(Image(rec["id"], rec["name"], rec["width"], rec["height"]), instances,
                                      self.label_of)
        if dropped:
            self.report.warn("detections of classes the label config does not list left out", rec["name"],
                             len(dropped))
        return ds

    def _label_ids(self) -> dict[str, int]:
        ids: dict[str, int] = {}
        for c in self._categories():
            ids.setdefault(c.name, c.id)
        missing = {i["label"] for r in self.records.values() for i in r["instances"]} - set(ids)
        if missing:
            raise AnnotError(f"predicted labels {sorted(missing)} are not among the categories "
                             f"({', '.join(ids)})")
        return ids

    def _finish_tasks(self) -> int:
        from annot.converters.labelstudio_writer import to_tasks

        opts = ConvertOptions(as_="predictions", model_version=self.spec.model_version,
                              image_url_prefix=self.spec.image_url_prefix, simplify=self.spec.simplify)
        order = {n: im.image_id for n, im in self.by_name.items()}
        rows = [(order.get(n, float("inf")) if n else float("inf"), t) for n, t in self.previous]
        for rec in self.records.values():
            (task,) = to_tasks(self._task_dataset(rec), self.config, opts, self.report)
            rows.append((rec["id"], task))
        rows.sort(key=lambda r: r[0])
        write_json_atomic(self.out, [t for _, t in rows], overwrite=True)
        return len(rows)

    def _finish_coco(self) -> int:
        ids = self._label_ids()
        images = dict(self.previous_images)
        results = [r for _, rs in self.previous for r in rs]
        columns = dict(self.columns)
        for name, rec in sorted(self.records.items(), key=lambda kv: kv[1]["id"]):
            images[name] = {"id": rec["id"], "file_name": name, "width": rec["width"], "height": rec["height"]}
            columns.update(rec.get("columns") or {})
            for i in rec["instances"]:
                r = {"image_id": rec["id"], "category_id": ids[i["label"]], "bbox": i["bbox"],
                     "score": i["score"], "segmentation": i["segmentation"], "area": i["area"]}
                r.update(i["extra"] or {})
                results.append(r)
        # torchvision's COCO classes include "N/A" for the ids COCO left unused: never predicted, not listed
        categories = [{"id": c.id, "name": c.name} for c in self._categories() if c.name != UNUSED]
        meta = {"info": {"columns": columns} if columns else {},
                "images": sorted(images.values(), key=lambda im: im["id"]), "annotations": [],
                "categories": categories}
        write_json_atomic(images_path(self.out), meta, overwrite=True)
        write_json_atomic(self.out, results, overwrite=True)
        return len(images)

