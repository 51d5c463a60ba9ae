"""Images as models see them: RGB uint8, in the orientation a viewer shows.

Every mode a labelling project meets is accepted: greyscale, palette (with or
without transparency), RGBA (alpha dropped), CMYK, 16-bit and float TIFFs
(stretched to 8 bits by their maximum). Huge images are decoded at a reduced
size (JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale without materialising
the full image) and then resized so the longer side is at most ``max_side``;
callers scale masks back to the displayed size. Unreadable, 0-byte and
truncated files raise :class:`~annot.errors.AnnotError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from annot.images import decoding, sizes

_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I", "F")


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in _HIGH_DEPTH:
        arr = np.asarray(im, dtype=np.float64)
        arr = arr - min(arr.min(), 0)
        return Image.fromarray((arr / max(arr.max(), 1e-12) * 255).round().astype(np.uint8)).convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # PIL warns when a transparent palette goes straight to RGB
    return im.convert("RGB")


def load_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB, full size, as displayed."""
    return load_scaled(path)[0]


def load_scaled(path, max_side: int | None = None, name: str | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """``(HxWx3 uint8 RGB, (height, width) as displayed)`` of a file (a path or
    a binary file object; ``name`` is what messages call it).

    With ``max_side`` the array is downscaled (aspect kept) so that its longer
    side is at most ``max_side``; the second value is always the full
    displayed size (EXIF orientation applied), the size annotations refer to.
    """
    with decoding(name or path), Image.open(path) as im:
        full_w, full_h, w, h = sizes(im)  # displayed (EXIF) and stored
        if max_side and max(w, h) > max_side and im.format == "JPEG":
            im.draft("RGB", (max(1, w * max_side // max(w, h)), max(1, h * max_side // max(w, h))))
        im = ImageOps.exif_transpose(im)
        im = _to_rgb(im)
        if max_side and max(im.size) > max_side:
            s = max_side / max(im.size)
            im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BILINEAR)
        arr = np.array(im)  # writable: torch shares it without a warning
    return arr, (full_h, full_w)
