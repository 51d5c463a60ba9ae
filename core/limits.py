"""How much one input may make annot allocate: the memory budget.

An annotation file declares sizes (an image's width and height, a mask's
RLE, a polygon's extent) that annot turns into buffers. A 318-byte COCO file
can declare a 60,000 x 60,000 image; a Label Studio brush region is decoded
at width x height x 4 bytes by its format. Before any buffer whose size a file
decides is allocated, its size is checked against :class:`Limits`, and an
input over it is one line naming the file, the item and the size (exit 2),
never a MemoryError, an OOM kill or a crash inside C code.

``--max-memory`` defaults to half of what this process may use: the smallest
of the machine's RAM, its cgroup's memory limit (containers) and the
address-space limit (``ulimit -v``). ``--max-pixels`` caps one image's
declared pixel count (default: 2^32 - 1, the most COCO geometry can hold in
pycocotools' 32-bit counts).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import AnnotError, ParseError

MAX_PIXELS = 2**32 - 1
# Python objects from parsed JSON take many times the file's bytes. Measured
# with tracemalloc on orjson.loads: a labelme sample file 14.5x, a COCO file of
# polygons 17x, lists of short floats 20x; a file made only of empty lists
# reaches 33x, within the 2x margin the default budget (half of what is
# usable) leaves.
JSON_EXPANSION = 20
# bytes pycocotools' rleFrPoly allocates per px of a polygon's perimeter: it
# walks the outline at 5x resolution keeping ~24 bytes per step
POLYGON_BYTES_PER_PX = 5 * 24


def _cgroup_limit() -> int | None:
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def usable_memory() -> int:
    """What this process may allocate: RAM, cgroup limit, address-space limit."""
    candidates = []
    try:
        candidates.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    cg = _cgroup_limit()
    if cg is not None:
        candidates.append(cg)
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            candidates.append(soft)
    except (ImportError, ValueError, OSError):
        pass
    return min(candidates) if candidates else 8 << 30


def parse_size(text: str, option: str = "--max-memory") -> int:
    """``4G``, ``512M``, ``1.5GiB``, ``2000000`` -> bytes; a bad value is an error naming ``option``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
    if not m:
        raise AnnotError(f"{option} {text!r}: expected a size like 4G, 512M or a number of bytes")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@dataclass(frozen=True)
class Limits:
    max_memory: int
    max_pixels: int = MAX_PIXELS

    @classmethod
    def default(cls) -> Limits:
        return cls(usable_memory() // 2)

    def allocation(self, nbytes: float, what: str, source, item: str | None = None) -> None:
        """Refuse to allocate ``nbytes`` for ``what`` of ``source`` (item) over the budget."""
        if nbytes > self.max_memory:
            raise ParseError(str(source), item, f"{what} needs {human(nbytes)}, over the memory budget of "
                                                f"{human(self.max_memory)} (--max-memory)")

    def pixels(self, width: int, height: int, what: str, source, item: str | None = None) -> None:
        if width * height > self.max_pixels:
            raise ParseError(str(source), item, f"{what} is {width}x{height} = {width * height:,} pixels, over the "
                                                f"limit of {self.max_pixels:,} (--max-pixels)")

    def json_file(self, path: Path, size: int | None = None) -> None:
        """A JSON file about to be parsed whole: its objects take several times its bytes."""
        size = os.path.getsize(path) if size is None else size
        if size * JSON_EXPANSION > self.max_memory:  # the message only when it is needed: once per file read
            self.allocation(size * JSON_EXPANSION, f"parsing this {human(size)} JSON file", path)


def limits_of(max_memory: str | None, max_pixels: int = MAX_PIXELS) -> Limits:
    """The limits a command line sets (``--max-memory`` text, ``--max-pixels``)."""
    if max_memory is None:
        return Limits(Limits.default().max_memory, max_pixels)
    budget, usable = parse_size(max_memory), usable_memory()
    if budget > usable:  # a budget the process cannot have: allocations would fail in C code instead
        raise AnnotError(f"--max-memory {max_memory}: more than this process may use ({human(usable)}: the "
                         "smallest of RAM, the cgroup's memory limit and ulimit -v)")
    return Limits(budget, max_pixels)


def polygon_bytes(coords) -> float:
    """What pycocotools allocates to rasterise a flat ``[x0, y0, x1, y1, ...]`` polygon."""
    import numpy as np

    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if len(xy) < 2:
        return 0.0
    steps = np.abs(np.diff(np.vstack([xy, xy[:1]]), axis=0)).max(axis=1).sum()
    return float(steps + len(xy)) * POLYGON_BYTES_PER_PX
