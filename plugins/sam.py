"""Segment Anything (``segment-anything``) as an interactive predictor.

``vit_b``, ``vit_l`` or ``vit_h`` from a checkpoint path (``checkpoint=`` or
``ANNOT_SAM_CHECKPOINT``); weights are never downloaded. Prompts: positive and
negative points, a box, or both, plus the region's previous mask (SAM's own
low-resolution logits when SAM made it) to refine; SAM answers three masks
(``multimask_output``) and the one it scores best is kept. The image encoder
runs once per image content (:mod:`annot.plugins.embedding_cache`); every
later prompt on that image costs only the decoder.

The model's modules are called directly, the way ``SamPredictor`` calls
them, with the image's embedding, sizes and prompts as local values: a
``SamPredictor`` keeps the current image in its own fields, so two threads
sharing one would decode against each other's images.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from annot.detections import IOU_PREDICTION, MASK_LOGITS, Detections
from annot.errors import AnnotError, reason

from .embedding_cache import EmbeddingCache, image_key
from .predictor import Prompt, prompt_classes

ENV_CHECKPOINT = "ANNOT_SAM_CHECKPOINT"
MODEL_TYPES = ("vit_b", "vit_l", "vit_h")
LOW_RES = 256  # side of SAM's mask logits
MASK_LOGIT = 8.0  # logit given to a previous mask's pixels when SAM did not make it (sigmoid: 0.9997)


class SamPlugin:
    name = "sam"
    version = "segment-anything-1.0"
    capabilities = frozenset({"masks", "box_prompt", "point_prompt", "mask_prompt"})
    load_options = frozenset({"checkpoint", "model_type", "device", "precision", "cache", "sam"})

    def __init__(self):
        self.device = "cpu"
        self.sam = None
        self.transform = None
        self.cache = EmbeddingCache()
        self.precision = "auto"
        self._lock = threading.Lock()
        self.encoder_calls = 0

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
        from segment_anything import sam_model_registry
        from segment_anything.utils.transforms import ResizeLongestSide

        if sam is None:
            checkpoint = str(checkpoint) if checkpoint else os.environ.get(ENV_CHECKPOINT)
            model_type = model_type or next((t for t in MODEL_TYPES if t in os.path.basename(checkpoint or "")),
                                            "vit_b")
            if model_type not in MODEL_TYPES:
                raise AnnotError(f"unknown SAM model {model_type!r}; known: {', '.join(MODEL_TYPES)}")
            if not checkpoint:
                raise AnnotError(f"SAM needs a {model_type} checkpoint: pass --checkpoint or set {ENV_CHECKPOINT} "
                                 "(none given); without one, use grabcut")
            if not os.path.isfile(checkpoint):
                raise AnnotError(f"SAM {model_type} checkpoint {os.path.abspath(checkpoint)}: no such file (SAM weights are never "
                                 "downloaded: put the file there, or use grabcut)")
            try:
                sam = sam_model_registry[model_type](checkpoint=checkpoint)
            except Exception as e:  # torch.load of a file that is not a checkpoint raises anything
                raise AnnotError(f"{checkpoint}: not a SAM {model_type} checkpoint ({reason(e)})") from None
        self.device = device or self.default_device()
        self.precision = precision
        self.sam = sam.to(self.device).eval()
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        if cache is not None:
            self.cache = cache

    # -- the encoder ------------------------------------------------------------

    def embed(self, image: np.ndarray, persist: bool = False, key: str | None = None) -> tuple[str, np.ndarray]:
        """The image's embedding, computed only when no cache has it. ``key``: its
        :func:`image_key`, when the caller already has it (a server keys images
        by URL and content hash)."""
        key = key or image_key(image)
        emb = self.cache.get(key)
        if emb is None:
            emb = self.cache.put(key, self._encode(image), persist)
        return key, emb

    def _encode(self, image: np.ndarray) -> np.ndarray:
        import torch

        from .precision import autocast

        x = torch.as_tensor(self.transform.apply_image(image), device=self.device).permute(2, 0, 1)[None]
        with torch.inference_mode(), autocast(self.device, self.precision):
            features = self.sam.image_encoder(self.sam.preprocess(x.float()))  # where the time goes
        with self._lock:
            self.encoder_calls += 1
        return features.float().cpu().numpy()

    # -- the decoder ------------------------------------------------------------

    def predict(self, images, prompts=None) -> list[Detections]:
        import torch

        if self.sam is None:
            raise AnnotError("sam: load() first")
        if prompts is None:
            raise ValueError("sam needs prompts (points, a box or both) for every object")
        out = []
        for image, image_prompts in zip(images, prompts):
            names, class_id = prompt_classes(image_prompts)
            if not image_prompts:
                out.append(Detections.empty(names, image.shape[:2]))
                continue
            _, emb = self.embed(image)
            # crosses to the device as stored (fp16: half the bytes), widened there
            features = torch.from_numpy(emb).to(self.device).float()
            masks, scores, logits = zip(*(self._segment(features, image.shape[:2], p) for p in image_prompts))
            out.append(Detections.from_masks(np.stack(masks), class_id, np.array(scores), names,
                                             data={IOU_PREDICTION: np.array(scores),
                                                   MASK_LOGITS: np.stack(logits)}))
        return out

    def _segment(self, features, size: tuple[int, int], prompt: Prompt) -> tuple[np.ndarray, float, np.ndarray]:
        """(mask, SAM's IoU estimate, low-resolution logits) of the best of SAM's three masks."""
        import torch

        pts = [*prompt.positive, *prompt.negative]
        if not pts and prompt.box is None:
            raise ValueError("a SAM prompt needs points, a box or both")
        dev = self.device
        points = boxes = masks = None
        if pts:
            coords = self.transform.apply_coords(np.array(pts, dtype=np.float32), size)
            labels = [1] * len(prompt.positive) + [0] * len(prompt.negative)
            points = (torch.as_tensor(coords, dtype=torch.float, device=dev)[None],
                      torch.as_tensor(labels, dtype=torch.int, device=dev)[None])
        if prompt.box is not None:
            x, y, w, h = prompt.box
            box = self.transform.apply_boxes(np.array([x, y, x + w, y + h], dtype=np.float32), size)
            boxes = torch.as_tensor(box, dtype=torch.float, device=dev)
        previous = self._mask_input(prompt, size)
        if previous is not None:
            masks = torch.as_tensor(previous, dtype=torch.float, device=dev)[None, None]
        sam = self.sam
        with torch.inference_mode():
            sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
            low_res, iou = sam.mask_decoder(image_embeddings=features, image_pe=sam.prompt_encoder.get_dense_pe(),
                                            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                            multimask_output=True)
            best = int(torch.argmax(iou[0]))
            input_size = self.transform.get_preprocess_shape(*size, sam.image_encoder.img_size)
            full = sam.postprocess_masks(low_res[:, best : best + 1], input_size, size)
            mask = (full[0, 0] > sam.mask_threshold).cpu().numpy()
        return mask, float(iou[0, best]), low_res[0, best].float().cpu().numpy()

    def _mask_input(self, prompt: Prompt, size: tuple[int, int]) -> np.ndarray | None:
        """The previous mask as SAM's 256x256 mask input: SAM's own logits when
        it made the mask, else the mask placed the way SAM places the image
        (long side resized to the encoder's size, padded at the right and
        bottom) and scaled to 256, with logits of +-MASK_LOGIT."""
        if prompt.logits is not None:
            return np.asarray(prompt.logits, np.float32).reshape(LOW_RES, LOW_RES)
        if prompt.mask is None:
            return None
        import cv2

        side = self.sam.image_encoder.img_size
        h, w = self.transform.get_preprocess_shape(*size, side)
        scale = LOW_RES / side
        lh, lw = max(1, round(h * scale)), max(1, round(w * scale))
        small = cv2.resize(np.asarray(prompt.mask, np.float32), (lw, lh), interpolation=cv2.INTER_AREA)
        out = np.full((LOW_RES, LOW_RES), -MASK_LOGIT, np.float32)
        out[:lh, :lw] = (small * 2 - 1) * MASK_LOGIT
        return out
