"""`annot train` / `annot evaluate` end to end on the CPU: a seeded shapes
dataset imported into a store, cpu-tiny trained inside the test, the
versions it registers, promotion both ways, Ctrl-C and resume, a killed run
reaped, the learning-rate range test, and DDP with gloo on 2 processes.

Every learning claim is against a model that learned nothing, measured in
the same test (an untrained model scores ~0 AP)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
from conftest import REPO  # noqa: E402
from shapes import shapes_coco  # noqa: E402

# small enough to train in seconds: 64 px images, batch 4
FAST = ("--preset", "cpu-tiny", "--batch-size", "4", "-q", "--json")


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    # one large shape per 64 px image: learnable in seconds
    doc = shapes_coco(root, n_images=80, size=64, seed=7, objects_per_image=(1, 1), radius=(0.2, 0.4))
    (root / "shapes.coco.json").write_text(json.dumps(doc))
    return root


@pytest.fixture
def store(tmp_path, monkeypatch, annot, shapes_data):
    """A store holding shapes@1 with its default split."""
    monkeypatch.setenv("ANNOT_DB", f"sqlite:///{tmp_path / 'annot.db'}")
    monkeypatch.setenv("ANNOT_STORE", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)  # where --plot writes
    assert annot("dataset", "import", "shapes", shapes_data / "shapes.coco.json", "--image-root", shapes_data,
                 "--json").code == 0
    assert annot("dataset", "split", "shapes", "--ratios", "0.6,0.2,0.2").code == 0
    return tmp_path


def _train(annot, *args):
    res = annot("train", "shapes", *FAST, *args)
    assert res.code == 0, res
    return json.loads(res.out)


def _models(annot):
    return {m["model"]: m for m in json.loads(annot("models", "list", "--json").out)}


def test_train_learns_registers_and_promotes_by_val_ap(store, annot):
    # the baseline: a model whose learning rate leaves it untrained
    untrained = _train(annot, "--epochs", "1", "--max-lr", "1e-9")
    assert untrained["value"] < 0.02 and not untrained["promoted"]
    assert "nothing is promoted" in untrained["reason"]
    trained = _train(annot, "--epochs", "12", "--max-lr", "0.02")
    assert trained["value"] > 0.08 and trained["value"] > untrained["value"] + 0.06, trained
    assert trained["promoted"] and trained["model"] == "maskrcnn@2"
    assert trained["best_epoch"] == max(range(1, 13), key=lambda e: trained["history"][e - 1]["val"])
    m = _models(annot)["maskrcnn-v2"]
    assert m["status"] == "ready" and m["promoted"] and m["checkpoint_problem"] is None
    cfg = m["config"]
    assert cfg["predictor"] == "maskrcnn" and cfg["classes"] == ["square", "disc", "triangle"]
    assert (cfg["backbone"], cfg["channels"], cfg["min_stride"], cfg["image_size"]) == \
        ("mobilenet_v3_large_fpn", 64, 8, 64)
    assert m["metrics"]["val"]["segm"]["AP"] == pytest.approx(trained["value"])
    assert m["metrics"]["val"]["images"] == 16 and m["metrics"]["selection"]["metric"] == "segm_AP"
    # the run's record
    runs = {r["id"]: r for r in json.loads(annot("runs", "list", "--json").out)}
    run = runs[trained["run"]]
    assert run["state"] == "succeeded" and run["epoch"] == 12 and run["loss"] > 0
    assert os.path.isfile(run["log"]) and "maskrcnn@2 ready" in open(run["log"]).read()
    assert (store / "store" / "runs" / str(trained["run"]) / "train_curves.png").stat().st_size > 10_000

    # a worse version stays ready, the log says why; with a min gain nothing is promoted either
    worse = _train(annot, "--epochs", "2", "--max-lr", "1e-6")
    assert not worse["promoted"] and "maskrcnn-v2 stays promoted" in worse["reason"]
    better_but_small = _train(annot, "--epochs", "2", "--seed", "1", "--min-gain", "0.9")
    assert not better_but_small["promoted"] and "--min-gain 0.9" in better_but_small["reason"]
    m = _models(annot)
    assert [k for k, v in m.items() if v["promoted"]] == ["maskrcnn-v2"]
    assert m["maskrcnn-v3"]["status"] == m["maskrcnn-v4"]["status"] == "ready"
    # annot models promote / rollback override the rule
    assert annot("models", "promote", "maskrcnn@4").code == 0
    assert annot("models", "rollback", "maskrcnn").code == 0
    assert [k for k, v in _models(annot).items() if v["promoted"]] == ["maskrcnn-v3"]


def test_evaluate_stores_pycocotools_numbers(store, annot, shapes_data):
    """annot evaluate's AP is pycocotools' own on what `annot predict` writes for the same images."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    trained = _train(annot, "--epochs", "8")
    res = annot("evaluate", "maskrcnn@1", "shapes", "--split", "test", "--json")
    assert res.code == 0, res
    got = json.loads(res.out)
    assert annot("dataset", "export", "shapes", "--split", "test", "-o", store / "test.json").code == 0
    images = [shapes_data / im["file_name"] for im in json.loads((store / "test.json").read_text())["images"]]
    assert annot("predict", "--model", "maskrcnn@1", *images, "-o", store / "pred.json", "--format", "coco",
                 "--gt", store / "test.json", "--score-threshold", "0.05", "-q").code == 0
    results = json.loads((store / "pred.json").read_text())
    assert results, "a trained model detects something"
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints
        gt = COCO(str(store / "test.json"))
        for iou_type in ("bbox", "segm"):
            ev = COCOeval(gt, gt.loadRes(results), iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert got[iou_type]["AP"] == pytest.approx(ev.stats[0], abs=1e-6)
            assert got[iou_type]["AP50"] == pytest.approx(ev.stats[1], abs=1e-6)
    assert got["segm"]["AP"] > 0.05  # it learned: an untrained model scores ~0 (the test above)
    stored = _models(annot)["maskrcnn-v1"]["metrics"]
    assert stored["test"]["segm"]["AP"] == got["segm"]["AP"] and stored["run"] == trained["run"]
    assert "shapes@1/default/test" in stored["evaluations"]
    # --plot: the PR curves, never over a file without --overwrite
    res = annot("evaluate", "maskrcnn@1", "shapes", "--plot")
    assert res.code == 0 and "precision-recall curves:" in res.out
    plot = res.out.strip().rsplit(" ", 1)[-1]
    assert os.path.getsize(plot) > 10_000
    res = annot("evaluate", "maskrcnn@1", "shapes", "--plot")
    assert res.code == 2 and "pass --overwrite" in res.err
    os.unlink(plot)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_ctrl_c_fails_the_run_and_resume_ends_at_the_uninterrupted_weights(store, annot, monkeypatch,
                                                                            deterministic):
    from annot.training.loop import Trainer

    whole = _train(annot, "--epochs", "3", "--no-promote")
    whole_weights = _weights(store / "store" / "runs" / str(whole["run"]) / "epoch-3.pt")

    save = Trainer.save

    def save_then_ctrl_c(self):
        path = save(self)
        if self.epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C right after the first epoch's checkpoint
        return path

    monkeypatch.setattr(Trainer, "save", save_then_ctrl_c)
    res = annot("train", "shapes", *FAST, "--epochs", "3", "--no-promote")
    assert res.code == 130 and res.err.count("\n") == 1
    assert "interrupted: run 2 is failed; `annot train --resume 2` continues it from epoch-1.pt" in res.err
    runs = json.loads(annot("runs", "list", "--json").out)
    killed = runs[0]
    assert killed["state"] == "failed" and killed["error"] == "interrupted (Ctrl-C)" and killed["epoch"] == 1
    assert _models(annot)["maskrcnn-v2"]["status"] == "failed"
    monkeypatch.setattr(Trainer, "save", save)
    torch.manual_seed(12345)  # whatever ran in between
    res = annot("train", "--resume", str(killed["id"]), "-q", "--json")
    assert res.code == 0, res
    resumed = json.loads(res.out)
    assert resumed["run"] == killed["id"] and resumed["model"] == "maskrcnn@2"
    got = _weights(store / "store" / "runs" / str(killed["id"]) / "epoch-3.pt")
    assert got.keys() == whole_weights.keys()
    assert all(torch.equal(got[k], whole_weights[k]) for k in got)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in whole["history"]]
    assert _models(annot)["maskrcnn-v2"]["status"] == "ready"
    res = annot("train", "--resume", str(killed["id"]))
    assert res.code == 2 and "already finished" in res.err


def test_a_killed_training_process_is_reaped(store):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "annot", "train", "shapes", "--preset", "cpu-tiny", "--epochs",
                             "50", "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    db = store / "annot.db"
    deadline = time.monotonic() + 120
    try:
        while True:  # training: a heartbeat with an epoch recorded
            assert proc.poll() is None, proc.stderr.read()
            with sqlite3.connect(db) as con:
                rows = con.execute("SELECT status, epoch FROM training_runs").fetchall() \
                    if con.execute("SELECT 1 FROM sqlite_master WHERE name='training_runs'").fetchone() else []
            if rows and rows[0][1] is not None:
                break
            assert time.monotonic() < deadline
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no Ctrl-C: the process just ends
        proc.wait()
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT status FROM training_runs").fetchall() == [("running",)]
    time.sleep(1.5)
    out = subprocess.run([sys.executable, "-m", "annot", "runs", "reap", "--stale-after", "1"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "reaped 1 run(s)" in out.stdout, out
    with sqlite3.connect(db) as con:
        (status, error), = con.execute("SELECT status, error FROM training_runs").fetchall()
        assert status == "failed" and "reaped" in error
        assert con.execute("SELECT status FROM model_versions").fetchall() == [("failed",)]


def test_find_lr_plots_the_range_test_and_suggests_a_rate(store, annot):
    res = annot("train", "shapes", "--preset", "cpu-tiny", "--batch-size", "4", "--find-lr", "--json")
    assert res.code == 0, res
    got = json.loads(res.out)
    losses = got["losses"]
    assert len(got["lrs"]) == len(losses) > 10 and got["lrs"] == sorted(got["lrs"])
    # the suggestion is a tenth of the rate at the lowest smoothed loss, inside the range tried
    low = got["lrs"][min(range(len(losses)), key=losses.__getitem__)]
    assert got["suggested_max_lr"] == pytest.approx(low / 10)
    assert got["lrs"][0] <= got["suggested_max_lr"] < got["lrs"][-1]
    assert os.path.getsize(got["plot"]) > 10_000
    assert json.loads(annot("models", "list", "--json").out) == []  # trains nothing


def test_ddp_with_gloo_on_two_processes_matches_one_process(store, shapes_data):
    """torchrun --nproc_per_node=2 -m annot train: the same recipe on 2 CPU
    processes (gloo) as on one; only rank 0 writes to the store."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = ["train", "shapes", "--preset", "cpu-tiny", "--epochs", "2", "--batch-size", "4", "--no-promote",
            "-q", "--json"]
    one = subprocess.run([sys.executable, "-m", "annot", *args], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "annot", *args], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    with sqlite3.connect(store / "annot.db") as con:
        assert con.execute("SELECT count(*) FROM training_runs").fetchone() == (2,)  # rank 1 wrote nothing
        assert con.execute("SELECT count(*) FROM model_versions").fetchone() == (2,)
    wa = _weights(store / "store" / "runs" / str(a["run"]) / "epoch-2.pt")
    wb = _weights(store / "store" / "runs" / str(b["run"]) / "epoch-2.pt")
    torch.manual_seed(0)
    from annot.training.recipe import ModelConfig

    init = ModelConfig.from_dict(_config(store, a["model"])).build().state_dict()
    moved = sum(float((wa[k].float() - init[k].float()).norm()) ** 2 for k in wa if wa[k].is_floating_point()) ** .5
    apart = sum(float((wa[k].float() - wb[k].float()).norm()) ** 2 for k in wa if wa[k].is_floating_point()) ** .5
    # same start, same data and order; per-process batch statistics and sampling make them differ a little
    assert apart < 0.4 * moved, (apart, moved)
    for ha, hb in zip(a["history"], b["history"]):
        assert hb["loss"] == pytest.approx(ha["loss"], rel=0.1)


def _config(store, model_ref):
    name, version = model_ref.split("@")
    with sqlite3.connect(store / "annot.db") as con:
        (config,) = con.execute("SELECT config FROM model_versions WHERE name=? AND version=?",
                                (name, int(version))).fetchone()
    return json.loads(config)


def test_mistakes_are_one_line_before_any_run(store, annot, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    cases = [
        (("train", "shapes", "--image-root", tmp_path / "empty"), "train/val images are not under"),
        (("train", "shapes", "--init", "nothere.pt"), "--init nothere.pt: no such file"),
        (("train", "shapes", "--init", "maskrcnn"), "unknown model 'maskrcnn'"),
        (("train", "shapes", "--metric", "segm_Ap"), "--metric segm_Ap: use"),
        (("train", "shapes", "--scheme", "other"), "no split scheme 'other' for shapes"),
        (("train", "--resume", "7"), "no training run 7"),
        (("evaluate", "maskrcnn@1", "shapes"), "unknown model 'maskrcnn'"),
        (("models", "promote", "maskrcnn"), "give the version to promote"),
    ]
    for args, message in cases:
        res = annot(*args)
        assert res.code == 2 and res.err.count("\n") == 1 and message in res.err, (args, res)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    res = annot("retrain", "--labelstudio-url", "http://127.0.0.1:9", "--project", "1")
    assert res.code == 2 and "LABEL_STUDIO_API_KEY is not set" in res.err, res
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    res = annot("retrain", "--labelstudio-url", "http://127.0.0.1:9", "--project", "1", "--ratios", "1,0,0")
    assert res.code == 2 and "the val share must be above 0" in res.err, res
    res = annot("retrain", "--labelstudio-url", "http://127.0.0.1:9", "--project", "1")
    assert res.code == 2 and "cannot export project 1" in res.err and res.err.count("\n") == 1, res
    runs = json.loads(annot("runs", "list", "--json").out)
    assert [(r["trigger"], r["state"]) for r in runs] == [("cli", "failed")]  # only Label Studio's refusal ran
    assert _models(annot) == {}
