"""Model versions and training runs in the store."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from annot.db.registry import finish, heartbeat, reap, register, start_run
from annot.db.session import open_store


@pytest.fixture
def env(tmp_path, monkeypatch, toy_predictor):
    monkeypatch.setenv("ANNOT_DB", f"sqlite:///{tmp_path / 'annot.db'}")
    monkeypatch.setenv("ANNOT_STORE", str(tmp_path / "store"))
    return tmp_path


def _ckpt(env, k):
    import torch

    torch.save({"classes": ["a", "b"], "k": k}, env / f"w{k}.pt")  # what the toy predictor loads
    return env / f"w{k}.pt"


def _register(annot, env, k, *extra):
    res = annot("models", "register", "maskrcnn", "--predictor", "toy", "--checkpoint", _ckpt(env, k),
                "--metrics", json.dumps({"bbox_AP": 0.1 * k}), "--json", *extra)
    assert res.code == 0, res
    return json.loads(res.out)


def _promoted(annot) -> list[str]:
    return [m["model"] for m in json.loads(annot("models", "list", "--json").out) if m["promoted"]]


def test_versions_promote_rollback(env, annot):
    assert [_register(annot, env, k)["model"] for k in (1, 2, 3)] == ["maskrcnn-v1", "maskrcnn-v2", "maskrcnn-v3"]
    assert _promoted(annot) == []
    assert annot("models", "promote", "maskrcnn@2").code == 0
    assert annot("models", "promote", "maskrcnn@3").code == 0
    assert _promoted(annot) == ["maskrcnn-v3"]
    shown = json.loads(annot("models", "show", "maskrcnn", "--json").out)  # NAME alone: the promoted one
    assert shown["model"] == "maskrcnn-v3" and shown["metrics"] == {"bbox_AP": pytest.approx(0.3)}
    assert shown["checkpoint_problem"] is None
    assert annot("models", "rollback", "maskrcnn").out.strip() == "promoted maskrcnn-v2"
    assert annot("models", "rollback", "maskrcnn").out.strip() == "promoted maskrcnn-v1"
    res = annot("models", "rollback", "maskrcnn")
    assert res.code == 2 and "no older ready version" in res.err
    res = annot("models", "show", "yolo")
    assert res.code == 2 and "unknown model 'yolo'; known: maskrcnn" in res.err


def test_corrupt_or_missing_checkpoint_is_reported_and_refused(env, annot):
    _register(annot, env, 1)
    _register(annot, env, 2)
    store = open_store()
    with store.transaction() as s:
        from annot.db.registry import checkpoint_for_loading, get_model

        mv = get_model(s, "maskrcnn@2")
    path = store.files / mv.checkpoint_path
    path.write_bytes(b"truncated")
    shown = json.loads(annot("models", "show", "maskrcnn@2", "--json").out)
    assert "does not match the recorded" in shown["checkpoint_problem"]
    res = annot("models", "promote", "maskrcnn@2")
    assert res.code == 2 and "not promoted" in res.err and "sha256" in res.err
    with pytest.raises(Exception, match="refusing to load the checkpoint"):
        checkpoint_for_loading(store, mv)
    path.unlink()
    assert "missing" in json.loads(annot("models", "show", "maskrcnn@2", "--json").out)["checkpoint_problem"]


def _flip(url, files, rounds):
    import os

    os.environ["ANNOT_DB"], os.environ["ANNOT_STORE"] = url, files
    from annot.db.registry import promote

    store = open_store()
    for k in range(rounds):
        promote(store, f"maskrcnn@{1 + k % 3}")


def test_promotion_is_atomic_under_concurrency(env, annot):
    for k in (1, 2, 3):
        _register(annot, env, k)
    annot("models", "promote", "maskrcnn@1")
    url, files = f"sqlite:///{env / 'annot.db'}", str(env / "store")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_flip, args=(url, files, 25)) for _ in range(2)]
    for p in procs:
        p.start()
    con = sqlite3.connect(env / "annot.db", timeout=30)
    seen = set()
    while any(p.is_alive() for p in procs):
        n = con.execute("SELECT count(*) FROM model_versions WHERE name='maskrcnn' AND promoted").fetchone()[0]
        seen.add(n)
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert seen <= {1}  # never two promoted, never none
    assert len(_promoted(annot)) == 1
    with pytest.raises(sqlite3.IntegrityError):  # and the database itself refuses a second one
        con.execute("UPDATE model_versions SET promoted = 1 WHERE name = 'maskrcnn'")


def test_stale_runs_are_shown_and_reaped(env, annot):
    store = open_store()
    mv = register(store, "maskrcnn", status="training")
    stuck = start_run(store, "webhook", {"epochs": 3}, model=mv)
    alive = start_run(store, "schedule")
    done = start_run(store, "cli")
    finish(store, done.id, ok=True)
    old = (datetime.now(UTC) - timedelta(hours=1)).isoformat(" ")
    con = sqlite3.connect(env / "annot.db")
    con.execute("UPDATE training_runs SET heartbeat_at = ? WHERE id = ?", (old, stuck.id))
    con.commit()
    heartbeat(store, alive.id)
    states = {r["id"]: r["state"] for r in json.loads(annot("runs", "list", "--json").out)}
    assert states == {stuck.id: "stale", alive.id: "running", done.id: "succeeded"}
    assert annot("runs", "reap").out.strip() == f"reaped 1 run(s): {stuck.id}"
    runs = {r["id"]: r for r in json.loads(annot("runs", "list", "--json").out)}
    assert runs[stuck.id]["state"] == "failed" and "reaped" in runs[stuck.id]["error"]
    assert json.loads(annot("models", "show", "maskrcnn@1", "--json").out)["status"] == "failed"
    assert reap(store) == []
