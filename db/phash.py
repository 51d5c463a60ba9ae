"""Perceptual hash (DCT pHash) of an image, for near-duplicate grouping.

Resize to 32x32 grey, 2-D DCT, keep the top-left 8x8 coefficients (the
lowest frequencies) and set a bit where a coefficient is above their median:
a 64-bit fingerprint that survives resizing and re-encoding.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageOps

from annot.images import MAX_PIXELS, pixel_limit

_SIGNED = 1 << 63


def phash_of(image: Image.Image) -> int:
    grey = ImageOps.exif_transpose(image).convert("L")
    small = np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float32)
    low = cv2.dct(small)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash_file(path) -> int:
    """Decodes images up to ``annot.images.MAX_PIXELS`` (PIL raises
    ``DecompressionBombError`` beyond)."""
    with pixel_limit(MAX_PIXELS), Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("L", (64, 64))  # decode at 1/2..1/8 scale: the hash only needs 32x32
        return phash_of(im)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def to_signed(h: int) -> int:
    """Unsigned 64-bit hash -> the signed BIGINT databases store."""
    return h - (1 << 64) if h >= _SIGNED else h


def to_unsigned(h: int) -> int:
    return h + (1 << 64) if h < 0 else h
