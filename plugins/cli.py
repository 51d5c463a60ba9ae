"""``annot plugins``: which model plugins are installed and usable here."""

from __future__ import annotations

from pathlib import Path

import click

from annot.help_format import Group


@click.group("plugins", cls=Group)
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
    for col in ("name", "capabilities", "device", "status", "provided by"):
        t.add_column(col)
    for i in infos:
        t.add_row(i.name, ", ".join(i.capabilities), i.device, i.status, i.target)
    Console().print(t)


@click.group("sam", cls=Group)
def sam():
    """Segment Anything: precompute image embeddings."""


@sam.command("precompute")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--cache", "cache_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory of fp16 embeddings (<sha256>.npy) that later clicks read.")
@click.option("--model-type", type=click.Choice(["vit_b", "vit_l", "vit_h"]), default=None,
              help="[default: from the checkpoint file name, else vit_b]")
@click.option("--checkpoint", type=click.Path(dir_okay=False), envvar="ANNOT_SAM_CHECKPOINT",
              help="SAM checkpoint [env ANNOT_SAM_CHECKPOINT].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: cuda when available]")
def sam_precompute(images, cache_dir, model_type, checkpoint, device):
    """Encode every image once so that each later click costs only the decoder."""
    from .embedding_cache import EmbeddingCache
    from .sam import SamPlugin

    plugin = SamPlugin()
    plugin.load(model_type, checkpoint, device, cache=EmbeddingCache(max_bytes=0, directory=cache_dir))
    done = precompute(plugin, list(images))
    click.echo(f"{done} image(s): {plugin.encoder_calls} encoded, {done - plugin.encoder_calls} already cached "
               f"in {cache_dir}")


def precompute(plugin, inputs: list[Path]) -> int:
    from annot.images import IMAGE_SUFFIXES

    from .images import load_rgb

    files = []
    for p in inputs:
        files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
    for f in files:
        plugin.embed(load_rgb(f), persist=True)
    return len(files)
