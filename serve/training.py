"""Label Studio's training triggers: webhooks in, one retrain job per project out.

Label Studio posts every webhook of a connected project to ``/webhook``
(``send_for_all_actions``), and "Start Training" as ``START_TRAINING`` there
(or as ``POST /train`` when its feature flag is off). Each answer is
immediate: events are written to the store's ``annotation_events`` table and
a retrain is asked for through the store's training-runs table
(:func:`annot.db.registry.request_run`), which allows one running and one
queued run per project: a trigger while a run is going becomes the one
follow-up run, and any further ones fold into it. The job itself runs in a
separate process (:mod:`annot.serve.retrain_job`), never in the server's
threads.

``ANNOTATION_CREATED``, ``ANNOTATION_UPDATED`` and ``ANNOTATIONS_DELETED``
ask for a retrain once ``--retrain-every N`` distinct annotations changed
since the project's last run started (N = 0: only "Start Training" does).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from .config import ServeConfig

log = logging.getLogger("annot.serve")
EVENTS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
TRAIN = "START_TRAINING"


def scope_of(project_id) -> str:
    return f"labelstudio:{project_id}"


def _project_id(body: dict):
    """The project id of a webhook body (``project`` is the project object) or
    of a legacy /train body (``project`` is ``"<id>.<timestamp>"``)."""
    p = body.get("project")
    if isinstance(p, dict):
        p = p.get("id")
    if isinstance(p, str):
        p = p.split(".", 1)[0]
    try:
        return int(p)
    except (TypeError, ValueError):
        return None


def _annotations(body: dict, action: str) -> list[tuple[int | None, int | None]]:
    """(annotation id, task id) of each annotation an event names."""
    if action == "ANNOTATIONS_DELETED":
        items = body.get("annotations") if isinstance(body.get("annotations"), list) else []
        return [(a.get("id") if isinstance(a, dict) else None, None) for a in items]
    ann = body.get("annotation")
    items = ann if isinstance(ann, list) else [ann]
    return [(a.get("id"), a.get("task") if isinstance(a.get("task"), int) else None)
            for a in items if isinstance(a, dict)]


class Training:
    def __init__(self, config: ServeConfig):
        self.config = config
        self._store = None

    @property
    def store(self):
        if self._store is None:
            from annot.db.session import open_store

            self._store = open_store(self.config.db_url, self.config.store_path)
        return self._store

    @staticmethod
    def warm() -> None:
        """Import what a webhook needs (not the database: it is opened, or
        created, only when a webhook arrives)."""
        import annot.db.registry  # noqa: F401
        import annot.db.schema  # noqa: F401
        import annot.db.session  # noqa: F401

    def webhook(self, body: dict) -> dict:
        action = body.get("action")
        project = _project_id(body)
        if action == TRAIN:
            if project is None:
                return {"status": "ignored", "reason": "START_TRAINING without a project id"}
            return self.request(project, "webhook", {"action": TRAIN})
        if action in EVENTS:
            if project is None:
                return {"status": "ignored", "reason": f"{action} without a project id"}
            changed = self._record(project, action, _annotations(body, action))
            if self.config.retrain_every and changed >= self.config.retrain_every:
                return self.request(project, "webhook", {"action": action, "changed_annotations": changed})
            return {"status": "recorded", "changed_annotations": changed}
        return {"status": "ignored", "reason": f"annot does nothing on {action!r}"}

    def legacy_train(self, body: dict) -> dict:
        project = _project_id(body)
        if project is None:
            return {"status": "ignored", "reason": "/train without a project id"}
        tasks = body.get("annotations") if isinstance(body.get("annotations"), list) else []
        return self.request(project, "webhook", {"action": "train", "annotated_tasks": len(tasks)})

    def _record(self, project: int, action: str, items) -> int:
        """Store the events; returns how many distinct annotations changed
        since the project's last run started."""
        from sqlalchemy import func, select

        from annot.db.schema import AnnotationEvent, TrainingRun

        scope = scope_of(project)
        with self.store.transaction() as s:
            for ann_id, task_id in items or [(None, None)]:
                s.add(AnnotationEvent(scope=scope, action=action, annotation_id=ann_id, task_id=task_id,
                                      received_at=datetime.now(UTC)))
            since = s.scalar(select(func.max(TrainingRun.started_at)).where(TrainingRun.scope == scope))
            q = select(func.count(func.distinct(AnnotationEvent.annotation_id))).where(AnnotationEvent.scope == scope)
            return s.scalar(q.where(AnnotationEvent.received_at > since) if since is not None else q)

    def request(self, project: int, trigger: str, params: dict) -> dict:
        from annot.db.registry import request_run

        params = {**params, "project": project, "model": (self.config.model or "maskrcnn").partition("@")[0],
                  "min_new": self.config.retrain_min_new,
                  "dataset": self.config.retrain_dataset or f"labelstudio-{project}"}
        outcome, run = request_run(self.store, scope_of(project), trigger, params)
        log_path = self._spawn(run.id) if outcome == "started" else None
        log.info("retrain requested", extra={"project": project, "outcome": outcome, "run": run.id,
                                             **({"log": str(log_path)} if log_path else {})})
        return {"status": outcome, "run": run.id}

    def _spawn(self, run_id: int) -> Path:
        """The retrain job, in a process of its own (detached: it outlives a
        request, and the server never waits on it); its output goes to
        ``runs/RUN.log`` in the store directory, recorded as the run's log."""
        from annot.db.schema import TrainingRun

        argv = list(self.config.retrain_command or (sys.executable, "-m", "annot.serve.retrain_job"))
        env = {**os.environ}
        if self.config.db_url:
            env["ANNOT_DB"] = self.config.db_url
        if self.config.store_path:
            env["ANNOT_STORE"] = self.config.store_path
        # the job exports the project from Label Studio; the token travels in the environment, never the store
        if self.config.labelstudio_url:
            env["LABEL_STUDIO_URL"] = self.config.labelstudio_url
        if self.config.labelstudio_token:
            env["LABEL_STUDIO_API_KEY"] = self.config.labelstudio_token
        log_path = Path(self.store.files) / "runs" / f"{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.store.transaction() as s:
            s.get(TrainingRun, run_id).log_path = str(log_path)
        with open(log_path, "ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen([*argv, "--run", str(run_id)], env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=proc.wait, name=f"annot-job-{run_id}", daemon=True).start()  # reaps it
        return log_path
