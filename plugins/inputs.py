"""The images ``annot predict`` reads: discovery, stable ids and shards.

Directories are searched recursively; an image's name is its path relative to
the directory given (a file given directly is named by its file name), so
names match what the converters write as ``file_name``. Image ids are the
1-based position in the sorted list of *all* inputs, before sharding, so the
outputs of every shard share one id space and merge by concatenation.

``--shard i/N`` keeps the images whose content hash (sha256) falls in slice i
of N (1-based, like ``pytest --shard`` and Playwright): stable when files are
renamed, moved or listed in another order, and disjoint across shards.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from annot.errors import AnnotError
from annot.images import IMAGE_SUFFIXES


@dataclass(frozen=True, slots=True)
class InputImage:
    path: Path
    name: str  # file_name in the outputs (relative, posix)
    image_id: int


def find_images(inputs: list[Path]) -> list[InputImage]:
    named: dict[str, Path] = {}
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            found = [(f, f.relative_to(p).as_posix()) for f in p.rglob("*")
                     if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
        elif p.is_file():
            found = [(p, p.name)]
        else:
            raise AnnotError(f"{p}: no such file or directory")
        for f, name in found:
            if name in named and named[name].resolve() != f.resolve():
                raise AnnotError(f"{f}: same name {name!r} as {named[name]}; give their common parent directory")
            named[name] = f
    if not named:
        raise AnnotError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {', '.join(map(str, inputs))}")
    return [InputImage(named[n], n, k) for k, n in enumerate(sorted(named), start=1)]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise AnnotError(f"--shard {text!r}: expected i/N, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise AnnotError(f"--shard {text}: i must be between 1 and N (shards are numbered from 1)")
    return i, n


def content_hash(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def shard_of(digest: str, n: int) -> int:
    """1-based shard of a sha256 hex digest among ``n``."""
    return int(digest[:16], 16) % n + 1


def select_shard(images: list[InputImage], i: int, n: int, threads: int = 8) -> list[InputImage]:
    if n == 1:
        return images
    with ThreadPoolExecutor(threads) as pool:  # hashlib releases the GIL: reading and hashing overlap
        digests = list(pool.map(_hash_or_none, [im.path for im in images]))
    # an unreadable file hashes to nothing: shard 1 owns it, so exactly one shard reports it
    return [im for im, d in zip(images, digests) if (shard_of(d, n) if d else 1) == i]


def _hash_or_none(path: Path) -> str | None:
    try:
        return content_hash(path)
    except OSError:
        return None
