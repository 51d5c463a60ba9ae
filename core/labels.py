"""The labelme ``labels.txt`` convention: one class name per line, in id
order; ``__ignore__`` and ``_background_`` lines are markers, not classes."""

from __future__ import annotations

from pathlib import Path

from .errors import AnnotError
from .model import BACKGROUND_LABEL, IGNORE_LABEL


def read_labels(path: Path) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotError(f"{path}: cannot read labels file: {e}") from None
    names, seen = [], set()
    for n, line in enumerate(lines, start=1):
        name = line.strip()
        if not name or name in (IGNORE_LABEL, BACKGROUND_LABEL):
            continue
        if name in seen:
            raise AnnotError(f"{path}:line {n}: label {name!r} listed twice")
        seen.add(name)
        names.append(name)
    if not names:
        raise AnnotError(f"{path}: no labels")
    return names
