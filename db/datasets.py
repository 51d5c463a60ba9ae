"""Datasets and their immutable versions.

``import_coco`` validates a COCO file (nothing is written when it fails),
hashes every image (sha256 for identity, pHash for near-duplicates), stores a
canonical copy of the COCO in the store and records a new version in one
transaction, or reports "unchanged" when that content is already a version.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import func, select

from annot.errors import AnnotError, StoreError
from annot.images import decoding, image_size
from annot.parallel import map_files
from annot.paths import find_image
from annot.validate import load_valid_coco

from . import files
from .phash import phash_file, to_signed
from .schema import Dataset, DatasetVersion, Image, VersionImage, utcnow
from .session import Store


@dataclass
class ImportResult:
    version: DatasetVersion
    created: bool


def hash_image(path: Path) -> tuple[str, int, int, int]:
    """(sha256, pHash, displayed width, displayed height)."""
    with decoding(path):
        w, h = image_size(path)[:2]
        return files.sha256_file(path), phash_file(path), w, h


def _canonical(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _annotations_digest(anns: list[dict], cat_names: dict) -> str:
    """What an image's labels are, independent of ids and order."""
    rows = sorted(
        _canonical({"category": cat_names[a["category_id"]], "bbox": a["bbox"], "segmentation": a["segmentation"],
                    "iscrowd": a.get("iscrowd", 0), "keypoints": a.get("keypoints")})
        for a in anns
    )
    return hashlib.sha256(b"\n".join(rows)).hexdigest()


def import_coco(store: Store, name: str, coco_path: Path, image_root: Path, message: str = "",
                jobs: int | None = None, quiet: bool = True) -> ImportResult:
    doc, _ = load_valid_coco(coco_path)
    paths = []
    for k, im in enumerate(doc["images"]):
        p = find_image(im["file_name"], [Path(image_root)])
        if p is None:
            raise AnnotError(f"{coco_path}:images[{k}]: {im['file_name']!r} not found under {image_root} (names "
                             "are never followed out of it)")
        paths.append(p)
    hashed = list(map_files(hash_image, paths, jobs, "hashing images", quiet))
    for k, (im, (_sha, _ph, w, h)) in enumerate(zip(doc["images"], hashed)):
        if (w, h) != (im["width"], im["height"]):
            raise AnnotError(f"{coco_path}:images[{k}]: {im['file_name']!r} is {w}x{h}, the COCO file says "
                             f"{im['width']}x{im['height']}")

    cat_names = {c["id"]: c["name"] for c in doc["categories"]}
    by_image: dict[int, list[dict]] = {im["id"]: [] for im in doc["images"]}
    for a in doc["annotations"]:
        by_image[a["image_id"]].append(a)
    for im, (sha, _ph, _w, _h) in zip(doc["images"], hashed):
        im["sha256"] = sha
    data = _canonical(doc)
    counts = Counter(cat_names[a["category_id"]] for a in doc["annotations"] if not a.get("iscrowd"))
    counts = {c["name"]: counts.get(c["name"], 0) for c in doc["categories"]}

    rel, digest = files.put(store.files, data, ".coco.json")
    _ensure_dataset(store, name)
    with store.transaction() as s:
        # the dataset row is the lock that serialises versions on PostgreSQL
        ds = s.scalar(select(Dataset).where(Dataset.name == name).with_for_update())
        same = s.scalar(select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id,
                                                     DatasetVersion.coco_sha256 == digest))
        if same is not None:
            return ImportResult(same, False)
        parent = s.scalar(select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id)
                          .order_by(DatasetVersion.version.desc()).limit(1))
        image_ids = upsert_images(s, paths, hashed, image_root)
        version = DatasetVersion(
            dataset_id=ds.id, version=(parent.version + 1) if parent else 1, parent_id=parent.id if parent else None,
            message=message, coco_path=rel, coco_sha256=digest, image_root=str(Path(image_root).resolve()),
            n_images=len(doc["images"]),
            n_instances=sum(counts.values()), counts=counts,
        )
        s.add(version)
        s.flush()
        s.add_all(
            VersionImage(version_id=version.id, file_name=im["file_name"], image_id=image_ids[im["sha256"]],
                         annotations_sha256=_annotations_digest(by_image[im["id"]], cat_names),
                         n_instances=len(by_image[im["id"]]))
            for im in doc["images"]
        )
        ds.categories = [{"id": c["id"], "name": c["name"]} for c in doc["categories"]]
    return ImportResult(version, True)


def _ensure_dataset(store: Store, name: str) -> None:
    """Create the dataset row unless it exists; a concurrent creator may win."""
    from sqlalchemy.exc import IntegrityError

    try:
        with store.transaction() as s:
            if s.scalar(select(Dataset.id).where(Dataset.name == name)) is None:
                s.add(Dataset(name=name, categories=[]))
    except IntegrityError:
        pass  # created meanwhile by another process: fine


def upsert_images(s, paths, hashed, image_root: Path | None) -> dict[str, int]:
    """Image ids by sha256, inserting the new ones (paths relative to
    ``image_root``; absolute without one). ``ON CONFLICT DO NOTHING``
    (SQLite and PostgreSQL alike) lets two imports share an image safely."""
    rows = {}
    for path, (sha, ph, w, h) in zip(paths, hashed):
        if sha not in rows:
            rel = str(path.relative_to(image_root)) if image_root and path.is_relative_to(image_root) \
                else str(Path(path).resolve())
            rows[sha] = {"sha256": sha, "path": rel, "width": w, "height": h, "phash": to_signed(ph),
                         "created_at": utcnow()}
    insert = dialect_insert(s)
    values = list(rows.values())
    for k in range(0, len(values), 500):  # stay under the SQL variable limits
        s.execute(insert(Image).values(values[k : k + 500]).on_conflict_do_nothing(index_elements=["sha256"]))
    shas = list(rows)
    ids: dict[str, int] = {}
    for k in range(0, len(shas), 500):
        ids.update(s.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(shas[k : k + 500]))).all())
    return ids


def dialect_insert(s):
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` (datasets and models alike)."""
    name, _, ver = ref.partition("@")
    if ver and not ver.isdigit():
        raise AnnotError(f"{ref}: expected NAME or NAME@VERSION (an integer)")
    return name, int(ver) if ver else None


def get_version(s, ref: str) -> DatasetVersion:
    name, ver = parse_ref(ref)
    ds = s.scalar(select(Dataset).where(Dataset.name == name))
    if ds is None:
        known = s.scalars(select(Dataset.name).order_by(Dataset.name)).all()
        raise StoreError(f"unknown dataset {name!r}; known: {', '.join(known) or 'none'}")
    q = select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id)
    q = q.where(DatasetVersion.version == ver) if ver else q.order_by(DatasetVersion.version.desc()).limit(1)
    v = s.scalar(q)
    if v is None:
        latest = s.scalar(select(func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == ds.id))
        raise StoreError(f"{name} has no version {ver} (latest: {latest})")
    return v


def load_coco(store: Store, version: DatasetVersion) -> dict:
    problem = files.verify(store.files, version.coco_path, version.coco_sha256)
    if problem:
        raise AnnotError(problem)
    return orjson.loads((store.files / version.coco_path).read_bytes())


def diff(s, a: DatasetVersion, b: DatasetVersion) -> dict:
    """Images added/removed/changed (by content) and instances per category."""
    def images(v):
        rows = s.execute(select(Image.sha256, VersionImage.annotations_sha256)
                         .join(Image, Image.id == VersionImage.image_id)
                         .where(VersionImage.version_id == v.id)).all()
        return dict(rows)

    ia, ib = images(a), images(b)
    cats = list(dict.fromkeys([*a.counts, *b.counts]))
    return {
        "images_added": len(ib.keys() - ia.keys()),
        "images_removed": len(ia.keys() - ib.keys()),
        "images_changed": sum(1 for k in ia.keys() & ib.keys() if ia[k] != ib[k]),
        "instances": {c: {"before": a.counts.get(c, 0), "after": b.counts.get(c, 0),
                          "delta": b.counts.get(c, 0) - a.counts.get(c, 0)} for c in cats},
    }
