"""Which Label Studio control tag (``from_name``) receives each geometry.

Parsed with ``label_studio_sdk.label_interface``. A region goes to a control
of its own kind that lists its label (rectangle -> RectangleLabels, polygon ->
PolygonLabels, mask -> BrushLabels); when the config has none, the nearest
kind that can hold it (a polygon can be painted as a brush mask, a mask traced
as polygons, anything reduced to its box).

Without a config the Label Studio templates' names are assumed:
``RectangleLabels name="label"``, ``PolygonLabels name="label"``,
``BrushLabels name="tag"``, ``KeyPointLabels name="keypoints"``, all on
``Image name="image" value="$image"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annot.errors import AnnotError

KINDS = {"RectangleLabels": "rectangle", "PolygonLabels": "polygon", "BrushLabels": "brush", "KeyPointLabels": "keypoint"}
# What a geometry may become when the config lacks its own kind, best first.
FALLBACK = {
    "rectangle": ("rectangle", "polygon", "brush"),
    "polygon": ("polygon", "brush", "rectangle"),
    "brush": ("brush", "polygon", "rectangle"),
    "keypoint": ("keypoint",),
}


@dataclass(frozen=True)
class Control:
    kind: str
    name: str
    to_name: str
    labels: frozenset[str] | None  # None: accepts any label (no config)
    # model class names (lowercase) -> the label: each label's own name and its
    # ``predicted_values="a,b"``, as Label Studio matches model output
    aliases: tuple[tuple[str, str], ...] = ()
    smart: bool = False  # a smart tool (interactive clicks and boxes)


@dataclass
class LabelConfig:
    controls: list[Control]
    data_key: str = "image"

    @classmethod
    def default(cls) -> LabelConfig:
        return cls(
            [
                Control("rectangle", "label", "image", None),
                Control("polygon", "label", "image", None),
                Control("brush", "tag", "image", None),
                Control("keypoint", "keypoints", "image", None),
            ]
        )

    @classmethod
    def from_file(cls, path: Path) -> LabelConfig:
        return cls.from_xml(Path(path).read_text(encoding="utf-8"), str(path))

    @classmethod
    def from_xml(cls, xml: str, source: str = "label config") -> LabelConfig:
        from label_studio_sdk.label_interface import LabelInterface

        try:
            li = LabelInterface(xml)
        except Exception as e:
            raise AnnotError(f"{source}: not a Label Studio label config: {e}") from None
        images = {o.name: o.value.lstrip("$") for o in li.objects if o.tag == "Image"}
        if not images:
            raise AnnotError(f"{source}: no <Image> tag")
        controls = []
        for c in li.controls:
            kind = KINDS.get(c.tag)
            if kind is None:
                continue
            to_name = next((t for t in c.to_name if t in images), None)
            if to_name is not None:
                controls.append(Control(kind, c.name, to_name, frozenset(c.labels or ()), _aliases(c),
                                        str(c.attr.get("smart", "")).lower() == "true"))
        if not controls:
            raise AnnotError(f"{source}: no RectangleLabels, PolygonLabels or BrushLabels control on an <Image>")
        return cls(controls, images[controls[0].to_name])

    def label_for(self, name: str) -> str | None:
        """The config's label for a model class ``name``: the label of that
        name in any case, or the one listing it in ``predicted_values``."""
        key = name.strip().lower()
        for c in self.controls:
            for alias, label in c.aliases:
                if alias == key:
                    return label
        return None

    def route(self, geometry: str, label: str) -> Control | None:
        """The control for a region of ``geometry`` kind with ``label``."""
        for kind in FALLBACK[geometry]:
            for c in self.controls:
                if c.kind == kind and (c.labels is None or label in c.labels):
                    return c
        return None


def _aliases(control) -> tuple[tuple[str, str], ...]:
    out = []
    for label, tag in (getattr(control, "labels_attrs", None) or {}).items():
        out.append((label.strip().lower(), label))
        for v in str(tag.attr.get("predicted_values", "") or "").split(","):
            if v.strip():
                out.append((v.strip().lower(), label))
    return tuple(out)
