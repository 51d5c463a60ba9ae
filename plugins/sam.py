"""Segment Anything (``segment-anything``) as an interactive predictor.

``vit_b``, ``vit_l`` or ``vit_h`` from a checkpoint path (``checkpoint=`` or
``ANNOT_SAM_CHECKPOINT``); weights are never downloaded. Prompts: positive and
negative points, a box, or both; ``multimask_output=True`` and the mask SAM
scores best is kept. The image encoder runs once per image content
(:mod:`annot.plugins.embedding_cache`); every later prompt on that image costs
only the decoder.
"""

from __future__ import annotations

import os

import numpy as np

from annot.errors import AnnotError

from .embedding_cache import EmbeddingCache, image_key
from .predictor import Detections, Prompt

ENV_CHECKPOINT = "ANNOT_SAM_CHECKPOINT"
MODEL_TYPES = ("vit_b", "vit_l", "vit_h")


class SamPlugin:
    name = "sam"
    version = "segment-anything-1.0"
    capabilities = frozenset({"masks", "box_prompt", "point_prompt"})

    def __init__(self):
        self.device = "cpu"
        self.predictor = None
        self.cache = EmbeddingCache()
        self.encoder_calls = 0
        self.precision = "auto"
        self._current: str | None = None  # key of the embedding the decoder holds
        self._hasher = None  # one thread: image keys hashed while the decoder runs

    @staticmethod
    def default_device() -> str:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @staticmethod
    def availability() -> str:
        path = os.environ.get(ENV_CHECKPOINT)
        if not path:
            return f"no checkpoint: set {ENV_CHECKPOINT} or pass --checkpoint (else use grabcut)"
        return "ok" if os.path.isfile(path) else f"checkpoint {path} not found (else use grabcut)"

    def load(self, model_type: str | None = None, checkpoint: str | None = None, device: str | None = None,
             cache: EmbeddingCache | None = None, sam=None, precision: str = "auto", **_) -> None:
        """``model_type`` defaults to the one the checkpoint's file name says
        (``sam_vit_h_4b8939.pth``), else vit_b. ``sam``: an already built
        model (tests build a tiny one)."""
        import torch
        from segment_anything import SamPredictor, sam_model_registry

        if sam is None:
            checkpoint = checkpoint or os.environ.get(ENV_CHECKPOINT)
            model_type = model_type or next((t for t in MODEL_TYPES if t in os.path.basename(checkpoint or "")),
                                            "vit_b")
            if model_type not in MODEL_TYPES:
                raise AnnotError(f"unknown SAM model {model_type!r}; known: {', '.join(MODEL_TYPES)}")
            if not checkpoint or not os.path.isfile(checkpoint):
                given = f"{checkpoint} not found" if checkpoint else "none given"
                raise AnnotError(f"SAM needs a {model_type} checkpoint: pass --checkpoint or set {ENV_CHECKPOINT} "
                                 f"({given}); without one, use grabcut")
            try:
                sam = sam_model_registry[model_type](checkpoint=checkpoint)
            except (RuntimeError, KeyError, OSError) as e:
                raise AnnotError(f"{checkpoint}: not a SAM {model_type} checkpoint: "
                                 f"{str(e).splitlines()[0]}") from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.precision = precision
        sam.to(self.device).eval()
        self.predictor = SamPredictor(sam)
        if cache is not None:
            self.cache = cache

    def embed(self, image: np.ndarray, persist: bool = False, key: str | None = None) -> tuple[str, np.ndarray]:
        """The image's embedding, computed only when no cache has it. ``key``: its
        :func:`image_key`, when the caller already has it."""
        key = key or image_key(image)
        emb = self.cache.get(key)
        if emb is None:
            from .precision import autocast

            with autocast(self.device, self.precision):
                self.predictor.set_image(image)  # the ViT encoder: where the time goes
            self._current = None  # features are now this image's, at the encoder's precision
            self.encoder_calls += 1
            emb = self.cache.put(key, self.predictor.features.float().cpu().numpy(), persist)
        return key, emb

    def _use(self, key: str, image: np.ndarray, emb: np.ndarray) -> None:
        """Give the decoder this image's embedding; nothing to do when it already holds it
        (every click after the first on an image)."""
        import torch

        p = self.predictor
        if self._current == key and p.is_image_set:
            return
        p.reset_image()
        p.original_size = image.shape[:2]
        p.input_size = p.transform.get_preprocess_shape(*image.shape[:2], p.model.image_encoder.img_size)
        # crosses to the device as stored (fp16: half the bytes), widened there
        p.features = torch.from_numpy(emb).to(self.device).float()
        p.is_image_set = True
        self._current = key

    def predict(self, images, prompts=None) -> list[Detections]:
        if self.predictor is None:
            raise AnnotError("sam: load() first")
        if prompts is None:
            raise ValueError("sam needs prompts (points, a box or both) for every object")
        out = []
        for image, image_prompts in zip(images, prompts):
            key, first = self._key_and_first_mask(image, image_prompts)
            key, emb = self.embed(image, key=key)
            self._use(key, image, emb)
            results = [first or self._segment(image_prompts[0])] if image_prompts else []
            results += [self._segment(pr) for pr in image_prompts[1:]]
            scores = np.array([sc for _, sc in results], dtype=float)
            out.append(Detections([p.label or "object" for p in image_prompts], scores,
                                  np.stack([m for m, _ in results]) if results
                                  else np.zeros((0, *image.shape[:2]), bool),
                                  mask_quality=scores))  # SAM's own IoU estimate of each mask
        return out

    def _key_and_first_mask(self, image: np.ndarray, image_prompts) -> tuple[str, tuple | None]:
        """The image's content key and, when the decoder already held this image's
        embedding, the first prompt's mask decoded while the key was hashed.

        A click usually follows another on the same image, so the first prompt is
        decoded against the embedding the decoder holds while sha256 (which
        releases the GIL) hashes the pixels in a thread; the mask is kept only if
        the key then says it was the same image, else it is decoded again.
        """
        p = self.predictor
        if not (image_prompts and self._current is not None and p.is_image_set
                and tuple(p.original_size) == image.shape[:2]):
            return image_key(image), None
        if self._hasher is None:
            from concurrent.futures import ThreadPoolExecutor

            self._hasher = ThreadPoolExecutor(1, thread_name_prefix="annot-sam-key")
        pending = self._hasher.submit(image_key, image)
        try:
            first = self._segment(image_prompts[0])
        finally:
            key = pending.result()
        return key, (first if key == self._current else None)

    def _segment(self, prompt: Prompt) -> tuple[np.ndarray, float]:
        pts = [*prompt.positive, *prompt.negative]
        coords = np.array(pts, dtype=np.float32) if pts else None
        labels = np.array([1] * len(prompt.positive) + [0] * len(prompt.negative)) if pts else None
        box = None
        if prompt.box is not None:
            x, y, w, h = prompt.box
            box = np.array([x, y, x + w, y + h], dtype=np.float32)
        if coords is None and box is None:
            raise ValueError("a SAM prompt needs points, a box or both")
        masks, scores, _ = self.predictor.predict(point_coords=coords, point_labels=labels, box=box,
                                                  multimask_output=True)
        best = int(np.argmax(scores))
        return masks[best].astype(bool, copy=False), float(scores[best])
