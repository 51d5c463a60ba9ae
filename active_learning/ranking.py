"""The ranking ``annot rank`` writes: one row per pool image.

The picked batch comes first (rank 1..budget, ``selected`` true, in the order
the strategy chose them), then every other scored image by its uncertainty.
Each row explains itself: the score and its components, the detections that
made it uncertain (label, box in image pixels, per-detection scores), the
diversity cluster (the rank of the nearest picked image, by embedding) and a
sentence saying why it was picked. JSON is a list of rows (rankings of
disjoint pools concatenate); CSV flattens the components into columns.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from annot.io import write_bytes_atomic

from .scoring import ImageScore
from .select import Selection

FIELDS = ("image", "rank", "selected", "score", "detections", "cluster", "why")


def rows_of(scored: list[ImageScore], selection: Selection, score_name: str, model_version: str) -> list[dict]:
    picked = {p.index: (rank, p) for rank, p in enumerate(selection.picks, start=1)}
    rest = sorted((i for i in range(len(scored)) if i not in picked),
                  key=lambda i: (-scored[i].components.get(score_name, 0.0), scored[i].item.name))
    order = [p.index for p in selection.picks] + rest
    rows = []
    for rank, i in enumerate(order, start=1):
        s = scored[i]
        row = {"image": s.item.name, "path": str(s.item.path.resolve()), "rank": rank, "selected": i in picked,
               "score": round(s.components.get(score_name, 0.0), 6),
               "components": {k: round(v, 6) for k, v in sorted(s.components.items())},
               "detections": s.detections, "classes": sorted(set(s.classes)),
               "cluster": selection.clusters[i], "why": picked[i][1].reason if i in picked else "",
               "regions": s.regions, "model_version": model_version}
        if selection.weights[i] != 1.0:
            row["balance_weight"] = round(selection.weights[i], 4)
        rows.append(row)
    return rows


def render(rows: list[dict], path: Path) -> str:
    if Path(path).suffix.lower() != ".csv":
        return json.dumps(rows, indent=1) + "\n"
    components = sorted({k for r in rows for k in r["components"]})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*FIELDS, *components, "classes", "path"])
    for r in rows:
        w.writerow([r[f] if r[f] is not None else "" for f in FIELDS]
                   + [r["components"].get(c, "") for c in components] + [" ".join(r["classes"]), r["path"]])
    return buf.getvalue()


def write_ranking(rows: list[dict], path: Path, overwrite: bool) -> None:
    write_bytes_atomic(path, render(rows, path).encode(), overwrite=overwrite)
