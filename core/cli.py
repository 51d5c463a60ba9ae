"""The ``annot`` command line.

Library code raises :class:`~annot.errors.AnnotError`; only this module turns
errors into one line on stderr and an exit code (2 bad input, 1 invalid
dataset). ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
import threading
from pathlib import Path

import click
from click.core import ParameterSource

from . import __version__
from .errors import AnnotError, DatasetInvalid
from .formats import Registry
from .help_format import Group
from .io import check_writable, write_json_atomic
from .labels import read_labels
from .limits import MAX_PIXELS, limits_of
from .options import SIMPLIFY_PX, ConvertOptions, inapplicable
from .parallel import bulk
from .report import Report


class LazyGroup(Group):
    """Command groups of other packages, imported only when used, so that
    ``annot convert`` does not pay for SQLAlchemy or torch."""

    lazy = {
        "db": "annot.db.cli:db",
        "dataset": "annot.db.cli:dataset",
        "models": "annot.db.cli:models",
        "runs": "annot.db.cli:runs",
        "plugins": "annot.plugins.cli:plugins",
        "sam": "annot.plugins.cli:sam",
        "predict": "annot.plugins.predict_cli:predict",
        "serve": "annot.serve.cli:serve",
        "train": "annot.training.cli:train",
        "evaluate": "annot.training.cli:evaluate",
        "retrain": "annot.training.cli:retrain",
        "rank": "annot.active_learning.cli:rank",
    }

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx, name):
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="annot")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
@click.pass_context
def cli(ctx, debug):
    """annot: annotation-to-training workflow suite."""
    ctx.obj = {"debug": debug}


@cli.command(context_settings={"show_default": True})
@click.argument("src")
@click.argument("dst")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="Output file (coco, labelstudio) or directory (labelme, voc, yolo).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Category order, one name per line (labelme labels.txt; __ignore__/_background_ skipped).")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail",
              help="fail: stop at the first invalid file or shape; skip: skip it and list it in OUT.report.json.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no summary.")
@click.option("-j", "--jobs", type=int, default=None, help="Worker processes [default: all cores].")
@click.option("--max-memory", metavar="SIZE", default=None,
              help="Memory one input may make annot allocate, e.g. 4G; an input declaring more (an image's "
                   "masks, a brush region, a huge file) is refused [default: half of the memory usable here].")
@click.option("--max-pixels", type=click.IntRange(1, MAX_PIXELS), default=MAX_PIXELS,
              help="Pixels one image may declare.")
@click.option("--ignore-as-crowd", is_flag=True, help="labelme: keep __ignore__ shapes as iscrowd=1 regions.")
@click.option("--extract-images", type=click.Path(file_okay=False, path_type=Path),
              help="labelme: write images embedded as imageData to this directory.")
@click.option("--pixel-convention", type=click.Choice(["continuous", "voc1"]), default="continuous",
              help="voc: continuous (what labelImg writes) or voc1 (official VOC, 1-based inclusive).")
@click.option("--difficult-as-crowd", is_flag=True, help="voc: difficult=1 objects become iscrowd=1.")
@click.option("--image-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Where images are, when sizes must be read from them.")
@click.option("--annotations", type=click.Choice(["latest", "ground-truth", "all", "predictions"]), default="latest",
              help="labelstudio: which annotation of a task to convert; predictions: the task's latest prediction "
                   "instead (model output for review elsewhere).")
@click.option("--predictions", is_flag=True,
              help="labelstudio: also write task predictions as a COCO results list (OUT stem + .predictions.json).")
@click.option("--keep-upload-prefix", is_flag=True,
              help="labelstudio: keep /data/upload/<project>/<hash>- in file names.")
@click.option("--as", "as_", type=click.Choice(["annotations", "predictions"]), default="annotations",
              help="labelstudio writer: write regions as annotations or as predictions.")
@click.option("--model-version", help="labelstudio writer: model_version of written predictions.")
@click.option("--image-url-prefix", help="labelstudio writer: task image URL = prefix + file_name.")
@click.option("--label-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="labelstudio writer: Label Studio XML deciding each region's control tag.")
@click.option("--simplify", type=float, default=SIMPLIFY_PX,
              help="Tolerance in px when masks are traced to polygons (yolo, labelstudio writers).")
@click.option("--gt", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="coco reader of a results list: the COCO file its ids refer to [default: RESULTS stem + "
                   ".images.json, as annot predict writes it].")
@click.pass_context
def convert(ctx, src, dst, inputs, out, labels, on_error, overwrite, quiet, jobs, max_memory, max_pixels, **fmt_opts):
    """Convert annotations between tools' formats, through COCO.

    annot convert SRC DST INPUT... -o OUT. Formats: coco, labelme, voc, yolo,
    createml (read only), labelstudio; any SRC works with any DST. A COCO
    results list (model output) reads as a dataset whose annotations carry
    scores.
    """
    reg = Registry()
    src_f, dst_f = reg.get(src), reg.get(dst)
    if src_f.reader is None:
        raise click.UsageError(f"{src} can only be written; readable formats: {', '.join(reg.readers())}")
    if dst_f.writer is None:
        raise click.UsageError(f"{dst} can only be read; writable formats: {', '.join(reg.writers())}")
    given = {k: v for k, v in fmt_opts.items() if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT}
    problem = inapplicable(given, src_f, dst_f, reg.all().values())
    if problem:
        raise click.UsageError(problem)
    opts = ConvertOptions(
        labels=read_labels(labels) if labels else None,
        on_error=on_error,
        quiet=quiet,
        jobs=jobs,
        overwrite=overwrite,
        render_json=dst_f.rendered_json,
        limits=limits_of(max_memory, max_pixels),
        **fmt_opts,
    )
    check_writable(out, overwrite, folder=dst_f.output == "dir")
    created = None if out.parent.exists() else out.parent  # made by the writer; said below
    report = Report(on_error)
    with bulk():
        ds = src_f.load("reader")(list(inputs), opts, report)
        written = dst_f.load("writer")(ds, out, opts, report)
    if on_error == "skip":
        report_path = out.with_name(out.name + ".report.json")
        write_json_atomic(report_path, report.to_dict(), overwrite=True, indent=True)
    if not quiet:
        from .summary import print_convert_summary

        if created is not None:
            click.echo(f"annot: created folder {created}", err=True)
        print_convert_summary(ds, written, report)
    return ds  # to the console script, which exits without freeing it (entry)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="The merged COCO file.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Category order of the output, one name per line [default: as names first appear].")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
def merge(inputs, out, labels, overwrite, quiet):
    """Merge COCO files of disjoint images into one (categories matched by name, ids renumbered)."""
    from .merge import merge as merge_datasets

    reader = Registry().get("coco").load("reader")
    check_writable(out, overwrite)
    opts = ConvertOptions(quiet=True, overwrite=overwrite)
    report = Report("fail")
    with bulk():
        parts = [(path, reader([path], opts, report)) for path in inputs]
        ds = merge_datasets(parts, read_labels(labels) if labels else None)
        written = Registry().get("coco").load("writer")(ds, out, opts, report)
    if not quiet:
        from .summary import print_convert_summary

        print_convert_summary(ds, written, report)
    return ds


@cli.command()
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["coco"]))
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--gt", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="For a results list: the COCO file its ids refer to [default: FILE stem + .images.json].")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when valid.")
def validate(fmt, file, gt, quiet):
    """Check a COCO dataset (structure, pycocotools load, self-evaluation AP 1.0) or a results list."""
    from .validate import validate_coco_file

    summary = validate_coco_file(file, gt)
    if not quiet:
        click.echo(f"{file}: valid ({summary})")


@cli.command()
def formats():
    """List the formats annot reads and writes."""
    for name, f in sorted(Registry().all().items()):
        rw = ("read" if f.reader else "") + ("/" if f.reader and f.writer else "") + ("write" if f.writer else "")
        click.echo(f"{name:12} {rw:10} {f.help}")


def main(argv=None) -> int:
    """Run the command line on ``argv``; returns the exit status."""
    return _run(argv)[0]


def _run(argv) -> tuple[int, object]:
    """(exit status, what the command returned)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        result = cli.main(args=argv, prog_name="annot", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("annot: aborted", err=True)
        return 130, None
    except click.exceptions.NoArgsIsHelpError as e:  # `annot`, `annot dataset` alone: the help, asked for
        click.echo(e.ctx.get_help())
        return 0, None
    except click.ClickException as e:
        click.echo(f"annot: error: {click_message(e)}", err=True)
        return e.exit_code, None
    except DatasetInvalid as e:
        for p in e.problems:
            click.echo(one_line(f"{e.path}:{p}"), err=True)
        click.echo(f"annot: {one_line(str(e))}", err=True)
        return e.exit_code, None
    except AnnotError as e:
        if debug:
            raise
        click.echo(f"annot: error: {one_line(str(e))}", err=True)
        return e.exit_code, None
    except KeyboardInterrupt:
        return 130, None
    except Exception as e:  # a bug, not bad input: say so, keep the traceback for --debug
        if debug:
            raise
        click.echo(f"annot: internal error: {type(e).__name__}: {one_line(str(e))} (rerun with --debug for details)",
                   err=True)
        return 3, None
    return 0, result


def one_line(text: str) -> str:
    """A message as one line: line breaks and other control characters a file's
    contents put into it (a task id, a label) are written as escapes."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def click_message(e: click.ClickException) -> str:
    """A click error in annot's one-line style; a usage error says where the help is."""
    msg = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    if isinstance(e, click.UsageError) and ctx is not None:
        msg += f" (see '{ctx.command_path} --help')"
    return msg


def entry() -> None:
    """The ``annot`` console script: :func:`main`, then a prompt exit.

    A conversion leaves a dataset of hundreds of thousands of objects; freeing
    them one by one, then the interpreter's own teardown (a last collection,
    every module emptied) adds ~50 ms to a 1.6 s run. By then every file annot
    wrote is closed (atomic writes), so the process flushes its output, runs
    the atexit handlers as a normal exit does, and ends. With another thread
    still running, it exits normally instead, which waits for that thread.
    """
    code, result = _run(None)
    if threading.active_count() > 1:
        sys.exit(code)
    with contextlib.suppress(OSError):  # a closed pipe (annot ... | head): nothing left to tell
        sys.stdout.flush()
        sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)  # `result` is never freed


if __name__ == "__main__":
    entry()
