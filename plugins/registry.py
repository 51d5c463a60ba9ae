"""Predictors by name: the ``annot.predictors`` entry-point group.

The built-ins register in annot's own ``pyproject.toml``; a third party adds a
model by installing a package that declares
``[project.entry-points."annot.predictors"] mymodel = "mypkg:MyPredictor"``.
Loading is lazy: listing predictors imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from annot.errors import AnnotError, UnknownName

GROUP = "annot.predictors"


@dataclass
class PluginInfo:
    name: str
    target: str  # "module:attr"
    status: str  # "ok" or why it cannot run here
    capabilities: list[str]
    device: str  # where it would run here: "cuda" or "cpu"


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    return sorted(_entry_points())


def get(name: str):
    """A predictor instance by name (not loaded yet: call ``.load``)."""
    eps = _entry_points()
    if name not in eps:
        raise UnknownName("model", name, eps)
    try:
        cls = eps[name].load()
    except ImportError as e:
        raise AnnotError(f"model {name!r} is installed but cannot be imported: {e}") from None
    return cls()


def available() -> list[PluginInfo]:
    out = []
    for name, ep in sorted(_entry_points().items()):
        try:
            cls = ep.load()
            status = getattr(cls, "availability", lambda: "ok")()
            caps = sorted(getattr(cls, "capabilities", ()))
            device = cls.default_device() if hasattr(cls, "default_device") else getattr(cls, "device", "cpu")
        except Exception as e:  # a broken plugin is listed with its reason, never fatal
            status, caps, device = f"cannot import: {type(e).__name__}: {e}", [], "-"
        out.append(PluginInfo(name, ep.value, status, caps, device))
    return out
