"""``annot serve``: the Label Studio ML backend on uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import click

from annot.active_learning.aggregate import AGGREGATIONS
from annot.active_learning.scores import EXTRA_PASSES, SCORES
from annot.errors import AnnotError


def _basic_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise click.UsageError("--basic-auth must be USER:PASSWORD")
    return user, password


def _check_port_free(host: str, port: int) -> None:
    """Fail before the banner, in one line, when the port is taken (uvicorn
    would print its start-up lines first, then a logged bind error)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise AnnotError(f"--host {host}: cannot be resolved ({e.strerror or e})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as e:
            raise AnnotError(f"cannot listen on {host}:{port}: {e.strerror or e} (another server there? choose "
                             "--port)") from None


@click.command("serve", context_settings={"show_default": True})
@click.option("--model", "spec", default="maskrcnn", metavar="SPEC",
              help="The detector that pre-annotates: a store model (NAME: its promoted version, followed when it "
                   "changes; NAME@V: that version) or, with --checkpoint, a predictor. 'none': clicks only.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A detector checkpoint file instead of the store.")
@click.option("--weights", type=click.Choice(["coco"]), default=None,
              help="torchvision's COCO weights (from the torch cache) instead of the store; with --model maskrcnn.")
@click.option("--sam-checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="ANNOT_SAM_CHECKPOINT", show_envvar=True,
              help="SAM answers clicks with it; without one, GrabCut does.")
@click.option("--sam-cache", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Image embeddings `annot sam precompute --cache DIR` wrote: a click on those images skips "
                   "SAM's encoder.")
@click.option("--host", default="127.0.0.1", help="Interface to listen on (0.0.0.0: every one).")
@click.option("--port", type=click.IntRange(1, 65535), default=9090, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(1), default=1,
              help="Server processes, each with its own copy of the models.")
@click.option("--retrain-every", type=click.IntRange(0), default=0,
              help="Start a retrain after this many new or changed annotations (0: only on Start Training).")
@click.option("--retrain-min-new", type=click.IntRange(0), default=20,
              help="A retrain trains only when this many annotated images are new since the promoted model's data.")
@click.option("--retrain-dataset", help="The store dataset retrains import into [default: labelstudio-PROJECT].")
@click.option("--basic-auth", envvar="ANNOT_SERVE_BASIC_AUTH", show_envvar=True, metavar="USER:PASSWORD",
              help="Require HTTP basic auth on every endpoint but /health (set the same in Label Studio).")
@click.option("--labelstudio-url", envvar="LABEL_STUDIO_URL", show_envvar=True,
              help="Label Studio, where task images are fetched from.")
@click.option("--labelstudio-token", envvar="LABEL_STUDIO_API_KEY", show_envvar=True, metavar="TOKEN",
              help="Label Studio personal access token (or legacy token); sent to Label Studio's host only.")
@click.option("--local-files-root", envvar="LOCAL_FILES_DOCUMENT_ROOT", show_envvar=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Read /data/local-files/?d= images from this folder, as Label Studio does.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="[default: cuda when available]")
@click.option("--score-threshold", type=click.FloatRange(0, 1), default=0.5,
              help="Drop detections scoring below this.")
@click.option("--rank-score", type=click.Choice([s for s in SCORES if s not in EXTRA_PASSES]), default="combined",
              help="Each prediction's score is 1 - this uncertainty (as `annot rank` scores): Label Studio's "
                   "uncertainty sampling serves the lowest first.")
@click.option("--rank-agg", type=click.Choice(AGGREGATIONS), default="max", help="Detections -> the task's uncertainty.")
@click.option("--max-body", metavar="SIZE", default="32M", help="Largest request body accepted.")
@click.option("--max-memory", metavar="SIZE", default=None,
              help="What one task's image may make the server allocate [default: half of the memory usable here].")
@click.option("--db", "db_url", envvar="ANNOT_DB", show_envvar=True, help="Store database URL.")
@click.option("--store", "store_path", envvar="ANNOT_STORE", show_envvar=True, help="Store directory.")
def serve(spec, checkpoint, weights, sam_checkpoint, sam_cache, host, port, workers, retrain_every, retrain_min_new,
          retrain_dataset, basic_auth, labelstudio_url, labelstudio_token, local_files_root, device, score_threshold, rank_score, rank_agg, max_body, max_memory, db_url, store_path):
    """Serve models to Label Studio: pre-annotation, clicks to masks, training triggers."""
    try:
        import uvicorn
    except ModuleNotFoundError as e:
        raise AnnotError(f"annot serve needs the serve extra ({e.name} is not installed): "
                         "pip install 'annot[serve]'") from None

    from annot.db import engine
    from annot.limits import Limits, parse_size

    from .app import create_app
    from .config import ENV, ServeConfig
    from .labelstudio import check_url
    from .logs import configure
    from .models import check_spec

    config = ServeConfig(
        model=None if spec == "none" else spec, checkpoint=str(checkpoint) if checkpoint else None,
        weights=weights,
        sam_checkpoint=str(sam_checkpoint) if sam_checkpoint else None,
        sam_cache=str(sam_cache) if sam_cache else None, device=device,
        score_threshold=score_threshold, rank_score=rank_score, rank_agg=rank_agg, db_url=db_url,
        store_path=str(store_path) if store_path else None, basic_auth=_basic_auth(basic_auth),
        labelstudio_url=check_url(labelstudio_url), labelstudio_token=labelstudio_token,
        local_files_root=str(local_files_root.resolve()) if local_files_root else None,
        retrain_every=retrain_every, retrain_min_new=retrain_min_new, retrain_dataset=retrain_dataset,
        max_body=parse_size(max_body, "--max-body"),
        max_memory=parse_size(max_memory) if max_memory else Limits.default().max_memory,
    )
    if labelstudio_token and not labelstudio_url:
        raise AnnotError("LABEL_STUDIO_API_KEY is set but not LABEL_STUDIO_URL: the token goes to Label Studio's "
                         "host only, so the backend must know it")
    if spec == "none" and (checkpoint or weights):
        raise AnnotError("--model none serves no detector: --checkpoint/--weights need --model maskrcnn (or another "
                         "detector)")
    not_yet = check_spec(config)
    _check_port_free(host, port)
    configure()
    if not_yet:
        click.echo(f"annot serve: no detector yet ({not_yet}): /predict answers empty predictions until the "
                   "store has one; it is picked up when it is promoted", err=True)
    click.echo(f"annot serve on http://{host}:{port} (model {config.model or 'none'}; clicks: "
               f"{'SAM (once its checkpoint loads)' if sam_checkpoint else 'GrabCut'}; store "
               f"{engine.location(engine.database_url(db_url))}); in Label Studio: Project > Settings > Model > "
               f"Connect Model, URL http://{host if host != '0.0.0.0' else 'THIS-HOST'}:{port}", err=True)
    if workers > 1:
        os.environ[ENV] = config.to_env()
        uvicorn.run("annot.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_config=None, access_log=False)
    else:
        uvicorn.run(create_app(config), host=host, port=port, log_config=None, access_log=False)
