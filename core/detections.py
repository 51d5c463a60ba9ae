"""One image's model output: the container every predictor returns.

:class:`Detections` holds parallel arrays with one row per detection, the
shape supervision's ``Detections`` and detectron2's ``Instances`` use:

=================  ===============  =============================================
``xyxy``           (n, 4) float64   box corners in pixels, COCO's continuous
                                    convention (``x1 = x0 + width``)
``class_id``       (n,) int64       index into ``class_names``
``confidence``     (n,) float64     the model's score of each detection
``mask``           (n, H, W) bool   or None for box-only models
``data``           {key: (n, ...)}  per-detection extras (see below)
``class_names``    tuple of str     what ``class_id`` indexes
``columns``        {key: names}     names of the columns of 2-D ``data`` entries
``image_data``     {key: value}     per-image extras, e.g. ``"embedding"``
=================  ===============  =============================================

Known ``data`` keys: :data:`CLASS_PROBS` (the softmax over
``columns["class_probs"]``, background first for torchvision detectors),
:data:`MASK_UNCERTAINTY` (mean binary entropy, in bits, of the soft mask over
its uncertain pixels inside the box, measured before thresholding),
:data:`IOU_PREDICTION` (SAM's estimate of its mask's IoU),
:data:`MC_IOU` (n, K) and :data:`MC_CLASS_PROBS` (n, K, C) (Mask R-CNN's
Monte Carlo dropout passes: the mask IoU of each pass's matched detection, 0
when none overlaps above 0.5, and that detection's class distribution) and
:data:`MASK_LOGITS` (SAM's low-resolution logits, fed back to refine a mask).
Every shape is checked once, in ``__post_init__``, with a message that states
the expected and the actual shape. Indexing with an int, a slice, an index
array or a boolean array gives another :class:`Detections`.

:meth:`to_instances` and :meth:`from_instances` are the one bridge to the COCO
core model (:class:`~annot.model.Instance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .geometry import mask_instance, segmentation_to_mask
from .model import Instance

CLASS_PROBS = "class_probs"
MASK_UNCERTAINTY = "mask_uncertainty"
IOU_PREDICTION = "iou_prediction"
MASK_LOGITS = "mask_logits"
EMBEDDING = "embedding"
MC_IOU = "mc_iou"
MC_CLASS_PROBS = "mc_class_probs"
# written into COCO results and read back by from_instances; MASK_LOGITS stays in memory
SERIALISED = (CLASS_PROBS, MASK_UNCERTAINTY, IOU_PREDICTION)


def _shape(a) -> str:
    return str(tuple(np.shape(a)))


@dataclass(eq=False)
class Detections:
    xyxy: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    class_names: tuple[str, ...]
    mask: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    image_data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.xyxy = np.asarray(self.xyxy, dtype=np.float64)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"Detections: xyxy must have shape (n, 4), got {_shape(self.xyxy)}")
        n = len(self.xyxy)
        if not np.isfinite(self.xyxy).all() or (self.xyxy[:, 2:] < self.xyxy[:, :2]).any():
            raise ValueError("Detections: xyxy must be finite corners with x1 >= x0 and y1 >= y0")
        class_id = np.asarray(self.class_id)
        if class_id.shape != (n,) or (n and not np.issubdtype(class_id.dtype, np.integer)):
            raise ValueError(f"Detections: class_id must be {n} integers (shape ({n},)), got {_shape(class_id)} "
                             f"{class_id.dtype}")
        self.class_id = class_id.astype(np.int64, copy=False)
        self.class_names = tuple(self.class_names)
        if n and (self.class_id.min() < 0 or self.class_id.max() >= len(self.class_names)):
            raise ValueError(f"Detections: class_id must index the {len(self.class_names)} class names, got "
                             f"{self.class_id.min()}..{self.class_id.max()}")
        self.confidence = np.asarray(self.confidence, dtype=np.float64)
        if self.confidence.shape != (n,) or not np.isfinite(self.confidence).all():
            raise ValueError(f"Detections: confidence must be {n} finite numbers (shape ({n},)), got "
                             f"{_shape(self.confidence)}")
        if self.mask is not None:
            self.mask = np.asarray(self.mask)
            if self.mask.ndim != 3 or len(self.mask) != n or self.mask.dtype != bool:
                raise ValueError(f"Detections: mask must be bool with shape ({n}, H, W), got "
                                 f"{_shape(self.mask)} {self.mask.dtype}")
        self.data = {k: np.asarray(v) for k, v in self.data.items()}
        for k, v in self.data.items():
            if v.ndim == 0 or len(v) != n:
                raise ValueError(f"Detections: data[{k!r}] must have one row per detection ({n}, ...), got "
                                 f"{_shape(v)}")
        self.columns = {k: tuple(v) for k, v in self.columns.items()}
        for k, names in self.columns.items():
            v = self.data.get(k)
            if v is None or v.ndim != 2 or v.shape[1] != len(names):
                raise ValueError(f"Detections: columns[{k!r}] names {len(names)} columns but data[{k!r}] has shape "
                                 f"{_shape(v) if v is not None else 'none'}")
        self.image_data = dict(self.image_data)

    # -- construction ---------------------------------------------------------

    @classmethod
    def empty(cls, class_names: Sequence[str] = (), size: tuple[int, int] | None = None, **kw) -> Detections:
        """No detections; with ``size`` = (height, width), an empty (0, H, W) mask."""
        mask = np.zeros((0, *size), bool) if size is not None else None
        return cls(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), tuple(class_names), mask, **kw)

    @classmethod
    def from_masks(cls, masks: np.ndarray, class_id, confidence, class_names: Sequence[str], **kw) -> Detections:
        """Boxes derived from the masks (the envelope of each; an empty mask gets a zero box)."""
        masks = np.asarray(masks, dtype=bool)
        return cls(boxes_of_masks(masks), class_id, confidence, tuple(class_names), masks, **kw)

    @classmethod
    def from_instances(cls, instances: Sequence[Instance], class_names: Sequence[str],
                       size: tuple[int, int] | None, columns: dict[str, Sequence[str]] | None = None) -> Detections:
        """The inverse of :meth:`to_instances`: masks decoded from the
        segmentations (``size`` = (height, width); None keeps boxes only),
        confidence from the scores (1.0 when missing), and every
        :data:`SERIALISED` extra that all instances carry (``columns`` names
        the columns of the 2-D ones)."""
        names = tuple(class_names)
        index = {n: k for k, n in enumerate(names)}
        unknown = sorted({i.label for i in instances} - set(index))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the class names {list(names)}")
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (i.bbox for i in instances)], float).reshape(-1, 4)
        masks = None
        if size is not None:
            masks = np.zeros((len(instances), *size), bool)
            for k, i in enumerate(instances):
                if i.segmentation:
                    masks[k] = segmentation_to_mask(i.segmentation, *size).astype(bool)
        data = {}
        for key in SERIALISED:
            values = [(i.extra or {}).get(key) for i in instances]
            if instances and all(v is not None for v in values):
                data[key] = np.array(values, float)
        columns = {k: v for k, v in (columns or {}).items() if k in data}
        return cls(xyxy, np.array([index[i.label] for i in instances], np.int64),
                   [1.0 if i.score is None else i.score for i in instances], names, masks, data, columns)

    # -- access ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Detections:
        """The detections at an int, a slice, an index array or a boolean array."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        index = np.asarray(index) if not isinstance(index, slice) else index
        if isinstance(index, np.ndarray) and index.size == 0 and index.dtype != bool:
            index = index.astype(np.int64)  # d[[]]: numpy reads an empty list as floats
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != (len(self),):
            raise IndexError(f"Detections: a boolean index must have shape ({len(self)},), got {index.shape}")
        return replace(self, xyxy=self.xyxy[index], class_id=self.class_id[index],
                       confidence=self.confidence[index],
                       mask=None if self.mask is None else self.mask[index],
                       data={k: v[index] for k, v in self.data.items()})

    @property
    def labels(self) -> list[str]:
        return [self.class_names[k] for k in self.class_id.tolist()]

    @property
    def xywh(self) -> np.ndarray:
        """Boxes as COCO ``[x, y, w, h]``."""
        out = self.xyxy.copy()
        out[:, 2:] -= out[:, :2]
        return out

    # -- to the COCO core -----------------------------------------------------

    def to_instances(self, size: tuple[int, int] | None = None) -> list[Instance]:
        """COCO instances, one per detection with a non-empty mask (or per box
        for box-only detections): RLE masks with pycocotools' bbox and area,
        the score, and the :data:`SERIALISED` extras (with ``columns`` names)
        in ``extra``. With ``size`` = (height, width) larger than the masks
        (the model saw a downscaled image) each mask is upsampled to it and
        the box scaled, one detection at a time."""
        sy = sx = 1.0
        if size is not None and self.mask is not None and self.mask.shape[1:] != tuple(size):
            sy, sx = size[0] / self.mask.shape[1], size[1] / self.mask.shape[2]
        out = []
        scores = self.confidence.tolist()
        kept = {k: v.tolist() for k, v in self.data.items() if k in SERIALISED}
        for k, label in enumerate(self.labels):
            extra = {key: values[k] for key, values in kept.items()}
            if self.mask is None:
                x0, y0, x1, y1 = (self.xyxy[k] * [sx, sy, sx, sy]).tolist()
                if x1 > x0 and y1 > y0:
                    out.append(Instance(label, [x0, y0, x1 - x0, y1 - y0], (x1 - x0) * (y1 - y0), None,
                                        score=scores[k], extra=extra or None))
                continue
            m = self.mask[k]
            if (sy, sx) != (1.0, 1.0):
                m = resize_mask(m, size)
            rle, bbox, area = mask_instance(m)
            if area:
                out.append(Instance(label, bbox, area, rle, score=scores[k], extra=extra or None))
        return out


def boxes_of_masks(masks: np.ndarray) -> np.ndarray:
    """(n, 4) xyxy envelopes of (n, H, W) masks; zeros for an empty mask."""
    out = np.zeros((len(masks), 4))
    for k, m in enumerate(masks):
        cols = np.flatnonzero(m.any(axis=0))
        if len(cols):
            rows = np.flatnonzero(m[:, cols[0] : cols[-1] + 1].any(axis=1))
            out[k] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return out


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A boolean mask resampled to ``size`` = (height, width): bilinear on
    0/255, then thresholded at half, so upsampled edges are smooth."""
    import cv2

    up = cv2.resize(mask.astype(np.uint8) * 255, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return up >= 128
