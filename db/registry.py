"""Model versions: register, promote (atomically), roll back, verify checkpoints.

A version number grows per model name. At most one version of a name is
promoted: the partial unique index ``uq_model_promoted`` makes the database
refuse a second one, and promotion clears the old flag and sets the new one in
one transaction, so no reader ever sees two (or, between the two statements,
none: the transaction is invisible until it commits).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from annot.errors import AnnotError, NotYetInStore, StoreError

from . import files
from .datasets import get_version, parse_ref
from .schema import ModelVersion, Split, TrainingRun
from .session import Store

STATUSES = ("training", "ready", "failed", "archived")
STALE_AFTER = timedelta(minutes=10)


def register(store: Store, name: str, checkpoint: Path | None = None, dataset: str | None = None,
             scheme: str | None = None, config: dict | None = None, metrics: dict | None = None,
             status: str = "ready") -> ModelVersion:
    if status not in STATUSES:
        raise AnnotError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
    ckpt = files.put_file(store.files, checkpoint, Path(checkpoint).suffix or ".pt") if checkpoint else (None, None)
    with store.transaction() as s:
        dv_id, split_id = trained_on(s, dataset, scheme)
        parent = s.scalar(select(ModelVersion).where(ModelVersion.name == name)
                          .order_by(ModelVersion.version.desc()).limit(1).with_for_update())
        mv = ModelVersion(name=name, version=(parent.version + 1) if parent else 1,
                          parent_id=parent.id if parent else None, dataset_version_id=dv_id, split_id=split_id,
                          checkpoint_path=ckpt[0], checkpoint_sha256=ckpt[1], config=config or {},
                          metrics=metrics or {}, status=status, promoted=False)
        s.add(mv)
    return mv


def trained_on(s, dataset: str | None, scheme: str | None) -> tuple[int | None, int | None]:
    """(dataset version id, split id) of ``NAME@V`` and its split scheme; StoreError when unknown."""
    if not dataset:
        return None, None
    dv = get_version(s, dataset)
    if not scheme:
        return dv.id, None
    sp = s.scalar(select(Split).where(Split.dataset_id == dv.dataset_id, Split.scheme == scheme))
    if sp is None:
        raise StoreError(f"no split scheme {scheme!r} for dataset {dataset}")
    return dv.id, sp.id


def complete(store: Store, mv_id: int, checkpoint: Path, metrics: dict, config: dict | None = None) -> ModelVersion:
    """A version registered while ``training`` gets its checkpoint and metrics and becomes ``ready``."""
    ckpt_path, ckpt_sha = files.put_file(store.files, checkpoint, Path(checkpoint).suffix or ".pt")
    with store.transaction() as s:
        mv = s.get(ModelVersion, mv_id)
        mv.checkpoint_path, mv.checkpoint_sha256, mv.metrics, mv.status = ckpt_path, ckpt_sha, metrics, "ready"
        if config is not None:
            mv.config = config
    return mv


def update_metrics(store: Store, mv_id: int, **entries) -> dict:
    """Set top-level entries of a version's metrics (e.g. ``val``, ``test``); returns them all."""
    with store.transaction() as s:
        mv = s.get(ModelVersion, mv_id)
        mv.metrics = {**(mv.metrics or {}), **entries}
        return dict(mv.metrics)


def add_evaluation(store: Store, mv_id: int, key: str, entry: dict, **entries) -> None:
    """Record an evaluation under ``metrics["evaluations"][key]`` (and ``entries`` at the top level), in one
    transaction: two evaluations of a version at once both stay."""
    with store.transaction() as s:
        mv = s.get(ModelVersion, mv_id)
        metrics = dict(mv.metrics or {})
        metrics["evaluations"] = {**(metrics.get("evaluations") or {}), key: entry}
        mv.metrics = {**metrics, **entries}


def get_model(s, ref: str) -> ModelVersion:
    """``NAME@V``, or ``NAME`` for the promoted version."""
    name, ver = parse_ref(ref)
    q = select(ModelVersion).where(ModelVersion.name == name)
    mv = s.scalar(q.where(ModelVersion.version == ver) if ver else q.where(ModelVersion.promoted))
    if mv is None:
        names = s.scalars(select(ModelVersion.name).distinct().order_by(ModelVersion.name)).all()
        if name not in names:
            raise StoreError(f"unknown model {name!r}; known: {', '.join(names) or 'none'}")
        if ver:
            raise StoreError(f"{name} has no version {ver}")
        ready = s.scalar(select(ModelVersion.version).where(ModelVersion.name == name, ModelVersion.status == "ready")
                         .order_by(ModelVersion.version.desc()).limit(1))
        raise NotYetInStore(f"{name} has no promoted version (none is ready yet)" if ready is None else
                            f"{name} has no promoted version (name one, e.g. {name}@{ready}, or promote it: "
                            f"annot models promote {name}@{ready})")
    return mv


def checkpoint_problem(store: Store, mv: ModelVersion) -> str | None:
    if mv.checkpoint_path is None:
        return "no checkpoint registered"
    return files.verify(store.files, mv.checkpoint_path, mv.checkpoint_sha256)


def checkpoint_for_loading(store: Store, mv: ModelVersion) -> Path:
    """The checkpoint's path, only when it is there and intact."""
    problem = checkpoint_problem(store, mv)
    if problem:
        raise AnnotError(f"{mv.label}: refusing to load the checkpoint: {problem}")
    return store.files / mv.checkpoint_path


def promote(store: Store, ref: str) -> ModelVersion:
    with store.transaction() as s:
        name = parse_ref(ref)[0]
        # PostgreSQL: lock the name's rows so concurrent promotions queue up
        # (SQLite's BEGIN IMMEDIATE already serialises writers).
        s.execute(select(ModelVersion.id).where(ModelVersion.name == name).with_for_update())
        mv = get_model(s, ref)
        if mv.status != "ready":
            raise StoreError(f"{mv.label} is {mv.status}, only a ready version can be promoted")
        problem = checkpoint_problem(store, mv)
        if problem:
            raise AnnotError(f"{mv.label}: not promoted: {problem}")
        s.execute(update(ModelVersion).where(ModelVersion.name == mv.name, ModelVersion.promoted)
                  .values(promoted=False))
        s.execute(update(ModelVersion).where(ModelVersion.id == mv.id).values(promoted=True))
        mv.promoted = True
    return mv


def rollback(store: Store, name: str) -> ModelVersion:
    """Promote the newest ready version older than the promoted one."""
    with store.transaction() as s:
        current = get_model(s, name)
        prev = s.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.status == "ready",
                                                   ModelVersion.version < current.version)
                        .order_by(ModelVersion.version.desc()).limit(1))
        if prev is None:
            raise StoreError(f"{current.label} is promoted and no older ready version exists")
    return promote(store, f"{name}@{prev.version}")


# -- training runs --------------------------------------------------------------


def start_run(store: Store, trigger: str, params: dict | None = None, model: ModelVersion | None = None,
              log_path: str | None = None) -> TrainingRun:
    with store.transaction() as s:
        run = TrainingRun(trigger=trigger, params=params or {}, status="running",
                          model_version_id=model.id if model else None, log_path=log_path)
        s.add(run)
    return run


def heartbeat(store: Store, run_id: int, **progress) -> None:
    """The run is alive; ``progress``: ``epoch``, ``loss`` to record with it."""
    with store.transaction() as s:
        s.execute(update(TrainingRun).where(TrainingRun.id == run_id)
                  .values(heartbeat_at=datetime.now(UTC), **progress))


def finish(store: Store, run_id: int, ok: bool, error: str | None = None, status: str | None = None) -> None:
    """End a run: ``succeeded`` or ``failed`` (or ``status``, e.g. ``unavailable``)."""
    with store.transaction() as s:
        run = s.get(TrainingRun, run_id)
        run.status = status or ("succeeded" if ok else "failed")
        run.error, run.finished_at = error, datetime.now(UTC)
        if run.model_version_id is not None:
            mv = s.get(ModelVersion, run.model_version_id)
            if mv.status == "training":
                mv.status = "ready" if ok else "failed"


def request_run(store: Store, scope: str, trigger: str, params: dict | None = None) -> tuple[str, TrainingRun]:
    """A run for ``scope``, at most one at a time: ``("started", run)`` when
    none runs (the caller starts the job); ``("queued", run)`` when one runs
    and none waits (it will start when the running one ends); else
    ``("coalesced", the waiting run)``, whose params gain this trigger's.
    Stale runs of the scope are reaped first. The database's partial unique
    indexes refuse a second running or queued run, so concurrent triggers
    cannot start two."""
    reap(store, scope=scope)
    params = dict(params or {})
    for attempt in range(2):
        try:
            with store.transaction() as s:
                q = select(TrainingRun).where(TrainingRun.scope == scope)
                running = s.scalar(q.where(TrainingRun.status == "running").with_for_update())
                queued = s.scalar(q.where(TrainingRun.status == "queued").with_for_update())
                if running is None:
                    run = TrainingRun(scope=scope, trigger=trigger, params=params, status="running")
                    s.add(run)
                    return "started", run
                if queued is None:
                    run = TrainingRun(scope=scope, trigger=trigger, params=params, status="queued")
                    s.add(run)
                    return "queued", run
                merged = dict(queued.params or {})
                merged["triggers"] = merged.get("triggers", 1) + 1
                merged.update({k: v for k, v in params.items() if k not in merged})
                queued.params = merged
                return "coalesced", queued
        except IntegrityError:  # another process made the same row at the same moment: look again
            if attempt:
                raise
    raise AssertionError("unreachable")


def next_queued(store: Store, scope: str) -> TrainingRun | None:
    """The run waiting for ``scope``, now running (the job that just ended
    takes it), or None."""
    with store.transaction() as s:
        q = select(TrainingRun).where(TrainingRun.scope == scope)
        if s.scalar(q.where(TrainingRun.status == "running")) is not None:
            return None
        run = s.scalar(q.where(TrainingRun.status == "queued").with_for_update())
        if run is not None:
            run.status, run.started_at = "running", datetime.now(UTC)
            run.heartbeat_at = run.started_at
        return run


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def run_state(run: TrainingRun, now: datetime, stale_after: timedelta = STALE_AFTER) -> str:
    """``stale`` for a running run whose heartbeat is older than the timeout."""
    if run.status == "running" and now - _aware(run.heartbeat_at) > stale_after:
        return "stale"
    return run.status


def reap(store: Store, stale_after: timedelta = STALE_AFTER, scope: str | None = None) -> list[int]:
    """Mark stale runs failed (and their model versions), so a crashed job
    never leaves a version stuck in ``training``. Returns the run ids."""
    now = datetime.now(UTC)
    reaped = []
    q = select(TrainingRun).where(TrainingRun.status == "running")
    with store.transaction() as s:
        for run in s.scalars(q.where(TrainingRun.scope == scope) if scope is not None else q).all():
            if run_state(run, now, stale_after) == "stale":
                run.status, run.finished_at = "failed", now
                run.error = f"no heartbeat since {_aware(run.heartbeat_at).isoformat()} (reaped)"
                if run.model_version_id is not None:
                    mv = s.get(ModelVersion, run.model_version_id)
                    if mv.status == "training":
                        mv.status = "failed"
                reaped.append(run.id)
    return reaped
