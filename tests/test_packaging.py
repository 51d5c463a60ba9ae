"""One import namespace, ``annot``, assembled from top-level folders."""

from __future__ import annotations

import importlib
import importlib.metadata
import tomllib
from pathlib import Path

from conftest import REPO

SKIP_DIRS = {".venv", "tests", "build", "examples", "benchmarks", ".git"}


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_packaged():
    cfg = _pyproject()
    folder_of = {pkg: REPO / d for pkg, d in cfg["package-dir"].items()}
    declared = set(cfg["packages"])
    expected = set()
    for init in REPO.rglob("__init__.py"):
        rel = init.parent.relative_to(REPO)
        if rel.parts[0] in SKIP_DIRS or any(p.startswith(".") for p in rel.parts):
            continue
        # the longest mapped folder containing this one names its package
        pkg, base = max(((p, f) for p, f in folder_of.items() if init.parent.is_relative_to(f)),
                        key=lambda pf: len(pf[1].parts), default=(None, None))
        assert pkg is not None, f"{rel} has an __init__.py but no package-dir mapping covers it"
        sub = init.parent.relative_to(base).parts
        expected.add(".".join((pkg, *sub)))
    assert expected == declared, f"packaged {sorted(declared)}, folders {sorted(expected)}"


def test_only_annot_lands_in_site_packages():
    dist = importlib.metadata.distribution("annot")
    assert dist.read_text("top_level.txt").split() == ["annot"]


def test_subpackages_import_from_their_folders():
    cfg = _pyproject()
    for pkg, folder in cfg["package-dir"].items():
        mod = importlib.import_module(pkg)
        assert Path(mod.__file__).resolve().parent == (REPO / folder).resolve(), pkg


def test_help_lists_every_command(annot):
    res = annot("--help")
    assert res.code == 0
    for cmd in ("convert", "validate", "formats"):
        assert f"  {cmd} " in res.out
