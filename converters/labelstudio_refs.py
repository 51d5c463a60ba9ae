"""Label Studio image references -> COCO ``file_name`` (and back).

==================================== ===========================================
``/data/upload/<p>/<8hex>-<name>``   ``<name>`` (Label Studio's upload prefix
                                     dropped; ``--keep-upload-prefix`` keeps
                                     the whole path)
``/data/local-files/?d=<path>``      ``<path>`` (URL-decoded)
``s3://b/k``, ``gs://b/k``,          last path component; the full URL is kept
``http(s)://host/p``                 as the image's ``coco_url``
anything else                        as given
==================================== ===========================================
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlparse

_UPLOAD = re.compile(r"^/data/upload/\d+/(?:[0-9a-f]{8}-)?(?P<name>[^/]+)$")


def file_name_of(ref: str, keep_upload_prefix: bool = False) -> tuple[str, str | None]:
    """``(file_name, coco_url or None)`` for a task's image reference."""
    m = _UPLOAD.match(ref)
    if m:
        return (ref if keep_upload_prefix else m.group("name")), None
    if ref.startswith("/data/local-files/"):
        d = parse_qs(urlparse(ref).query).get("d")
        if d:
            return d[0], None
    scheme = urlparse(ref).scheme
    if scheme in ("s3", "gs", "http", "https", "azure-blob"):
        path = urlparse(ref).path.rstrip("/")
        return unquote(path.rsplit("/", 1)[-1]) or ref, ref
    return ref.lstrip("/") or ref, None  # "/image1" (a path on Label Studio's host): a relative file name


def image_url(file_name: str, prefix: str | None) -> str:
    """What a task's ``data.image`` should hold: ``prefix + file_name``, or the
    Label Studio local-files URL when no prefix is given."""
    if prefix is None:
        return f"/data/local-files/?d={file_name}"
    return prefix + file_name
