"""``annot retrain``: a Label Studio project's labels in, a better model version out.

1. The project's tasks are exported through ``label-studio-sdk`` (paged), the
   images of annotated tasks that are not downloaded yet are fetched (the
   token goes to Label Studio's own origin only,
   :class:`annot.serve.labelstudio.LabelStudioClient`), and the export is
   converted by annot's Label Studio reader with its annotation selection
   rules (each task's latest annotation, or its ground truth).
2. The COCO becomes a new version of the dataset; the same content as the
   latest version, already trained on, is "nothing to do" (exit 0; when a
   retrain died between import and training, the next one trains).
3. The split scheme assigns the new images only (assignments never move).
4. Training runs when at least ``--min-new`` annotated images arrived (new,
   or labelled again) since the dataset version of the promoted model:
   fine-tuning from the promoted checkpoint (or ``--init``).
5. The new version is evaluated on val and promoted by the rule of
   :mod:`annot.training.promotion`; a one-screen summary says what happened.

One retrain per project at a time: a file lock in the store folder, and the
training-runs table (its partial unique index allows one running run per
scope ``labelstudio:PROJECT``, so two machines sharing a PostgreSQL store
exclude each other too). A second invocation exits 0 with "already running";
a run whose heartbeat stopped (a crashed job) is reaped first. Label Studio's
"Start Training" and the ``--retrain-every`` webhooks of ``annot serve`` run
this same function in a process of their own (:mod:`annot.serve.retrain_job`).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from annot.errors import AnnotError

from .train import Heartbeat, TrainRequest


@dataclass
class RetrainRequest:
    url: str
    token: str | None
    project: int
    dataset: str | None = None  # default: labelstudio-PROJECT
    min_new: int = 20
    model: str = "maskrcnn"
    init: str | None = None  # default: the promoted version, else scratch
    scheme: str = "default"
    ratios: str = "0.8,0.1,0.1"
    annotations: str = "latest"
    trigger: str = "cli"
    train: dict = field(default_factory=dict)  # TrainRequest fields: preset, epochs, device, min_gain, ...

    @property
    def dataset_name(self) -> str:
        return self.dataset or f"labelstudio-{self.project}"

    @property
    def scope(self) -> str:
        return f"labelstudio:{self.project}"


@dataclass
class RetrainSummary:
    outcome: str  # already running | nothing to do | too few new | trained
    message: str
    run_id: int | None = None
    dataset_version: str | None = None
    new_images: int = 0
    downloaded: int = 0
    model: str | None = None
    before: float | None = None
    after: float | None = None
    promoted: bool = False
    reason: str = ""

    def lines(self) -> list[str]:
        out = [self.message]
        if self.dataset_version:
            out.append(f"dataset: {self.dataset_version} ({self.new_images} new annotated image(s), "
                       f"{self.downloaded} downloaded)")
        if self.model:
            before = "none" if self.before is None else f"{self.before:.4f}"
            out.append(f"model: {self.model}, val metric before {before}, after {self.after:.4f}")
            out.append(f"{'promoted' if self.promoted else 'not promoted'}: {self.reason}")
        return out


# -- exclusion ----------------------------------------------------------------------------------------


@contextmanager
def file_lock(path: Path):
    """An exclusive lock on ``path`` (yields False when another process holds it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def claim_run(store, scope: str, trigger: str, params: dict) -> int | None:
    """A running run for ``scope``, or None when one runs already (stale ones are reaped first)."""
    from sqlalchemy.exc import IntegrityError

    from annot.db.registry import reap
    from annot.db.schema import TrainingRun

    reap(store, scope=scope)
    try:
        with store.transaction() as s:
            run = TrainingRun(scope=scope, trigger=trigger, params=params, status="running")
            s.add(run)
            s.flush()
            return run.id
    except IntegrityError:
        return None


# -- export and download -------------------------------------------------------------------------------


def export_tasks(url: str, token: str | None, project: int, page_size: int = 100) -> list[dict]:
    """Every task of the project with its annotations, as Label Studio's JSON export has them."""
    from label_studio_sdk.client import LabelStudio

    try:
        ls = LabelStudio(base_url=url, api_key=token)
        return [t.model_dump(mode="json") for t in ls.tasks.list(project=project, fields="all", page_size=page_size)]
    except Exception as e:  # the SDK raises its ApiError, httpx's errors, ...
        raise AnnotError(f"Label Studio at {url}: cannot export project {project}: {_one_line(e)}") from None


def _one_line(e: Exception) -> str:
    status = getattr(e, "status_code", None)
    text = f"HTTP {status}" if status else f"{type(e).__name__}: {e}"
    return " ".join(text.split())[:300]


def _annotated(task: dict) -> bool:
    return any(isinstance(a, dict) and not a.get("was_cancelled") for a in task.get("annotations") or [])


def local_name(ref: str) -> str:
    """Where a task's image is kept under the download folder: its Label Studio
    path (``data/upload/3/ab12cd34-x.png``), so two uploads of the same name never collide."""
    from annot.converters.labelstudio_refs import file_name_of

    name, _ = file_name_of(ref, keep_upload_prefix=True)
    return name.lstrip("/")


def download_images(tasks: list[dict], url: str, token: str | None, root: Path, log=None) -> int:
    """Fetch the image of every annotated task that ``root`` does not hold yet; returns how many."""
    from annot.converters.labelstudio_reader import _image_ref
    from annot.paths import require_confined
    from annot.serve.labelstudio import FetchError, LabelStudioClient

    client = LabelStudioClient(url, token)
    fetched = 0
    try:
        for task in tasks:
            ref = _image_ref(task)
            if ref is None or not _annotated(task):
                continue
            target = require_confined(root, local_name(ref), "Label Studio", f"task {task.get('id')}")
            if target.exists():
                continue
            scheme = ref.split("://", 1)[0] if "://" in ref else ""
            src = client.storage_url(ref, task.get("id")) if scheme in ("s3", "gs", "azure-blob") else \
                client.resolve(ref)
            try:
                data = client.fetch(src).data
            except FetchError as e:
                raise AnnotError(f"task {task.get('id')}: {e}") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
            fetched += 1
            if log is not None:
                log(f"downloaded {target.name}")
    finally:
        client.close()
    return fetched


def to_coco(tasks: list[dict], image_root: Path, annotations: str, work: Path) -> tuple[dict, list[str]]:
    """The export converted by annot's Label Studio reader; (COCO, skipped tasks' reasons)."""
    from annot.converters.labelstudio_reader import read
    from annot.limits import Limits
    from annot.options import ConvertOptions
    from annot.report import Report

    for t in tasks:  # the reader names images as they are kept under image_root
        data = t.get("data")
        if isinstance(data, dict) and isinstance(data.get("image"), str):
            data["image"] = "/data/local-files/?d=" + local_name(data["image"])
    path = work / "export.json"
    path.write_text(json.dumps([t for t in tasks if _annotated(t)]))
    report = Report("skip")
    opts = ConvertOptions(on_error="skip", quiet=True, jobs=1, image_root=image_root, annotations=annotations,
                          limits=Limits.default())
    ds = read([path], opts, report)
    skipped = [f"{k.item or k.path}: {k.reason}" for k in report.skips]
    return ds.to_coco(), skipped


# -- the job --------------------------------------------------------------------------------------------


def new_annotated_images(store, version_id: int, base_version_id: int | None) -> int:
    """Images of ``version_id`` that are new, or labelled differently, since ``base_version_id``."""
    from sqlalchemy import select

    from annot.db.schema import VersionImage

    with store.transaction() as s:
        rows = set(s.execute(select(VersionImage.image_id, VersionImage.annotations_sha256)
                             .where(VersionImage.version_id == version_id)).all())
        base = set() if base_version_id is None else set(
            s.execute(select(VersionImage.image_id, VersionImage.annotations_sha256)
                      .where(VersionImage.version_id == base_version_id)).all())
    return len(rows - base)


def check_request(store, req: RetrainRequest) -> None:
    """What can be wrong before Label Studio is asked anything: the token, the options."""
    from annot.db.splits import parse_ratios

    from .init import resolve_init
    from .train import check_metric

    if not req.token:
        raise AnnotError("LABEL_STUDIO_API_KEY is not set: annot retrain exports the project with it (a personal "
                         "access token from Label Studio's Account & Settings, or a legacy token)")
    check_metric(req.train.get("metric", "segm_AP"))
    if parse_ratios(req.ratios)["val"] <= 0:
        raise AnnotError(f"--ratios {req.ratios}: the val share must be above 0 (training picks its epoch on val)")
    if req.init:
        resolve_init(req.init, store)


def retrain(store, req: RetrainRequest, echo=print, run_id: int | None = None) -> RetrainSummary:
    """The whole job. ``run_id``: a running run the caller already holds
    (``annot serve``'s webhook path); else one is claimed here."""
    from annot.db.registry import finish

    check_request(store, req)
    lock = Path(store.files) / "locks" / f"retrain-{req.dataset_name}.lock"
    with file_lock(lock) as held:
        if not held:
            summary = RetrainSummary("already running", f"a retrain of {req.dataset_name} is already running "
                                                        f"(lock {lock})")
            if run_id is not None:  # a run the caller holds ends, saying so
                _end_quietly(store, run_id, summary)
            return summary
        if run_id is None:
            run_id = claim_run(store, req.scope, req.trigger, {"project": req.project, "dataset": req.dataset_name})
            if run_id is None:
                return RetrainSummary("already running", f"a retrain of project {req.project} is already running "
                                                         f"(see `annot runs list`)")
        try:
            with Heartbeat(store, run_id):
                summary = _retrain(store, req, echo, run_id)
        except KeyboardInterrupt:
            finish(store, run_id, ok=False, error="interrupted (Ctrl-C)")
            raise
        except BaseException as e:
            from annot.errors import reason

            finish(store, run_id, ok=False, error=reason(e))
            raise
        summary.run_id = run_id
        if summary.outcome != "trained":  # training ends the run itself
            _end_quietly(store, run_id, summary)
        return summary


def _end_quietly(store, run_id: int, summary: RetrainSummary) -> None:
    from annot.db.registry import finish
    from annot.db.schema import TrainingRun

    with store.transaction() as s:
        run = s.get(TrainingRun, run_id)
        run.params = {**(run.params or {}), "outcome": summary.outcome, "message": summary.message}
    finish(store, run_id, ok=True)


def _retrain(store, req: RetrainRequest, echo, run_id: int) -> RetrainSummary:
    from sqlalchemy import select

    from annot.db.datasets import import_coco
    from annot.db.registry import get_model
    from annot.db.schema import DatasetVersion, ModelVersion
    from annot.db.splits import parse_ratios, split

    from .train import train

    image_root = Path(store.files) / "images" / req.dataset_name
    image_root.mkdir(parents=True, exist_ok=True)
    tasks = export_tasks(req.url, req.token, req.project)
    annotated = sum(_annotated(t) for t in tasks)
    echo(f"project {req.project}: {len(tasks)} task(s), {annotated} annotated")
    if not annotated:
        return RetrainSummary("nothing to do", f"nothing to do: project {req.project} has no annotated task")
    downloaded = download_images(tasks, req.url, req.token, image_root)
    with tempfile.TemporaryDirectory(dir=store.files) as work:
        coco, skipped = to_coco(tasks, image_root, req.annotations, Path(work))
        for line in skipped:
            echo(f"skipped {line}")
        coco_path = Path(work) / "coco.json"
        coco_path.write_text(json.dumps(coco))
        imported = import_coco(store, req.dataset_name, coco_path, image_root,
                               message=f"Label Studio project {req.project} ({req.trigger})")
    with store.transaction() as s:
        version = s.get(DatasetVersion, imported.version.id)
        ref = f"{req.dataset_name}@{version.version}"
        latest = s.scalar(select(DatasetVersion.id).where(DatasetVersion.dataset_id == version.dataset_id)
                          .order_by(DatasetVersion.version.desc()).limit(1))
        is_latest = latest == version.id
        try:
            promoted = get_model(s, req.model)
            base_id, promoted_label = promoted.dataset_version_id, promoted.label
        except AnnotError:  # no model of that name yet, or none promoted
            base_id, promoted_label = None, None
        trained = s.scalar(select(ModelVersion.id).where(ModelVersion.name == req.model,
                                                         ModelVersion.dataset_version_id == version.id,
                                                         ModelVersion.status == "ready").limit(1))
    if not imported.created and (trained is not None or not is_latest):
        return RetrainSummary("nothing to do", f"nothing to do: the project's labels are {ref}, unchanged, and a "
                                               f"model was trained on them", dataset_version=ref,
                              downloaded=downloaded)
    split(store, ref, req.scheme, parse_ratios(req.ratios))
    new = new_annotated_images(store, version.id, base_id)
    if new < req.min_new:
        return RetrainSummary("too few new", f"{new} new annotated image(s) since "
                                             f"{promoted_label or 'no model'}'s data (< --min-new {req.min_new}): "
                                             f"not training", dataset_version=ref, new_images=new,
                              downloaded=downloaded)
    init = req.init or (req.model if promoted_label else "scratch")
    result = train(store, TrainRequest(dataset=ref, name=req.model, scheme=req.scheme, init=init,
                                       trigger=req.trigger, scope=req.scope, run_id=run_id,
                                       extra={"project": req.project, "new_images": new}, **req.train),
                   echo=echo, quiet=True)
    return RetrainSummary("trained", f"trained {result.model_ref} on {ref} (init {init})", run_id, ref, new,
                          downloaded, result.model_ref, result.baseline, result.value, result.promoted, result.reason)
