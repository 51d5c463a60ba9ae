"""The backend's two models, loaded in the background and swapped whole.

- The **detector** pre-annotates tasks: ``--model`` from the store (the
  promoted version of a name, followed when another version is promoted, or a
  pinned ``NAME@V``) or ``--checkpoint``. It is loaded in a thread at start-up
  and again when the store promotes another version; until it is ready (or
  when there is none) ``/predict`` answers empty predictions and says why.
- The **segmenter** answers clicks: SAM with ``--sam-checkpoint``, else
  GrabCut (no weights, ready at once).

Each is held as a :class:`Loaded` value that requests take a reference to;
a reload builds a new one and replaces the reference, so a request in flight
keeps the model it started with. Loading never happens in a request: ``/setup``
only reads the promoted label from the store (a short query) and asks for a
reload when it changed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from annot.active_learning.scores import SCORING_THRESHOLD as RANK_THRESHOLD
from annot.errors import AnnotError, NotYetInStore

from .config import ServeConfig

log = logging.getLogger("annot.serve")


@dataclass(frozen=True)
class Loaded:
    predictor: object
    version: str  # the label Label Studio shows (model_version)
    plugin: str


def check_spec(config: ServeConfig) -> str | None:
    """What ``annot serve`` checks before it starts: a ``--model`` that can
    never be found (a typo, a version that is not a number) is an error, one
    the store may still get (no version promoted yet) is not: its reason is
    returned, for the start-up banner."""
    from annot.plugins.model_spec import resolve

    if not config.model:
        return
    name, _, ver = config.model.partition("@")
    if ver and not ver.isdigit():
        raise AnnotError(f"--model {config.model}: the version after @ must be a number (e.g. {name}@3)")
    try:
        resolve(config.model, checkpoint=config.checkpoint, weights=config.weights, db_url=config.db_url,
                store_path=config.store_path)
    except NotYetInStore as e:
        return str(e)
    return None


class Models:
    def __init__(self, config: ServeConfig):
        self.config = config
        self.detector: Loaded | None = None
        self.segmenter: Loaded | None = None
        self.state = "loading" if config.model else "none"  # loading | ready | none | failed
        self.reason = "" if config.model else "--model none: interactive clicks only"
        self._lock = threading.Lock()  # one load at a time
        self._wanted: str | None = None  # the store label a reload should reach

    # -- start-up and reloads -------------------------------------------------------------

    def start(self) -> None:
        """GrabCut at once (it has no weights); SAM and the detector in a background thread."""
        if not self.config.sam_checkpoint:
            self._load_segmenter()
        threading.Thread(target=self._load_all, name="annot-load", daemon=True).start()

    def _load_all(self) -> None:
        if self.config.sam_checkpoint:
            self._load_segmenter()
        if self.config.model:
            self._load_detector()

    def _load_segmenter(self) -> None:
        from annot.plugins import registry

        if self.config.sam_checkpoint:
            try:
                from annot.plugins.embedding_cache import EmbeddingCache

                sam = registry.get("sam")
                cache = EmbeddingCache(directory=self.config.sam_cache) if self.config.sam_cache else None
                sam.load(checkpoint=self.config.sam_checkpoint, device=self.config.device, cache=cache)
                self.segmenter = Loaded(sam, f"sam-{sam.version}", "sam")
                return
            except AnnotError as e:
                log.error("SAM not loaded, clicks use GrabCut", extra={"reason": str(e)})
        grabcut = registry.get("grabcut")
        self.segmenter = Loaded(grabcut, f"grabcut-{grabcut.version}", "grabcut")

    def _load_detector(self) -> None:
        from annot.plugins.model_spec import resolve

        with self._lock:
            c = self.config
            try:
                choice = resolve(c.model, checkpoint=c.checkpoint, weights=c.weights, db_url=c.db_url,
                                 store_path=c.store_path)
                if "automatic" not in getattr(choice.predictor, "capabilities", ()):
                    raise AnnotError(f"--model {c.model}: {choice.plugin} is not a detector (it needs prompts); "
                                     "clicks use --sam-checkpoint or GrabCut")
                # uncertain detections are the low-scoring ones: the detector keeps them for the task's score
                # (as `annot rank` does), and only those at --score-threshold become regions
                options = {"device": c.device, "score_threshold": min(c.score_threshold, RANK_THRESHOLD)}
                loaded = choice.load(**{k: v for k, v in options.items() if k in choice.load_options})
            except AnnotError as e:
                self.state, self.reason = ("none" if isinstance(e, NotYetInStore) else "failed"), str(e)
                log.warning("no detector: /predict answers empty predictions", extra={"reason": str(e)})
                return
            self.detector = Loaded(loaded.predictor, loaded.version, choice.plugin)
            self.state, self.reason = "ready", ""
            log.info("detector loaded", extra={"model_version": loaded.version})

    def reload_if_promoted(self, label: str | None) -> None:
        """Reload in the background when the store's promoted label differs
        from the loaded one (called by ``/setup``; never waits)."""
        current = self.detector.version if self.detector else None
        if label is None or label == current or label == self._wanted or self._lock.locked():
            return
        self._wanted = label
        threading.Thread(target=self._load_detector, name="annot-reload", daemon=True).start()

    # -- what requests read -------------------------------------------------------------------

    def follows_promotion(self) -> bool:
        return bool(self.config.model) and "@" not in self.config.model and self.config.checkpoint is None

    def promoted_label(self) -> str | None:
        """The store's promoted version of ``--model`` (a short read), or None."""
        if not self.follows_promotion():
            return None
        from annot.db.registry import get_model
        from annot.db.session import open_store

        try:
            store = open_store(self.config.db_url, self.config.store_path, upgrade=False, create=False)
            with store.transaction() as s:
                return get_model(s, self.config.model).label
        except AnnotError:
            return None

    def version(self) -> str:
        """What ``/setup`` reports: the detector's label, else the segmenter's."""
        d, s = self.detector, self.segmenter
        return d.version if d else (s.version if s else "annot")
