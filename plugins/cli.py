"""``annot plugins``: which model plugins are installed and usable here."""

from __future__ import annotations

import click


@click.group("plugins")
def plugins():
    """Model plugins (entry-point group annot.predictors)."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_list(as_json):
    """Installed predictors, what they can do and whether they can run here."""
    from dataclasses import asdict

    from .registry import available

    infos = available()
    if as_json:
        import orjson

        click.echo(orjson.dumps([asdict(i) for i in infos], option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="annot predictors")
    for col in ("name", "capabilities", "status", "provided by"):
        t.add_column(col)
    for i in infos:
        t.add_row(i.name, ", ".join(i.capabilities), i.status, i.target)
    Console().print(t)
