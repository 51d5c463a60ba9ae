"""`annot serve`, the Label Studio ML backend, through HTTP: every endpoint,
counts and shapes checked against the predictor called directly, auth, the
token-host rule, path traversal, malformed and oversized bodies, health
while a slow prediction runs, retrain triggers, and a bounded load test.
The integration with a real Label Studio is in test_serve_labelstudio.py."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")
import httpx  # noqa: E402
from live_server import LiveServer  # noqa: E402
from PIL import Image  # noqa: E402
from tiny_models import save_checkpoint, scene  # noqa: E402

from annot.converters.labelstudio_rle import rle_to_mask  # noqa: E402
from annot.serve.app import create_app  # noqa: E402
from annot.serve.config import ServeConfig  # noqa: E402
from annot.serve.labelstudio import LabelStudioClient  # noqa: E402

BRUSH = """<View><Image name="image" value="$image"/>
<BrushLabels name="tag" toName="image"><Label value="Square"/><Label value="round" predicted_values="disc"/></BrushLabels>
<KeyPointLabels name="kp" toName="image" smart="true"><Label value="Square"/></KeyPointLabels>
<RectangleLabels name="rect" toName="image" smart="true"><Label value="Square"/></RectangleLabels></View>"""
POLYGON = """<View><Image name="img" value="$picture"/>
<PolygonLabels name="outline" toName="img"><Label value="square"/><Label value="disc"/></PolygonLabels>
<KeyPointLabels name="kp" toName="img" smart="true"><Label value="square"/></KeyPointLabels></View>"""


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


@pytest.fixture(scope="module")
def scenes():
    rng = np.random.default_rng(21)
    return [scene(rng)[0] for _ in range(3)]


@pytest.fixture(scope="module")
def detector_server(tmp_path_factory, tiny_maskrcnn):
    root = tmp_path_factory.mktemp("serve")
    save_checkpoint(tiny_maskrcnn, root / "m.pt")
    config = ServeConfig(model="maskrcnn", checkpoint=str(root / "m.pt"), score_threshold=0.2, device="cpu",
                         db_url=f"sqlite:///{root / 'annot.db'}", store_path=str(root / "store"),
                         max_body=1 << 20)
    with LiveServer(create_app(config)) as server, httpx.Client(timeout=60) as client:
        server.wait_ready(client)
        server.checkpoint, server.client = root / "m.pt", client
        yield server


def _predict(server, tasks, config=BRUSH, context=None, **kw):
    body = {"tasks": tasks, "project": "1.1700000000", "label_config": config, "params": {"context": context}}
    return server.client.post(f"{server.url}/predict", json=body, **kw)


def test_health_setup_and_versions(detector_server):
    s = detector_server
    h = s.client.get(f"{s.url}/health")
    assert h.status_code == 200 and h.json()["status"] == "UP" and h.json()["model_class"] == "annot.maskrcnn"
    assert s.client.get(f"{s.url}/").json() == h.json()
    version = h.json()["model_version"]
    assert version.startswith("maskrcnn-")
    r = s.client.post(f"{s.url}/setup", json={"project": "1.1700000000", "schema": BRUSH, "hostname": "x",
                                               "access_token": "t", "extra_params": None})
    assert r.status_code == 200 and r.json() == {"model_version": version}
    cats = BRUSH.replace("Square", "Dog").replace('"round" predicted_values="disc"', '"Cat"')
    r = s.client.post(f"{s.url}/setup", json={"project": "1.1", "schema": cats})
    assert r.status_code == 400 and "predicts square, disc" in r.json()["error"]
    assert s.client.get(f"{s.url}/versions").json() == {"versions": []}  # not a store model


def test_predictions_are_the_models_masks_one_per_task_in_order(detector_server, scenes, annot, tmp_path):
    """Classes map to config labels case-insensitively and through predicted_values;
    each task's score is 1 - the uncertainty `annot rank` gives the same image."""
    from annot.plugins.maskrcnn import MaskRCNNPredictor

    s = detector_server
    for k, im in enumerate(scenes):
        Image.fromarray(im).save(tmp_path / f"scene{k}.png")
    ranked = annot("rank", tmp_path, "--model", "maskrcnn", "--checkpoint", s.checkpoint, "--budget", 1,
                   "--strategy", "uncertainty", "-o", tmp_path / "rank.json", "-q")
    assert ranked.code == 0, ranked
    uncertainty = {r["image"]: r["score"] for r in json.loads((tmp_path / "rank.json").read_text())}
    direct = MaskRCNNPredictor()
    direct.load(checkpoint=s.checkpoint, device="cpu", score_threshold=0.2)
    tasks = [{"id": 10 + k, "data": {"image": data_uri(im)}} for k, im in enumerate(scenes)]
    tasks.insert(1, {"id": 99, "data": {"image": "data:image/png;base64,bm90IGFuIGltYWdl"}})  # not an image
    r = _predict(s, tasks)
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == 4 and results[1] == {"result": [], "score": 0.0, "model_version": results[0]["model_version"]}
    for k, (res, image) in enumerate(zip([results[0], *results[2:]], scenes)):
        (det,) = direct.predict([image])
        det = det[det.mask.any((1, 2))]
        regions = res["result"]
        assert len(regions) == len(det) > 0
        assert res["score"] == pytest.approx(1 - uncertainty[f"scene{k}.png"], abs=1e-5)
        for region, label, mask, score in zip(regions, det.labels, det.mask, det.confidence):
            assert (region["from_name"], region["to_name"], region["type"]) == ("tag", "image", "brushlabels")
            assert region["value"]["brushlabels"] == [{"square": "Square", "disc": "round"}[label]]
            assert np.array_equal(rle_to_mask(region["value"]["rle"], 96, 96), mask)
            assert region["score"] == pytest.approx(score, abs=1e-6)
    # a polygon project gets traced outlines, on its own tag names and data key
    r = _predict(s, [{"id": 1, "data": {"picture": data_uri(scenes[0])}}], config=POLYGON)
    (res,) = r.json()["results"]
    assert {(g["type"], g["from_name"], g["to_name"]) for g in res["result"]} == {("polygonlabels", "outline", "img")}


def test_interactive_clicks_and_boxes_with_grabcut(detector_server):
    s = detector_server
    image = np.full((80, 100, 3), 128, np.uint8)
    yy, xx = np.mgrid[:80, :100]
    disc = (yy - 40) ** 2 + (xx - 50) ** 2 <= 15**2
    image[disc] = (220, 30, 30)
    task = {"id": 5, "data": {"image": data_uri(image)}}
    box = {"id": "b1", "type": "rectanglelabels", "original_width": 100, "original_height": 80,
           "value": {"x": 30, "y": 25, "width": 40, "height": 50, "rectanglelabels": ["square"]}}
    r = _predict(s, [task], context={"result": [box]})
    assert r.status_code == 200
    (res,) = r.json()["results"]
    (region,) = res["result"]
    assert (region["type"], region["from_name"], region["value"]["brushlabels"]) == ("brushlabels", "tag", ["Square"])
    mask = rle_to_mask(region["value"]["rle"], 80, 100)
    assert (mask & disc).sum() / (mask | disc).sum() > 0.9
    assert res["model_version"].startswith("grabcut-")
    click = {"id": "k1", "type": "keypointlabels", "original_width": 100, "original_height": 80, "is_positive": True,
             "value": {"x": 50, "y": 50, "width": 1, "keypointlabels": ["Square"]}}
    r = _predict(s, [task], context={"result": [click]})
    assert r.status_code == 200 and len(r.json()["results"][0]["result"]) == 1
    r = _predict(s, [task], context={"result": [{"type": "choices", "value": {}}]})
    assert r.status_code == 400 and "no keypoint or rectangle" in r.json()["error"]
    r = _predict(s, [task, task], context={"result": [click]})
    assert r.status_code == 400 and "one task" in r.json()["error"]


def test_later_clicks_refine_the_previous_mask(detector_server, monkeypatch):
    from annot.plugins.grabcut import GrabCutPredictor

    s = detector_server
    seen = []
    original = GrabCutPredictor.segment
    monkeypatch.setattr(GrabCutPredictor, "segment", lambda self, im, p: seen.append(p) or original(self, im, p))
    image = np.random.default_rng(3).integers(0, 255, (60, 70, 3), dtype=np.uint8)
    task = {"id": 77, "data": {"image": data_uri(image)}}

    def click(k, positive=True):
        return {"id": f"k{k}", "type": "keypointlabels", "original_width": 70, "original_height": 60,
                "is_positive": positive, "value": {"x": 30 + 5 * k, "y": 40, "keypointlabels": ["Square"]}}

    assert _predict(s, [task], context={"result": [click(0)]}).status_code == 200
    assert _predict(s, [task], context={"result": [click(0), click(1, False)]}).status_code == 200
    assert seen[0].mask is None and seen[1].mask is not None and seen[1].negative
    other = {"id": 78, "data": {"image": data_uri(image[::-1].copy())}}
    assert _predict(s, [other], context={"result": [click(0), click(1)]}).status_code == 200
    assert seen[2].mask is None  # another task: starts over


def test_health_answers_at_once_while_a_slow_prediction_runs(detector_server, scenes, monkeypatch):
    s = detector_server
    predictor = s.backend.models.detector.predictor
    original = predictor.predict
    monkeypatch.setattr(predictor, "predict", lambda images, prompts=None: time.sleep(3) or original(images))
    done = threading.Event()
    threading.Thread(target=lambda: (_predict(s, [{"id": 1, "data": {"image": data_uri(scenes[0])}}]),
                                     done.set()), daemon=True).start()
    time.sleep(0.5)
    times = []
    while not done.is_set():
        t = time.perf_counter()
        assert s.client.get(f"{s.url}/health").status_code == 200
        times.append(time.perf_counter() - t)
        time.sleep(0.1)
    assert len(times) >= 10 and max(times) < 1.0


def test_bad_requests_get_json_errors(detector_server, monkeypatch):
    s = detector_server
    r = s.client.post(f"{s.url}/predict", content=b'{"tasks": [', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("malformed JSON")
    r = s.client.post(f"{s.url}/predict", content=b"[1, 2]")
    assert r.status_code == 400 and "JSON object" in r.json()["error"]
    r = s.client.post(f"{s.url}/predict", json={"label_config": BRUSH})
    assert r.status_code == 400 and "'tasks'" in r.json()["error"]
    big = b'{"tasks": [], "pad": "' + b"x" * (2 << 20) + b'"}'
    r = s.client.post(f"{s.url}/predict", content=big)
    assert r.status_code == 413 and "over" in r.json()["error"]

    def chunks():  # no Content-Length: counted while it arrives
        yield b'{"tasks": [], "pad": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    r = s.client.post(f"{s.url}/predict", content=chunks())
    assert r.status_code == 413
    r = s.client.get(f"{s.url}/nothing-here")
    assert r.status_code == 404 and r.json() == {"error": "GET /nothing-here: Not Found"}
    assert r.headers["x-request-id"]
    r = s.client.get(f"{s.url}/predict")
    assert r.status_code == 405 and r.json() == {"error": "GET /predict: Method Not Allowed"}


def test_refused_requests_are_logged_with_their_reason(tmp_path, caplog):
    """Label Studio shows only "4xx Client Error" for them: the reason must be in the backend's log."""
    from fastapi.testclient import TestClient

    app = create_app(ServeConfig(model=None, basic_auth=("ls", "pw"), db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    with caplog.at_level("WARNING", logger="annot.serve"), TestClient(app) as c:
        c.post("/predict", content=b"{", auth=("ls", "pw"), headers={"x-request-id": "r1"})
        c.post("/setup", json={"schema": "<View><Image name='i' value='$i'/></View>"}, auth=("ls", "pw"),
               headers={"x-request-id": "r2"})
        c.post("/webhook", json={"action": "ANNOTATION_CREATED"}, headers={"x-request-id": "r3"})
    refused = {r.request_id: (r.status, r.reason) for r in caplog.records if r.getMessage() == "request refused"}
    assert refused["r1"][0] == 400 and refused["r1"][1].startswith("malformed JSON")
    assert refused["r2"][0] == 400 and "BrushLabels" in refused["r2"][1]  # what the backend can fill
    assert refused["r3"][0] == 401 and "Settings > Webhooks" in refused["r3"][1]


def test_unexpected_errors_are_json_without_internals(tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(ServeConfig(model=None, db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    backend = app.app.state.backend
    backend.setup = lambda body: (_ for _ in ()).throw(RuntimeError("secret internals"))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/setup", json={"schema": BRUSH}, headers={"x-request-id": "abc123"})
    assert r.status_code == 500 and r.json() == {"error": "internal error", "request_id": "abc123"}
    assert "secret" not in r.text and r.headers["x-request-id"] == "abc123"


def test_basic_auth_on_everything_but_health(tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(ServeConfig(model=None, basic_auth=("ls", "s3cret"), db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        for method, path in (("get", "/"), ("post", "/setup"), ("post", "/predict"), ("post", "/webhook"),
                             ("post", "/train"), ("get", "/versions")):
            r = getattr(c, method)(path)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic"), path
            assert getattr(c, method)(path, auth=("ls", "wrong")).status_code == 401
        assert c.get("/", auth=("ls", "s3cret")).status_code == 200
        assert c.post("/setup", json={"schema": BRUSH}, auth=("ls", "s3cret")).status_code == 200


class _Recorder(BaseHTTPRequestHandler):
    """A local HTTP server standing for an image host; records the headers it got."""

    seen: list = []
    redirect_to: str | None = None

    def do_GET(self):
        type(self).seen.append((self.server.server_port, self.path, self.headers.get("Authorization")))
        if self.path.startswith("/jump") and type(self).redirect_to:
            self.send_response(302)
            self.send_header("Location", type(self).redirect_to)
            self.end_headers()
            return
        data = png_bytes(np.zeros((4, 5, 3), np.uint8))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def two_hosts():
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Recorder) for _ in range(2)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Recorder.seen = []
    yield [f"http://127.0.0.1:{srv.server_port}" for srv in servers]
    for srv in servers:
        srv.shutdown()


def test_the_token_goes_to_label_studio_only(two_hosts):
    ls, other = two_hosts
    client = LabelStudioClient(ls, "0123456789abcdef0123456789abcdef01234567")
    client.fetch(client.resolve("/data/upload/1/abc-a.png"))
    client.fetch(f"{other}/a.png")
    _Recorder.redirect_to = f"{other}/presigned.png"
    client.fetch(f"{ls}/jump")  # Label Studio redirects to a presigned URL elsewhere
    (ls_port, other_port) = (int(u.rsplit(":", 1)[1]) for u in two_hosts)
    got = [(port, path, auth) for port, path, auth in _Recorder.seen]
    assert got == [(ls_port, "/data/upload/1/abc-a.png", "Token 0123456789abcdef0123456789abcdef01234567"),
                   (other_port, "/a.png", None),
                   (ls_port, "/jump", "Token 0123456789abcdef0123456789abcdef01234567"),
                   (other_port, "/presigned.png", None)]
    assert client.owns(f"{ls}/x") and not client.owns(f"{other}/x") and not client.owns("https://127.0.0.1/x")
    # cloud storage goes through Label Studio's resolve endpoint, with the token; the URI travels base64-encoded
    client.fetch(client.storage_url("s3://bucket/dir/a b.png", 7))
    port, path, auth = _Recorder.seen[-1]
    assert (port, auth) == (ls_port, "Token 0123456789abcdef0123456789abcdef01234567")
    assert path.startswith("/tasks/7/resolve/?fileuri=")
    encoded = urllib.parse.unquote(path.split("fileuri=", 1)[1])
    assert base64.urlsafe_b64decode(encoded).decode() == "s3://bucket/dir/a b.png"


def test_images_are_fetched_once_and_revalidated(two_hosts):
    from annot.limits import Limits
    from annot.serve.images import ImageSource

    ls, _ = two_hosts
    source = ImageSource(LabelStudioClient(ls, None), None, Limits(1 << 30), fresh_s=0.2)
    a = source.get("/data/upload/1/x.png")
    b = source.get("/data/upload/1/x.png")
    assert a.key == b.key and a.pixels.shape == (4, 5, 3) and len(_Recorder.seen) == 1 and source.downloads == 1
    time.sleep(0.3)
    source.get("/data/upload/1/x.png")  # stale: asked again with its ETag
    assert len(_Recorder.seen) == 2


def test_local_files_stay_under_the_document_root(tmp_path):
    from fastapi.testclient import TestClient

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "ok").mkdir(parents=True)
    outside.mkdir()
    image = np.full((20, 30, 3), 90, np.uint8)
    Image.fromarray(image).save(root / "ok" / "a.png")
    Image.fromarray(image).save(outside / "secret.png")
    os.symlink(outside / "secret.png", root / "ok" / "link.png")
    app = create_app(ServeConfig(model=None, local_files_root=str(root), db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    click = {"type": "keypointlabels", "original_width": 30, "original_height": 20,
             "value": {"x": 50, "y": 50, "keypointlabels": ["Square"]}}
    with TestClient(app) as c:
        def ask(ref):
            return c.post("/predict", json={"tasks": [{"id": 1, "data": {"image": ref}}], "label_config": BRUSH,
                                            "params": {"context": {"result": [click]}}})

        assert ask("/data/local-files/?d=ok/a.png").status_code == 200
        for ref in ("/data/local-files/?d=../outside/secret.png", "/data/local-files/?d=ok/link.png",
                    "/data/local-files/?d=/etc/passwd", "/data/local-files/?d=ok%2F..%2F..%2Foutside%2Fsecret.png"):
            r = ask(ref)
            assert r.status_code == 422 and "leads outside" in r.json()["error"], ref


def test_memory_budget_for_one_task_is_a_422(tmp_path):
    from fastapi.testclient import TestClient

    big = np.zeros((600, 800, 3), np.uint8)
    app = create_app(ServeConfig(model=None, max_memory=1 << 20, db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    click = {"type": "keypointlabels", "original_width": 800, "original_height": 600,
             "value": {"x": 50, "y": 50, "keypointlabels": ["Square"]}}
    with TestClient(app) as c:
        r = c.post("/predict", json={"tasks": [{"id": 1, "data": {"image": data_uri(big)}}], "label_config": BRUSH,
                                     "params": {"context": {"result": [click]}}})
        assert r.status_code == 422 and "decoding a 800x600 image needs 2.7 MB, over the memory budget" in \
            r.json()["error"]
        assert c.get("/health").status_code == 200  # and the server goes on


def test_no_detector_still_serves_clicks_and_empty_predictions(tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(ServeConfig(model="maskrcnn", db_url=f"sqlite:///{tmp_path / 'none.db'}"))
    with TestClient(app) as c:
        deadline = time.monotonic() + 20
        while c.get("/health").json()["model_state"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        h = c.get("/health").json()
        assert h["model_state"] == "none" and h["model_version"].startswith("grabcut")
        r = c.post("/predict", json={"tasks": [{"id": k, "data": {"image": "x"}} for k in range(3)],
                                     "label_config": BRUSH})
        assert [x["result"] for x in r.json()["results"]] == [[], [], []]
        assert c.post("/setup", json={"schema": BRUSH}).json()["model_version"].startswith("grabcut")
        r = c.post("/setup", json={"schema": POLYGON.replace("KeyPointLabels", "Choices")})
        assert r.status_code == 400 and "smart" in r.json()["error"]


# -- training triggers ------------------------------------------------------------------------------------


SLOW_JOB = (sys.executable, "-c", "import sys, time; time.sleep(2); from annot.serve.retrain_job import main; "
                                  "main(sys.argv[1:])")


def _runs(db):
    import sqlite3

    with sqlite3.connect(db) as con:
        return con.execute("SELECT id, scope, status, params, error FROM training_runs ORDER BY id").fetchall()


def test_training_triggers_one_run_per_project_and_coalesce(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)

    db = tmp_path / "annot.db"
    app = create_app(ServeConfig(model=None, db_url=f"sqlite:///{db}", store_path=str(tmp_path / "s"),
                                 retrain_every=2, retrain_command=SLOW_JOB))
    with TestClient(app) as c:
        started = time.perf_counter()
        r = c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 4, "title": "p"}})
        assert r.status_code == 201 and r.json()["status"] == "started" and time.perf_counter() - started < 1.0
        assert c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 4}}).json()["status"] == "queued"
        assert c.post("/train", json={"project": "4.1700000000", "annotations": [{}, {}]}).json()["status"] \
            == "coalesced"
        assert c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 5}}).json()["status"] \
            == "started"  # another project: its own run
        event = {"action": "ANNOTATION_CREATED", "project": {"id": 6}, "annotation": {"id": 1, "task": 3}, "task": {}}
        assert c.post("/webhook", json=event).json() == {"status": "recorded", "changed_annotations": 1}
        event["annotation"]["id"] = 2
        assert c.post("/webhook", json={**event, "action": "ANNOTATION_UPDATED"}).json()["status"] == "started"
        r = c.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": 7},
                                     "annotations": [{"id": 11}, {"id": 12}]})
        assert r.json()["status"] == "started"  # two deleted annotations: two changes
        assert c.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 4}}).json()["status"] \
            == "ignored"
    deadline = time.monotonic() + 60
    while any(status in ("running", "queued") for _, _, status, _, _ in _runs(db)):
        assert time.monotonic() < deadline, _runs(db)
        time.sleep(0.2)
    runs = _runs(db)
    # the job is annot retrain; without Label Studio's URL each run fails, saying so
    assert [(scope, status) for _, scope, status, _, _ in runs] == [
        ("labelstudio:4", "failed"), ("labelstudio:4", "failed"), ("labelstudio:5", "failed"),
        ("labelstudio:6", "failed"), ("labelstudio:7", "failed")]
    assert json.loads(runs[1][3])["triggers"] == 2  # the queued run took the /train trigger too
    import sqlite3

    with sqlite3.connect(db) as con:
        logs = dict(con.execute("SELECT id, log_path FROM training_runs").fetchall())
    assert logs[runs[1][0]] == logs[runs[0][0]]  # the follow-up ran in the first run's job
    text = Path(logs[runs[0][0]]).read_text()
    assert f"run {runs[0][0]}: failed: LABEL_STUDIO_URL is not set" in text and f"run {runs[1][0]}:" in text
    assert json.loads(runs[3][3])["changed_annotations"] == 2
    assert json.loads(runs[0][3])["dataset"] == "labelstudio-4" and json.loads(runs[0][3])["min_new"] == 20
    assert all("LABEL_STUDIO_URL is not set" in error for *_, error in runs)


def test_versions_and_setup_follow_the_store(tmp_path, annot, monkeypatch, toy_predictor):
    """/versions lists the store's ready versions; /setup reports the promoted
    one and the server reloads when it changes (in the background)."""
    from fastapi.testclient import TestClient

    monkeypatch.setenv("ANNOT_DB", f"sqlite:///{tmp_path / 'annot.db'}")
    monkeypatch.setenv("ANNOT_STORE", str(tmp_path / "store"))
    for k in (1, 2):
        assert annot("models", "register", "peds", "--predictor", "toy", "--checkpoint",
                     toy_predictor(tmp_path / f"w{k}.pt", k)).code == 0
    assert annot("models", "promote", "peds@1").code == 0
    app = create_app(ServeConfig(model="peds", db_url=f"sqlite:///{tmp_path / 'annot.db'}",
                                 store_path=str(tmp_path / "store")))
    toy_cfg = BRUSH.replace("Square", "a")
    with TestClient(app) as c:
        deadline = time.monotonic() + 20
        while c.get("/health").json()["model_state"] != "ready":
            assert time.monotonic() < deadline, c.get("/health").json()
            time.sleep(0.05)
        assert c.get("/versions").json() == {"versions": ["peds-v1", "peds-v2"]}
        assert c.post("/setup", json={"schema": toy_cfg}).json() == {"model_version": "peds-v1"}
        assert annot("models", "promote", "peds@2").code == 0
        assert c.post("/setup", json={"schema": toy_cfg}).json() == {"model_version": "peds-v2"}
        while c.get("/health").json()["model_version"] != "peds-v2":
            assert time.monotonic() < deadline
            time.sleep(0.05)


# -- load ------------------------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_load_twenty_clients_with_health_polled(tmp_path, scenes):
    """20 concurrent clients x 10 /predict requests of 8 tasks, /health every
    100 ms: no request fails, every health answer comes in under 1 s, and
    the process's memory stays bounded. The detector is a fast stand-in that
    returns a mask per image (the server's machinery is what is loaded)."""
    from annot.detections import Detections

    class Fast:
        name, version, device = "fast", "1", "cpu"
        capabilities = frozenset({"masks", "automatic"})
        load_options = frozenset()
        classes = ["square"]

        def predict(self, images, prompts=None):
            time.sleep(0.01 * len(images))
            out = []
            for im in images:
                m = np.zeros((1, *im.shape[:2]), bool)
                m[0, 10:30, 10:40] = True
                out.append(Detections.from_masks(m, [0], [0.9], ["square"]))
            return out

    from annot.serve.models import Loaded

    server = LiveServer(create_app(ServeConfig(model=None, db_url=f"sqlite:///{tmp_path / 'a.db'}", model_slots=2)))
    tasks = [{"id": k, "data": {"image": data_uri(scenes[k % 3])}} for k in range(8)]
    failures, health_times = [], []
    stop = threading.Event()
    with server, httpx.Client(timeout=60) as client:
        server.wait_ready(client, state="none")
        server.backend.models.detector = Loaded(Fast(), "fast-v1", "fast")
        before = _rss_mb()

        def poll():
            with httpx.Client(timeout=5) as c:
                while not stop.is_set():
                    t = time.perf_counter()
                    ok = c.get(f"{server.url}/health").status_code == 200
                    health_times.append((time.perf_counter() - t, ok))
                    time.sleep(0.1)

        def work():
            with httpx.Client(timeout=60) as c:
                for _ in range(10):
                    r = c.post(f"{server.url}/predict", json={"tasks": tasks, "label_config": BRUSH})
                    res = r.json().get("results", []) if r.status_code == 200 else []
                    if len(res) != 8 or any(len(x["result"]) != 1 for x in res):
                        failures.append((r.status_code, r.text[:200]))

        poller = threading.Thread(target=poll)
        poller.start()
        workers = [threading.Thread(target=work) for _ in range(20)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stop.set()
        poller.join()
        after = _rss_mb()
    assert not failures, failures[:3]
    assert len(health_times) >= 10 and all(ok for _, ok in health_times) and max(t for t, _ in health_times) < 1.0
    assert after - before < 300, (before, after)


@pytest.mark.parametrize("name", ["boxes", "polygons", "brush", "brush_smart"])
def test_example_label_configs_connect(tmp_path, name):
    """Every config in examples/labelstudio/ is one a COCO-trained detector
    (which says "person") can fill, through predicted_values."""
    from pathlib import Path

    from fastapi.testclient import TestClient

    from annot.serve.models import Loaded

    class Person:
        classes = ["person", "car"]

    xml = (Path(__file__).resolve().parents[1] / "examples" / "labelstudio" / f"{name}.xml").read_text()
    app = create_app(ServeConfig(model=None, db_url=f"sqlite:///{tmp_path / 'a.db'}"))
    with TestClient(app) as c:
        app.app.state.backend.models.detector = Loaded(Person(), "coco-v1", "maskrcnn")
        r = c.post("/setup", json={"schema": xml})
        assert r.status_code == 200 and r.json() == {"model_version": "coco-v1"}


@pytest.mark.parametrize("args, message", [
    (["--model", "nosuchmodel"], "--model nosuchmodel: not an installed predictor"),
    (["--model", "maskrcnn@abc"], "--model maskrcnn@abc: the version after @ must be a number"),
    (["--max-body", "lots"], "--max-body 'lots': expected a size"),
    (["--score-threshold", "1.5"], "1.5 is not in the range 0<=x<=1"),
    (["--model", "none", "--weights", "coco"], "--model none serves no detector"),
    (["--basic-auth", "admin"], "--basic-auth must be USER:PASSWORD"),
])
def test_serve_refuses_what_it_can_never_serve_before_it_starts(annot, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)  # no store here
    monkeypatch.delenv("ANNOT_DB", raising=False)
    r = annot("serve", *args)
    assert r.code == 2 and r.err.count("\n") == 1 and message in r.err, r.err
    assert not (tmp_path / "annot.db").exists()


def test_serve_on_a_port_in_use_is_one_line(annot, tmp_path, monkeypatch):
    import socket

    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = annot("serve", "--model", "none", "--port", port)
    assert r.code == 2 and r.err == f"annot: error: cannot listen on 127.0.0.1:{port}: Address already in use " \
                                     "(another server there? choose --port)\n"


@pytest.mark.parametrize("score", ["flip", "mc"])
def test_serve_refuses_a_rank_score_that_needs_extra_passes(annot, tmp_path, monkeypatch, score):
    monkeypatch.chdir(tmp_path)
    r = annot("serve", "--model", "none", "--rank-score", score)
    assert r.code == 2 and f"'{score}' is not one of" in r.err


def test_label_studio_access_check_names_what_is_wrong(two_hosts):
    ls, _ = two_hosts
    assert LabelStudioClient(ls, "0123456789abcdef0123456789abcdef01234567").check_access() is None
    port = _free_port()
    problem = LabelStudioClient(f"http://127.0.0.1:{port}", "tok").check_access()
    assert problem.startswith(f"cannot reach Label Studio at http://127.0.0.1:{port}/")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_model_the_store_does_not_have_yet_is_said_at_start_up(tmp_path):
    """`annot serve --model maskrcnn` on an empty store starts (a model may be promoted later), and says why
    /predict will answer empty predictions until then."""
    from annot.serve.config import ServeConfig
    from annot.serve.models import check_spec

    config = ServeConfig(model="maskrcnn", db_url=f"sqlite:///{tmp_path / 'annot.db'}", store_path=str(tmp_path / "s"))
    assert "maskrcnn" in check_spec(config)
    assert check_spec(ServeConfig(model=None)) is None
