"""User-facing errors.

Only the CLI turns these into exit codes and one-line messages; library code
raises them and never prints. Each message names the file, the item and the
reason so a labeller can find the offending shape.
"""

from __future__ import annotations


class AnnotError(Exception):
    """Base of every error caused by user input (exit code 2)."""

    exit_code = 2


class ParseError(AnnotError):
    """An input file or one item in it cannot be read.

    ``str(err)`` is ``path:item: reason`` (``path: reason`` without an item).
    The three parts stay separate so reports can list them as columns.
    """

    def __init__(self, path: str, item: str | None, reason: str):
        super().__init__(path, item, reason)
        self.path = str(path)
        self.item = item
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.path}:{self.item}" if self.item else self.path
        return f"{where}: {self.reason}"


class UnknownName(AnnotError):
    """A name typed by the user (a format, a model) is not known."""

    def __init__(self, kind: str, name: str, known):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")


class StoreError(AnnotError):
    """Something the store does not have or refuses (an unknown dataset,
    model, version or split scheme); the CLI adds which store it looked in."""


class NotYetInStore(StoreError):
    """A model the store may still get: no store yet, nothing registered
    under a predictor's own name (``maskrcnn`` before the first training),
    or no version promoted. ``annot serve`` starts and waits for it; other
    commands report it like any store error."""


class Interrupted(AnnotError):
    """Ctrl-C during work that leaves a record (a training run): what was kept and how to go on."""

    exit_code = 130


class OutputExists(AnnotError):
    def __init__(self, path):
        super().__init__(f"{path}: already exists; pass --overwrite to replace it")


class DatasetInvalid(AnnotError):
    """A dataset failed validation; ``problems`` holds one line per problem."""

    exit_code = 1

    def __init__(self, path: str, problems: list[str]):
        self.path, self.problems = str(path), problems
        super().__init__(f"{path}: {len(problems)} problem(s)")


def reason(e: BaseException) -> str:
    """An exception's message for a one-line error: its first non-empty line,
    with the type name when that line says little (``KeyError(174812789)``
    from a pickle says only the number)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        # torch's message goes on to suggest weights_only=False, i.e. running the file's pickled code: not here
        return "it holds pickled Python objects, not only tensors; annot loads weights without running pickled code"
    if not lines or len(lines[0]) < 8 or lines[0].endswith(":") or not any(c.isalpha() for c in lines[0]):
        head = lines[0].rstrip(":") if lines else ""
        return f"{type(e).__name__}{': ' + head if head else ''}"
    return lines[0]
