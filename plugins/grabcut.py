"""GrabCut (OpenCV): the offline interactive segmenter when no SAM checkpoint exists.

A box prompt initialises GrabCut's foreground/background models (inside the
box: probably foreground; outside: background); positive and negative points
become hard foreground/background seeds (small discs). A previous mask
(``Prompt.mask``) starts the cut from that mask instead (inside: probably
foreground, outside: probably background), so further clicks refine it. The
image is cropped to the prompt plus a margin first: GrabCut's cost grows with
the pixels it sees.
"""

from __future__ import annotations

import cv2
import numpy as np

from annot.detections import Detections

from .predictor import Prompt, prompt_classes

SEED_RADIUS = 3  # px: the smallest disc a click marks as sure foreground/background
SEED_SHARE = 5  # ... else 1/5 of the object's shorter side: a 3 px seed barely moves GrabCut's colour models
POINT_REACH = 20  # px around points that make up an object's extent when there is no box


class GrabCutPredictor:
    name = "grabcut"
    version = f"opencv-{cv2.__version__}"
    device = "cpu"
    capabilities = frozenset({"masks", "box_prompt", "point_prompt", "mask_prompt"})
    load_options = frozenset({"iterations"})

    def __init__(self, iterations: int = 5, margin: float = 0.25):
        self.iterations, self.margin = iterations, margin

    def load(self, iterations: int | None = None, **_) -> None:
        if iterations is not None:
            self.iterations = int(iterations)

    def predict(self, images, prompts=None) -> list[Detections]:
        if prompts is None:
            raise ValueError("grabcut needs prompts (a box, points or both) for every object")
        out = []
        for image, image_prompts in zip(images, prompts):
            names, class_id = prompt_classes(image_prompts)
            if not image_prompts:
                out.append(Detections.empty(names, image.shape[:2]))
                continue
            masks = np.stack([self.segment(image, p) for p in image_prompts])
            # GrabCut has no score of its own: every mask it returns counts as sure
            out.append(Detections.from_masks(masks, class_id, np.ones(len(masks)), names))
        return out

    def _extent(self, prompt: Prompt, shape) -> tuple[float, float, float, float]:
        """(x, y, w, h) the object is expected in: the box, else the previous
        mask's envelope, else the positive points' with some reach."""
        if prompt.box is not None:
            return tuple(prompt.box)
        if prompt.mask is not None and prompt.mask.any():
            ys, xs = np.nonzero(prompt.mask)
            return xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
        if prompt.positive:
            xs, ys = [p[0] for p in prompt.positive], [p[1] for p in prompt.positive]
            x, y = min(xs) - POINT_REACH, min(ys) - POINT_REACH
            return x, y, max(xs) - x + POINT_REACH, max(ys) - y + POINT_REACH
        raise ValueError("a grabcut prompt needs a box, a previous mask or at least one positive point")

    def segment(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """Boolean mask (image-sized) of the object the prompt designates."""
        h, w = image.shape[:2]
        x, y, bw, bh = self._extent(prompt, image.shape)
        mx, my = bw * self.margin + 8, bh * self.margin + 8
        x0, y0 = max(int(x - mx), 0), max(int(y - my), 0)
        x1, y1 = min(int(np.ceil(x + bw + mx)), w), min(int(np.ceil(y + bh + my)), h)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1, :3])
        if prompt.mask is not None:
            previous = np.asarray(prompt.mask, bool)[y0:y1, x0:x1]
            mask = np.where(previous, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        else:
            mask = np.full(crop.shape[:2], cv2.GC_BGD, np.uint8)
            rx, ry = int(x) - x0, int(y) - y0
            mask[max(ry, 0) : ry + max(int(round(bh)), 1), max(rx, 0) : rx + max(int(round(bw)), 1)] = cv2.GC_PR_FGD
        radius = max(SEED_RADIUS, int(min(bw, bh) / SEED_SHARE))
        for (px, py), value in [(p, cv2.GC_FGD) for p in prompt.positive] + [(p, cv2.GC_BGD) for p in prompt.negative]:
            cv2.circle(mask, (int(px) - x0, int(py) - y0), radius, int(value), -1)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(crop, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # degenerate: a uniform crop has no colour model; keep the prompt region
            pass
        out = np.zeros((h, w), bool)
        out[y0:y1, x0:x1] = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        return out
