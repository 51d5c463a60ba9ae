"""Image sizes as a viewer displays them (EXIF orientation applied)."""

from __future__ import annotations

import base64
import contextlib
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AnnotError

if TYPE_CHECKING:
    from PIL import Image

# PIL is imported where an image is opened: converting files that store their
# image size never needs it, and the import is a tenth of annot's start-up.

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
MAX_PIXELS = 1_500_000_000  # images are decoded up to this size (PIL's own guard stops at ~179 Mpx)


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


@contextlib.contextmanager
def pixel_limit(limit: int | None):
    """PIL's decompression-bomb guard set to ``limit`` pixels (None: off) for
    the block. Large aerial and slide images are legitimate here: their
    headers are always read (nothing is decoded), and they are decoded up to
    :data:`MAX_PIXELS`, beyond which PIL raises ``DecompressionBombError``."""
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None if limit is None else limit // 2  # PIL raises beyond twice this, warns beyond it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


@contextlib.contextmanager
def decoding(path: Path):
    """Decode ``path``'s pixels in the block: up to :data:`MAX_PIXELS`, and any
    failure (too large, unreadable, truncated, corrupt) one AnnotError line
    naming the file."""
    from PIL import Image

    try:
        with pixel_limit(MAX_PIXELS):
            yield
    except Image.DecompressionBombError:
        raise AnnotError(f"{path}: image larger than {MAX_PIXELS:,} pixels") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises SyntaxError for some corrupt headers
        raise AnnotError(f"{path}: cannot read image: {e}") from None


def image_size(path: Path) -> tuple[int, int, int, int]:
    """``(width, height, raw_width, raw_height)`` from the header only.

    ``width``/``height`` are after EXIF orientation (what labelme and Label
    Studio show), ``raw_*`` as stored. Raises OSError on unreadable files
    (the message does not repeat the path).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with pixel_limit(None), Image.open(path) as im:
            return sizes(im)
    except UnidentifiedImageError:
        raise OSError("not an image PIL can read") from None
    except (ValueError, SyntaxError) as e:  # PIL raises these for some corrupt headers
        raise OSError(f"corrupt image header: {e}") from None


def embedded_image(b64: str) -> tuple[bytes, str, tuple[int, int, int, int]]:
    """Decode labelme's ``imageData``: (bytes, extension, sizes as image_size)."""
    from PIL import Image

    data = base64.b64decode(b64)
    with pixel_limit(None), Image.open(io.BytesIO(data)) as im:
        ext = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}.get(
            im.format or "", ".png"
        )
        return data, ext, sizes(im)
