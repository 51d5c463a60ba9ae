"""What ``annot serve`` is started with, gathered in one value.

Every setting comes from the command line or the environment at start-up
(Label Studio's own variable names where it has them: ``LABEL_STUDIO_URL``,
``LABEL_STUDIO_API_KEY``, ``LOCAL_FILES_DOCUMENT_ROOT``); request handlers
read this value and never change it. ``--workers N`` starts N processes that
each rebuild it from the environment (``ANNOT_SERVE_CONFIG``, JSON).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from annot.limits import Limits

ENV = "ANNOT_SERVE_CONFIG"
DEFAULT_BODY_LIMIT = 32 << 20  # bytes of one request: a batch of tasks is JSON, never images


@dataclass(frozen=True)
class ServeConfig:
    model: str | None = "maskrcnn"  # a store reference (NAME, NAME@V) or a predictor; None: interactive only
    checkpoint: str | None = None  # a model file instead of the store
    weights: str | None = None  # "coco": torchvision's COCO weights from the torch cache, instead of the store
    sam_checkpoint: str | None = None  # SAM for clicks; without it GrabCut
    sam_cache: str | None = None  # embeddings `annot sam precompute --cache` wrote: read before encoding
    device: str | None = None
    score_threshold: float = 0.5
    rank_score: str = "combined"  # the task score is 1 - this uncertainty, as `annot rank` computes it
    rank_agg: str = "max"
    db_url: str | None = None
    store_path: str | None = None
    basic_auth: tuple[str, str] | None = None
    labelstudio_url: str | None = None
    labelstudio_token: str | None = None
    local_files_root: str | None = None
    retrain_every: int = 0  # annotation events that start a retrain; 0: only "Start Training"
    retrain_min_new: int = 20  # new annotated images a retrain needs before it trains (annot retrain --min-new)
    retrain_dataset: str | None = None  # the store dataset a project's labels go to (default labelstudio-PROJECT)
    max_body: int = DEFAULT_BODY_LIMIT
    image_cache_bytes: int = 512 << 20
    max_side: int = 2048  # detector input, as in `annot predict`
    simplify: float = 1.0
    model_slots: int = 1  # model calls at once (each uses every core, or the GPU)
    max_memory: int = field(default_factory=lambda: Limits.default().max_memory)
    retrain_command: tuple[str, ...] | None = None  # the retrain job's argv (tests shorten it)

    @property
    def limits(self) -> Limits:
        return Limits(self.max_memory)

    @property
    def local_root(self) -> Path | None:
        return Path(self.local_files_root) if self.local_files_root else None

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        data = json.loads(os.environ[ENV])
        for key in ("basic_auth", "retrain_command"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)
