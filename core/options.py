"""Options of ``annot convert``, shared by every reader and writer.

Each format reads only the fields it documents; :data:`FORMAT_OPTIONS` in
:mod:`annot.formats` says which, so the CLI can refuse an option given to a
format that would silently ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ConvertOptions:
    labels: list[str] | None = None  # category order (labels.txt); None = sorted names
    on_error: str = "fail"  # fail | skip
    quiet: bool = False
    jobs: int | None = None
    overwrite: bool = False
    # labelme
    ignore_as_crowd: bool = False
    extract_images: Path | None = None
    # voc
    pixel_convention: str = "continuous"  # continuous | voc1
    difficult_as_crowd: bool = False
    # yolo / labelstudio: where images live when sizes must be read from them
    image_root: Path | None = None
    # labelstudio reader
    annotations: str = "latest"  # latest | ground-truth | all
    predictions: bool = False
    keep_upload_prefix: bool = False
    # labelstudio writer
    as_: str = "annotations"  # annotations | predictions
    model_version: str | None = None
    image_url_prefix: str | None = None
    label_config: Path | None = None
    # polygon writers (labelme, yolo, labelstudio) from RLE masks
    simplify: float = 0.0
    # set from the writer's Format.rendered_json: readers may hand plain polygon
    # annotations over as rendered COCO JSON, which that writer copies
    render_json: bool = False
    extra: dict = field(default_factory=dict)
