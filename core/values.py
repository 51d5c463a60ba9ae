"""What counts as a number, an id or an image side in the files annot reads.

JSON gives no guarantee about types: a coordinate may arrive as a string, a
bool, ``NaN`` or an integer too large for any image. Readers test values
with these predicates and report the item instead of failing inside numpy,
pycocotools or the JSON writer.
"""

from __future__ import annotations

import math

MAX_SIDE = 1 << 20  # px; a larger image side is a corrupt value, not an image


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    """A finite int or float (bools are not numbers here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_side(v) -> bool:
    """An image width or height: a number from 1 to MAX_SIDE px."""
    return is_number(v) and 1 <= v <= MAX_SIDE


COCO_MAX_PIXELS = 1 << 32  # pycocotools keeps RLE run lengths in 32-bit integers


def size_problem(width: int, height: int, max_pixels: int | None = None) -> str | None:
    """Why an image of this size cannot go through COCO geometry, or None.

    pycocotools counts pixels in 32-bit integers: on an image of 2^32 pixels or
    more (65,536 x 65,536) its RLEs, areas and boxes come out wrong without an
    error (measured: a 10x10 square on a 65,536 px square image had an area of
    3,943,694,400).
    """
    if width * height >= COCO_MAX_PIXELS:
        return (f"image is {width}x{height} = {width * height:,} pixels; COCO RLE and pycocotools areas "
                f"count at most {COCO_MAX_PIXELS - 1:,}")
    if max_pixels is not None and width * height > max_pixels:
        return f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} (--max-pixels)"
    return None


_PLAIN_NUMBERS = frozenset({int, float})  # exact types: bool, a subclass of int, is not among them


def numbers_to_floats(values: list | tuple) -> list[float] | None:
    """``values`` as floats when every one is a finite int or float (no
    bools, no strings), else None. Checks types in C: no per-value Python."""
    if not set(map(type, values)) <= _PLAIN_NUMBERS:
        return None
    out = list(map(float, values))
    return out if math.isfinite(sum(out)) else None


def to_floats(values) -> list[float] | None:
    """``values`` as finite floats (numeric strings accepted), or None when it
    is not a list of such numbers."""
    if not isinstance(values, (list, tuple)):
        return None
    out = numbers_to_floats(values)
    if out is not None:
        return out
    try:
        out = [float(v) for v in values if not isinstance(v, bool)]
    except (TypeError, ValueError):
        return None
    if len(out) != len(values) or not math.isfinite(sum(out)):
        return None
    return out


def is_id(v) -> bool:
    """An id a reader can follow and a JSON writer can write: a 64-bit int or
    a non-empty string."""
    return (is_int(v) and -(2**63) <= v < 2**63) or (isinstance(v, str) and v != "")
