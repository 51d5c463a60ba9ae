"""Scores in the store: per image (by content) and model version, one row
per ``component:aggregation`` (``margin:max``, ``mask:topk-mean``...), so a
ranking can be re-read and compared across model versions without running a
model again. Pool images the store has not seen are added to its images
table (content hash, pHash, size); nothing else about them is recorded.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from annot.db.datasets import dialect_insert, upsert_images
from annot.db.schema import Image, Score


def write_scores(store, model_version_id: int, hashed: dict[Path, tuple[str, int, int, int]],
                 components: dict[Path, dict[str, float]], agg: str) -> int:
    """Upsert ``components[path]`` for each hashed path; returns the rows written."""
    paths = [p for p in components if p in hashed]
    with store.transaction() as s:
        ids = upsert_images(s, paths, [hashed[p] for p in paths], None)
        rows = [{"image_id": ids[hashed[p][0]], "model_version_id": model_version_id, "name": f"{name}:{agg}",
                 "value": float(v)} for p in paths for name, v in components[p].items()]
        insert = dialect_insert(s)
        for k in range(0, len(rows), 500):
            stmt = insert(Score).values(rows[k : k + 500])
            s.execute(stmt.on_conflict_do_update(index_elements=["image_id", "model_version_id", "name"],
                                                 set_={"value": stmt.excluded.value}))
    return len(rows)


def read_scores(store, model_version_id: int, sha256: list[str]) -> dict[str, dict[str, float]]:
    """sha256 -> {name: value} of one model version."""
    out: dict[str, dict[str, float]] = {}
    with store.transaction() as s:
        for k in range(0, len(sha256), 500):
            q = (select(Image.sha256, Score.name, Score.value).join(Image, Image.id == Score.image_id)
                 .where(Score.model_version_id == model_version_id, Image.sha256.in_(sha256[k : k + 500])))
            for sha, name, value in s.execute(q):
                out.setdefault(sha, {})[name] = value
    return out
