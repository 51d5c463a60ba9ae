"""What the backend does for each Label Studio request, without HTTP.

The routes in :mod:`annot.serve.app` parse a body and call these methods;
they return JSON-ready dicts or raise :class:`RequestError` (an HTTP status
and one line). Regions are written by the converters' Label Studio writer
(:func:`annot.converters.labelstudio_writer.to_tasks`), the same code
``annot predict`` uses, so a prediction here and one imported from a file are
the same regions.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from annot.active_learning.labelstudio_push import labelstudio_score
from annot.active_learning.scoring import ScoringOptions, image_uncertainty
from annot.converters.labelstudio_config import LabelConfig
from annot.converters.labelstudio_writer import predicted_image, to_tasks
from annot.detections import MASK_LOGITS, Detections
from annot.errors import AnnotError, ParseError
from annot.model import Image
from annot.options import ConvertOptions
from annot.plugins.predictor import Prompt
from annot.report import Report

from .config import ServeConfig
from .images import ImageSource
from .labelstudio import FetchError, LabelStudioClient
from .models import Loaded, Models
from .training import Training

log = logging.getLogger("annot.serve")
MASK_KINDS = ("brush", "polygon")  # what an interactive answer can be, best first
REFINE_MEMORY = 256  # tasks whose last interactive mask is kept for the next click


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Project:
    """A project as the backend needs it: its parsed label config."""

    config: LabelConfig
    xml_sha: str

    def mask_control(self):
        """The control an interactive answer goes to: brush, else polygon."""
        for kind in MASK_KINDS:
            for c in self.config.controls:
                if c.kind == kind:
                    return c
        return None


class Backend:
    def __init__(self, config: ServeConfig):
        self.config = config
        self.models = Models(config)
        self.client = LabelStudioClient(config.labelstudio_url, config.labelstudio_token)
        self.images = ImageSource(self.client, config.local_root, config.limits, config.image_cache_bytes)
        self.training = Training(config)
        self._projects: OrderedDict[str, Project] = OrderedDict()
        self._previous: OrderedDict[object, tuple[str, np.ndarray, np.ndarray | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.model_slots)
        self._fetch = ThreadPoolExecutor(8, thread_name_prefix="annot-fetch")

    def start(self) -> None:
        self.models.start()
        # the store's modules take ~1 s to import: a first webhook must not pay it (Label Studio waits 1 s)
        threading.Thread(target=self.training.warm, name="annot-warm", daemon=True).start()
        threading.Thread(target=self._check_labelstudio, name="annot-ls-check", daemon=True).start()

    def _check_labelstudio(self) -> None:
        problem = self.client.check_access()
        if problem:
            log.warning("Label Studio not usable for task images", extra={"reason": problem})
        elif self.client.url:
            log.info("Label Studio reachable, token accepted", extra={"url": self.client.url})

    def close(self) -> None:
        self._fetch.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # -- health and versions -------------------------------------------------------------

    def health(self) -> dict:
        """Never waits: plain reads of what is loaded."""
        d = self.models.detector
        return {"status": "UP", "model_class": f"annot.{d.plugin if d else 'none'}",
                "model_version": self.models.version(), "model_state": self.models.state,
                "interactive": self.models.segmenter.plugin if self.models.segmenter else "loading"}

    def versions(self) -> dict:
        from sqlalchemy import select

        from annot.db.schema import ModelVersion
        from annot.db.session import open_store

        name = (self.config.model or "").partition("@")[0]
        try:
            store = open_store(self.config.db_url, self.config.store_path, upgrade=False, create=False)
            with store.transaction() as s:
                rows = s.scalars(select(ModelVersion).where(ModelVersion.name == name,
                                                            ModelVersion.status == "ready")
                                 .order_by(ModelVersion.version)).all()
                return {"versions": [mv.label for mv in rows]}
        except AnnotError:
            return {"versions": []}

    # -- setup ----------------------------------------------------------------------------------

    def project(self, xml: str) -> Project:
        """The parsed label config (kept per config text)."""
        sha = hashlib.sha256(xml.encode()).hexdigest()
        with self._lock:
            hit = self._projects.get(sha)
        if hit is not None:
            return hit
        try:
            project = Project(LabelConfig.from_xml(xml, "the label config"), sha)
        except AnnotError as e:
            raise RequestError(400, str(e)) from None
        with self._lock:
            self._projects[sha] = project
            while len(self._projects) > 64:
                self._projects.popitem(last=False)
        return project

    def setup(self, body: dict) -> dict:
        project = self.project(_required(body, "schema", str))
        self._check_fillable(project)
        promoted = self.models.promoted_label()
        self.models.reload_if_promoted(promoted)
        return {"model_version": promoted or self.models.version()}

    def _check_fillable(self, project: Project) -> None:
        """A 400 when the model cannot fill this config, saying what it can."""
        kinds = {c.kind for c in project.config.controls}
        d = self.models.detector
        if d is not None:
            classes = getattr(d.predictor, "classes", [])
            if kinds & {"rectangle", "polygon", "brush"} and any(project.config.label_for(c) for c in classes):
                return
            raise RequestError(400, f"{d.version} predicts {_listing(classes)} as masks or boxes; the label config "
                                    "needs a BrushLabels, PolygonLabels or RectangleLabels control with one of those "
                                    "labels (a Label's predicted_values may list them)")
        clicks = any(c.smart or c.kind == "keypoint" for c in project.config.controls)
        if clicks and kinds & set(MASK_KINDS):
            return
        raise RequestError(400, "annot answers clicks with a mask: the label config needs a BrushLabels or "
                                "PolygonLabels control, and KeyPointLabels or RectangleLabels with smart=\"true\" "
                                "to click with")

    # -- predict --------------------------------------------------------------------------------

    def predict(self, body: dict, request_id: str = "") -> dict:
        tasks = _required(body, "tasks", list)
        xml = body.get("label_config")
        if not isinstance(xml, str) or not xml:
            raise RequestError(400, "predict needs the project's label_config")
        project = self.project(xml)
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        context = params.get("context")
        if isinstance(context, dict) and context.get("result"):
            if len(tasks) != 1:
                raise RequestError(400, f"an interactive request carries one task, not {len(tasks)}")
            return {"results": [self._interactive(tasks[0], context, project, request_id)]}
        return {"results": self._automatic(tasks, project, request_id)}

    def _ref(self, task, project: Project) -> tuple[str, int | None]:
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise FetchError("the task has no data")
        data = task["data"]
        ref = data.get(project.config.data_key)
        if not isinstance(ref, str):
            ref = next((v for v in data.values() if isinstance(v, str) and v), None)
        tid = task.get("id") if isinstance(task.get("id"), int) else None
        return ref, tid

    def _automatic(self, tasks: list, project: Project, request_id: str) -> list[dict]:
        detector = self.models.detector
        if detector is None:
            log.info("empty predictions: no detector", extra={"request_id": request_id, "tasks": len(tasks),
                                                             "reason": self.models.reason or self.models.state})
            return [_empty(self.models.version()) for _ in tasks]
        fetched = list(self._fetch.map(lambda t: self._image_or_error(t, project), tasks))
        results: list[dict | None] = [None] * len(tasks)
        good = [(k, img) for k, (img, err) in enumerate(fetched) if err is None]
        for k, (_, err) in enumerate(fetched):
            if err is not None:
                log.warning("task not predicted", extra={"request_id": request_id, "task": _task_id(tasks[k]),
                                                         "reason": err})
                results[k] = _empty(detector.version)
        dets = self._detect(detector, [img for _, img in good], request_id, [tasks[k] for k, _ in good])
        for (k, img), det in zip(good, dets):
            results[k] = _empty(detector.version)
            if det is None:
                continue
            try:
                results[k] = self._to_prediction(det, img.pixels.shape[:2], project, detector.version, tasks[k],
                                                 request_id)
            except Exception as e:  # noqa: BLE001 - one task's regions failing empties that task, not the batch
                log.error("task's regions not written", exc_info=not isinstance(e, AnnotError),
                          extra={"request_id": request_id, "task": _task_id(tasks[k]), "reason": str(e)})
        return results

    def _image_or_error(self, task, project: Project):
        try:
            ref, tid = self._ref(task, project)
            return self.images.get(ref, tid), None
        except (FetchError, ParseError, AnnotError, OSError) as e:
            return None, str(e)

    def _detect(self, detector: Loaded, images, request_id, tasks) -> list[Detections | None]:
        """The detector on the images (downscaled to ``max_side``, masks scaled
        back by the writer); a batch that fails is retried image by image so
        only the failing task goes empty."""
        if not images:
            return []
        inputs = [_downscaled(img.pixels, self.config.max_side) for img in images]
        try:
            with self._slots:
                return list(detector.predictor.predict(inputs))
        except Exception as e:  # noqa: BLE001 - a model failure empties its tasks, never the batch
            if len(inputs) == 1:
                log.error("model failed", extra={"request_id": request_id, "task": _task_id(tasks[0]),
                                                 "reason": f"{type(e).__name__}: {e}"})
                return [None]
            return [d for img, t in zip(images, tasks) for d in self._detect(detector, [img], request_id, [t])]

    def _to_prediction(self, det: Detections, size, project: Project, version: str, task, request_id) -> dict:
        """Detections -> one Label Studio prediction, through the Label Studio writer."""
        h, w = size
        # the task's score is annot rank's, over every detection the model made (down to its 0.05)
        uncertainty, _ = image_uncertainty(det, ScoringOptions(self.config.rank_score, self.config.rank_agg))
        task_score = labelstudio_score(uncertainty.get(self.config.rank_score, 1.0), self.config.rank_agg)
        det = det[det.confidence >= self.config.score_threshold]
        mapped = {n: project.config.label_for(n) for n in det.class_names}
        keep = np.array([mapped[n] is not None for n in det.labels], bool)
        if not keep.all():
            log.info("detections of classes the config does not list left out",
                     extra={"request_id": request_id, "task": _task_id(task),
                            "classes": sorted({n for n in det.labels if mapped[n] is None})})
        # the classes left out are dropped before their masks are encoded (to_instances)
        ds, _ = predicted_image(Image(1, "image", w, h), det[keep].to_instances(size), mapped.get)
        opts = ConvertOptions(as_="predictions", model_version=version, simplify=self.config.simplify,
                              limits=self.config.limits)
        report = Report("skip")
        (written,) = to_tasks(ds, project.config, opts, report)
        for s in report.skips:
            log.warning("region not written", extra={"request_id": request_id, "task": _task_id(task),
                                                     "reason": s.reason})
        pred = written["predictions"][0]
        return {"result": pred["result"], "score": task_score, "model_version": version}

    # -- interactive -------------------------------------------------------------------------------

    def _interactive(self, task, context: dict, project: Project, request_id: str) -> dict:
        segmenter = self.models.segmenter
        if segmenter is None:
            raise RequestError(503, "the interactive model is still loading; click again in a moment")
        control = project.mask_control()
        if control is None:
            raise RequestError(400, "the label config has no BrushLabels or PolygonLabels control to answer with")
        try:
            ref, tid = self._ref(task, project)
            image = self.images.get(ref, tid)
        except (ParseError, AnnotError) as e:  # over the budget, a path leading out
            raise RequestError(422, str(e)) from None
        except (FetchError, OSError) as e:
            raise RequestError(422, f"cannot get the task's image: {e}") from None
        prompt = _prompt(context["result"], image.pixels.shape[:2], control)
        if prompt is None:
            raise RequestError(400, "the context holds no keypoint or rectangle region to segment from")
        task_key = _task_id(task) if _task_id(task) is not None else ref
        prompt = self._with_previous(prompt, task_key, image.key, context["result"])
        try:
            with self._slots:
                (det,) = segmenter.predictor.predict([image.pixels], [[prompt]])
        except ValueError as e:  # a prompt the model cannot use, e.g. only negative clicks for GrabCut
            raise RequestError(400, str(e)) from None
        if len(det) and MASK_LOGITS in det.data:
            logits = det.data[MASK_LOGITS][0]
        else:
            logits = None
        with self._lock:
            self._previous[task_key] = (image.key, det.mask[0] if len(det) else None, logits)
            self._previous.move_to_end(task_key)
            while len(self._previous) > REFINE_MEMORY:
                self._previous.popitem(last=False)
        return self._to_prediction(det, image.pixels.shape[:2], project, segmenter.version, task, request_id)

    def _with_previous(self, prompt: Prompt, task_key, image_key: str, regions: list) -> Prompt:
        """Later clicks refine the region's last mask: with more than one
        click in the context, the mask answered for this task's image last
        time goes to the model with them."""
        clicks = sum(1 for r in regions if isinstance(r, dict) and r.get("type") == "keypointlabels")
        with self._lock:
            prev = self._previous.get(task_key)
        if clicks < 2 or prev is None or prev[0] != image_key or prev[1] is None:
            return prompt
        prompt.mask, prompt.logits = prev[1], prev[2]
        return prompt

    # -- training ---------------------------------------------------------------------------------------

    def webhook(self, body: dict) -> dict:
        return self.training.webhook(body)

    def train(self, body: dict) -> dict:
        return self.training.legacy_train(body)


# -- helpers ------------------------------------------------------------------------------------------------


def _required(body: dict, key: str, kind: type):
    if not isinstance(body, dict) or not isinstance(body.get(key), kind):
        raise RequestError(400, f"the request needs {key!r} ({kind.__name__})")
    return body[key]


def _listing(names) -> str:
    names = list(names)
    return ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "") if names else "nothing"


def _empty(version: str) -> dict:
    return {"result": [], "score": 0.0, "model_version": version}


def _task_id(task):
    return task.get("id") if isinstance(task, dict) else None


def _downscaled(pixels: np.ndarray, max_side: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    if max(h, w) <= max_side:
        return pixels
    import cv2

    s = max_side / max(h, w)
    return cv2.resize(pixels, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _prompt(regions: list, size: tuple[int, int], control) -> Prompt | None:
    """Label Studio smart-tool regions -> one prompt: keypoints are clicks
    (``is_positive``, default positive), a rectangle is the box; percent of
    the image -> pixels. The label is the smart tool's when the mask control
    has it (in any case), else the mask control's first."""
    h, w = size
    prompt, label = Prompt(), None
    for r in regions:
        if not isinstance(r, dict) or not isinstance(r.get("value"), dict):
            continue
        v, kind = r["value"], r.get("type")
        try:
            if kind == "keypointlabels":
                point = (float(v["x"]) * w / 100, float(v["y"]) * h / 100)
                (prompt.positive if r.get("is_positive", True) else prompt.negative).append(point)
            elif kind == "rectanglelabels":
                prompt.box = [float(v["x"]) * w / 100, float(v["y"]) * h / 100, float(v["width"]) * w / 100,
                              float(v["height"]) * h / 100]
            else:
                continue
        except (KeyError, TypeError, ValueError):
            continue
        names = v.get(kind) if isinstance(v.get(kind), list) else []
        label = label or (names[0] if names and isinstance(names[0], str) else None)
        prompt.region_id = prompt.region_id or r.get("id")
    if not prompt.positive and not prompt.negative and prompt.box is None:
        return None
    known = {lb.lower(): lb for lb in (control.labels or ())}
    prompt.label = known.get((label or "").lower()) or (sorted(control.labels)[0] if control.labels else label)
    return prompt

