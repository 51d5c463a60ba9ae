"""The format registry: names typed after ``annot convert`` -> readers/writers.

Built-ins are a literal table; third parties add formats through the
``annot.formats`` entry-point group (an entry point names a :class:`Format`).
The registry is an object built on demand, not global state, so tests can
make their own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .errors import AnnotError, UnknownName


@dataclass(frozen=True)
class Format:
    name: str
    help: str
    reader: str | None = None  # "module:function"
    writer: str | None = None
    output: str = "file"  # file | dir
    # the ConvertOptions fields its reader and its writer read: `annot convert`
    # refuses an option that neither end of a conversion would read
    read_options: frozenset[str] = field(default_factory=frozenset)
    write_options: frozenset[str] = field(default_factory=frozenset)
    # The writer copies Annotation.rendered_geometry(): readers then send plain
    # polygon annotations from their workers as rendered COCO JSON. Any other
    # writer reads the fields, and parsing the JSON back would cost more than
    # it saved.
    rendered_json: bool = False

    def load(self, which: str):
        ref = self.reader if which == "reader" else self.writer
        if ref is None:
            raise UnknownName(f"{which} for", self.name, [])
        module, func = ref.split(":")
        return getattr(importlib.import_module(module), func)


_C = "annot.converters."
_F = frozenset
BUILTIN = (
    Format("coco", "COCO JSON (instances), or a results list with its images file", _C + "coco_reader:read",
           _C + "coco_writer:write", "file", _F({"image_root", "gt"}), rendered_json=True),
    Format("labelme", "labelme JSON, one file per image", _C + "labelme_reader:read", _C + "labelme_writer:write",
           "dir", _F({"ignore_as_crowd", "extract_images", "image_root"}), _F({"image_root"})),
    Format("voc", "labelImg Pascal VOC XML", _C + "voc_reader:read", _C + "voc_writer:write", "dir",
           _F({"pixel_convention", "difficult_as_crowd", "image_root"}), _F({"pixel_convention"})),
    Format("yolo", "labelImg YOLO txt + classes.txt (boxes and segmentation)", _C + "yolo_reader:read",
           _C + "yolo_writer:write", "dir", _F({"image_root"}), _F({"simplify"})),
    Format("createml", "labelImg CreateML JSON", _C + "createml_reader:read", None, "file", _F({"image_root"})),
    Format("labelstudio", "Label Studio JSON export / JSON_MIN; import-ready tasks",
           _C + "labelstudio_reader:read", _C + "labelstudio_writer:write", "file",
           _F({"annotations", "predictions", "keep_upload_prefix", "image_root"}),
           _F({"as_", "model_version", "image_url_prefix", "label_config", "simplify"})),
)
# labelImg saves in one of three formats; `labelimg` as a format name is answered with them
ALIASES = {"labelimg": ("voc", "yolo", "createml")}


class Registry:
    def __init__(self, formats=BUILTIN, plugins: bool = True):
        self.formats = {f.name: f for f in formats}
        # Entry points are read on first need: finding them reads the metadata
        # of every installed package, and built-in names win anyway.
        self._plugins_pending = plugins

    def _load_plugins(self) -> None:
        if not self._plugins_pending:
            return
        self._plugins_pending = False
        from importlib.metadata import entry_points

        for ep in entry_points(group="annot.formats"):
            fmt = ep.load()
            self.formats.setdefault(fmt.name, fmt)

    def get(self, name: str) -> Format:
        if name not in self.formats and name.lower() in self.formats:  # COCO, LabelMe: the same names
            name = name.lower()
        if name not in self.formats:
            self._load_plugins()
        if name not in self.formats:
            if name.lower() in ALIASES and name.lower() not in self.formats:
                raise AnnotError(f"{name} saves in three formats; name the one your files are in: "
                                 f"{', '.join(ALIASES[name.lower()])}")
            raise UnknownName("format", name, self.formats)
        return self.formats[name]

    def all(self) -> dict[str, Format]:
        self._load_plugins()
        return self.formats

    def readers(self) -> list[str]:
        return sorted(n for n, f in self.all().items() if f.reader)

    def writers(self) -> list[str]:
        return sorted(n for n, f in self.all().items() if f.writer)


def looks_like(doc) -> str | None:
    """The format a parsed JSON document looks like, for a hint when it was
    given as another: ``labelme``, ``coco``, ``coco results``,
    ``labelstudio``, ``createml``; None when it looks like none."""
    first = doc[0] if isinstance(doc, list) and doc else doc
    if isinstance(doc, dict):
        if "shapes" in doc:
            return "labelme"
        if "images" in doc and "categories" in doc:
            return "coco"
        if "data" in doc:
            return "labelstudio"
    elif isinstance(first, dict):
        if "data" in first or "annotations" in first and "id" in first and "image_id" not in first:
            return "labelstudio"
        if "image_id" in first and "category_id" in first:
            return "coco results"
        if "image" in first and "annotations" in first:
            return "createml"
    return None


def hint(doc, given: str) -> str:
    """`` (it looks like a labelme file: annot convert labelme ...)`` when the
    document looks like another format than ``given``, else ``""``."""
    kind = looks_like(doc)
    if kind is None or kind.split()[0] == given:
        return ""
    if kind == "coco results":
        return " (it looks like a COCO results list: model output, read with `annot convert coco` and its images file)"
    return f" (it looks like a {kind} file: `annot convert {kind} ...`)"


def not_coco(doc) -> str | None:
    """Why a parsed JSON document given as COCO is neither a COCO dataset nor
    a results list, when it looks like something else (with the hint); else
    None (it is left to the COCO checks). The reader and ``annot validate``
    say the same."""
    if isinstance(doc, dict):
        return f"not a COCO dataset{hint(doc, 'coco')}" if "images" not in doc and looks_like(doc) else None
    if isinstance(doc, list) and (looks_like(doc) not in ("coco results", None)
                                  or not all(isinstance(r, dict) for r in doc)):
        return ("a JSON list, not a COCO dataset (an object with images, annotations, categories) nor a results "
                f"list{hint(doc, 'coco')}")
    return None
