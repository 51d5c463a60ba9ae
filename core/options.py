"""Options of ``annot convert``, shared by every reader and writer.

Each reader and writer reads only the fields its :class:`~annot.formats.Format`
lists (``read_options``, ``write_options``); :func:`inapplicable` checks a
command line against those lists and :data:`REQUIRES`, before any work, so an
option that the conversion would silently ignore is an error instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .limits import Limits

SIMPLIFY_PX = 1.0  # default tolerance (px) when masks are traced to polygons, in every command

# ConvertOptions field -> its flag on the command line
FLAGS = {
    "ignore_as_crowd": "--ignore-as-crowd",
    "extract_images": "--extract-images",
    "pixel_convention": "--pixel-convention",
    "difficult_as_crowd": "--difficult-as-crowd",
    "image_root": "--image-root",
    "annotations": "--annotations",
    "predictions": "--predictions",
    "keep_upload_prefix": "--keep-upload-prefix",
    "as_": "--as",
    "model_version": "--model-version",
    "image_url_prefix": "--image-url-prefix",
    "label_config": "--label-config",
    "simplify": "--simplify",
    "gt": "--gt",
}
# an option that means something only with another option's value
REQUIRES = {"model_version": ("as_", "predictions")}


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
    # coco reader of a results list: the dataset its ids refer to
    gt: Path | None = None
    # polygon writers (yolo, labelstudio) from RLE masks
    simplify: float = SIMPLIFY_PX
    # set from the writer's Format.rendered_json: readers may hand plain polygon
    # annotations over as rendered COCO JSON, which that writer copies
    render_json: bool = False
    # what one input may make annot allocate (--max-memory, --max-pixels)
    limits: Limits = field(default_factory=Limits.default)
    extra: dict = field(default_factory=dict)


def inapplicable(given: dict, src, dst, formats=()) -> str | None:
    """Why an option in ``given`` (field -> value, only those the user gave)
    would be ignored by ``src`` -> ``dst`` (two Formats), or None. ``formats``:
    every known Format, to say where the option does apply."""
    for key in given:
        if key not in src.read_options and key not in dst.write_options:
            where = [f"{f.name} reader" for f in formats if key in f.read_options]
            where += [f"{f.name} writer" for f in formats if key in f.write_options]
            hint = f"; it is read by the {', '.join(where)}" if where else ""
            return f"{FLAGS[key]} does not apply to {src.name} -> {dst.name}{hint}"
        need = REQUIRES.get(key)
        if need is not None and given.get(need[0]) != need[1]:
            return f"{FLAGS[key]} needs {FLAGS[need[0]]} {need[1]}"
    return None
