"""The retrain job a Label Studio trigger starts, in a process of its own.

    python -m annot.serve.retrain_job --run RUN_ID     (ANNOT_DB / ANNOT_STORE name the store)

It takes the running training run RUN_ID from the store, keeps its heartbeat
while it works, ends it, then takes the project's queued follow-up run if
triggers arrived meanwhile, until none waits.

annot's training (``annot train``, ``annot retrain``) is not built yet: the
job records what triggered it (the trigger and its annotation counts are in
the run's params) and ends the run with the status ``unavailable`` and the
reason. It never makes a model version.
"""

from __future__ import annotations

import argparse
import sys

UNAVAILABLE = ("training not available: annot's training (annot train / annot retrain) is not built yet; what "
               "triggered this run is recorded in its params (the action, and for annotation events how many "
               "annotations changed)")


def run_job(store, run_id: int) -> list[int]:
    """Work through RUN_ID and then every follow-up queued for its scope; returns the run ids handled."""
    from annot.db.registry import finish, heartbeat, next_queued
    from annot.db.schema import TrainingRun

    done = []
    with store.transaction() as s:
        first = s.get(TrainingRun, run_id)
        scope, log_path = first.scope, first.log_path
    while run_id is not None:
        heartbeat(store, run_id)
        print(f"run {run_id}: {UNAVAILABLE}", flush=True)
        finish(store, run_id, ok=False, error=UNAVAILABLE, status="unavailable")
        done.append(run_id)
        nxt = next_queued(store, scope) if scope else None
        run_id = nxt.id if nxt is not None else None
        if run_id is not None and log_path:
            with store.transaction() as s:  # a follow-up run writes to this process's log too
                s.get(TrainingRun, run_id).log_path = log_path
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=int, required=True)
    args = ap.parse_args(argv)
    from annot.db.session import open_store

    run_job(open_store(), args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
