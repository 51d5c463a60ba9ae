"""The store directory: files the database points to, by relative path and sha256.

``--store DIR``, else ``ANNOT_STORE``, else ``./annot-store``. Files are
content-addressed (``objects/ab/<sha256><suffix>``) and written atomically, so
a crashed import leaves at most an unreferenced file, never a half-written one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from annot.io import write_bytes_atomic

DEFAULT_STORE = "annot-store"


def store_dir(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("ANNOT_STORE") or DEFAULT_STORE)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def put(store: Path, data: bytes, suffix: str) -> tuple[str, str]:
    """Store ``data``; returns (path relative to the store, sha256)."""
    digest = sha256_bytes(data)
    rel = f"objects/{digest[:2]}/{digest}{suffix}"
    target = Path(store) / rel
    if not target.exists():
        write_bytes_atomic(target, data, overwrite=True)
    return rel, digest


def put_file(store: Path, source: Path, suffix: str) -> tuple[str, str]:
    """Copy a (possibly large) file into the store, hashing while copying."""
    import shutil
    import tempfile

    store = Path(store)
    (store / "objects").mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=store / "objects", suffix=".part")
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
        digest = h.hexdigest()
        rel = f"objects/{digest[:2]}/{digest}{suffix}"
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, store / rel)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    shutil.copymode(source, store / rel)
    return rel, digest


def verify(store: Path, rel: str, digest: str) -> str | None:
    """None when the file is there with that sha256, else what is wrong."""
    path = Path(store) / rel
    if not path.is_file():
        return f"{path}: missing"
    actual = sha256_file(path)
    if actual != digest:
        return f"{path}: sha256 {actual[:12]}... does not match the recorded {digest[:12]}..."
    return None
