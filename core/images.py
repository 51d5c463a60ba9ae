"""Image sizes as a viewer displays them (EXIF orientation applied)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def sizes(im: Image.Image) -> tuple[int, int, int, int]:
    """``(width, height, raw_width, raw_height)`` of an open image (see image_size)."""
    w, h = im.size
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF: treat as upright
        orientation = 1
    if orientation in _TRANSPOSED:
        return h, w, w, h
    return w, h, w, h


def image_size(path: Path) -> tuple[int, int, int, int]:
    """``(width, height, raw_width, raw_height)`` from the header only.

    ``width``/``height`` are after EXIF orientation (what labelme and Label
    Studio show), ``raw_*`` as stored. Raises OSError on unreadable files.
    """
    try:
        with Image.open(path) as im:
            return sizes(im)
    except UnidentifiedImageError as e:
        raise OSError(f"not an image: {path}") from e


def embedded_image(b64: str) -> tuple[bytes, str, tuple[int, int, int, int]]:
    """Decode labelme's ``imageData``: (bytes, extension, sizes as image_size)."""
    data = base64.b64decode(b64)
    with Image.open(io.BytesIO(data)) as im:
        ext = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}.get(
            im.format or "", ".png"
        )
        return data, ext, sizes(im)
