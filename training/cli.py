"""``annot train``, ``annot evaluate`` and ``annot retrain``."""

from __future__ import annotations

from pathlib import Path

import click

from annot.db.cli import emit_json, json_option, print_table, store_options
from annot.errors import AnnotError

PRECISIONS = ("auto", "fp32", "bf16")


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and v < 0) else f"{v:.3f}"


@click.command("train", context_settings={"show_default": True})
@click.argument("dataset", metavar="DATASET[@VERSION]", required=False)
@click.option("--model", type=click.Choice(["maskrcnn"]), default="maskrcnn", help="What to train.")
@click.option("--name", help="The model's name in the store [default: --model].")
@click.option("--scheme", default="default", help="The split scheme: train images train, val images choose the epoch.")
@click.option("--preset", type=click.Choice(["cpu-tiny", "gpu"]),
              help="A recipe [default: gpu with CUDA, else cpu-tiny]; the options below override it.")
@click.option("--backbone", type=click.Choice(["mobilenet_v3_large_fpn", "resnet50_fpn_v2"]),
              help="[default: the preset's]")
@click.option("--init", default="scratch",
              help="Start from: scratch, coco (torchvision's COCO weights, resnet50_fpn_v2), NAME@N or NAME (a "
                   "store version; NAME: the promoted one), or a checkpoint FILE.")
@click.option("--epochs", type=click.IntRange(1), help="[default: the preset's]")
@click.option("--batch-size", type=click.IntRange(1), help="Images per step, all processes together [default: the "
                                                           "preset's].")
@click.option("--max-lr", type=click.FloatRange(0, min_open=True), help="Peak of the one-cycle schedule "
                                                                        "[default: the preset's; see --find-lr].")
@click.option("--image-size", type=click.IntRange(32), help="Shorter image side in pixels [default: the preset's, "
                                                            "at most the images' median].")
@click.option("--device", help="cpu, cuda, cuda:1 [default: cuda when there is one].")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", help="auto: bf16 on GPUs that have "
                                                                                 "it, else fp32.")
@click.option("--seed", type=int, default=0, help="Seeds the weights, the order, the flips and the samplers.")
@click.option("--balance", is_flag=True, help="Class-balanced sampling (an image weighs as its rarest class).")
@click.option("--workers", type=click.IntRange(0), help="DataLoader processes [default: 4 on GPU, 0 on CPU].")
@click.option("--image-root", type=click.Path(exists=True, file_okay=False),
              help="Where the images are [default: the folder they were imported from].")
@click.option("--metric", default="segm_AP", help="What chooses the epoch and decides promotion: "
                                                  "segm_AP, bbox_AP50, ...")
@click.option("--min-gain", type=float, default=0.0, help="Promote only when the metric beats the promoted "
                                                          "version's by more than this.")
@click.option("--no-promote", is_flag=True, help="Register the version as ready, never promote it.")
@click.option("--find-lr", is_flag=True, help="Run the learning-rate range test (100 batches), save its plot, "
                                              "print the suggested --max-lr; trains nothing.")
@click.option("--resume", "resume_run", type=int, metavar="RUN", help="Continue a failed run from its last epoch.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no epoch lines.")
@store_options
@json_option
def train(dataset, model, name, scheme, preset, backbone, init, epochs, batch_size, max_lr, image_size, device,
          precision, seed, balance, workers, image_root, metric, min_gain, no_promote, find_lr, resume_run, quiet,
          store, as_json):
    """Train a model on a dataset version's train split; register the best epoch (by val AP) and promote it if
    it beats the promoted version."""
    from . import distributed
    from .train import TrainRequest, resume
    from .train import train as run_train

    if resume_run is not None:
        if dataset:
            raise click.UsageError("--resume RUN takes the run's own dataset and options; give no DATASET")
        result = resume(store, resume_run, echo=click.echo, quiet=quiet or as_json)
        return _report(result, as_json)
    if not dataset:
        raise click.UsageError("DATASET is required (or --resume RUN)")
    device = distributed.init_from_env(device)
    req = TrainRequest(dataset=dataset, name=name or model, scheme=scheme, preset=preset, backbone=backbone,
                       init=init, epochs=epochs, batch_size=batch_size, max_lr=max_lr, image_size=image_size,
                       device=device, precision=precision, seed=seed, balance=balance, workers=workers,
                       image_root=image_root, metric=metric, min_gain=min_gain, promote=not no_promote)
    if find_lr:
        return _find_lr(store, req, as_json)
    try:
        result = run_train(store, req, echo=click.echo, quiet=quiet or as_json)
    finally:
        distributed.shutdown()
    if result is not None:
        _report(result, as_json)


def _report(result, as_json: bool) -> None:
    if as_json:
        emit_json({"run": result.run_id, "model": result.model_ref, "metric": result.metric, "value": result.value,
                   "best_epoch": result.best_epoch, "promoted": result.promoted, "reason": result.reason,
                   "run_dir": str(result.run_dir), "history": result.history})
        return
    click.echo(f"{result.model_ref}: val {result.metric} {result.value:.4f} (epoch {result.best_epoch} of "
               f"{len(result.history)})")
    click.echo(f"{'promoted' if result.promoted else 'not promoted'}: {result.reason}")
    click.echo(f"curves: {result.run_dir / 'train_curves.png'}  log: {result.run_dir / 'train.log'}")


def _find_lr(store, req, as_json: bool) -> None:
    from tqdm import tqdm

    from .data import CocoInstances
    from .find_lr import range_test
    from .plots import lr_range
    from .train import plan

    p = plan(store, req)
    torch_model = p.config.build(train_scales=True)
    dataset = CocoInstances(p.train_doc, p.image_root, p.config.classes, flip=0.5, seed=p.recipe["seed"])
    with tqdm(total=100, desc="LR range test", unit="batch", disable=as_json) as bar:
        test = range_test(torch_model, dataset, p.recipe["batch_size"], p.device, seed=p.recipe["seed"],
                          clip_grad_norm=p.recipe["clip_grad_norm"], on_step=lambda step, lr, loss: (bar.set_postfix(lr=f"{lr:.2g}", loss=f"{loss:.3f}"),
                                                          bar.update()))
    out = Path(store.files) / "runs" / f"find-lr-{p.dataset_ref.replace('@', '-v')}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    lr_range(test.lrs, test.losses, test.suggested, out)
    if as_json:
        emit_json({"suggested_max_lr": test.suggested, "diverged": test.diverged, "plot": str(out),
                   "lrs": test.lrs, "losses": test.losses})
        return
    if test.suggested is None:
        click.echo(f"no suggestion: the loss had no minimum in the range; see {out}")
    else:
        click.echo(f"suggested --max-lr {test.suggested:.3g} (a tenth of the rate at the lowest loss"
                   f"{'; the loss diverged after' if test.diverged else ''}); plot: {out}")


# -- annot evaluate ---------------------------------------------------------------------------------


@click.command("evaluate", context_settings={"show_default": True})
@click.argument("model", metavar="MODEL@VERSION")
@click.argument("dataset", metavar="DATASET[@VERSION]")
@click.option("--split", "subset", type=click.Choice(["test", "val", "train", "all"]), default="test",
              help="Which images of the split scheme (all: the whole version).")
@click.option("--scheme", default="default", help="The split scheme --split refers to.")
@click.option("--score-threshold", type=click.FloatRange(0, 1), default=0.5,
              help="The operating point of precision, recall, F1 and the confusion matrix (AP uses every score).")
@click.option("--iou", "match_iou", type=click.FloatRange(0, 1, min_open=True), default=0.5,
              help="The IoU a detection must reach to match, for the confusion matrix.")
@click.option("--device", help="[default: cuda when there is one]")
@click.option("--image-root", type=click.Path(exists=True, file_okay=False),
              help="Where the images are [default: the folder they were imported from].")
@click.option("--plot", is_flag=True, help="Save the precision-recall curves (PNG) in the working folder.")
@click.option("--overwrite", is_flag=True, help="Replace the plot if it exists.")
@store_options
@json_option
def evaluate(model, dataset, subset, scheme, score_threshold, match_iou, device, image_root, plot, overwrite, store,
             as_json):
    """COCO AP (bbox, segm, per class), precision/recall/F1 and the confusion matrix of a model version on a
    dataset's split; the metrics are stored on the model version."""
    from tqdm import tqdm

    from annot.db.datasets import get_version, load_coco
    from annot.db.registry import add_evaluation, get_model
    from annot.db.splits import subset_file_names
    from annot.errors import StoreError

    from .evaluate import evaluate as run_evaluate
    from .predictions import coco_results, load_stored
    from .train import default_device, images_digest, subset_doc

    with store.transaction() as s:
        mv = get_model(s, model)
        mv_id, label, model_classes = mv.id, mv.label, list(mv.config.get("classes") or [])
        version = get_version(s, dataset)
        ref, root = f"{version.dataset.name}@{version.version}", image_root or version.image_root
    if root is None:
        raise StoreError(f"{ref}: the store does not know where its images are: give --image-root")
    doc = load_coco(store, version)
    names = [c["name"] for c in doc["categories"]]
    if model_classes and not set(model_classes) & set(names):
        raise AnnotError(f"{label} detects {', '.join(model_classes)}; {ref} has {', '.join(names)}: no class in "
                         f"common, nothing to evaluate")
    if subset != "all":
        doc = subset_doc(doc, subset_file_names(store, ref, scheme, subset)[1])
    if not doc["images"]:
        raise AnnotError(f"{ref}: no images in {subset} of scheme {scheme!r}")
    plot_path = Path(f"{label}_{ref.replace('@', '-v')}_{subset}_pr.png")
    if plot and plot_path.exists() and not overwrite:
        raise AnnotError(f"{plot_path} exists; pass --overwrite to replace it")
    predictor = load_stored(store, model, device or default_device())
    with tqdm(total=len(doc["images"]), desc=f"{label} on {ref} {subset}", unit="image", disable=as_json) as bar:
        results = coco_results(predictor, doc, Path(root), progress=bar.update)
    ev = run_evaluate(doc, results, score_threshold=score_threshold, match_iou=match_iou)
    key = f"{ref}/{scheme}/{subset}" if subset != "all" else f"{ref}/all"
    entry = {**ev.metrics(), "images": len(doc["images"]), "images_sha256": images_digest(doc)}
    add_evaluation(store, mv_id, key, entry, **({"test": entry} if subset == "test" else {}))
    if plot:
        from .plots import pr_curves

        pr_curves(ev.curves, plot_path)
    if as_json:
        emit_json({"model": label, "dataset": ref, "split": subset, **entry,
                   **({"plot": str(plot_path)} if plot else {})})
        return
    _print_evaluation(label, ref, subset, ev, len(doc["images"]))
    if plot:
        click.echo(f"precision-recall curves: {plot_path}")


def _print_evaluation(label: str, ref: str, subset: str, ev, n_images: int) -> None:
    stats = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    print_table(f"{label} on {ref} {subset} ({n_images} images)", ["", *stats],
                [[t, *(_fmt(ev.coco[t].get(k)) for k in stats)] for t in ev.coco])
    types = list(ev.coco)
    print_table("per class AP", ["class", *types],
                [[c, *(_fmt(v.get(t)) for t in types)] for c, v in ev.per_class.items()])
    click.echo(f"at score >= {ev.score_threshold:g}, IoU >= {ev.match_iou:g} ({ev.match_type}): precision "
               f"{ev.precision:.3f}, recall {ev.recall:.3f}, F1 {ev.f1:.3f}")
    labels = [*ev.labels, "background"]
    print_table("confusion (rows: ground truth, columns: detected)", ["", *labels],
                [[name, *row] for name, row in zip(labels, ev.confusion)])


# -- annot retrain ----------------------------------------------------------------------------------


@click.command("retrain", context_settings={"show_default": True})
@click.option("--labelstudio-url", envvar="LABEL_STUDIO_URL", show_envvar=True, required=True,
              help="Label Studio's root URL, e.g. http://localhost:8080.")
@click.option("--project", type=int, required=True, help="The Label Studio project id.")
@click.option("--dataset", help="The dataset in the store [default: labelstudio-PROJECT].")
@click.option("--min-new", type=click.IntRange(0), default=20,
              help="Train only when this many annotated images are new (or relabelled) since the promoted "
                   "model's data.")
@click.option("--model", default="maskrcnn", help="The model's name in the store.")
@click.option("--init", help="Start from [default: the promoted version, else scratch].")
@click.option("--annotations", type=click.Choice(["latest", "ground-truth"]), default="latest",
              help="Which annotation of a task counts, as `annot convert labelstudio` reads them.")
@click.option("--scheme", default="default", help="The split scheme new images are assigned in.")
@click.option("--ratios", default="0.8,0.1,0.1", help="train,val,test shares of a new scheme.")
@click.option("--preset", type=click.Choice(["cpu-tiny", "gpu"]), help="As annot train.")
@click.option("--epochs", type=click.IntRange(1), help="As annot train [default: the preset's].")
@click.option("--batch-size", type=click.IntRange(1), help="As annot train [default: the preset's].")
@click.option("--max-lr", type=click.FloatRange(0, min_open=True), help="As annot train [default: the preset's].")
@click.option("--image-size", type=click.IntRange(32), help="As annot train [default: the preset's].")
@click.option("--device", help="cpu, cuda [default: cuda when there is one].")
@click.option("--metric", default="segm_AP", help="What chooses the epoch and decides promotion.")
@click.option("--min-gain", type=float, default=0.0, help="Promote only when the metric beats the promoted "
                                                          "version's by more than this.")
@click.option("--seed", type=int, default=0, help="Seed of the training run.")
@store_options
@json_option
def retrain(labelstudio_url, project, dataset, min_new, model, init, annotations, scheme, ratios, preset, epochs,
            batch_size, max_lr, image_size, device, metric, min_gain, seed, store, as_json):
    """Export a Label Studio project, import its labels as a new dataset version, and when enough new images
    arrived train, evaluate and promote a new model version. The token comes from LABEL_STUDIO_API_KEY."""
    import os

    from .retrain import RetrainRequest
    from .retrain import retrain as run_retrain

    train_options = {k: v for k, v in {"preset": preset, "epochs": epochs, "batch_size": batch_size,
                                       "max_lr": max_lr, "image_size": image_size, "device": device,
                                       "metric": metric, "min_gain": min_gain, "seed": seed}.items()
                     if v is not None}
    req = RetrainRequest(labelstudio_url, os.environ.get("LABEL_STUDIO_API_KEY"), project, dataset, min_new, model,
                         init, scheme, ratios, annotations, "cli", train_options)
    summary = run_retrain(store, req, echo=(lambda m: None) if as_json else click.echo)
    if as_json:
        from dataclasses import asdict

        emit_json(asdict(summary))
        return
    for line in summary.lines():
        click.echo(line)
