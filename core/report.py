"""What a run skipped and warned about, and the ``--on-error`` policy.

Readers call :meth:`Report.error` for an invalid file or shape: under
``fail`` it raises :class:`~annot.errors.ParseError` (the CLI prints it and
exits 2), under ``skip`` it records the skip and the reader moves on.
Warnings are counted by kind so a summary stays one line per kind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .errors import ParseError


@dataclass(slots=True)
class Skip:
    path: str
    item: str | None
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "item": self.item, "reason": self.reason}


@dataclass
class Report:
    on_error: str = "fail"
    skips: list[Skip] = field(default_factory=list)
    warnings: Counter = field(default_factory=Counter)
    warning_examples: dict[str, str] = field(default_factory=dict)

    def error(self, path, item: str | None, reason: str) -> None:
        if self.on_error == "fail":
            raise ParseError(str(path), item, reason)
        self.skips.append(Skip(str(path), item, reason))

    def warn(self, kind: str, where: str, count: int = 1) -> None:
        self.warnings[kind] += count
        self.warning_examples.setdefault(kind, where)

    def __reduce__(self):  # reports travel back from every worker call: keep the empty one cheap
        if not self.skips and not self.warnings:
            return Report, (self.on_error,)
        return Report, (self.on_error, self.skips, self.warnings, self.warning_examples)

    def merge(self, other: Report) -> None:
        if not other.skips and not other.warnings:
            return
        self.skips.extend(other.skips)
        self.warnings.update(other.warnings)
        for k, v in other.warning_examples.items():
            self.warning_examples.setdefault(k, v)

    def to_dict(self) -> dict:
        return {
            "skipped": [s.to_dict() for s in self.skips],
            "warnings": [
                {"kind": k, "count": n, "example": self.warning_examples.get(k)}
                for k, n in sorted(self.warnings.items())
            ],
        }
