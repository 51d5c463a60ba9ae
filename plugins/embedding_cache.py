"""SAM image embeddings, cached: in memory (LRU, bounded in bytes) and on disk.

An embedding is computed once per image content (keyed by the sha256 of the
pixels, or a key the caller gives), so a second click on the same image costs
only the mask decoder. One lock guards the LRU: a server's threads share it.
``annot sam precompute`` fills the disk cache ahead of labelling (a batch job
on a GPU); embeddings are stored in fp16 (2 MB each for SAM's 256x64x64).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

DEFAULT_BYTES = 1 << 30  # 1 GiB: ~250 fp32 or ~500 fp16 embeddings


def image_key(image: np.ndarray) -> str:
    h = hashlib.sha256(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)  # the pixels' own buffer: no copy
    return h.hexdigest()


class EmbeddingCache:
    def __init__(self, max_bytes: int = DEFAULT_BYTES, directory: Path | None = None, fp16: bool = True):
        self.max_bytes, self.directory, self.fp16 = max_bytes, Path(directory) if directory else None, fp16
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return item
        if self.directory is not None and (self.directory / f"{key}.npy").is_file():
            item = np.load(self.directory / f"{key}.npy")
            with self._lock:
                self._remember(key, item)
                self.hits += 1
            return item
        with self._lock:
            self.misses += 1
        return None

    def put(self, key: str, embedding: np.ndarray, persist: bool = False) -> np.ndarray:
        item = embedding.astype(np.float16) if self.fp16 else embedding
        with self._lock:
            self._remember(key, item)
        if persist and self.directory is not None:
            import io

            from annot.io import write_bytes_atomic

            buf = io.BytesIO()
            np.save(buf, item)
            write_bytes_atomic(self.directory / f"{key}.npy", buf.getvalue(), overwrite=True)
        return item

    def _remember(self, key: str, item: np.ndarray) -> None:
        if key in self._items:
            self.bytes -= self._items.pop(key).nbytes
        self._items[key] = item
        self.bytes += item.nbytes
        while self.bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self.bytes -= old.nbytes

    def __len__(self) -> int:
        return len(self._items)
