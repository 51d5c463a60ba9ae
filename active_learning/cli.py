"""``annot rank``: which unlabelled images to label next, and why."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from annot.errors import AnnotError

from .aggregate import AGGREGATIONS, EMPTY_SCORE
from .scores import SCORES, SCORING_THRESHOLD
from .select import STRATEGIES

DB_HELP = "Store database URL [default: sqlite:///annot.db]."
STORE_HELP = "Store directory [default: ./annot-store]."


@click.command("rank", context_settings={"show_default": True})
@click.argument("images", nargs=-1, type=click.Path(path_type=Path), metavar="[IMAGES_OR_DIR...]")
@click.option("--model", "spec", required=True, metavar="SPEC",
              help="maskrcnn (the promoted version), NAME@V (a store version), or maskrcnn --checkpoint FILE.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint file instead of the store.")
@click.option("--weights", type=click.Choice(["coco"]), help="maskrcnn: torchvision's COCO weights (torch cache).")
@click.option("--dataset", "dataset", metavar="NAME[@V]",
              help="The labelled images: never ranked, their embeddings seed diversity, their classes --balance.")
@click.option("--unlabelled", is_flag=True, help="The pool is --dataset's image folder minus its labelled images.")
@click.option("--budget", type=click.IntRange(1), required=True, help="How many images to pick.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="hybrid",
              help="uncertainty, random (the baseline), diversity (k-center on embeddings), hybrid (k-center "
                   "among the most uncertain).")
@click.option("--score", "score_name", type=click.Choice(SCORES), default="combined",
              help="The per-detection uncertainty that ranks (flip runs the model twice; mc needs --mc-samples).")
@click.option("--agg", type=click.Choice(AGGREGATIONS), default="max", help="Detections -> one score per image.")
@click.option("--topk", type=click.IntRange(1), default=3, help="k of --agg topk-mean.")
@click.option("--empty-score", type=float, default=EMPTY_SCORE,
              help="The score of an image with no detection (it may hide missed objects).")
@click.option("--flip", is_flag=True, help="Also compute the flip-consistency score (runs the model twice).")
@click.option("--mc-samples", type=click.IntRange(0), default=0,
              help="Also compute the mc score: K Monte Carlo dropout passes of the box head per image.")
@click.option("--pool-factor", type=click.FloatRange(1), default=4.0,
              help="hybrid: k-center among the top pool-factor x budget by uncertainty.")
@click.option("--balance", is_flag=True, help="Favour images whose predicted classes are rare in --dataset.")
@click.option("--radius", type=click.IntRange(0, 64), default=None,
              help="Near-duplicates: pHash distance in bits [default: the dataset's split radius, else 6].")
@click.option("--seed", type=int, default=0, help="random's draw and diversity's first centre.")
@click.option("--score-threshold", type=click.FloatRange(0, 1), default=SCORING_THRESHOLD,
              help="Detections scoring below this are not scored (low: uncertain ones count).")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ranking.json (a list of rows) or ranking.csv.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--push-labelstudio", "push_url", metavar="URL",
              help="Write each image's prediction, score (1 - uncertainty) and cluster to a Label Studio project "
                   "(token: LABEL_STUDIO_API_KEY).")
@click.option("--project", "project_id", type=int, help="The Label Studio project of --push-labelstudio.")
@click.option("--push-threshold", type=click.FloatRange(0, 1), default=0.5,
              help="Detections scoring at least this become the pushed regions.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write a contact sheet (PNG + index.html) of the picked images with their masks and reasons.")
@click.option("--shard", metavar="I/N", help="Only the I-th of N disjoint slices of the pool (by content hash); each "
                                             "shard picks its own batch.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: cuda when available]")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="[default: 8 on GPU, 1 on CPU]")
@click.option("--workers", type=click.IntRange(0), default=0, help="Image-decoding processes.")
@click.option("--db", "db_url", envvar="ANNOT_DB", show_envvar=True, help=DB_HELP)
@click.option("--store", "store_path", envvar="ANNOT_STORE", show_envvar=True, type=click.Path(path_type=Path),
              help=STORE_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no summary.")
def rank(images, spec, checkpoint, weights, dataset, unlabelled, budget, strategy, score_name, agg, topk, empty_score, flip,
         mc_samples, pool_factor, balance, radius, seed, score_threshold, out, overwrite, push_url, project_id, push_threshold,
         report_dir, shard, device, batch_size, workers, db_url, store_path, quiet):
    """Rank unlabelled images by uncertainty (and diversity): label the top ones first."""
    import torch

    from annot.io import check_writable
    from annot.parallel import progress
    from annot.plugins.inputs import parse_shard, select_shard
    from annot.plugins.model_spec import resolve

    from .pool import hash_or_reason, labelled_set, pool_items
    from .ranking import rows_of, write_ranking
    from .scoring import ScoringOptions, score_images
    from .select import Candidate, select

    if balance and strategy in ("random", "diversity"):
        raise click.UsageError(f"--balance weighs uncertainty scores; --strategy {strategy} does not use them")
    if unlabelled and not dataset:
        raise click.UsageError("--unlabelled needs --dataset NAME: the pool is its image folder minus its images")
    if (push_url is None) != (project_id is None):
        raise click.UsageError("--push-labelstudio URL and --project ID go together")
    if out.suffix.lower() not in (".json", ".csv"):
        raise click.UsageError(f"-o {out}: name it .json (a list of rows) or .csv")
    check_writable(out, overwrite)
    if report_dir is not None:
        check_writable(report_dir / "index.html", overwrite)
    flip = flip or score_name == "flip"
    if score_name == "mc" and not mc_samples:
        raise click.UsageError("--score mc: give --mc-samples K (e.g. 10), the dropout passes it averages")
    if checkpoint is not None and weights is not None:
        raise click.UsageError("--checkpoint and --weights exclude each other: one is where the weights come from")
    choice = resolve(spec, checkpoint=checkpoint, weights=weights, db_url=db_url, store_path=store_path)
    if "automatic" not in getattr(choice.predictor, "capabilities", ()):
        raise AnnotError(f"--model {spec}: ranking needs a detector that finds objects by itself (e.g. maskrcnn)")
    store = None
    if dataset or choice.model_version_id is not None:
        from annot.db.session import open_store

        store = open_store(db_url, store_path, upgrade=False, create=False)
    labelled = labelled_set(store, dataset) if dataset else None
    items = pool_items(list(images), labelled, unlabelled)
    if shard:
        items = select_shard(items, *parse_shard(shard))

    hashed, unreadable = {}, []
    for it in progress(items, len(items), "hashing", quiet, unit="img"):
        h = hash_or_reason(it)
        if isinstance(h, str):
            unreadable.append(it)
            click.echo(f"annot: skipped {h}", err=True)
        else:
            hashed[it.path] = h
    known = labelled.sha256 if labelled else set()
    pool = [it for it in items if it.path in hashed and hashed[it.path][0] not in known]
    if not pool:
        raise AnnotError(f"nothing to rank: all {len(items)} image(s) are labelled in {labelled.ref}" if labelled
                         else "nothing to rank: no readable image")

    if device == "cuda" and not torch.cuda.is_available():
        raise AnnotError("--device cuda: no CUDA device is visible to torch here")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    batch_size = batch_size or (8 if device == "cuda" else 1)
    wants = {"device": device, "score_threshold": score_threshold, "embeddings": True}
    if mc_samples:
        if "mc_samples" not in choice.load_options:
            raise AnnotError(f"--mc-samples: {choice.version} has no dropout passes (maskrcnn has)")
        wants["mc_samples"] = mc_samples
    model = choice.load(**{k: v for k, v in wants.items() if k in choice.load_options}).predictor
    opts = ScoringOptions(score_name, agg, topk, empty_score, flip)

    scored, failed = [], list(unreadable)
    keep_from = push_threshold if push_url or report_dir else None
    for s in progress(score_images(model, pool, opts, batch_size, workers, keep_from=keep_from), len(pool), "scoring",
                      quiet, unit="img"):
        (failed.append(s.item) if s.error else scored.append(s))
        if s.error:
            click.echo(f"annot: skipped {s.error}", err=True)
    if not scored:
        raise AnnotError(f"no image could be scored ({len(failed)} failed)")
    missing = [s.item.name for s in scored if score_name not in s.components]
    if missing:
        raise AnnotError(f"--score {score_name}: {choice.version} does not give it ({missing[0]}); it gives "
                         f"{', '.join(sorted(scored[0].components)) or 'no score'}")

    lab_emb = None
    if labelled is not None and labelled.items and strategy in ("diversity", "hybrid"):
        embs = [s.embedding for s in progress(score_images(model, labelled.items, opts, batch_size, workers),
                                              len(labelled.items), "labelled", quiet, unit="img")
                if s.embedding is not None]
        lab_emb = np.stack(embs) if embs else None
    candidates = [Candidate(s.item.name, s.components[score_name], hashed[s.item.path][1], s.embedding, s.classes)
                  for s in scored]
    radius = radius if radius is not None else (labelled.radius if labelled and labelled.radius is not None else 6)
    try:
        selection = select(candidates, budget, strategy, seed, labelled.phashes if labelled else [], lab_emb, radius,
                           pool_factor, labelled.counts if balance and labelled else ({} if balance else None))
    except ValueError as e:
        raise AnnotError(f"--strategy {strategy}: {e}") from None
    rows = rows_of(scored, selection, score_name, choice.version)
    write_ranking(rows, out, overwrite)
    stored = 0
    if store is not None and choice.model_version_id is not None:
        from .stored import write_scores

        stored = write_scores(store, choice.model_version_id, hashed, {s.item.path: s.components for s in scored},
                              agg)
    if report_dir:
        from .report import write_report

        page = write_report(report_dir, rows, {s.item.name: s for s in scored}, list(getattr(model, "classes", [])),
                            f"annot rank: {budget} to label next ({strategy}, {choice.version})")
        click.echo(f"report: {page}")
    if push_url:
        import os

        from annot.options import SIMPLIFY_PX

        from .labelstudio_push import push

        pushed = push(push_url, os.environ.get("LABEL_STUDIO_API_KEY"), project_id, rows,
                      {s.item.name: (s.instances or [], s.size) for s in scored}, choice.version, agg, SIMPLIFY_PX)
        _push_summary(pushed, push_url, project_id, choice.version)
    if not quiet:
        _summary(rows, selection, out, choice.version, strategy, len(pool), len(items) - len(pool) - len(unreadable),
                 failed, stored)


def _push_summary(pushed, url, project_id, version) -> None:
    if not pushed.pushed and pushed.unmatched:
        raise AnnotError(f"Label Studio project {project_id}: none of the {len(pushed.unmatched)} ranked images "
                         f"matches a task's image (e.g. {pushed.unmatched[0]}); nothing was written")
    click.echo(f"Label Studio project {project_id}: {pushed.pushed} prediction(s) written by {version} (the project's "
               "model version now)")
    for kind, names in (("no task", pushed.unmatched), ("several tasks", pushed.ambiguous)):
        if names:
            click.echo(f"annot: {len(names)} ranked image(s) match {kind} of project {project_id}, e.g. {names[0]}",
                       err=True)
    if pushed.sampling and "uncertainty" not in pushed.sampling.lower():
        click.echo(f"annot: the project samples tasks by {pushed.sampling!r}; choose 'Uncertainty sampling' in its "
                   "settings (Annotation > Task sampling) for Label Studio to serve the lowest score first", err=True)


def _summary(rows, selection, out, version, strategy, n_pool, n_labelled, failed, stored) -> None:
    from rich.console import Console
    from rich.table import Table

    picked = [r for r in rows if r["selected"]]
    table = Table(title=f"{len(picked)} image(s) to label next ({strategy}, {version})", title_justify="left")
    for col in ("rank", "image", "score", "detections", "why"):
        table.add_column(col, overflow="fold")
    for r in picked[:20]:
        table.add_row(str(r["rank"]), r["image"], f"{r['score']:.3f}", str(r["detections"]), r["why"])
    console = Console(file=sys.stdout, width=120)
    console.print(table)
    if len(picked) > 20:
        click.echo(f"... and {len(picked) - 20} more")
    notes = [f"{n_pool} pool image(s) scored"]
    if n_labelled:
        notes.append(f"{n_labelled} already labelled left out")
    if selection.duplicates_skipped:
        notes.append(f"{selection.duplicates_skipped} near-duplicate(s) passed over")
    if failed:
        notes.append(f"{len(failed)} unreadable or failed")
    if stored:
        notes.append(f"{stored} score(s) stored for {version}")
    click.echo(f"{out}: {'; '.join(notes)}")

