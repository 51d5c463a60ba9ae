"""Atomic writes. Nothing a user owns is replaced unless they asked for it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import orjson

from .errors import AnnotError, OutputExists


def is_stream(path: Path) -> bool:
    """A device or pipe: written to in place, never replaced."""
    return path.exists() and not path.is_file() and not path.is_dir()


def check_writable(path: Path, overwrite: bool, folder: bool = False) -> None:
    """Refuse to replace a file the user has (without ``overwrite``). A
    ``folder`` output may exist (its files are checked when they are written,
    see :func:`atomic_dir`); a file output may not be a folder."""
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise AnnotError(f"{path}: a file is there, and this output is a folder of files")
        return
    if path.is_dir() or str(path).endswith(("/", os.sep)):
        raise AnnotError(f"{path}: a folder; this output is one file: name it, e.g. {Path(path) / 'out.json'}")
    if path.exists() and not overwrite and not is_stream(path):
        raise OutputExists(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write to a temp file in the same directory, fsync, then rename over ``path``.

    A device or pipe (``/dev/null``, ``/dev/stdout``, a FIFO) is written to
    directly: renaming over it would replace the device with a plain file.
    """
    write_chunks_atomic(path, [data], overwrite)


def write_chunks_atomic(path: Path, chunks: Iterable[bytes], overwrite: bool = False) -> None:
    """:func:`write_bytes_atomic` of the chunks' concatenation, each chunk
    written as it comes: a large output is never built whole in memory."""
    path = Path(path)
    if is_stream(path):
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        return
    check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a normal file is what the user expects
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dumps_json(obj, indent: bool = False) -> bytes:
    opts = orjson.OPT_SERIALIZE_NUMPY | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(obj, option=opts)


def write_json_atomic(path: Path, obj, overwrite: bool = False, indent: bool = False) -> None:
    write_bytes_atomic(path, dumps_json(obj, indent), overwrite)


@contextlib.contextmanager
def atomic_dir(path: Path, overwrite: bool = False):
    """Yield a temp directory beside ``path``; on success its files go to ``path``.

    A new ``path`` is the temp directory renamed, in one step. An existing
    folder is written into, never emptied: a labelling folder holds the
    images too (labelme keeps its JSON beside them), so only the files this
    output makes are put there, each replaced in one step, and they may
    replace files of the same name only with ``overwrite``; whatever else the
    folder holds stays. On failure the temp directory is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AnnotError(f"{path}: a file is there, and this output is a folder of files")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if not path.exists():
            os.replace(tmp, path)
            return
        made = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if not p.is_dir())
        taken = [rel for rel in made if (path / rel).exists()]
        if taken and not overwrite:
            raise AnnotError(f"{path}: {len(taken)} of the {len(made)} files this writes are there already (first: "
                             f"{taken[0]}); pass --overwrite to replace them (other files in it are kept)")
        for rel in made:
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, path / rel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
