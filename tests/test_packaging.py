"""One import namespace, ``annot``, assembled from top-level folders."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REPO

from annot.errors import UnknownName
from annot.formats import Registry

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


def test_format_plugins_are_found_on_first_need(tmp_path, monkeypatch, annot):
    """Third-party formats come from the ``annot.formats`` entry points; the
    scan for them happens only when a name is not built in (or on listing),
    and a plugin never replaces a built-in format."""
    (tmp_path / "annot_fake_format.py").write_text(
        "from annot.formats import Format\n"
        "FAKE = Format('fake', 'a third-party format', 'annot_fake_format:read')\n"
        "CLASH = Format('coco', 'not the real coco', 'annot_fake_format:read')\n"
        "def read(inputs, opts, report):\n"
        "    raise NotImplementedError\n"
    )
    info = tmp_path / "annot_fake_format-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: annot-fake-format\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[annot.formats]\nfake = annot_fake_format:FAKE\ncoco = annot_fake_format:CLASH\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "annot_fake_format", raising=False)

    reg = Registry()
    assert reg.get("coco").help.startswith("COCO JSON (instances)")
    assert "annot_fake_format" not in sys.modules  # built-in names need no scan
    assert reg.get("fake").help == "a third-party format"
    assert "fake" in reg.readers() and reg.get("coco").help.startswith("COCO JSON (instances)")
    with pytest.raises(UnknownName, match="fake"):  # the error lists plugins too
        Registry().get("nope")
    listed = annot("formats").out
    assert "a third-party format" in listed and "not the real coco" not in listed
