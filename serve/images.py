"""The image a task points at, fetched once and decoded within the budget.

A task's image reference is one of:

- ``/data/local-files/?d=PATH``: read from ``LOCAL_FILES_DOCUMENT_ROOT`` when
  the backend is given it, through :func:`annot.paths.require_confined` (no
  ``..``, no absolute path, no symlink out of the root); else fetched from
  Label Studio, which serves it;
- ``/data/upload/...`` and other paths: fetched from Label Studio with its token;
- ``http(s)://...``: fetched, with the token only when it is Label Studio's origin;
- ``s3://``, ``gs://``, ``azure-blob://``: through Label Studio's resolve endpoint
  (a presigned redirect, followed without the token);
- ``data:image/...;base64,...``: inline.

Fetched bytes are kept in an LRU bounded in bytes, keyed by URL; an entry is
used without asking again for ``fresh_s`` seconds (clicks on one task come
seconds apart), then revalidated with its ETag. Decoded images are kept in a
second byte-bounded LRU keyed by the sha256 of their bytes, which is also the
key SAM's embedding cache uses. Before decoding, the image's header size is
checked against the memory budget (:class:`annot.limits.Limits`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from annot.errors import AnnotError
from annot.limits import Limits
from annot.paths import require_confined

from .labelstudio import FetchError, LabelStudioClient

CLOUD = ("s3://", "gs://", "azure-blob://")
BYTES_PER_PIXEL = 6  # the decoded RGB array and PIL's own copy while converting


@dataclass
class TaskImage:
    key: str  # "sha256:<hex>" of the file's bytes
    pixels: np.ndarray  # HxWx3 uint8 RGB, as displayed
    ref: str


class _LRU:
    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes, self.items = max_bytes, 0, OrderedDict()

    def get(self, key):
        item = self.items.get(key)
        if item is not None:
            self.items.move_to_end(key)
        return item

    def put(self, key, item, size: int) -> None:
        if key in self.items:
            self.bytes -= self.items.pop(key)[1]
        self.items[key] = (item, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self.items) > 1:
            self.bytes -= self.items.popitem(last=False)[1][1]


class ImageSource:
    def __init__(self, client: LabelStudioClient, local_root: Path | None, limits: Limits,
                 cache_bytes: int = 512 << 20, fresh_s: float = 60.0):
        self.client, self.local_root, self.limits, self.fresh_s = client, local_root, limits, fresh_s
        self._files = _LRU(cache_bytes // 2)  # url -> (etag, sha, bytes, fetched at)
        self._decoded = _LRU(cache_bytes // 2)  # sha -> pixels
        self._lock = threading.Lock()
        self.downloads = 0

    def get(self, ref: str, task_id: int | None = None) -> TaskImage:
        """The task's image; raises FetchError or AnnotError (one line) when it cannot be had."""
        if not isinstance(ref, str) or not ref:
            raise FetchError("the task has no image reference")
        sha, data = self._bytes(ref, task_id)
        with self._lock:
            hit = self._decoded.get(sha)
        if hit is not None:
            return TaskImage(f"sha256:{sha}", hit[0], ref)
        pixels = self._decode(data, ref)
        with self._lock:
            self._decoded.put(sha, pixels, pixels.nbytes)
        return TaskImage(f"sha256:{sha}", pixels, ref)

    # -- bytes ------------------------------------------------------------------------

    def _bytes(self, ref: str, task_id) -> tuple[str, bytes]:
        if ref.startswith("data:"):
            try:
                data = base64.b64decode(ref.split(",", 1)[1], validate=False)
            except (IndexError, ValueError) as e:
                raise FetchError(f"bad data URI: {e}") from None
            return hashlib.sha256(data).hexdigest(), data
        local = self._local_path(ref)
        if local is not None:
            stat = local.stat()
            cache_key = f"file:{local}:{stat.st_mtime_ns}:{stat.st_size}"
            return self._cached(cache_key, lambda etag: local.read_bytes(), local_file=True)
        url = self.client.storage_url(ref, task_id) if ref.startswith(CLOUD) else self.client.resolve(ref)
        return self._cached(url, lambda etag: self.client.fetch(url, etag))

    def _local_path(self, ref: str) -> Path | None:
        """The file a ``/data/local-files/?d=`` reference names under the
        document root, when the backend has one; raises when it would leave it."""
        parts = urlsplit(ref)
        if self.local_root is None or not parts.path.rstrip("/").endswith("/data/local-files"):
            return None
        d = parse_qs(parts.query).get("d")
        if not d:
            raise FetchError(f"{ref!r}: a local-files reference without ?d=")
        path = require_confined(self.local_root, unquote(d[0]), ref, "the d= parameter")
        if not path.is_file():
            raise FetchError(f"{ref!r}: no such file under LOCAL_FILES_DOCUMENT_ROOT")
        return path

    def _cached(self, key: str, load, local_file: bool = False) -> tuple[str, bytes]:
        with self._lock:
            hit = self._files.get(key)
        if hit is not None:
            etag, sha, data, at = hit[0]
            if local_file or time.monotonic() - at < self.fresh_s:
                return sha, data
        else:
            etag = None
        got = load(etag)
        if got is None:  # not modified
            with self._lock:
                self._files.put(key, (etag, sha, data, time.monotonic()), len(data))
            return sha, data
        data, etag = (got, None) if isinstance(got, bytes) else (got.data, got.etag)
        self.downloads += 1
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._files.put(key, (etag, sha, data, time.monotonic()), len(data))
        return sha, data

    # -- pixels -----------------------------------------------------------------------

    def _decode(self, data: bytes, ref: str) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        from annot.images import pixel_limit
        from annot.plugins.images import load_scaled

        try:
            with pixel_limit(None), Image.open(io.BytesIO(data)) as im:
                w, h = im.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            # PIL's UnidentifiedImageError text names its BytesIO object: nothing a user can use
            detail = "" if isinstance(e, UnidentifiedImageError) else f" ({e})"
            raise FetchError(f"{ref}: not an image PIL can read{detail}") from None
        self.limits.pixels(w, h, "the image", ref)
        self.limits.allocation(w * h * BYTES_PER_PIXEL, f"decoding a {w}x{h} image", ref)
        try:
            return load_scaled(io.BytesIO(data), name=ref)[0]
        except AnnotError as e:
            raise FetchError(str(e)) from None


def local_files_root(value: str | None) -> Path | None:
    """``LOCAL_FILES_DOCUMENT_ROOT`` (as Label Studio names it), checked."""
    if not value:
        return None
    root = Path(value)
    if not root.is_dir():
        raise AnnotError(f"LOCAL_FILES_DOCUMENT_ROOT {value}: not a folder")
    return Path(os.path.abspath(root))
