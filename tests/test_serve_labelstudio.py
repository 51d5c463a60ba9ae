"""`annot serve` connected to a real Label Studio (the `label_studio` fixture
starts the one `make test` installs): a project with a brush + smart-tools
config and an uploaded image, the backend connected through the SDK's ML API
with a personal access token, then (a) retrieved predictions land on the task
with the project's tag names and the backend's model version, (b) an
interactive click comes back as a mask, (c) "train" reaches the backend and
creates a training run, (d) deleting an annotation reaches /webhook as
ANNOTATIONS_DELETED, (e) the uploaded image was fetched with the token."""

from __future__ import annotations

import io
import sqlite3
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")
import httpx  # noqa: E402
from label_studio_sdk import LabelStudio  # noqa: E402
from live_server import LiveServer  # noqa: E402
from PIL import Image  # noqa: E402
from tiny_models import save_checkpoint, scene  # noqa: E402

from annot.converters.labelstudio_rle import rle_to_mask  # noqa: E402
from annot.serve.app import create_app  # noqa: E402
from annot.serve.config import ServeConfig  # noqa: E402

CONFIG = """<View><Image name="image" value="$image"/>
<BrushLabels name="tag" toName="image"><Label value="square"/><Label value="disc"/></BrushLabels>
<KeyPointLabels name="click" toName="image" smart="true"><Label value="square"/></KeyPointLabels>
<RectangleLabels name="box" toName="image" smart="true"><Label value="square"/></RectangleLabels></View>"""


def _wait(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _rows(db, sql):
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def test_label_studio_drives_the_backend(label_studio, tmp_path, tiny_maskrcnn):
    url, legacy = label_studio
    ls = LabelStudio(base_url=url, api_key=legacy)
    # Label Studio 1.23 hands out personal access tokens: the backend gets one, not the legacy token
    r = httpx.post(f"{url}/api/token/", headers={"Authorization": f"Token {legacy}"})
    if r.status_code == 400:  # the session already made one: a new one replaces it
        httpx.post(f"{url}/api/token/rotate/", headers={"Authorization": f"Token {legacy}"})
        r = httpx.post(f"{url}/api/token/", headers={"Authorization": f"Token {legacy}"})
    assert r.status_code == 201, r.text
    pat = r.json()["token"]
    # what `annot serve` checks at start-up, against the real server
    from annot.serve.labelstudio import LabelStudioClient

    assert LabelStudioClient(url, pat).check_access() is None
    assert LabelStudioClient(url, legacy).check_access() is None
    assert "refused LABEL_STUDIO_API_KEY (HTTP 401)" in LabelStudioClient(url, "wrongtoken123").check_access()
    assert "needs a token: LABEL_STUDIO_API_KEY is not set (HTTP 401)" in LabelStudioClient(url, None).check_access()
    problem = LabelStudioClient(f"{url}/projects/1/data", pat).check_access()  # a URL copied from the browser
    assert problem.startswith(f"no Label Studio API at LABEL_STUDIO_URL {url}/projects/1/data/"), problem

    save_checkpoint(tiny_maskrcnn, tmp_path / "m.pt")
    db = tmp_path / "annot.db"
    config = ServeConfig(model="maskrcnn", checkpoint=str(tmp_path / "m.pt"), score_threshold=0.2, device="cpu",
                         db_url=f"sqlite:///{db}", store_path=str(tmp_path / "store"), labelstudio_url=url,
                         labelstudio_token=pat)
    with LiveServer(create_app(config)) as backend, httpx.Client(timeout=60) as client:
        backend.wait_ready(client)
        version = client.get(f"{backend.url}/health").json()["model_version"]

        project = ls.projects.create(title="annot serve", label_config=CONFIG)
        image, _ = scene(np.random.default_rng(5))
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        r = httpx.post(f"{url}/api/projects/{project.id}/import", headers={"Authorization": f"Token {legacy}"},
                       files={"file": ("scene.png", buf.getvalue(), "image/png")})
        assert r.status_code == 201, r.text
        (task,) = ls.tasks.list(project=project.id)
        assert task.data["image"].startswith("/data/upload/")

        ml = ls.ml.create(project=project.id, url=backend.url, is_interactive=True, title="annot")
        # (a) Data Manager's "Retrieve predictions"
        ls.actions.create(id="retrieve_tasks_predictions", project=project.id,
                          selected_items={"all": False, "included": [task.id]})
        preds = _wait(lambda: [p if isinstance(p, dict) else p.dict()
                               for p in ls.predictions.list(task=task.id)], "predictions")
        (pred,) = preds
        assert pred["model_version"] == version and pred["result"]
        assert {(g["from_name"], g["to_name"], g["type"]) for g in pred["result"]} == {("tag", "image",
                                                                                         "brushlabels")}
        # (e) the image came from Label Studio with the token: the backend's cache holds it, by content
        assert backend.backend.images.downloads == 1
        # (b) an interactive click
        click = {"id": "c1", "type": "keypointlabels", "from_name": "click", "to_name": "image",
                 "original_width": 96, "original_height": 96, "is_positive": True,
                 "value": {"x": 50, "y": 50, "width": 1, "keypointlabels": ["square"]}}
        r = ls.ml.with_raw_response.predict_interactive(ml.id, task=task.id, context={"result": [click]})
        answer = r.data if isinstance(r.data, dict) else r.response.json()
        (region,) = answer["data"]["result"]
        assert (region["from_name"], region["type"]) == ("tag", "brushlabels")
        assert rle_to_mask(region["value"]["rle"], 96, 96).any()
        assert backend.backend.images.downloads == 1  # the same image: not fetched again
        # (c) Start Training
        ls.ml.train(ml.id)
        runs = _wait(lambda: _rows(db, "SELECT scope, trigger, status FROM training_runs"), "a training run")
        assert runs[0][:2] == (f"labelstudio:{project.id}", "webhook")
        # (d) an annotation made, then deleted: both reach /webhook
        ann = ls.annotations.create(id=task.id, result=[{**pred["result"][0], "id": "a1"}])
        _wait(lambda: _rows(db, "SELECT action FROM annotation_events WHERE action = 'ANNOTATION_CREATED'"),
              "ANNOTATION_CREATED")
        ls.annotations.delete(id=ann.id)
        deleted = _wait(lambda: _rows(db, "SELECT scope, annotation_id FROM annotation_events "
                                          "WHERE action = 'ANNOTATIONS_DELETED'"), "ANNOTATIONS_DELETED")
        assert deleted == [(f"labelstudio:{project.id}", ann.id)]
