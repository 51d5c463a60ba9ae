"""``annot train --find-lr``: the learning-rate range test.

The rate grows exponentially from ``start`` to ``end`` over at most
``steps`` batches while the loss is recorded (smoothed by an exponential
moving average with bias correction); the test stops when the smoothed loss
exceeds 4x its minimum (diverged). The suggested maximum rate for the
one-cycle schedule is a tenth of the rate at the minimum smoothed loss: the
rule of thumb of Smith's range test as fastai applies it. The model's weights
are a copy: nothing of the test is kept but the plot and the numbers.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from .data import collate
from .loop import batch_order


@dataclass
class RangeTest:
    lrs: list[float]
    losses: list[float]  # smoothed
    suggested: float | None
    diverged: bool


def range_test(model: torch.nn.Module, dataset, batch_size: int, device: str = "cpu", start: float = 1e-5,
               end: float = 1.0, steps: int = 100, seed: int = 0, momentum: float = 0.9,
               weight_decay: float = 1e-4, clip_grad_norm: float | None = None, on_step=None) -> RangeTest:
    """``clip_grad_norm``: the recipe's, so the suggestion fits the run it is for."""
    model = copy.deepcopy(model).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=start, momentum=momentum, weight_decay=weight_decay)
    factor = (end / start) ** (1 / max(steps - 1, 1))
    lrs, losses, avg, best, beta = [], [], 0.0, math.inf, 0.98
    order, epoch, diverged = [], 0, False
    for step in range(steps):
        if not order:  # as many epochs as the steps need
            dataset.set_epoch(epoch)
            order, epoch = batch_order(len(dataset), seed, epoch), epoch + 1
        batch, order = order[:batch_size], order[batch_size:]
        images, targets = collate([dataset[i] for i in batch])
        lr = start * factor**step
        for group in opt.param_groups:
            group["lr"] = lr
        loss = sum(model([i.to(device) for i in images],
                         [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()}
                          for t in targets]).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
        opt.step()
        value = float(loss.detach())
        if on_step is not None:
            on_step(step, lr, value)
        if not math.isfinite(value):
            diverged = True
            break
        avg = beta * avg + (1 - beta) * value
        smoothed = avg / (1 - beta ** (step + 1))
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if step > 5 and smoothed > 4 * best:
            diverged = True
            break
    return RangeTest(lrs, losses, suggest(lrs, losses), diverged)


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """A tenth of the rate at the lowest smoothed loss (None without a minimum inside the range)."""
    if len(losses) < 3:
        return None
    k = min(range(len(losses)), key=losses.__getitem__)
    return lrs[k] / 10
