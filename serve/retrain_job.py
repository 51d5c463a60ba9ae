"""The retrain job a Label Studio trigger starts, in a process of its own.

    python -m annot.serve.retrain_job --run RUN_ID     (ANNOT_DB / ANNOT_STORE name the store;
                                                         LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY Label Studio)

It takes the running training run RUN_ID from the store and runs
:func:`annot.training.retrain.retrain` for the run's project, the same job as
``annot retrain`` (export, import, split, train when ``min_new`` images
arrived, evaluate, promote), holding that run while it works. Then it takes
the project's queued follow-up run if triggers arrived meanwhile, until none
waits. Each run ends ``succeeded`` (trained, or nothing to train) or
``failed`` with the reason; the output goes to the run's log.
"""

from __future__ import annotations

import argparse
import os
import sys


def run_job(store, run_id: int, echo=print) -> list[int]:
    """Work through RUN_ID and then every follow-up queued for its scope; returns the run ids handled."""
    from annot.db.registry import finish, next_queued
    from annot.db.schema import TrainingRun
    from annot.errors import reason

    done = []
    with store.transaction() as s:
        first = s.get(TrainingRun, run_id)
        scope, log_path = first.scope, first.log_path
    while run_id is not None:
        with store.transaction() as s:
            params = dict(s.get(TrainingRun, run_id).params or {})
        try:
            for line in retrain_run(store, run_id, params, echo).lines():
                echo(f"run {run_id}: {line}")
        except Exception as e:  # retrain() has ended the run failed, with the reason
            echo(f"run {run_id}: failed: {reason(e)}")
            with store.transaction() as s:
                still_running = s.get(TrainingRun, run_id).status == "running"
            if still_running:
                finish(store, run_id, ok=False, error=reason(e))
        done.append(run_id)
        nxt = next_queued(store, scope) if scope else None
        run_id = nxt.id if nxt is not None else None
        if run_id is not None and log_path:
            with store.transaction() as s:  # a follow-up run writes to this process's log too
                s.get(TrainingRun, run_id).log_path = log_path
    return done


def retrain_run(store, run_id: int, params: dict, echo):
    from annot.errors import AnnotError

    url = os.environ.get("LABEL_STUDIO_URL")
    if not url:
        raise AnnotError("LABEL_STUDIO_URL is not set: the retrain job exports the project from Label Studio "
                         "(start annot serve with --labelstudio-url)")
    from annot.training.retrain import (  # torch and the rest: only when there is work
        RetrainRequest,
        retrain,
    )

    req = RetrainRequest(url, os.environ.get("LABEL_STUDIO_API_KEY"), int(params["project"]),
                         dataset=params.get("dataset"), min_new=int(params.get("min_new", 20)),
                         model=params.get("model") or "maskrcnn", trigger="webhook")
    return retrain(store, req, echo=echo, run_id=run_id)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=int, required=True)
    args = ap.parse_args(argv)
    from annot.db.session import open_store

    run_job(open_store(), args.run, echo=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
