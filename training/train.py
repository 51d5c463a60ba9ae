"""``annot train``: a dataset version of the store in, a model version out.

One run: the split's train images train the model (one-cycle SGD,
:mod:`annot.training.loop`), after every epoch the val images are evaluated
(COCO AP, :mod:`annot.training.evaluate`) and the best epoch by the
selection metric (default val segm AP) is what gets registered: a
``ModelVersion`` with the checkpoint ``annot predict``/``annot serve``
load, its config (classes, backbone, input scale), the dataset version, the
split scheme and the metrics. Then the promotion rule
(:mod:`annot.training.promotion`) decides whether it becomes the promoted
version.

The ``TrainingRun`` row is current while it trains: a heartbeat every few
seconds with the epoch and loss, the log file. Ctrl-C or an error ends the
run ``failed`` (its model version too); a process killed outright stops its
heartbeat, and ``annot runs reap`` (or the next retrain) marks it failed.
``--resume RUN`` continues a failed run from its last epoch checkpoint.

Everything a run leaves is in ``runs/RUN/`` of the store folder: the log,
``epoch-K.pt`` (the last one kept, for resuming), ``best.pt`` and
``train_curves.png``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch

from annot.errors import AnnotError, StoreError

from .recipe import ModelConfig, image_size_for, preset

HEARTBEAT_SECONDS = 5.0


@dataclass
class TrainRequest:
    """What ``annot train`` was asked (None: the preset's or the default)."""

    dataset: str
    name: str = "maskrcnn"
    scheme: str = "default"
    preset: str | None = None  # default: gpu with CUDA, else cpu-tiny
    backbone: str | None = None
    init: str = "scratch"
    epochs: int | None = None
    batch_size: int | None = None
    max_lr: float | None = None
    image_size: int | None = None
    device: str | None = None
    precision: str = "auto"
    seed: int = 0
    balance: bool = False
    workers: int | None = None
    image_root: str | None = None
    metric: str = "segm_AP"
    min_gain: float = 0.0
    promote: bool = True
    trigger: str = "cli"
    scope: str | None = None
    run_id: int | None = None  # a running run the caller holds (annot retrain); else one is started
    extra: dict = field(default_factory=dict)  # recorded with the run (e.g. what a retrain saw)


@dataclass
class Plan:
    """A request resolved against the store: what exactly will be trained."""

    request: TrainRequest
    dataset_ref: str  # NAME@V
    dataset_version_id: int
    image_root: Path
    train_doc: dict
    val_doc: dict
    config: ModelConfig
    recipe: dict
    device: str
    init: object = None  # the resolved --init (annot.training.init.Init): its weights, loaded once


@dataclass
class TrainResult:
    run_id: int
    model_ref: str
    model_version_id: int
    metric: str
    value: float
    best_epoch: int
    promoted: bool
    reason: str
    run_dir: Path
    history: list[dict]
    baseline: float | None = None  # the promoted version's metric it was compared with


def metric_value(metrics: dict, metric: str) -> float:
    """``segm_AP``, ``bbox_AP50``, ...: ``metrics[iou type][stat]``; -1 when not measured."""
    iou_type, _, stat = metric.partition("_")
    return float(metrics.get(iou_type, {}).get(stat, -1.0))


def check_metric(metric: str) -> str:
    from .evaluate import IOU_TYPES, STAT_NAMES

    iou_type, _, stat = metric.partition("_")
    if iou_type not in IOU_TYPES or stat not in STAT_NAMES:
        raise AnnotError(f"--metric {metric}: use <{'|'.join(IOU_TYPES)}>_<{'|'.join(STAT_NAMES)}>, e.g. segm_AP")
    return metric


def images_digest(doc: dict) -> str:
    """Which images (by file name) an evaluation ran on: the same digest means the same val set."""
    return hashlib.sha256("\n".join(sorted(im["file_name"] for im in doc["images"])).encode()).hexdigest()


def subset_doc(doc: dict, names: set[str]) -> dict:
    images = [im for im in doc["images"] if im["file_name"] in names]
    ids = {im["id"] for im in images}
    return {**doc, "images": images, "annotations": [a for a in doc["annotations"] if a["image_id"] in ids]}


def check_images(root: Path, images: list[dict], ref: str) -> None:
    """Every image a run reads is there, before any run or version is recorded."""
    from annot.paths import require_confined

    missing = [im["file_name"] for im in images
               if not require_confined(root, im["file_name"], ref, "file_name").is_file()]
    if missing:
        raise AnnotError(f"{ref}: {len(missing)} of its {len(images)} train/val images are not under {root} (first: "
                         f"{missing[0]}): give --image-root, the folder the COCO file names are relative to")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# -- planning -------------------------------------------------------------------------------------


def plan(store, req: TrainRequest) -> Plan:
    from annot.db.datasets import get_version, load_coco
    from annot.db.splits import subset_file_names

    from .init import resolve_init

    check_metric(req.metric)
    with store.transaction() as s:
        version = get_version(s, req.dataset)
        ref = f"{version.dataset.name}@{version.version}"
        root = req.image_root or version.image_root
        dv_id = version.id
    if root is None:
        raise StoreError(f"{ref}: the store does not know where its images are (imported before annot recorded "
                         f"it): give --image-root")
    if not Path(root).is_dir():
        raise AnnotError(f"{ref}: its image folder {root} is not there: give --image-root")
    doc = load_coco(store, version)
    _, train_names = subset_file_names(store, ref, req.scheme, "train")
    _, val_names = subset_file_names(store, ref, req.scheme, "val")
    train_doc, val_doc = subset_doc(doc, train_names), subset_doc(doc, val_names)
    if not train_doc["images"]:
        raise AnnotError(f"{ref}: the split scheme {req.scheme!r} puts no image in train")
    if not val_doc["images"]:
        raise AnnotError(f"{ref}: the split scheme {req.scheme!r} puts no image in val, and the best epoch is "
                         f"chosen on val: split with a val share (annot dataset split --ratios 0.8,0.1,0.1)")
    check_images(Path(root), train_doc["images"] + val_doc["images"], ref)
    device = req.device or default_device()
    p = preset(req.preset or ("gpu" if device.startswith("cuda") else "cpu-tiny"))
    init = resolve_init(req.init, store, req.backbone)
    arch = {"backbone": req.backbone or p["backbone"], "norm": p["norm"], "channels": p["channels"],
            "min_stride": p["min_stride"]}
    if init.architecture:
        if req.backbone and req.backbone != init.architecture["backbone"]:
            raise AnnotError(f"--init {req.init} is a {init.architecture['backbone']} model, --backbone asks for "
                             f"{req.backbone}")
        arch.update({k: v for k, v in init.architecture.items() if k != "image_size"})
    elif req.backbone and req.backbone != p["backbone"]:  # another backbone as torchvision builds it
        arch.update({"norm": "batch", "channels": 256, "min_stride": 4 if req.backbone == "resnet50_fpn_v2" else 32})
    size = req.image_size or (init.architecture or {}).get("image_size")
    classes = [c["name"] for c in sorted(doc["categories"], key=lambda c: c["id"])]
    config = ModelConfig(classes=classes, image_size=image_size_for(size, p["image_size"], train_doc["images"]),
                         heads=dict(p["heads"]) if arch["channels"] == p["channels"] else {}, **arch)
    recipe = {"epochs": req.epochs or p["epochs"], "batch_size": req.batch_size or p["batch_size"],
              "max_lr": req.max_lr or p["max_lr"], "clip_grad_norm": p.get("clip_grad_norm"), "seed": req.seed,
              "workers": req.workers if req.workers is not None else (4 if device.startswith("cuda") else 0)}
    return Plan(req, ref, dv_id, Path(root), train_doc, val_doc, config, recipe, device, init)


# -- a run's surroundings -------------------------------------------------------------------------


class RunLog:
    """The run's log file: one timestamped line per event, flushed as written."""

    def __init__(self, path: Path | None, echo=None):
        self.path, self.echo = path, echo
        self._fh = open(path, "a", encoding="utf-8") if path is not None else None

    def __call__(self, message: str) -> None:
        if self._fh is not None:
            self._fh.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}\n")
            self._fh.flush()
        if self.echo is not None:
            self.echo(message)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


class Heartbeat:
    """Keeps the run's heartbeat (and its epoch and loss) current from a
    thread of its own, every ``every`` seconds, while the block runs."""

    def __init__(self, store, run_id: int, every: float = HEARTBEAT_SECONDS):
        self.store, self.run_id, self.every = store, run_id, every
        self.progress: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"annot-heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        from annot.db.registry import heartbeat

        while not self._stop.wait(self.every):
            try:
                heartbeat(self.store, self.run_id, **self.progress)
            except Exception:  # a busy database: the next beat tries again
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        from annot.db.registry import heartbeat

        self._stop.set()
        self._thread.join()
        try:  # the last progress, not whatever the thread wrote last
            heartbeat(self.store, self.run_id, **self.progress)
        except Exception:
            pass


# -- training ---------------------------------------------------------------------------------------


class Run:
    """One training run of a plan; ``rank`` 0 talks to the store, others only train."""

    def __init__(self, store, p: Plan, run_id: int, mv_id: int, run_dir: Path, log: RunLog, rank: int = 0,
                 quiet: bool = False):
        self.store, self.plan, self.run_id, self.mv_id, self.run_dir = store, p, run_id, mv_id, run_dir
        self.log, self.rank, self.quiet = log, rank, quiet
        self.lrs: list[float] = []
        self.heartbeat: Heartbeat | None = None
        self.best: dict | None = None  # {"epoch", "value", "metrics"}
        self.best_path = run_dir / "best.pt"

    def _dataset(self):
        from .data import CocoInstances

        p = self.plan
        return CocoInstances(p.train_doc, p.image_root, p.config.classes, flip=0.5, seed=p.recipe["seed"])

    def trainer(self, model):
        from .data import class_balanced_weights
        from .loop import Recipe, Trainer, balanced_order, batch_order, training_dtype

        dataset = self._dataset()
        order = balanced_order(class_balanced_weights(dataset)) if self.plan.request.balance else batch_order
        return Trainer(model, dataset, Recipe(**self.plan.recipe), self.run_dir, self.plan.device, order=order,
                       dtype=training_dtype(self.plan.device, self.plan.request.precision))

    def evaluate(self, model):
        return self.evaluate_plan(self.plan, model)

    @staticmethod
    def evaluate_plan(p: Plan, model):
        from .predictions import evaluate_model

        return evaluate_model(model, p.config.classes, p.val_doc, p.image_root, p.device,
                              "bf16" if p.request.precision == "bf16" else "auto")

    def train(self, trainer, heartbeat: Heartbeat | None) -> None:
        from tqdm import tqdm

        from .plots import train_curves

        metric = self.plan.request.metric
        epochs = trainer.recipe.epochs
        self.heartbeat = heartbeat
        while trainer.epoch < epochs:
            e = trainer.epoch + 1
            bar = tqdm(total=None, desc=f"epoch {e}/{epochs}", unit="batch", leave=False,
                       disable=self.quiet or self.rank != 0, dynamic_ncols=True)

            def on_batch(epoch, step, steps, loss, lr, bar=bar):
                bar.total = steps
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2g}", refresh=False)
                bar.update()
                self.lrs.append(lr)
                if self.heartbeat is not None:
                    self.heartbeat.progress = {"epoch": epoch, "loss": loss}

            started = time.perf_counter()
            trainer.run(until=e, on_batch=on_batch, on_epoch=self._on_epoch)
            bar.close()
            h = trainer.history[-1]
            if self.rank == 0:
                self.log(f"epoch {e}/{epochs}: loss {h['loss']:.4f}, val {metric} {h['val']:.4f}, "
                         f"{time.perf_counter() - started:.0f} s")
                train_curves(trainer.history, self.lrs, metric, self.run_dir / "train_curves.png")
                _keep_last_checkpoint(self.run_dir, e)

    def _on_epoch(self, trainer) -> None:
        """After an epoch, before its checkpoint: evaluate on val (rank 0) and keep the best."""
        if self.rank != 0:
            _barrier()
            trainer.history[-1]["val"] = None
            return
        from annot.db.registry import heartbeat

        progress = {"epoch": trainer.epoch, "loss": trainer.history[-1]["loss"]}
        if self.heartbeat is not None:
            self.heartbeat.progress = progress
        heartbeat(self.store, self.run_id, **progress)  # the epoch's end, at once
        ev = self.evaluate(trainer.model)
        trainer.model.train()
        value = metric_value(ev.coco, self.plan.request.metric)
        trainer.history[-1]["val"] = value
        if self.best is None or value > self.best["value"]:
            self.best = {"epoch": trainer.epoch, "value": value, "metrics": ev.metrics()}
            _save_atomic(self.plan.config.checkpoint(trainer.model.state_dict()), self.best_path)
            (self.run_dir / "best.json").write_text(json.dumps(self.best))
        _barrier()

    def restore_best(self) -> None:
        path = self.run_dir / "best.json"
        if path.is_file():
            self.best = json.loads(path.read_text())


def _barrier() -> None:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _keep_last_checkpoint(run_dir: Path, epoch: int) -> None:
    """Epoch checkpoints hold the optimizer too (3x the weights): only the last is kept, for --resume."""
    for old in run_dir.glob("epoch-*.pt"):
        if old.name != f"epoch-{epoch}.pt":
            old.unlink(missing_ok=True)


def last_checkpoint(run_dir: Path) -> Path | None:
    found = sorted(run_dir.glob("epoch-*.pt"), key=lambda q: int(q.stem.split("-")[1]))
    return found[-1] if found else None


# -- the command ------------------------------------------------------------------------------------


def train(store, req: TrainRequest, echo=print, quiet: bool = False) -> TrainResult | None:
    """Plan, train, register, promote. Returns None on ranks other than 0."""
    from .distributed import rank_and_size

    p = plan(store, req)
    rank, _ = rank_and_size()
    if rank != 0:
        _follow(store, p, rank)
        return None
    return _lead(store, p, echo, quiet)


def _record(p: Plan) -> dict:
    """The run's params: enough to resume it exactly."""
    return {"request": asdict(p.request), "dataset": p.dataset_ref, "config": p.config.to_dict(),
            "recipe": p.recipe, "device": p.device}


def _lead(store, p: Plan, echo, quiet: bool, resume: tuple[int, int] | None = None) -> TrainResult:
    from annot.db.registry import finish, register, start_run
    from annot.db.schema import TrainingRun

    from .init import apply_init

    if resume is None:
        mv = register(store, p.request.name, dataset=p.dataset_ref, scheme=p.request.scheme,
                      config={**p.config.to_dict(), "init": p.request.init}, status="training")
        if p.request.run_id is None:
            run_id = start_run(store, p.request.trigger, _record(p), model=mv).id
        else:
            run_id = p.request.run_id
            with store.transaction() as s:
                held = s.get(TrainingRun, run_id)
                held.model_version_id, held.params = mv.id, {**(held.params or {}), **_record(p)}
        mv_id = mv.id
    else:
        run_id, mv_id = resume
    run_dir = Path(store.files) / "runs" / str(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = RunLog(run_dir / "train.log", echo=None if quiet else echo)
    with store.transaction() as s:
        row = s.get(TrainingRun, run_id)
        row.log_path = str(run_dir / "train.log")
        if p.request.scope is not None:
            row.scope = p.request.scope
    try:
        with Heartbeat(store, run_id) as hb:
            r = Run(store, p, run_id, mv_id, run_dir, log, quiet=quiet)
            torch.manual_seed(p.recipe["seed"])
            model = p.config.build(train_scales=True)
            if resume is None:
                kept = apply_init(model, p.init, p.config.classes)
                trainer = r.trainer(model)
                log(f"run {run_id}: training {p.request.name} on {p.dataset_ref} ({len(p.train_doc['images'])} "
                    f"train / {len(p.val_doc['images'])} val images), {p.config.backbone} at {p.config.image_size} "
                    f"px, init {p.request.init} (classes kept: {len(kept['classes_kept'])}), "
                    f"{p.recipe['epochs']} epochs x batch {p.recipe['batch_size']}, max LR {p.recipe['max_lr']:g}, "
                    f"{p.device}")
            else:
                trainer = r.trainer(model)
                ckpt = last_checkpoint(run_dir)
                trainer.resume(ckpt)
                r.restore_best()
                log(f"run {run_id}: resumed from {ckpt.name} (epoch {trainer.epoch} of {p.recipe['epochs']})")
            r.train(trainer, hb)
        result = _register(store, p, r, trainer, run_id, mv_id)
        finish(store, run_id, ok=True)
        log(f"run {run_id}: {result.model_ref} ready, val {p.request.metric} {result.value:.4f} (epoch "
            f"{result.best_epoch}); {'promoted' if result.promoted else 'not promoted'}: {result.reason}")
        return result
    except KeyboardInterrupt:
        from annot.errors import Interrupted

        finish(store, run_id, ok=False, error="interrupted (Ctrl-C)")
        ckpt = last_checkpoint(run_dir)
        how = (f"`annot train --resume {run_id}` continues it from {ckpt.name}" if ckpt is not None
               else "no epoch had finished: nothing to resume, train anew")
        log(f"run {run_id}: interrupted; {how}")
        raise Interrupted(f"interrupted: run {run_id} is failed; {how}") from None
    except BaseException as e:
        from annot.errors import reason

        finish(store, run_id, ok=False, error=reason(e))
        log(f"run {run_id}: failed: {reason(e)}")
        raise
    finally:
        log.close()


def _register(store, p: Plan, r: Run, trainer, run_id: int, mv_id: int) -> TrainResult:
    from annot.db.registry import complete
    from annot.db.schema import ModelVersion

    from .promotion import decide

    best = r.best
    val = {**best["metrics"], "images": len(p.val_doc["images"]), "images_sha256": images_digest(p.val_doc),
           "dataset": p.dataset_ref, "scheme": p.request.scheme}
    metrics = {"val": val, "selection": {"metric": p.request.metric, "epoch": best["epoch"], "value": best["value"]},
               "history": trainer.history, "run": run_id}
    complete(store, mv_id, r.best_path, metrics)
    with store.transaction() as s:
        mv = s.get(ModelVersion, mv_id)
        ref = f"{mv.name}@{mv.version}"
    baseline = None
    if p.request.promote:
        decision = decide(store, ref, p.request.metric, p.request.min_gain, p.val_doc, p.image_root, p.device,
                          untrained=lambda: untrained_value(p))
        promoted, why, baseline = decision.promoted, decision.reason, decision.old
    else:
        promoted, why = False, "--no-promote"
    return TrainResult(run_id, ref, mv_id, p.request.metric, best["value"], best["epoch"], promoted, why,
                       r.run_dir, trainer.history, baseline)


def untrained_value(p: Plan) -> float:
    """The metric of the same network untrained (seeded), on the same val images: the bar when nothing is promoted."""
    with torch.random.fork_rng():  # the caller's generator state is left as it was
        torch.manual_seed(p.recipe["seed"])
        model = p.config.build()
    return metric_value(Run.evaluate_plan(p, model).coco, p.request.metric)


def _follow(store, p: Plan, rank: int) -> None:
    """A rank other than 0 under torchrun: train in step, write nothing."""
    from .init import apply_init

    torch.manual_seed(p.recipe["seed"])
    model = p.config.build(train_scales=True)
    apply_init(model, p.init, p.config.classes)
    run_dir = Path(store.files) / "runs" / "_rank"  # never written: Trainer.save is rank 0's
    r = Run(store, p, 0, 0, run_dir, RunLog(None), rank=rank)
    r.train(r.trainer(model), None)


def resume(store, run_id: int, echo=print, quiet: bool = False) -> TrainResult:
    """Continue a run that failed (or whose process died) from its last epoch checkpoint."""
    from annot.db.registry import reap
    from annot.db.schema import ModelVersion, TrainingRun

    reap(store)
    with store.transaction() as s:
        run = s.get(TrainingRun, run_id)
        if run is None:
            raise StoreError(f"no training run {run_id}")
        if run.status == "running":
            raise AnnotError(f"run {run_id} is still running (its heartbeat is fresh)")
        if run.status == "succeeded":
            raise AnnotError(f"run {run_id} already finished")
        if "request" not in (run.params or {}):
            raise AnnotError(f"run {run_id} is not an `annot train` run")
        params, mv_id = dict(run.params), run.model_version_id
    run_dir = Path(store.files) / "runs" / str(run_id)
    if last_checkpoint(run_dir) is None:
        raise AnnotError(f"run {run_id}: no epoch checkpoint in {run_dir} to resume from")
    req = TrainRequest(**params["request"])
    req.dataset = params["dataset"]  # the version it was planned on, even if a newer one exists now
    p = plan(store, req)
    if p.config.to_dict() != params["config"] or p.recipe != params["recipe"]:
        raise AnnotError(f"run {run_id}: the dataset or presets changed since it started; train anew")
    with store.transaction() as s:
        run = s.get(TrainingRun, run_id)
        run.status, run.error, run.finished_at = "running", None, None
        run.heartbeat_at = datetime.now(UTC)
        s.get(ModelVersion, mv_id).status = "training"
    return _lead(store, p, echo, quiet, resume=(run_id, mv_id))
