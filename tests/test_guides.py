"""The guides in docs/ cannot rot.

Every fenced ``sh`` block of every ``docs/guide-*.md`` is read:

- blocks marked ``sh run`` are run with bash, in order, in a copy of the
  quick demo's folder (what ``make demo`` leaves in build/demo), with the
  venv's ``annot`` first on PATH: each must exit 0;
- every ``annot`` command in the other blocks (servers, GPUs, Label Studio,
  a scheduler: what cannot run here) is parsed by annot's own command line:
  the subcommand, every option, choice and number must be accepted. Shell
  variables stand for ``1``, placeholders ``<...>`` for ``x``; paths need not
  exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import REPO

GUIDES = sorted((REPO / "docs").glob("guide-*.md"))
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
STOP = {"&&", "||", ";", "|", ">", ">>", "2>&1"}


def blocks(path: Path) -> list[tuple[bool, str]]:
    """(runs?, text) of each sh block."""
    return [("run" in extra.split(), text) for lang, extra, text in FENCE.findall(path.read_text())
            if lang == "sh"]


def annot_commands(text: str) -> list[list[str]]:
    """The argument lists of every annot command in a block (after `annot`,
    `.venv/bin/annot` or `-m annot`), up to a shell operator."""
    text = re.sub(r"\\\n\s*", " ", text)
    text = re.sub(r"<[^>\n]*>", "x", text)
    text = re.sub(r"\$\{?\w+\}?", "1", text)
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#") and "annot " not in line:
            continue
        words = shlex.split(line.lstrip("# "), comments=True)
        for k, w in enumerate(words):
            if w == "annot" or w.endswith("/annot") and k + 1 < len(words) and not words[k + 1].startswith("-"):
                if k > 0 and words[k - 1] == "cd":
                    continue
                rest = words[k + 1:]
                end = next((j for j, x in enumerate(rest) if x in STOP), len(rest))
                found.append(rest[:end])
                break
    return found


def parse(args: list[str]) -> click.Context:
    """Parse ``annot ARGS`` as the command line would, without running it."""
    from annot.cli import cli

    cmd, path, k = cli, ["annot"], 0
    while isinstance(cmd, click.Group):
        while args[k].startswith("-"):
            k += 1
        sub = cmd.get_command(None, args[k])
        assert sub is not None, f"annot {' '.join(path[1:])}: no command {args[k]!r}"
        cmd, path, k = sub, [*path, args[k]], k + 1
    saved = [(p.type, p.type.exists) for p in cmd.params if isinstance(p.type, click.Path)]
    try:
        for t, _ in saved:
            t.exists = False
        return cmd.make_context(" ".join(path), list(args[k:]))
    finally:
        for t, exists in saved:
            t.exists = exists


def test_every_guide_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    assert len(GUIDES) == 4
    for guide in GUIDES:
        assert f"docs/{guide.name}" in readme


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_every_annot_command_in_the_guide_parses(guide):
    commands = [c for _, text in blocks(guide) for c in annot_commands(text)]
    assert commands, f"{guide.name}: no annot command found"
    for args in commands:
        try:
            parse(args)
        except click.ClickException as e:
            pytest.fail(f"{guide.name}: annot {shlex.join(args)}: {e.format_message()}")


@pytest.mark.parametrize("guide", [g for g in GUIDES if any(run for run, _ in blocks(g))], ids=lambda p: p.stem)
def test_runnable_blocks_run_on_the_demo(guide, demo_build, tmp_path):
    out, _, _ = demo_build
    work = tmp_path / "demo"
    shutil.copytree(out, work, ignore=shutil.ignore_patterns("demo-report", ".cache"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ANNOT_DB": f"sqlite:///{work / 'annot.db'}", "ANNOT_STORE": str(work / "annot-store"),
           "MPLCONFIGDIR": str(tmp_path / "mpl")}
    for k, (run, text) in enumerate(blocks(guide)):
        if not run:
            continue
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=work, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"{guide.name} block {k}:\n{text}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
