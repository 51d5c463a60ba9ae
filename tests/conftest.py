from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLES = SHARED / "samples"
LS_DATA = SAMPLES / "HumanSignal-label-studio-sdk/tests/custom/converter/data"
LABELME = SAMPLES / "wkentaro-labelme"

sys.path.insert(0, str(REPO / "examples"))  # the synthetic project generator


def pytest_collection_modifyitems(config, items):
    """Tests marked ``samples`` read ../shared/samples (always there in CI);
    without it they are skipped, loudly, instead of failing on a missing file."""
    if not SAMPLES.is_dir():
        skip = pytest.mark.skip(reason=f"shared samples not found at {SAMPLES}")
        for item in items:
            if item.get_closest_marker("samples"):
                item.add_marker(skip)


class CLIResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return f"CLIResult(code={self.code}, out={self.out[-500:]!r}, err={self.err[-800:]!r})"


@pytest.fixture
def annot(capsys):
    """Run the CLI in-process: ``annot("convert", ...)`` -> CLIResult."""
    from annot.cli import main

    def run(*args) -> CLIResult:
        code = main([str(a) for a in args])
        cap = capsys.readouterr()
        return CLIResult(code, cap.out, cap.err)

    return run


def load(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


@pytest.fixture
def convert(annot, tmp_path):
    """``convert("labelme", "coco", *inputs, **flags)`` -> output path; asserts success."""
    counter = {"n": 0}

    def run(src, dst, *inputs, extra=(), suffix=None):
        counter["n"] += 1
        ext = suffix if suffix is not None else (".json" if dst in ("coco", "labelstudio") else "")
        out = tmp_path / f"out{counter['n']}_{dst}{ext}"
        res = annot("convert", src, dst, *inputs, "-o", out, "-q", *extra)
        assert res.code == 0, res
        if dst == "coco":  # every COCO file annot writes must pass annot validate
            check = annot("validate", "coco", out)
            assert check.code == 0, check
        return out

    return run


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory):
    """``examples/demo.py --size quick``, run once: (its folder, its console output, the folder it ran from)."""
    import subprocess

    out = tmp_path_factory.mktemp("demo") / "build"
    cwd = tmp_path_factory.mktemp("cwd")
    env = {**os.environ, "HOME": str(cwd)}  # anything written to ~ would land in cwd
    env.pop("ANNOT_DB", None)
    env.pop("ANNOT_STORE", None)
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "demo.py"), "--size", "quick", "--out", str(out)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout, cwd


@pytest.fixture
def deterministic():
    """torch's deterministic algorithms for one test (resume equivalence)."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="session")
def tiny_maskrcnn():
    """A Mask R-CNN trained for a few steps in-process (tests/tiny_models.py), shared by the session."""
    pytest.importorskip("torch")
    from tiny_models import train_maskrcnn

    return train_maskrcnn()


LABEL_STUDIO = REPO / ".venv-ls" / "bin" / "label-studio"  # installed by `make test`


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio server on 127.0.0.1 with a fresh database: (base URL, API token)."""
    import os
    import secrets
    import socket
    import subprocess
    import time
    import urllib.request

    if not LABEL_STUDIO.exists():
        pytest.skip(f"Label Studio is not installed at {LABEL_STUDIO} (`make test` installs it)")
    data = tmp_path_factory.mktemp("label-studio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(20)
    # the ML backend under test listens on 127.0.0.1: Label Studio's SSRF guard would refuse to call it
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "LATEST_VERSION_CHECK": "false",
           "SSRF_PROTECTION_ENABLED": "false", "ML_BLOCK_LOCAL_IP": "false"}
    env.pop("HOST", None)
    log = open(data / "server.log", "wb")
    proc = subprocess.Popen(
        [str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
         "--username", "annot@example.com", "--password", secrets.token_hex(8), "--user-token", token,
         "--enable-legacy-api-token"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # the first start runs Django's migrations
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Label Studio did not start; see {data / 'server.log'}")
            time.sleep(1)
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


TOY_PREDICTOR = '''
import torch

from annot.detections import Detections
from annot.errors import AnnotError, reason


class Toy:
    """A trainable predictor whose checkpoints are tiny: {"classes": [...], ...}."""

    name = "toy"
    version = "1"
    device = "cpu"
    capabilities = frozenset({"masks", "automatic", "trainable"})
    load_options = frozenset({"checkpoint", "device", "score_threshold"})

    def load(self, checkpoint=None, **_):
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as e:
            raise AnnotError(f"{checkpoint}: not a readable checkpoint ({reason(e)})") from None
        if not isinstance(state, dict) or not isinstance(state.get("classes"), list):
            raise AnnotError(f"{checkpoint}: not a toy checkpoint")
        self.classes = state["classes"]

    def predict(self, images, prompts=None):
        return [Detections.empty(self.classes, im.shape[:2]) for im in images]
'''


@pytest.fixture
def toy_predictor(tmp_path_factory, monkeypatch):
    """An installed third-party trainable predictor, ``toy``, with tiny
    checkpoints: registry tests need checkpoints a predictor really loads.
    Yields ``checkpoint(path, k)``, which writes the k-th distinct one."""
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("toy")
    (folder / "annot_toy_predictor.py").write_text(TOY_PREDICTOR)
    dist = folder / "annot_toy_predictor-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: annot-toy-predictor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[annot.predictors]\ntoy = annot_toy_predictor:Toy\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))

    def checkpoint(path, k=0):
        torch.save({"classes": ["a", "b"], "k": k}, path)
        return path

    yield checkpoint
    sys.modules.pop("annot_toy_predictor", None)
