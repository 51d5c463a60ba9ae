"""The one rule for paths that come from file contents.

An annotation file names images and masks: labelme's ``imagePath``, COCO's
``file_name``, VOC's ``filename``/``path``, Label Studio's image references.
Whoever wrote the file chooses those strings, so annot never follows one out
of the folder it belongs to:

- :func:`confined` joins a name to a root the user gave (``--image-root``, an
  input folder, the output folder) and answers None when the result would
  leave it: an absolute name, ``..`` climbing above the root, a NUL byte, or
  a symlink inside the root that points out of it. Readers treat such a name
  as a file that is not there, and say so.
- :func:`require_confined` is the same rule where there is no fallback (a
  file annot writes, a file a server serves): it raises one line naming the
  file, the field and the value.
- :func:`output_path` maps a name to its place in an output folder annot
  builds itself: the parts that would climb out (``..``, a drive, a leading
  ``/``) are dropped, so ``../images/a.png`` is written as ``images/a.png``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from .errors import AnnotError, ParseError


def _parts(name: str) -> list[str] | None:
    """The name's parts, normalised (backslashes are separators); None when
    it is absolute or contains a NUL byte."""
    if "\0" in name:
        return None
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):  # POSIX, UNC (\\host) or drive letter
        return None
    return [p for p in posix.split("/") if p not in ("", ".")]


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confined(root: str | Path, name: str) -> Path | None:
    """``root / name`` when it stays inside ``root`` (lexically, and after
    following symlinks as far as the path exists); else None."""
    joined = confined_name(root, name)
    return None if joined is None else Path(joined)


def confined_name(root: str | Path, name: str) -> str | None:
    """:func:`confined` as a string, for readers that check thousands of
    names (a ``Path`` costs ~16 us to build, a quarter of the check)."""
    parts = _parts(name)
    if parts is None:
        return None
    root_abs = os.path.abspath(root)
    if ".." in parts:
        joined = os.path.normpath(os.path.join(root_abs, *parts))
        if not _within(joined, root_abs) or not _within(os.path.realpath(joined), os.path.realpath(root_abs)):
            return None
        return joined
    # Without "..", the name stays below the root lexically (its parts hold no separator), and only a
    # symlink below the root can lead out: one lstat per part finds it, where resolving root and path took
    # ~7 each (labelme -> COCO of 5,000 files: 0.30 s of CPU; benchmarks/RESULTS.md#conversion-throughput).
    joined = os.path.join(root_abs, *parts) if parts else root_abs
    if _symlink_below(root_abs, parts) and not _within(os.path.realpath(joined), os.path.realpath(root_abs)):
        return None
    return joined


def _symlink_below(root: str, parts: list[str]) -> bool:
    """Whether ``root/parts`` passes through a symlink below ``root`` (True
    when that cannot be told: the caller then resolves the whole path)."""
    path = root
    for part in parts:
        path = os.path.join(path, part)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return True
        except (FileNotFoundError, NotADirectoryError):
            return False  # nothing further down exists to lead anywhere
        except OSError:
            return True
    return False


def find_image(name: str, dirs: list[Path | None]) -> Path | None:
    """The first existing ``dir/name``, then ``dir/<base name>``, among
    ``dirs`` (None entries skipped), never outside its ``dir``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    for d in dirs:
        if d is None:
            continue
        for cand in (confined(d, name), confined(d, base)):
            try:
                if cand is not None and cand.is_file():
                    return cand
            except OSError:  # a name too long for the file system, say: not there
                continue
    return None


def require_confined(root: str | Path, name: str, source, field: str) -> Path:
    """:func:`confined`, or a ParseError naming ``source`` (the file the
    name came from), ``field`` and the value."""
    path = confined(root, name)
    if path is None:
        raise ParseError(str(source), field, f"{name!r} leads outside {root}: annot only reads and writes inside "
                                             "the folders it was given")
    return path


class OutputNames:
    """One output file per image, named after its ``file_name``: two images
    whose names lead to the same file (``a.jpg`` and ``a.png`` as labelme
    JSON, ``../a.jpg`` and ``a.jpg``) are an error, not one file written over
    the other."""

    def __init__(self, root: Path, suffix: str):
        self.root, self.suffix, self.taken = Path(root), suffix, {}

    def path(self, file_name: str) -> Path:
        p = output_path(self.root, file_name, self.suffix)
        other = self.taken.setdefault(p, file_name)
        if other != file_name:
            raise AnnotError(f"images {other!r} and {file_name!r} would both be written as "
                             f"{p.relative_to(self.root)}: rename one of them")
        return p


def output_path(root: str | Path, name: str, suffix: str | None = None) -> Path:
    """Where ``name`` goes in an output folder annot builds: inside ``root``,
    whatever the name (climbing parts dropped), with ``suffix`` if given."""
    posix = name.replace("\\", "/").replace("\0", "")
    if len(posix) > 1 and posix[1] == ":":
        posix = posix[2:]
    parts = [p for p in PurePosixPath(posix).parts if p not in ("", ".", "..", "/")]
    path = Path(root, *parts) if parts else Path(root, "_")
    return path.with_suffix(suffix) if suffix is not None else path
