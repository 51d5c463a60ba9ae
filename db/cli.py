"""``annot db`` and ``annot dataset``: the store from the command line."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from annot.help_format import Group

DB_HELP = "Database URL [default: sqlite:///annot.db in the working folder]."
STORE_HELP = "Folder of the store's files (dataset versions, checkpoints) [default: ./annot-store]."


def _store_options(create: bool, listing: bool = False):
    def decorate(f):
        @click.option("--db", "db_url", envvar="ANNOT_DB", show_envvar=True, help=DB_HELP)
        @click.option("--store", "store_path", envvar="ANNOT_STORE", show_envvar=True,
                      type=click.Path(path_type=Path), help=STORE_HELP)
        @functools.wraps(f)
        def wrapper(*args, db_url=None, store_path=None, **kwargs):
            from annot.errors import AnnotError, StoreError

            from .session import open_store

            try:
                store = open_store(db_url, store_path, create=create)
            except StoreError as e:
                if not listing:
                    raise
                # a listing of a store that is not there is empty: scripts get [] and a note, not an error
                click.echo(f"annot: {e}", err=True)
                if kwargs.get("as_json"):
                    emit_json([])
                return None
            try:
                return f(*args, store=store, **kwargs)
            except StoreError as e:
                if store.location in str(e):
                    raise
                raise AnnotError(f"{e} (store: {store.location})") from None

        return wrapper

    return decorate


# commands that write open (and on first use create) the store; commands that
# only read never create one, and say where they looked
store_options = _store_options(create=True)
read_store_options = _store_options(create=False)
listing_store_options = _store_options(create=False, listing=True)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def emit_json(obj) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(v) for v in r])
    Console().print(t)


# -- annot db -------------------------------------------------------------------


@click.group("db", cls=Group)
def db():
    """The store's database: migrations and facts."""


@db.command("upgrade")
@click.option("--db", "db_url", envvar="ANNOT_DB", show_envvar=True, help=DB_HELP)
def db_upgrade(db_url):
    """Bring the database to the newest migration (creates it when missing)."""
    from . import engine as eng

    url = eng.database_url(db_url)
    before = eng.current_revision(eng.make_engine(url))
    eng.upgrade(url)
    after = eng.current_revision(eng.make_engine(url))
    click.echo(f"{url}: {before or 'empty'} -> {after}" if before != after else f"{url}: already at {after}")


@db.command("info")
@read_store_options
@json_option
def db_info(store, as_json):
    """Where the store is and what it holds."""
    from sqlalchemy import func, select

    from . import engine as eng
    from .schema import Dataset, DatasetVersion, Image, ModelVersion, TrainingRun

    with store.transaction() as s:
        counts = {t.__tablename__: s.scalar(select(func.count()).select_from(t))
                  for t in (Image, Dataset, DatasetVersion, ModelVersion, TrainingRun)}
    info = {"url": store.url, "store": str(store.files), "revision": eng.current_revision(store.engine), **counts}
    if as_json:
        emit_json(info)
    else:
        print_table("annot store", ["what", "value"], [[k, v] for k, v in info.items()])


# -- annot dataset --------------------------------------------------------------


@click.group("dataset", cls=Group)
def dataset():
    """Datasets: immutable versions, diffs, leak-free splits, exports."""


@dataset.command("import")
@click.argument("name")
@click.argument("coco_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--image-root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The folder the COCO file's file_name values are relative to.")
@click.option("-m", "--message", default="", help="What changed.")
@click.option("-j", "--jobs", type=int, default=None, help="Processes hashing images [default: all cores].")
@store_options
@json_option
def dataset_import(name, coco_json, image_root, message, jobs, store, as_json):
    """Import a COCO file as a new version of NAME (or report it unchanged)."""
    from .datasets import import_coco

    res = import_coco(store, name, coco_json, image_root, message, jobs, quiet=as_json)
    v = res.version
    if as_json:
        emit_json({"dataset": name, "version": v.version, "created": res.created, "images": v.n_images,
                   "instances": v.counts})
        return
    head = f"{name}@{v.version}: " + ("new version" if res.created else "unchanged (same content as this version)")
    print_table(head, ["category", "instances"], [[c, n] for c, n in v.counts.items()] + [["images", v.n_images]])


@dataset.command("list")
@listing_store_options
@json_option
def dataset_list(store, as_json):
    """Every dataset: its latest version, images, instances and split schemes."""
    from sqlalchemy import func, select

    from .schema import Dataset, DatasetVersion, Split

    with store.transaction() as s:
        latest = (select(DatasetVersion.dataset_id, func.max(DatasetVersion.version).label("version"))
                  .group_by(DatasetVersion.dataset_id).subquery())
        rows = s.execute(select(Dataset.name, DatasetVersion.version, DatasetVersion.n_images,
                                DatasetVersion.n_instances, DatasetVersion.created_at)
                         .join(latest, latest.c.dataset_id == Dataset.id)
                         .join(DatasetVersion, (DatasetVersion.dataset_id == Dataset.id)
                               & (DatasetVersion.version == latest.c.version))
                         .order_by(Dataset.name)).all()
        schemes: dict[str, list[str]] = {}
        for name, scheme in s.execute(select(Dataset.name, Split.scheme).join(Split, Split.dataset_id == Dataset.id)
                                      .order_by(Split.scheme)):
            schemes.setdefault(name, []).append(scheme)
    data = [{"dataset": n, "latest": v, "images": im, "instances": ins, "created_at": at,
             "schemes": schemes.get(n, [])} for n, v, im, ins, at in rows]
    if as_json:
        emit_json(data)
    else:
        print_table(f"datasets in {store.location}", ["dataset", "latest", "images", "instances", "splits",
                                                      "created"],
                    [[d["dataset"], f"@{d['latest']}", d["images"], d["instances"], ", ".join(d["schemes"]) or "-",
                      d["created_at"]] for d in data])


@dataset.command("versions")
@click.argument("name")
@read_store_options
@json_option
def dataset_versions(name, store, as_json):
    """List the versions of NAME."""
    from sqlalchemy import select

    from .datasets import get_version
    from .schema import DatasetVersion

    with store.transaction() as s:
        latest = get_version(s, name)
        rows = s.scalars(select(DatasetVersion).where(DatasetVersion.dataset_id == latest.dataset_id)
                         .order_by(DatasetVersion.version)).all()
        data = [{"version": v.version, "images": v.n_images, "instances": v.n_instances, "message": v.message,
                 "created_at": v.created_at, "sha256": v.coco_sha256} for v in rows]
    if as_json:
        emit_json(data)
    else:
        print_table(f"{name}: versions", ["version", "images", "instances", "created", "message"],
                    [[d["version"], d["images"], d["instances"], d["created_at"], d["message"]] for d in data])


@dataset.command("show")
@click.argument("ref", metavar="NAME[@VERSION]")
@read_store_options
@json_option
def dataset_show(ref, store, as_json):
    """One version: counts per category, file, parent."""
    from . import files
    from .datasets import get_version

    with store.transaction() as s:
        v = get_version(s, ref)
        name = v.dataset.name
        problem = files.verify(store.files, v.coco_path, v.coco_sha256)
        data = {"dataset": name, "version": v.version, "images": v.n_images, "instances": v.counts,
                "message": v.message, "coco_path": str(store.files / v.coco_path), "sha256": v.coco_sha256,
                "created_at": v.created_at, "file_problem": problem}
    if as_json:
        emit_json(data)
        return
    print_table(f"{name}@{v.version} ({v.n_images} images){' - ' + problem if problem else ''}",
                ["category", "instances"], [[c, n] for c, n in v.counts.items()])


@dataset.command("diff")
@click.argument("a", metavar="NAME@A")
@click.argument("b", metavar="NAME@B")
@read_store_options
@json_option
def dataset_diff(a, b, store, as_json):
    """What changed between two versions."""
    from .datasets import diff, get_version

    with store.transaction() as s:
        d = diff(s, get_version(s, a), get_version(s, b))
    if as_json:
        emit_json(d)
        return
    Console().print(f"images: +{d['images_added']} -{d['images_removed']} ~{d['images_changed']} changed")
    print_table(f"{a} -> {b}", ["category", "before", "after", "delta"],
                [[c, v["before"], v["after"], f"{v['delta']:+d}"] for c, v in d["instances"].items()])


@dataset.command("split")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--scheme", default="default", show_default=True,
              help="Name of the split scheme; a dataset can have several, each fixed once made.")
@click.option("--ratios", default="0.8,0.1,0.1", show_default=True, help="train,val,test")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the assignment of new images.")
@click.option("--dedup-threshold", default=6, show_default=True, type=click.IntRange(0, 64),
              help="pHash bits within which images are near-duplicates and share a subset.")
@store_options
@json_option
def dataset_split(ref, scheme, ratios, seed, dedup_threshold, store, as_json):
    """Assign the version's new images to train/val/test (stable, stratified, leak-free)."""
    from .splits import SUBSETS, parse_ratios, split

    rep = split(store, ref, scheme, parse_ratios(ratios), seed, dedup_threshold)
    if as_json:
        emit_json(rep.to_dict())
        return
    cats = sorted({c for sub in SUBSETS for c in rep.instances[sub]})
    rows = [[sub, rep.images[sub], *[rep.instances[sub][c] for c in cats], rep.duplicate_groups[sub]]
            for sub in SUBSETS]
    print_table(f"{ref} split {scheme!r} ({rep.newly_assigned} newly assigned)",
                ["subset", "images", *cats, "duplicate groups"], rows)


@dataset.command("export")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--split", "subset", type=click.Choice(["train", "val", "test", "all"]), default="all",
              show_default=True, help="Only the images of one subset of the split scheme.")
@click.option("--scheme", default="default", show_default=True, help="The split scheme --split refers to.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The COCO file to write.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@read_store_options
def dataset_export(ref, subset, scheme, out, overwrite, store):
    """Write a version (or one subset of a split) as a COCO file."""
    from annot.io import check_writable, write_json_atomic

    from .datasets import get_version, load_coco
    from .splits import subset_file_names

    check_writable(out, overwrite)
    if subset == "all":
        with store.transaction() as s:
            version = get_version(s, ref)
        keep = None
    else:
        version, keep = subset_file_names(store, ref, scheme, subset)
    coco = load_coco(store, version)
    if keep is not None:
        coco["images"] = [im for im in coco["images"] if im["file_name"] in keep]
        ids = {im["id"] for im in coco["images"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    created = None if out.parent.exists() else out.parent
    write_json_atomic(out, coco, overwrite=overwrite)
    if created is not None:
        click.echo(f"annot: created folder {created}", err=True)
    click.echo(f"wrote {out}: {len(coco['images'])} images, {len(coco['annotations'])} annotations")




# -- annot models ---------------------------------------------------------------


def _model_row(store, mv) -> dict:
    from .registry import checkpoint_problem

    return {"model": mv.label, "name": mv.name, "version": mv.version, "status": mv.status,
            "promoted": mv.promoted, "dataset_version_id": mv.dataset_version_id, "split_id": mv.split_id,
            "metrics": mv.metrics, "config": mv.config, "checkpoint": mv.checkpoint_path,
            "checkpoint_sha256": mv.checkpoint_sha256, "checkpoint_problem": checkpoint_problem(store, mv),
            "created_at": mv.created_at}


@click.group("models", cls=Group)
def models():
    """Model versions: list, show, register, promote, roll back."""


@models.command("list")
@click.argument("name", required=False)
@listing_store_options
@json_option
def models_list(name, store, as_json):
    """Every model version (of NAME)."""
    from sqlalchemy import select

    from .schema import ModelVersion

    with store.transaction() as s:
        q = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
        rows = [_model_row(store, mv) for mv in s.scalars(q.where(ModelVersion.name == name) if name else q)]
    if as_json:
        emit_json(rows)
        return
    print_table("model versions", ["model", "status", "promoted", "metrics", "checkpoint"],
                [[r["model"], r["status"], "*" if r["promoted"] else "", _metrics_text(r["metrics"]),
                  r["checkpoint_problem"] or "ok"] for r in rows])


def _metrics_text(m: dict) -> str:
    """The numbers a listing shows: a trained version's selection metric on val and its test AP (annot
    evaluate), else the flat numbers it was registered with."""
    parts = []
    sel = m.get("selection")
    if isinstance(sel, dict):
        parts.append(f"val {sel.get('metric')} {sel.get('value', -1):.3f} (epoch {sel.get('epoch')})")
    test = m.get("test")
    if isinstance(test, dict):
        parts.append(f"test segm AP {test.get('segm', {}).get('AP', -1):.3f}, bbox AP "
                     f"{test.get('bbox', {}).get('AP', -1):.3f}")
    if parts:
        return "; ".join(parts)
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items()
                     if isinstance(v, (int, float, str)))


@models.command("show")
@click.argument("ref", metavar="NAME[@VERSION]")
@read_store_options
@json_option
def models_show(ref, store, as_json):
    """One version; says when its checkpoint is missing or corrupt."""
    from .registry import get_model

    with store.transaction() as s:
        row = _model_row(store, get_model(s, ref))
    if as_json:
        emit_json(row)
        return
    print_table(row["model"], ["field", "value"], [[k, v] for k, v in row.items() if k not in ("name", "version")])
    if row["checkpoint_problem"]:
        click.echo(f"annot: checkpoint problem: {row['checkpoint_problem']}", err=True)


@models.command("register")
@click.argument("name")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The weights file; copied into the store. Required for a ready version.")
@click.option("--predictor", help="The predictor plugin that loads it [default: NAME when NAME is a plugin, else "
                                  "config's \"predictor\"].")
@click.option("--dataset", "dataset_ref", metavar="NAME@VERSION", help="The dataset version it was trained on.")
@click.option("--scheme", help="The split scheme it was trained on.")
@click.option("--metrics", default="{}", help="A JSON object of numbers, e.g. '{\"bbox_AP\": 0.41}'.")
@click.option("--config", default="{}", help="A JSON object the predictor loads with, e.g. '{\"backbone\": ...}'.")
@click.option("--status", type=click.Choice(["training", "ready", "failed", "archived"]), default="ready",
              help="ready: usable and promotable (the checkpoint is loaded once to prove it).")
@store_options
@json_option
def models_register(name, checkpoint, predictor, dataset_ref, scheme, metrics, config, status, store, as_json):
    """Record a new version of NAME (its checkpoint is copied into the store)."""
    from .registry import register, trained_on

    metrics, config = _json_object("--metrics", metrics), _json_object("--config", config)
    if predictor:
        config["predictor"] = predictor
    with store.transaction() as s:  # what the store can tell at once, before the checkpoint's (slow) load
        trained_on(s, dataset_ref, scheme)
    if status == "ready":
        if checkpoint is None:
            raise click.UsageError("a ready version needs --checkpoint (or register it with --status training)")
        from annot.plugins.model_spec import check_loadable

        config.setdefault("predictor", check_loadable(name, checkpoint, config))
    mv = register(store, name, checkpoint, dataset_ref, scheme, config, metrics, status)
    if as_json:
        emit_json({"model": mv.label, "version": mv.version})
    else:
        click.echo(f"registered {mv.label}")


def _json_object(flag: str, text: str) -> dict:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise click.UsageError(f"{flag} must be a JSON object: {e}") from None
    if not isinstance(value, dict):
        raise click.UsageError(f"{flag} must be a JSON object ({{...}}), not {type(value).__name__}")
    return value


@models.command("promote")
@click.argument("ref", metavar="NAME@VERSION")
@store_options
def models_promote(ref, store):
    """Make NAME@VERSION the one serving (atomically un-promotes the previous)."""
    from .registry import promote

    if "@" not in ref:
        raise click.UsageError(f"{ref}: give the version to promote, NAME@VERSION (annot models list shows them)")

    click.echo(f"promoted {promote(store, ref).label}")


@models.command("rollback")
@click.argument("name")
@store_options
def models_rollback(name, store):
    """Promote the newest ready version before the promoted one."""
    from .registry import rollback

    click.echo(f"promoted {rollback(store, name).label}")


# -- annot runs -----------------------------------------------------------------


@click.group("runs", cls=Group)
def runs():
    """Training runs: list (stale ones shown as such), reap."""


@runs.command("list")
@click.option("--stale-after", default=600, show_default=True, help="Seconds without a heartbeat.")
@listing_store_options
@json_option
def runs_list(stale_after, store, as_json):
    """Every training run, newest first."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from .registry import run_state
    from .schema import ModelVersion, TrainingRun

    now = datetime.now(UTC)
    with store.transaction() as s:
        rows = [{"id": r.id, "trigger": r.trigger, "state": run_state(r, now, timedelta(seconds=stale_after)),
                 "model_version_id": r.model_version_id, "started_at": r.started_at, "finished_at": r.finished_at,
                 "heartbeat_at": r.heartbeat_at, "epoch": r.epoch, "loss": r.loss, "log": r.log_path,
                 "error": r.error, "params": r.params}
                for r in s.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()))]
        models = {mv.id: mv.label for mv in s.scalars(select(ModelVersion))}
    if as_json:
        emit_json(rows)
        return
    print_table("training runs", ["id", "trigger", "state", "started", "epoch", "loss", "model", "log", "error"],
                [[r["id"], r["trigger"], r["state"], r["started_at"], "" if r["epoch"] is None else r["epoch"],
                  "" if r["loss"] is None else f"{r['loss']:.3f}", models.get(r["model_version_id"], ""),
                  r["log"] or "", r["error"] or ""] for r in rows])


@runs.command("reap")
@click.option("--stale-after", default=600, show_default=True, help="Seconds without a heartbeat.")
@store_options
def runs_reap(stale_after, store):
    """Mark runs whose heartbeat stopped as failed (and their model versions)."""
    from datetime import timedelta

    from .registry import reap

    ids = reap(store, timedelta(seconds=stale_after))
    click.echo(f"reaped {len(ids)} run(s){': ' + ', '.join(map(str, ids)) if ids else ''}")
