"""Turn the INPUT arguments of ``annot convert`` into files to read."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import msgspec
import orjson

from annot.errors import AnnotError
from annot.images import image_size
from annot.values import size_problem


def find_files(inputs: list[Path], suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """``(file, root)`` pairs: files given directly (root = their folder) and
    files under given directories, recursively, sorted (root = that directory).
    ``root`` is what image paths in the output are made relative to."""
    return [(Path(f), root) for f, root in find_file_names(inputs, suffixes)]


def find_file_names(inputs: list[Path], suffixes: tuple[str, ...]) -> list[tuple[str, Path]]:
    """:func:`find_files` with each file as a str: for thousands of files
    sent to worker processes, which unpickle a str several times faster than
    a Path (and making the Paths costs the main process as much again)."""
    out: list[tuple[str, Path]] = []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            out += [(f, p) for f in sorted(_walk(str(p), suffixes), key=_path_order)]
        elif p.is_file():
            out.append((str(p), p.parent))
        else:
            raise AnnotError(f"{p}: no such file or directory")
    if not out:
        raise AnnotError(f"no {'/'.join(suffixes)} files in {', '.join(map(str, inputs))}")
    return out


def _walk(folder: str, suffixes: tuple[str, ...]):
    """Files under ``folder`` (not hidden ones) whose suffix is one of ``suffixes``.
    One scandir per directory: no stat per file, unlike Path.rglob + is_file.
    Like rglob, symlinked directories are not entered."""
    with os.scandir(folder) as entries:
        for e in entries:
            if e.is_dir():
                if not e.is_symlink():
                    yield from _walk(e.path, suffixes)
            elif not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in suffixes and e.is_file():
                yield e.path


def _path_order(path: str) -> list[str]:
    return path.split(os.sep)  # the order of sorted Path objects: part by part


def load_json(path: Path):
    """Parse a JSON file saved as UTF-8 (with or without BOM) or, failing
    that, GB18030 (labelme files from Chinese-locale Windows). Raises OSError
    or ValueError (orjson.JSONDecodeError, UnicodeDecodeError)."""
    return parse_json(read_bytes(path))


def read_bytes(path: Path | str, check_size=None) -> bytes:
    """The file's bytes without a UTF-8 BOM. Read with os.read in chunks
    of its size (no buffered file object: a third faster for thousands of
    small files). ``check_size(size)`` is called with the size before
    anything is read (a memory budget raises there)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if check_size is not None:
            check_size(size)
        step = size + 1
        chunks = []
        while chunk := os.read(fd, step):
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return data[3:] if data[:3] == b"\xef\xbb\xbf" else data


def parse_json(data: bytes):
    """:func:`load_json` of bytes already read by :func:`read_bytes`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise e from None
        if text.encode("utf-8") == data:  # it was UTF-8 after all: a real syntax error
            raise
        return orjson.loads(text)


_split_array = msgspec.json.Decoder(list[msgspec.Raw]).decode


def load_json_items(path: Path | str):
    """A JSON file that holds a list, as a list of its elements' raw bytes
    (``msgspec.Raw``, each parsed later by :func:`parse_item`), else the
    parsed document as :func:`load_json` returns it.

    Splitting checks the syntax of the whole file but builds no objects (a
    65 MB Label Studio export: 0.07 s against 0.4 s for a full parse), so
    worker processes can parse their share of the elements in parallel. A
    file that is not a syntactically valid list of UTF-8 goes through
    :func:`parse_json`, which reports its error or reads it as GB18030."""
    data = read_bytes(path)
    try:
        items = _split_array(data)
        if not data.isascii():
            data.decode("utf-8")  # the splitter checks syntax, not the encoding
        return items
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # msgspec raises RecursionError past its depth limit; orjson then says "depth limit exceeded"
        return parse_json(data)


def parse_item(item):
    """One element of :func:`load_json_items`'s list, parsed (an already
    parsed value is returned as it is)."""
    return orjson.loads(memoryview(item)) if isinstance(item, msgspec.Raw) else item


def relative_name(image: Path, root: Path) -> str:
    """Image path relative to the input root, '/'-separated, as COCO file_name."""
    image = os.path.normpath(image)
    folder, name = os.path.split(image)
    rel = _relative_dir(folder or os.curdir, os.path.normpath(root))  # "" for a bare name
    return name if rel == "." else f"{rel}/{name}"


@lru_cache(maxsize=4096)
def _relative_dir(folder: str, root: str) -> str:
    # relpath calls getcwd twice: once per folder, not once per file
    return os.path.relpath(folder, root).replace(os.sep, "/")


def size_fits(width: int, height: int, path, item, rep, max_pixels: int | None = None) -> bool:
    """False (an error of ``path``, ``item``) when the image has too many pixels for COCO geometry
    (or more than ``max_pixels``, ``--max-pixels``)."""
    why = size_problem(width, height, max_pixels)
    if why:
        rep.error(path, item, why)
    return why is None


def read_image_size(image: Path, path, item, rep) -> tuple[int, int] | None:
    """Displayed ``(width, height)`` of ``image`` from its header; an image that
    cannot be read is an error of the annotation file ``path`` (``item``)."""
    try:
        return image_size(image)[:2]
    except OSError as e:
        rep.error(path, item, f"cannot read the size of image {image}: {e}")
        return None

