"""``annot rank`` end to end, on a Mask R-CNN trained inside the test session.

The truth a ranking is checked against: the predictor itself, run on each
image outside the command, and the store's own rows.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from tiny_models import CLASSES, save_checkpoint, scene  # noqa: E402

from annot.active_learning.aggregate import aggregate  # noqa: E402
from annot.active_learning.scores import detection_scores  # noqa: E402


def write_pool(folder, n, seed):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        image, target = scene(rng)
        path = folder / f"img{seed}_{k:02d}.png"
        Image.fromarray(image).save(path)
        out.append((path, target))
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_maskrcnn):
    root = tmp_path_factory.mktemp("rank")
    ckpt = root / "tiny.pt"
    save_checkpoint(tiny_maskrcnn, ckpt)
    images = root / "images"
    labelled = write_pool(images, 4, seed=11)
    pool = write_pool(images, 6, seed=12)
    # a near-duplicate of a pool image: the same picture, re-encoded as JPEG
    Image.open(pool[0][0]).convert("RGB").save(images / "copy_of_first.jpg", quality=90)
    coco = {"images": [], "annotations": [], "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CLASSES)]}
    for i, (path, target) in enumerate(labelled, start=1):
        coco["images"].append({"id": i, "file_name": path.name, "width": 96, "height": 96})
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            x0, y0, x1, y1 = box
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i, "category_id": label,
                                        "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                                        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                                        "iscrowd": 0})
    (root / "labelled.json").write_text(json.dumps(coco))
    return root, ckpt, images, [p for p, _ in labelled], [p for p, _ in pool]


def independent_scores(ckpt, paths, threshold=0.05, agg="max"):
    """Per image name: (aggregated scores, detections), from the predictor run here."""
    from annot.plugins.images import load_rgb
    from annot.plugins.maskrcnn import MaskRCNNPredictor

    p = MaskRCNNPredictor()
    p.load(checkpoint=ckpt, device="cpu", score_threshold=threshold)
    out = {}
    for path in paths:
        d = p.predict([load_rgb(path)])[0]
        out[path.name] = {k: aggregate(v, agg) for k, v in detection_scores(d).items()}, len(d)
    return out


def test_rank_by_uncertainty_matches_the_model_image_by_image(annot, project, tmp_path):
    root, ckpt, images, labelled, pool = project
    out = tmp_path / "ranking.json"
    res = annot("rank", *pool, "--model", "maskrcnn", "--checkpoint", ckpt, "--budget", 3, "--strategy",
                "uncertainty", "--score", "margin", "-o", out)
    assert res.code == 0, res
    rows = json.loads(out.read_text())
    assert [r["rank"] for r in rows] == list(range(1, len(pool) + 1))
    assert [r["selected"] for r in rows] == [True] * 3 + [False] * (len(pool) - 3)
    truth = independent_scores(ckpt, pool)
    for r in rows:
        comps, n = truth[r["image"]]
        assert r["detections"] == n
        assert r["score"] == pytest.approx(comps["margin"], abs=1e-5)
        assert r["components"]["mask"] == pytest.approx(comps["mask"], abs=1e-5)
    # the picked three are the most uncertain: none left behind scores higher
    assert min(r["score"] for r in rows[:3]) >= max(r["score"] for r in rows[3:])
    assert [r["score"] for r in rows[3:]] == sorted((r["score"] for r in rows[3:]), reverse=True)
    assert all(r["why"].startswith("uncertainty") for r in rows[:3]) and rows[3]["why"] == ""
    top = rows[0]
    assert top["regions"] and top["regions"][0]["scores"]["margin"] == pytest.approx(top["score"], abs=1e-4)
    assert "3 image(s) to label next" in res.out


def test_rank_csv_and_refusals(annot, project, tmp_path):
    root, ckpt, images, labelled, pool = project
    out = tmp_path / "ranking.csv"
    res = annot("rank", *pool[:4], "--model", "maskrcnn", "--checkpoint", ckpt, "--budget", 2, "--strategy", "diversity",
                "-o", out, "-q", "--report", tmp_path / "report", "--score-threshold", 0.25, "--push-threshold", 0.0)
    assert res.code == 0, res
    rows = list(csv.DictReader(out.open()))
    # the report: one picture per picked image, the image's own pixels under the tinted masks
    page = (tmp_path / "report" / "index.html").read_text()
    picked = sorted((tmp_path / "report" / "picked").glob("*.png"))
    assert [p.name for p in picked] == ["001.png", "002.png"] and 'src="picked/001.png"' in page
    first = next(r for r in rows if r["rank"] == "1")
    assert html.escape(first["why"]) in page
    shown = np.asarray(Image.open(picked[0]))
    original = np.asarray(Image.open(first["path"]).convert("RGB"))
    assert shown.shape == original.shape and (shown != original).any()
    assert Image.open(tmp_path / "report" / "contact_sheet.png").size[0] > 200
    assert len(rows) == 4 and sum(r["selected"] == "True" for r in rows) == 2
    assert {"margin", "entropy", "mask", "combined"} <= set(rows[0])
    # every image joins its nearest picked image; a picked one heads its own cluster
    assert {r["cluster"] for r in rows} <= {"1", "2"}
    assert [r["cluster"] for r in rows[:2]] == ["1", "2"]
    again = annot("rank", *pool[:4], "--model", "maskrcnn", "--checkpoint", ckpt, "--budget", 2, "-o", out)
    assert again.code != 0 and "--overwrite" in again.err
    bad = annot("rank", *pool[:2], "--model", "maskrcnn", "--checkpoint", ckpt, "--budget", 1, "--strategy", "random",
                "--balance", "-o", tmp_path / "x.json")
    assert bad.code != 0 and "--balance" in bad.err
    nothing = annot("rank", "--model", "maskrcnn", "--checkpoint", ckpt, "--budget", 1, "-o", tmp_path / "y.json")
    assert nothing.code != 0 and "no pool" in nothing.err
    txt = annot("rank", *pool[:1], "--model", "maskrcnn", "--checkpoint", ckpt, "--budget", 1, "-o", tmp_path / "r.txt")
    assert txt.code != 0 and ".csv" in txt.err and not (tmp_path / "r.txt").exists()
    # a broken file is named, skipped, and the others still ranked
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (mixed / "good.png").write_bytes(pool[0].read_bytes())
    res = annot("rank", mixed, "--model", "maskrcnn", "--checkpoint", ckpt, "--budget", 1, "--score-threshold", 0.25,
                "-o", tmp_path / "mixed.json")
    assert res.code == 0, res
    assert "broken.png" in res.err and "1 unreadable or failed" in res.out
    assert [r["image"] for r in json.loads((tmp_path / "mixed.json").read_text())] == ["good.png"]


def test_rank_a_dataset_pool_from_the_store(annot, project, tmp_path, monkeypatch):
    root, ckpt, images, labelled, pool = project
    monkeypatch.setenv("ANNOT_DB", f"sqlite:///{tmp_path / 'annot.db'}")
    monkeypatch.setenv("ANNOT_STORE", str(tmp_path / "store"))
    assert annot("dataset", "import", "shapes", root / "labelled.json", "--image-root", images, "-j", 1).code == 0
    assert annot("models", "register", "maskrcnn", "--checkpoint", ckpt, "--dataset", "shapes@1").code == 0
    out = tmp_path / "ranking.json"
    res = annot("rank", "--model", "maskrcnn@1", "--dataset", "shapes", "--unlabelled", "--budget", 4, "--strategy",
                "hybrid", "--seed", 3, "--score-threshold", 0.25, "-o", out)
    assert res.code == 0, res
    rows = json.loads(out.read_text())
    names = {r["image"] for r in rows}
    assert names == {p.name for p in pool} | {"copy_of_first.jpg"}  # the labelled images are not in the pool
    assert "4 already labelled left out" in res.out
    picked = [r["image"] for r in rows if r["selected"]]
    assert len(picked) == 4 and not {pool[0].name, "copy_of_first.jpg"} <= set(picked)  # never both duplicates
    assert all(r["model_version"] == "maskrcnn-v1" for r in rows)

    from sqlalchemy import select as sql

    from annot.db.schema import Image as ImageRow
    from annot.db.schema import Score
    from annot.db.session import open_store

    store = open_store()
    with store.transaction() as s:
        stored = {(sha, name): v for sha, name, v in
                  s.execute(sql(ImageRow.path, Score.name, Score.value).join(ImageRow, ImageRow.id == Score.image_id))}
    by_path = {str(Path(r["path"]).resolve()): r for r in rows}
    assert len(stored) == len(rows) * len(rows[0]["components"])
    for (path, name), value in stored.items():
        component, agg = name.split(":")
        assert agg == "max" and value == pytest.approx(by_path[path]["components"][component],
                                                       abs=1e-6)
    # the same model and seed give the same ranking
    again = annot("rank", "--model", "maskrcnn@1", "--dataset", "shapes", "--unlabelled", "--budget", 4, "--strategy",
                  "hybrid", "--seed", 3, "--score-threshold", 0.25, "-o", tmp_path / "again.json", "-q")
    assert again.code == 0 and [r["image"] for r in json.loads((tmp_path / "again.json").read_text())] == \
        [r["image"] for r in rows]


def test_push_to_label_studio_orders_its_uncertainty_queue(annot, project, tmp_path, monkeypatch, label_studio):
    """The ranking written into the real Label Studio: every task gets the model's
    regions, score 1 - uncertainty and its cluster, and Label Studio's own
    uncertainty-sampling queue then serves the most uncertain image first."""
    httpx = pytest.importorskip("httpx")
    from label_studio_sdk.client import LabelStudio

    root, ckpt, images, labelled, pool = project
    url, token = label_studio
    ls = LabelStudio(base_url=url, api_key=token)
    config = ('<View><Image name="image" value="$image"/><PolygonLabels name="label" toName="image">'
              '<Label value="square"/><Label value="disc"/></PolygonLabels></View>')
    proj = ls.projects.create(title="annot rank push", label_config=config)
    for path in pool[:4]:
        r = httpx.post(f"{url}/api/projects/{proj.id}/import", headers={"Authorization": f"Token {token}"},
                       files={"file": (path.name, path.read_bytes(), "image/png")})
        assert r.status_code == 201, r.text
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    out = tmp_path / "ranking.json"
    res = annot("rank", *pool[:4], images / "copy_of_first.jpg", "--model", "maskrcnn", "--checkpoint", ckpt,
                "--budget", 2, "--strategy", "hybrid", "--push-labelstudio", url, "--project", proj.id,
                "--score-threshold", 0.25, "--push-threshold", 0.0, "-o", out)
    assert res.code == 0, res
    assert "4 prediction(s) written" in res.out and "1 ranked image(s) match no task" in res.err
    assert "Uncertainty sampling" in res.err  # the project still samples in sequence: the user is told
    rows = {r["image"]: r for r in json.loads(out.read_text())}
    version = rows[pool[0].name]["model_version"]
    tasks = [t.model_dump(mode="json") for t in ls.tasks.list(project=proj.id, fields="all")]
    assert len(tasks) == 4
    for t in tasks:
        (pred,) = t["predictions"]
        row = next(r for name, r in rows.items() if t["data"]["image"].endswith(name))
        assert pred["model_version"] == version
        assert pred["score"] == pytest.approx(1 - row["score"], abs=1e-6)
        assert pred["cluster"] == row["cluster"]
        assert pred["result"] and {v["value"]["polygonlabels"][0] for v in pred["result"]} <= {"square", "disc"}
    assert ls.projects.get(id=proj.id).model_version == version

    ls.projects.update(id=proj.id, sampling="Uncertainty sampling")
    nxt = httpx.get(f"{url}/api/projects/{proj.id}/next/", headers={"Authorization": f"Token {token}"})
    assert nxt.status_code == 200, nxt.text
    served = next(r for name, r in rows.items() if nxt.json()["data"]["image"].endswith(name))
    assert served["score"] == max(r["score"] for r in rows.values() if r["image"] != "copy_of_first.jpg")


def test_tasks_match_ranked_images_by_local_files_path_upload_and_bare_name():
    """Tasks made by `annot predict` point at /data/local-files/?d=data/images/NAME; uploads carry
    Label Studio's /data/upload/P/HASH- prefix; a ranking of a folder names images relative to it."""
    from annot.active_learning.labelstudio_push import match_tasks

    tasks = [{"id": 1, "data": {"image": "/data/local-files/?d=data/images/a.png"}},
             {"id": 2, "data": {"image": "/data/upload/3/0f1e2d3c-b.png"}},
             {"id": 3, "data": {"image": "/data/local-files/?d=other/c.png"}},
             {"id": 4, "data": {"image": "/data/local-files/?d=more/c.png"}}]
    matched, unmatched, ambiguous = match_tasks(tasks, ["a.png", "b.png", "other/c.png", "c.png", "d.png"])
    assert matched == {"a.png": 1, "b.png": 2, "other/c.png": 3}
    assert unmatched == ["d.png"] and ambiguous == ["c.png"]


def test_a_push_that_matches_no_task_is_an_error():
    from annot.active_learning.cli import _push_summary
    from annot.active_learning.labelstudio_push import PushResult
    from annot.errors import AnnotError

    with pytest.raises(AnnotError, match="none of the 2 ranked images matches a task's image"):
        _push_summary(PushResult(pushed=0, unmatched=["a.png", "b.png"]), "http://ls", 1, "m-v1")


# -- Monte Carlo dropout -----------------------------------------------------------------

def mc_predictor(ckpt, samples):
    from annot.plugins.maskrcnn import MaskRCNNPredictor

    p = MaskRCNNPredictor()
    p.load(checkpoint=ckpt, device="cpu", score_threshold=0.05, mc_samples=samples)
    return p


def test_mc_dropout_without_dropout_matches_every_detection_to_itself(project, monkeypatch):
    """At dropout rate 0 every pass is the deterministic one: each detection's partner is itself (mask IoU 1,
    the same distribution), so the matching and pasting are checked against a known answer."""
    from annot.detections import CLASS_PROBS, MC_CLASS_PROBS, MC_IOU
    from annot.plugins import maskrcnn
    from annot.plugins.images import load_rgb

    monkeypatch.setattr(maskrcnn, "MC_DROPOUT_RATE", 0.0)
    root, ckpt, images, labelled, pool = project
    d = mc_predictor(ckpt, 3).predict([load_rgb(pool[1])])[0]
    assert len(d) > 0
    assert d.data[MC_IOU].shape == (len(d), 3)
    assert np.allclose(d.data[MC_IOU], 1.0)
    assert np.allclose(d.data[MC_CLASS_PROBS], d.data[CLASS_PROBS][:, None, :], atol=1e-6)
    assert np.allclose(detection_scores(d)["mc"], 0.0, atol=1e-6)


def test_mc_dropout_is_seeded_per_image_and_leaves_the_model_alone(project):
    import torch

    from annot.detections import CLASS_PROBS, MC_CLASS_PROBS, MC_IOU
    from annot.plugins.images import load_rgb

    root, ckpt, images, labelled, pool = project
    p = mc_predictor(ckpt, 4)
    before = {k: v.clone() for k, v in p.model.state_dict().items()}
    imgs = [load_rgb(path) for path in pool[:3]]
    alone = [p.predict([im])[0] for im in imgs]
    batch = p.predict(imgs)
    assert not p.model.training
    assert all(torch.equal(before[k], v) for k, v in p.model.state_dict().items())
    moved = 0
    for a, b in zip(alone, batch):
        assert np.allclose(a.data[MC_IOU], b.data[MC_IOU], atol=1e-5)
        iou = a.data[MC_IOU]
        assert ((iou == 0) | (iou > 0.5)).all()
        moved += int((np.abs(a.data[MC_CLASS_PROBS] - a.data[CLASS_PROBS][:, None, :]).max(axis=2) > 1e-3).sum())
    assert moved > 0  # the dropout does change what the box head says


def test_rank_by_mc_dropout_matches_the_predictor(annot, project, tmp_path):
    root, ckpt, images, labelled, pool = project
    from annot.plugins.images import load_rgb

    out = tmp_path / "mc.json"
    res = annot("rank", *pool, "--model", "maskrcnn", "--checkpoint", ckpt, "--budget", 2, "--strategy",
                "uncertainty", "--score", "mc", "--mc-samples", 4, "-o", out)
    assert res.code == 0, res
    rows = {r["image"]: r for r in json.loads(out.read_text())}
    p = mc_predictor(ckpt, 4)
    for path in pool:
        d = p.predict([load_rgb(path)])[0]
        assert rows[path.name]["score"] == pytest.approx(aggregate(detection_scores(d)["mc"], "max"), abs=1e-5)
    refused = annot("rank", *pool, "--model", "maskrcnn", "--checkpoint", ckpt, "--budget", 2, "--score", "mc",
                    "-o", tmp_path / "x.json")
    assert refused.code == 2 and "--mc-samples" in refused.err
