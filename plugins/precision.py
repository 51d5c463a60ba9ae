"""Mixed precision: which autocast a ``--precision`` means on a device.

``auto`` is bf16 on GPUs that support it (Ampere and newer), fp16 on older
GPUs, and plain fp32 on CPU (CPU autocast is slower than fp32 on most CPUs).
"""

from __future__ import annotations

import contextlib

import torch

from annot.errors import AnnotError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def autocast_dtype(device: str, precision: str) -> torch.dtype | None:
    """The autocast dtype; None = no autocast (fp32)."""
    if precision not in PRECISIONS:
        raise AnnotError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "fp32" or (precision == "auto" and not str(device).startswith("cuda")):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: str, precision: str):
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
