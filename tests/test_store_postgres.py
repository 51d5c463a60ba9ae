"""The same store on PostgreSQL, on a throwaway server started for these tests.

Skipped (with the reason) when psycopg or the server binaries are missing or
the server cannot start here.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import SHARED

PENNFUDAN = SHARED / "datasets" / "PennFudanPed"
pytestmark = pytest.mark.samples


def _run_as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    pwd.getpwnam("postgres")  # KeyError: no such user
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg")
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl)")
    # not under pytest's tmp dir: the postgres user must be able to reach it
    base = Path(tempfile.mkdtemp(prefix="annot-pg-"))
    data = base / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        if os.geteuid() == 0:
            shutil.chown(base, "postgres")
        subprocess.run(_run_as_postgres(["initdb", "-D", str(data), "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_run_as_postgres(["pg_ctl", "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                                         f"-p {port} -k {base} -c listen_addresses=''", "start"]),
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError, KeyError) as e:
        pytest.skip(f"cannot start a PostgreSQL server here: {e}")
    import psycopg

    with psycopg.connect(f"host={base} port={port} user=postgres dbname=postgres", autocommit=True) as con:
        con.execute("CREATE DATABASE annot")
    yield f"postgresql+psycopg://postgres@/annot?host={base}&port={port}"
    subprocess.run(_run_as_postgres(["pg_ctl", "-D", str(data), "-m", "fast", "stop"]), capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def test_store_on_postgresql(pg_url, annot, tmp_path, monkeypatch, toy_predictor):
    from pennfudan import pennfudan_coco

    monkeypatch.setenv("ANNOT_DB", pg_url)
    monkeypatch.setenv("ANNOT_STORE", str(tmp_path / "store"))
    assert annot("db", "upgrade").code == 0
    coco = tmp_path / "p.json"
    coco.write_text(json.dumps(pennfudan_coco(PENNFUDAN, limit=30)))
    first = json.loads(annot("dataset", "import", "peds", coco, "--image-root", PENNFUDAN, "--json").out)
    again = json.loads(annot("dataset", "import", "peds", coco, "--image-root", PENNFUDAN, "--json").out)
    assert (first["version"], first["created"], again["created"]) == (1, True, False)
    split = json.loads(annot("dataset", "split", "peds", "--json").out)
    assert sum(s["images"] for s in split["subsets"].values()) == 30
    assert annot("dataset", "export", "peds", "--split", "train", "-o", tmp_path / "t.json").code == 0
    assert annot("validate", "coco", tmp_path / "t.json").code == 0
    for k in (1, 2):
        ckpt = toy_predictor(tmp_path / f"w{k}.pt", k)
        assert annot("models", "register", "m", "--predictor", "toy", "--checkpoint", ckpt, "--dataset", "peds@1",
                     "--scheme", "default").code == 0
    assert annot("models", "promote", "m@1").code == 0
    assert annot("models", "promote", "m@2").code == 0
    promoted = [m["model"] for m in json.loads(annot("models", "list", "--json").out) if m["promoted"]]
    assert promoted == ["m-v2"]
    assert annot("models", "rollback", "m").out.strip() == "promoted m-v1"
    info = json.loads(annot("db", "info", "--json").out)
    assert info["revision"] == "0004" and info["images"] == 30
