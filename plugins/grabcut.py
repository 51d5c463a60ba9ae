"""GrabCut (OpenCV): the offline interactive segmenter when no SAM checkpoint exists.

A box prompt initialises GrabCut's foreground/background models (inside the
box: probably foreground; outside: background); positive and negative points
become hard foreground/background seeds (small discs). The image is cropped to
the box plus a margin first: GrabCut's cost grows with the pixels it sees.
"""

from __future__ import annotations

import cv2
import numpy as np

from .predictor import Detections, Prompt

SEED_RADIUS = 3  # px of a point seed


class GrabCutPredictor:
    name = "grabcut"
    version = f"opencv-{cv2.__version__}"
    device = "cpu"
    capabilities = frozenset({"masks", "box_prompt", "point_prompt"})

    def __init__(self, iterations: int = 5, margin: float = 0.25):
        self.iterations, self.margin = iterations, margin

    def load(self, **options) -> None:
        self.iterations = int(options.get("iterations", self.iterations))

    def predict(self, images, prompts=None) -> list[Detections]:
        if prompts is None:
            raise ValueError("grabcut needs prompts (a box, points or both) for every object")
        out = []
        for image, image_prompts in zip(images, prompts):
            masks = np.stack([self.segment(image, p) for p in image_prompts]) if image_prompts else \
                np.zeros((0, *image.shape[:2]), bool)
            out.append(Detections([p.label or "object" for p in image_prompts],
                                  np.ones(len(image_prompts)), masks))
        return out

    def segment(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """Boolean mask (image-sized) of the object the prompt designates."""
        h, w = image.shape[:2]
        pts = [*prompt.positive, *prompt.negative]
        if prompt.box is not None:
            x, y, bw, bh = prompt.box
        elif prompt.positive:
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            x, y = min(xs) - 20, min(ys) - 20
            bw, bh = max(xs) - x + 20, max(ys) - y + 20
        else:
            raise ValueError("a grabcut prompt needs a box or at least one positive point")
        mx, my = bw * self.margin + 8, bh * self.margin + 8
        x0, y0 = max(int(x - mx), 0), max(int(y - my), 0)
        x1, y1 = min(int(np.ceil(x + bw + mx)), w), min(int(np.ceil(y + bh + my)), h)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1, :3])
        rect = (int(x) - x0, int(y) - y0, max(int(round(bw)), 1), max(int(round(bh)), 1))
        mask = np.full(crop.shape[:2], cv2.GC_BGD, np.uint8)
        rx, ry, rw, rh = rect
        mask[max(ry, 0) : ry + rh, max(rx, 0) : rx + rw] = cv2.GC_PR_FGD
        for (px, py), value in [(p, cv2.GC_FGD) for p in prompt.positive] + [(p, cv2.GC_BGD) for p in prompt.negative]:
            cv2.circle(mask, (int(px) - x0, int(py) - y0), SEED_RADIUS, int(value), -1)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(crop, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # degenerate: a uniform crop has no colour model; keep the prompt region
            pass
        out = np.zeros((h, w), bool)
        out[y0:y1, x0:x1] = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        return out
