"""``annot predict``: batch pre-annotation of image folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from annot.errors import AnnotError
from annot.options import SIMPLIFY_PX


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Options of `annot predict` that only some models or outputs read, checked
# before any work: the predictor's own ``load_options`` say which model
# options it reads; the others need a capability, an output or another option.
MODEL_OPTIONS = {"checkpoint": "--checkpoint", "weights": "--weights", "backbone": "--backbone",
                 "score_threshold": "--score-threshold", "device": "--device", "precision": "--precision"}
LABELSTUDIO_OPTIONS = {"label_config": "--label-config", "image_url_prefix": "--image-url-prefix",
                       "simplify": "--simplify"}
STORE_OPTIONS = {"db_url": "--db", "store_path": "--store"}


def _typed(ctx: click.Context) -> set[str]:
    """The parameters the user typed on the command line (not defaults, not environment)."""
    return {p.name for p in ctx.command.params if ctx.get_parameter_source(p.name) is ParameterSource.COMMANDLINE}


def check_options(typed: set[str], choice, fmt: str, refine: str | None, from_store: bool) -> None:
    """Refuse every typed option the chosen model, output or refiner would ignore."""
    if {"checkpoint", "weights"} <= typed:
        raise click.UsageError("--checkpoint and --weights exclude each other: one is where the weights come from")
    reads = choice.load_options
    for key, flag in MODEL_OPTIONS.items():
        if key in typed and key not in reads:
            takes = ", ".join(f for k, f in MODEL_OPTIONS.items() if k in reads)
            raise click.UsageError(f"{flag} does not apply to --model {choice.plugin} "
                                   f"({'it takes ' + takes if takes else 'it takes no model options'})")
    for key, flag in LABELSTUDIO_OPTIONS.items():
        if key in typed and fmt != "labelstudio":
            raise click.UsageError(f"{flag} applies to --format labelstudio, not {fmt}")
    if refine and "automatic" not in getattr(choice.predictor, "capabilities", ()):
        raise click.UsageError(f"--refine re-segments a detector's boxes; {choice.plugin} is not a detector "
                               "(use a detector such as maskrcnn)")
    if "sam_checkpoint" in typed and refine != "sam":
        raise click.UsageError("--sam-checkpoint applies to --refine sam")
    for key, flag in STORE_OPTIONS.items():
        if key in typed and not from_store:
            raise click.UsageError(f"{flag} applies to models from the store; --model {choice.plugin} "
                                   f"{'with --checkpoint/--weights ' if choice.checkpoint or choice.weights else ''}"
                                   "does not read it")


@click.command("predict", context_settings={"show_default": True})
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="IMAGES_OR_DIR...")
@click.option("--model", "spec", required=True, metavar="SPEC",
              help="maskrcnn (promoted in the store), NAME@V (a store version), grabcut, sam, or any installed "
                   "predictor; see `annot plugins list`.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The output file: Label Studio tasks, or a COCO results list (see --format).")
@click.option("--format", "fmt", type=click.Choice(["labelstudio", "coco"]), default="labelstudio",
              help="labelstudio: import-ready tasks with predictions; coco: a results list for COCO.loadRes "
                   "(+ OUT stem.images.json).")
@click.option("--score-threshold", type=float, default=0.5, help="Drop detections scoring below this (detectors).")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint file instead of the store (maskrcnn .pt, SAM .pth).")
@click.option("--weights", type=click.Choice(["coco"]), help="maskrcnn: torchvision's COCO weights.")
@click.option("--backbone", type=click.Choice(["resnet50_fpn_v2", "mobilenet_v3_large_fpn"]),
              help="maskrcnn: when the checkpoint does not say [default: resnet50 on GPU, mobilenet on CPU].")
@click.option("--refine", type=click.Choice(["sam", "grabcut"]),
              help="Re-segment each detected box with SAM (or GrabCut).")
@click.option("--sam-checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="ANNOT_SAM_CHECKPOINT", show_envvar=True, help="SAM checkpoint for --refine sam.")
@click.option("--gt", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="COCO file of these images: outputs use its image and category ids; grabcut and sam take "
                   "its boxes as prompts.")
@click.option("--label-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="labelstudio: the project's label config; decides polygons vs brush masks [default: brush].")
@click.option("--image-url-prefix", help="labelstudio: task image URL = prefix + file name "
                                         "[default: /data/local-files/?d=NAME].")
@click.option("--simplify", type=float, default=SIMPLIFY_PX,
              help="labelstudio: tolerance in px when masks are traced to polygons.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Images per model call [default: 8 on "
                                                                       "GPU, 1 on CPU].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: cuda when available]")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
              help="auto: bf16 autocast on GPUs that support it (else fp16), fp32 on CPU.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Image-decoding processes [default: min(4, cores - 1)].")
@click.option("--max-side", type=click.IntRange(64), default=2048,
              help="Larger images are downscaled to this for the model; masks are scaled back.")
@click.option("--shard", metavar="I/N", help="Only the I-th of N disjoint slices of the images (by content hash; "
                                             "I from 1).")
@click.option("--resume", is_flag=True, help="Keep the images OUT (or an interrupted run) already has.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--db", "db_url", envvar="ANNOT_DB", show_envvar=True,
              help="Store database URL, for models from the store [default: sqlite:///annot.db].")
@click.option("--store", "store_path", envvar="ANNOT_STORE", show_envvar=True, type=click.Path(path_type=Path),
              help="Store directory [default: ./annot-store].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no summary.")
@click.pass_context
def predict(ctx, images, spec, out, fmt, score_threshold, checkpoint, weights, backbone, refine, sam_checkpoint, gt,
            label_config, image_url_prefix, simplify, batch_size, device, precision, workers, max_side, shard, resume,
            overwrite, db_url, store_path, quiet):
    """Pre-annotate images with a model: Label Studio tasks or COCO results."""
    import torch

    from annot.parallel import progress

    from . import registry
    from .batch_predict import BatchPredictor
    from .ground_truth import GroundTruth
    from .inputs import find_images, parse_shard, select_shard
    from .model_spec import resolve
    from .predict_output import OutputSpec, PredictionWriter

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    typed = _typed(ctx)
    choice = resolve(spec, checkpoint=checkpoint, weights=weights, db_url=db_url, store_path=store_path)
    from_store = checkpoint is None and weights is None and choice.checkpoint is not None
    check_options(typed, choice, fmt, refine, from_store)
    if device == "cuda" and not torch.cuda.is_available():
        raise AnnotError("--device cuda: no CUDA device is visible to torch here")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        torch.set_num_threads(_cpus())
    batch_size = batch_size or (8 if device == "cuda" else 1)
    workers = min(4, max(_cpus() - 1, 1)) if workers is None else workers

    items = find_images(list(images))
    truth = GroundTruth.read(gt) if gt else None
    unmatched = []
    if truth is not None:
        items, unmatched = truth.match(items)
        if not items:
            raise AnnotError(f"--gt {gt}: none of the {len(unmatched)} input image(s) is an image of it (file names "
                             f"compared: e.g. {unmatched[0].name if unmatched else 'none'})")
    if shard:
        items = select_shard(items, *parse_shard(shard))

    prompted = "automatic" not in getattr(choice.predictor, "capabilities", ())
    if prompted and truth is None:
        raise AnnotError(f"{spec} segments what it is shown: pass --gt BOXES.json (a COCO file whose boxes become "
                         f"prompts, e.g. from `annot convert voc coco`), or use a detector (maskrcnn)")
    created = None if Path(out).parent.exists() else Path(out).parent
    writer = PredictionWriter(OutputSpec(out, fmt, "", None, label_config, image_url_prefix, simplify), items,
                              resume=resume, overwrite=overwrite)  # refuses a taken OUT before loading a model
    settings = {"device": device, "score_threshold": score_threshold, "precision": precision, "backbone": backbone}
    loaded = choice.load(**{k: v for k, v in settings.items() if k in choice.load_options})
    model = loaded.predictor
    refiner, version = None, loaded.version
    if refine:
        refiner = registry.get(refine)
        refiner.load(**{k: v for k, v in {"checkpoint": sam_checkpoint, "device": device, "precision": precision}.items()
                        if k in refiner.load_options})
        version = f"{version}+{refine}"

    classes = getattr(model, "classes", None)
    if truth is not None and classes and not prompted:
        missing = sorted(set(classes) - {c.name for c in truth.categories})
        if missing:
            raise AnnotError(f"{gt}: has no category for the model's classes {missing}")
    names = [c.name for c in truth.categories] if prompted and truth is not None else list(classes or [])
    if fmt == "labelstudio" and label_config and names and not any(writer.label_of(n) for n in names):
        labels = sorted({lb for c in writer.config.controls if c.kind != "keypoint" for lb in c.labels or ()})
        raise AnnotError(f"{label_config}: none of the classes {spec} predicts ({', '.join(names[:10])}) is a label of "
                         f"its controls ({', '.join(labels)}): add them, or name them in a <Label>'s predicted_values")
    writer.spec.model_version = version
    if writer.spec.categories is None:  # a resumed COCO output keeps its own
        writer.spec.categories = truth.categories if truth is not None else _categories(classes)
    for it in unmatched:
        writer.report.error(str(it.path), None, f"{it.name} is not an image of {gt}")
    todo = [it for it in items if it.name not in writer.done]
    runner = BatchPredictor(model, refiner, truth.prompts_by_name(todo) if prompted else None,
                            batch_size=batch_size, workers=workers, max_side=max_side, pin_memory=device == "cuda")
    bar = progress(runner.run(todo), len(todo), "predict", quiet, unit="img")
    try:
        for result in bar:
            writer.add(result)
    except KeyboardInterrupt:
        writer.close()
        click.echo(f"annot: interrupted; {len(writer.records)} image(s) kept in {writer.journal}: rerun with "
                   "--resume to go on", err=True)
        raise
    total = writer.finish()
    if created is not None and not quiet:
        click.echo(f"annot: created folder {created}", err=True)
    _summary(writer, out, total, version, quiet)
    if todo and writer.added == 0:
        raise AnnotError(f"no image could be predicted ({len(writer.report.skips)} skipped)")


def _categories(classes):
    from annot.model import Category

    return [Category(k, n) for k, n in enumerate(classes, start=1)] if classes else None


def _summary(writer, out: Path, total: int, version: str, quiet: bool) -> None:
    from annot.io import write_json_atomic

    skips = writer.report.skips
    for s in skips:
        click.echo(f"annot: skipped {s.reason if s.reason.startswith(s.path) else f'{s.path}: {s.reason}'}",
                   err=True)
    if skips or writer.report.warnings:
        write_json_atomic(out.with_name(out.name + ".report.json"), writer.report.to_dict(), overwrite=True,
                          indent=True)
    if not quiet:
        sys.stdout.write(f"{out}: {total} image(s) ({writer.added} predicted now, {len(skips)} skipped) "
                         f"by {version}\n")
        for kind, n in sorted(writer.report.warnings.items()):
            sys.stdout.write(f"  warning: {kind}: {n}\n")
