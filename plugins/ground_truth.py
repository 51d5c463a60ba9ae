"""``annot predict --gt COCO.json``: the ids outputs share with a COCO file,
and its boxes as prompts.

COCO results must use the image and category ids of the file they are
evaluated against, so with ``--gt`` every input image takes the id of the
image of the same ``file_name`` (else the same base name, when that is
unique) and every label its category id. Prompt-driven models (GrabCut, SAM)
take each annotation's box as a prompt labelled with its category: boxes from
labelImg (``annot convert voc coco``) become masks this way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from annot.converters.discovery import load_json
from annot.errors import AnnotError
from annot.formats import hint
from annot.model import Category
from annot.values import is_int

from .inputs import InputImage
from .predictor import Prompt


@dataclass
class GroundTruth:
    path: Path
    ids: dict[str, int]  # file_name -> image id
    categories: list[Category]
    prompts: dict[int, list[Prompt]]  # image id -> box prompts

    @classmethod
    def read(cls, path: Path) -> GroundTruth:
        try:
            data = load_json(path)
            if not isinstance(data, dict) or "images" not in data:
                raise AnnotError(f"{path}: --gt takes the COCO dataset of these images (an object with images, "
                                 f"annotations and categories){hint(data, 'coco') or ''}")
            ids = {str(im["file_name"]).replace("\\", "/"): _int(im["id"]) for im in data["images"]}
            cats = [Category(_int(c["id"]), str(c["name"])) for c in data["categories"]]
            names = {c.id: c.name for c in cats}
            prompts: dict[int, list[Prompt]] = {}
            for k, a in enumerate(data.get("annotations", [])):
                if a.get("iscrowd") in (1, True, "1", "true"):
                    continue
                if len(a.get("bbox") or ()) != 4:
                    raise AnnotError(f"{path}: annotations[{k}]: no bbox")
                prompts.setdefault(_int(a["image_id"]), []).append(
                    Prompt(box=[float(v) for v in a["bbox"]], label=names[_int(a["category_id"])]))
        except (OSError, ValueError) as e:
            raise AnnotError(f"{path}: cannot read COCO: {e}") from None
        except (KeyError, TypeError, AttributeError) as e:
            raise AnnotError(f"{path}: not a COCO file (missing or wrong {e})") from None
        return cls(Path(path), ids, cats, prompts)

    def match(self, items: list[InputImage]) -> tuple[list[InputImage], list[InputImage]]:
        """(items renumbered with this file's image ids, items it does not have)."""
        base = Counter(PurePosixPath(n).name for n in self.ids)
        by_base = {PurePosixPath(n).name: i for n, i in self.ids.items() if base[PurePosixPath(n).name] == 1}
        found, missing = [], []
        for it in items:
            gid = self.ids.get(it.name, by_base.get(PurePosixPath(it.name).name))
            (found if gid is not None else missing).append(it if gid is None else replace(it, image_id=gid))
        return found, missing

    def prompts_by_name(self, items: list[InputImage]) -> dict[str, list[Prompt]]:
        return {it.name: self.prompts.get(it.image_id, []) for it in items}


def _int(v) -> int:
    if is_int(v):
        return v
    raise ValueError(f"id {v!r} is not an integer (normalise the file with `annot convert coco coco` first)")
