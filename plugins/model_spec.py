"""``--model SPEC`` -> a loaded predictor and the ``model_version`` it writes.

=============================== ==============================================
``maskrcnn --checkpoint m.pt``  that file; version ``maskrcnn-<sha256[:8]>``
``maskrcnn --weights coco``     torchvision's COCO weights (torch cache)
``maskrcnn@7``, ``pedestrians`` version 7 / the promoted version of a model
                                in the store; its checkpoint is verified
                                (sha256) before loading; version = the store
                                label (``maskrcnn-v7``). The predictor is the
                                model's ``config["predictor"]``, else its name.
``grabcut``, ``sam``            predictors annot does not train never come
                                from the store: GrabCut needs nothing, SAM
                                its checkpoint (``--checkpoint`` or
                                ``ANNOT_SAM_CHECKPOINT``)
=============================== ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annot.errors import AnnotError

from . import registry


@dataclass
class LoadedModel:
    predictor: object
    version: str  # what Label Studio shows as model_version


def _short_hash(path: Path) -> str:
    from .inputs import content_hash

    return content_hash(path)[:8]


def load_model(spec: str, *, checkpoint: Path | None = None, weights: str | None = None,
               db_url: str | None = None, store_path: Path | None = None, **options) -> LoadedModel:
    """``options`` go to the predictor's ``load`` (device, score_threshold, ...)."""
    name, _, ver = spec.partition("@")
    plugins = set(registry.names())
    predictor = registry.get(name) if name in plugins and not ver else None
    # models annot does not train (GrabCut, SAM) never come from the store
    untrained = predictor is not None and "trainable" not in getattr(predictor, "capabilities", ())
    if checkpoint is not None or weights is not None or untrained:
        if ver:
            raise AnnotError(f"--model {spec}: a store version and --checkpoint/--weights exclude each other")
        predictor = predictor or registry.get(name)
        predictor.load(checkpoint=checkpoint, weights=weights, **options)
        if checkpoint is not None:
            return LoadedModel(predictor, f"{name}-{_short_hash(Path(checkpoint))}")
        return LoadedModel(predictor, f"{name}-{weights}" if weights else f"{name}-{predictor.version}")
    return _from_store(spec, plugins, db_url, store_path, options)


def _from_store(spec: str, plugins: set[str], db_url, store_path, options) -> LoadedModel:
    from annot.db import engine as eng
    from annot.db.registry import checkpoint_for_loading, get_model
    from annot.db.session import open_store

    url = eng.database_url(db_url)
    hint = "pass --checkpoint PATH" + (" or --weights coco" if spec.startswith("maskrcnn") else "")
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        if spec.partition("@")[0] not in plugins:
            raise AnnotError(f"--model {spec}: not an installed predictor ({', '.join(sorted(plugins))}) and no "
                             f"store at {url} to look it up in (set --db / ANNOT_DB)")
        raise AnnotError(f"--model {spec}: no store at {url} (set --db / ANNOT_DB), or {hint}")
    store = open_store(db_url, store_path, upgrade=False)
    with store.transaction() as s:
        try:
            mv = get_model(s, spec)
        except AnnotError as e:
            raise AnnotError(f"--model {spec}: {e} in {url}; {hint}") from None
        path = checkpoint_for_loading(store, mv)
        plugin = mv.config.get("predictor") or mv.name
        label = mv.label
        load_config = {k: v for k, v in mv.config.items() if k in ("backbone",)}
    if plugin not in plugins:
        raise AnnotError(f"{label}: its predictor {plugin!r} is not installed (set \"predictor\" in the model's "
                         f"config; installed: {', '.join(sorted(plugins))})")
    predictor = registry.get(plugin)
    predictor.load(checkpoint=path, **{**load_config, **options})  # --backbone wins over the stored config
    return LoadedModel(predictor, label)
