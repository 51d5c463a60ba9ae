"""Images as models see them: RGB uint8, in the orientation a viewer shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from annot.errors import AnnotError


def load_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB with EXIF orientation applied (CMYK, grey, palette,
    RGBA and 16-bit images converted); a clear error for unreadable files."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                im = Image.fromarray((arr / max(arr.max(), 1) * 255).astype(np.uint8))
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise AnnotError(f"{path}: cannot read image: {e}") from None
