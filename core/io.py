"""Atomic writes. Nothing a user owns is replaced unless they asked for it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import orjson

from .errors import OutputExists


def is_stream(path: Path) -> bool:
    """A device or pipe: written to in place, never replaced."""
    return path.exists() and not path.is_file() and not path.is_dir()


def check_writable(path: Path, overwrite: bool) -> None:
    path = Path(path)
    if path.exists() and not overwrite and not is_stream(path):
        raise OutputExists(path)


def missing_folder(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet (what
    writing into it creates), or None when it exists."""
    folder, top = Path(folder).absolute(), None
    while not folder.exists():
        top, folder = folder, folder.parent
    return top


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
    """Yield a temp directory beside ``path``; on success it becomes ``path``.

    With ``overwrite`` an existing directory is replaced only after the new
    one is complete; on failure the temp directory is removed and ``path`` is
    untouched.
    """
    path = Path(path)
    check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
