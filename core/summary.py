"""Human summaries of a run, as rich tables."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from .model import Dataset
from .report import Report


def category_table(ds: Dataset, title: str = "") -> Table:
    counts = Counter(a.category_id for a in ds.annotations if not a.iscrowd)
    crowd = Counter(a.category_id for a in ds.annotations if a.iscrowd)
    images_with = Counter()
    for _img, cat in {(a.image_id, a.category_id) for a in ds.annotations}:
        images_with[cat] += 1
    t = Table(title=title or None)
    for col in ("id", "category", "instances", "crowd", "images"):
        t.add_column(col, justify="right" if col != "category" else "left")
    for c in ds.categories:
        t.add_row(str(c.id), c.name, str(counts[c.id]), str(crowd[c.id]), str(images_with[c.id]))
    t.add_row("", "[b]total[/b]", str(sum(counts.values())), str(sum(crowd.values())), str(len(ds.images)),
              end_section=True)
    return t


def print_convert_summary(ds: Dataset, written, report: Report) -> None:
    out = Console()
    err = Console(stderr=True)
    out.print(category_table(ds, title=f"wrote {', '.join(map(str, written))}"))
    for kind, n in sorted(report.warnings.items()):
        err.print(f"warning: {n} x {kind} (first: {report.warning_examples[kind]})", markup=False, highlight=False, soft_wrap=True)
    if report.skips:
        t = Table(title=f"skipped {len(report.skips)} item(s)")
        for col in ("file", "item", "reason"):
            t.add_column(col)
        for s in report.skips[:50]:
            t.add_row(s.path, s.item or "", s.reason)
        if len(report.skips) > 50:
            t.add_row("...", "", f"{len(report.skips) - 50} more in the report file")
        err.print(t)
