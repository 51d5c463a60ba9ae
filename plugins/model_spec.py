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

:func:`resolve` finds the predictor and where its weights come from without
loading anything, so the command line can check its options against the
predictor's ``load_options`` first; :meth:`ModelChoice.load` loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from annot.errors import AnnotError, NotYetInStore, StoreError

from . import registry


@dataclass
class LoadedModel:
    predictor: object
    version: str  # what Label Studio shows as model_version


@dataclass
class ModelChoice:
    plugin: str
    predictor: object  # not loaded yet
    version: str
    checkpoint: Path | None = None
    weights: str | None = None
    config: dict = field(default_factory=dict)  # load options a store version was registered with
    model_version_id: int | None = None  # the store's row, for models from the store

    @property
    def load_options(self) -> frozenset[str]:
        return frozenset(getattr(self.predictor, "load_options", ()))

    def load(self, **options) -> LoadedModel:
        """Load with ``options`` (device, score_threshold, ...); options the
        command line gave win over the stored config."""
        given = {k: v for k, v in {**self.config, **options}.items() if v is not None}
        if self.checkpoint is not None:
            given["checkpoint"] = self.checkpoint
        if self.weights is not None:
            given["weights"] = self.weights
        self.predictor.load(**given)
        return LoadedModel(self.predictor, self.version)


def _short_hash(path: Path) -> str:
    from .inputs import content_hash

    return content_hash(path)[:8]


def resolve(spec: str, *, checkpoint: Path | None = None, weights: str | None = None,
            db_url: str | None = None, store_path: Path | None = None) -> ModelChoice:
    name, _, ver = spec.partition("@")
    plugins = set(registry.names())
    predictor = registry.get(name) if name in plugins and not ver else None
    # models annot does not train (GrabCut, SAM) never come from the store
    untrained = predictor is not None and "trainable" not in getattr(predictor, "capabilities", ())
    if checkpoint is not None or weights is not None or untrained:
        if ver:
            raise AnnotError(f"--model {spec}: a store version and --checkpoint/--weights exclude each other")
        predictor = predictor or registry.get(name)
        if checkpoint is not None:
            version = f"{name}-{_short_hash(Path(checkpoint))}"
        else:
            version = f"{name}-{weights}" if weights else f"{name}-{predictor.version}"
        return ModelChoice(name, predictor, version, checkpoint, weights)
    return _from_store(spec, plugins, db_url, store_path)


def load_model(spec: str, *, checkpoint: Path | None = None, weights: str | None = None,
               db_url: str | None = None, store_path: Path | None = None, **options) -> LoadedModel:
    """``options`` go to the predictor's ``load`` (device, score_threshold, ...)."""
    return resolve(spec, checkpoint=checkpoint, weights=weights, db_url=db_url, store_path=store_path).load(**options)


def _from_store(spec: str, plugins: set[str], db_url, store_path) -> ModelChoice:
    from annot.db import engine as eng
    from annot.db.registry import checkpoint_for_loading, get_model
    from annot.db.session import open_store

    url = eng.database_url(db_url)
    where = eng.location(url)
    hint = "pass --checkpoint PATH" + (" or --weights coco" if spec.startswith("maskrcnn") else "")
    name, _, ver = spec.partition("@")
    # a predictor's own name (maskrcnn) may still get its first version: not there yet, not a mistake
    own_name = name in plugins and not ver
    path = eng.sqlite_path(url)
    if path is not None and not path.exists():
        if name not in plugins:
            raise AnnotError(f"--model {spec}: not an installed predictor ({', '.join(sorted(plugins))}) and no "
                             f"store at {where} to look it up in (set --db / ANNOT_DB)")
        raise (NotYetInStore if own_name else AnnotError)(
            f"--model {spec}: no store at {where} (set --db / ANNOT_DB), or {hint}")
    try:
        store = open_store(db_url, store_path, upgrade=False, create=False)
    except StoreError as e:
        raise (NotYetInStore if own_name else StoreError)(str(e)) from None
    with store.transaction() as s:
        try:
            mv = get_model(s, spec)
        except AnnotError as e:
            not_yet = isinstance(e, NotYetInStore) or own_name
            raise (NotYetInStore if not_yet else AnnotError)(f"--model {spec}: {e} in {where}; {hint}") from None
        checkpoint = checkpoint_for_loading(store, mv)
        plugin, label, config, mv_id = mv.config.get("predictor") or mv.name, mv.label, dict(mv.config), mv.id
    if plugin not in plugins:
        raise AnnotError(f"{label}: its predictor {plugin!r} is not installed (set \"predictor\" in the model's "
                         f"config; installed: {', '.join(sorted(plugins))})")
    predictor = registry.get(plugin)
    options = getattr(predictor, "load_options", ())
    return ModelChoice(plugin, predictor, label, checkpoint,
                       config={k: v for k, v in config.items() if k in options and k != "checkpoint"},
                       model_version_id=mv_id)


def check_loadable(name: str, checkpoint: Path, config: dict) -> str:
    """Load ``checkpoint`` once with its predictor (``config["predictor"]``,
    else ``name``) on the CPU, as registering a ready version requires;
    returns the predictor's name. A file it cannot load is one line naming it."""
    plugin = config.get("predictor") or name
    plugins = registry.names()
    if plugin not in plugins:
        raise AnnotError(f"{name}: no predictor named {plugin!r} to load {checkpoint} with; pass --predictor "
                         f"({', '.join(plugins)})")
    predictor = registry.get(plugin)
    options = getattr(predictor, "load_options", frozenset())
    if "trainable" not in getattr(predictor, "capabilities", ()) or "checkpoint" not in options:
        raise AnnotError(f"{name}: the {plugin} predictor does not load checkpoints registered in the store")
    predictor.load(checkpoint=checkpoint, device="cpu",
                   **{k: v for k, v in config.items() if k in options and k not in ("checkpoint", "device")})
    return plugin
