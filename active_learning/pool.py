"""Which images are labelled and which wait in the pool, from the store.

A dataset version holds the labelled images. ``--unlabelled`` makes the pool
the images in the version's image folder (where it was imported from) that
the version does not hold: the usual layout of a project that labels a
folder bit by bit. Images given on the command line join the pool unless the
version already holds their content (same sha256).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from annot.db.datasets import get_version, hash_image
from annot.db.phash import to_unsigned
from annot.db.schema import Image, Split, VersionImage
from annot.errors import AnnotError
from annot.plugins.inputs import InputImage, find_images


@dataclass
class Labelled:
    ref: str  # NAME@V
    items: list[InputImage] = field(default_factory=list)  # those whose file is still there
    sha256: set[str] = field(default_factory=set)
    phashes: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # instances per category
    radius: int | None = None  # the dataset's split duplicate radius, when it has a split
    image_root: Path | None = None


def labelled_set(store, ref: str) -> Labelled:
    with store.transaction() as s:
        v = get_version(s, ref)
        rows = s.execute(select(VersionImage.file_name, Image.sha256, Image.phash)
                         .join(Image, Image.id == VersionImage.image_id)
                         .where(VersionImage.version_id == v.id).order_by(VersionImage.file_name)).all()
        radius = s.scalar(select(Split.dedup_threshold).where(Split.dataset_id == v.dataset_id)
                          .order_by(Split.id).limit(1))
        label, root, counts = f"{v.dataset.name}@{v.version}", v.image_root, dict(v.counts or {})
    out = Labelled(label, counts=counts, radius=radius, image_root=Path(root) if root else None)
    for k, (name, sha, ph) in enumerate(rows, start=1):
        out.sha256.add(sha)
        out.phashes.append(to_unsigned(ph))
        if root and (Path(root) / name).is_file():
            out.items.append(InputImage(Path(root) / name, name, k))
    return out


def hash_or_reason(item: InputImage) -> tuple[str, int, int, int] | str:
    """(sha256, pHash, width, height), or why the file cannot be read (one line naming it)."""
    try:
        return hash_image(item.path)
    except AnnotError as e:
        return str(e) if str(item.path) in str(e) else f"{item.path}: {e}"
    except OSError as e:
        return f"{item.path}: {e.strerror or e}"


def pool_items(given: list[Path], labelled: Labelled | None, unlabelled: bool) -> list[InputImage]:
    """The candidate files (labelled ones are removed later, by content)."""
    paths = list(given)
    if unlabelled:
        if labelled is None:
            raise AnnotError("--unlabelled needs --dataset NAME: the pool is its image folder minus its images")
        if labelled.image_root is None or not labelled.image_root.is_dir():
            raise AnnotError(f"{labelled.ref}: its image folder {labelled.image_root} is not there; give the pool "
                             "images on the command line")
        paths.append(labelled.image_root)
    if not paths:
        raise AnnotError("no pool: give IMAGES_OR_DIR, or --dataset NAME --unlabelled")
    return find_images(paths)
