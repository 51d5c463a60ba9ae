"""The training loop: one-cycle SGD stepped per batch, a checkpoint per epoch,
and a resume that ends at the same weights as an uninterrupted run.

Everything random is drawn from the seed, never from a state left behind by
other code: the batch order of an epoch from ``(seed, epoch)``, the flips
from ``(seed, epoch, index)`` (:mod:`annot.training.data`), and the global
torch generator, which torchvision's samplers of proposals use, is saved in
each checkpoint and restored on resume. With deterministic algorithms
(``torch.use_deterministic_algorithms``) a run killed after epoch k and
resumed from its checkpoint gives the weights of a run never stopped.

Under ``torchrun`` (``torch.distributed`` initialised) the model is wrapped
in DistributedDataParallel and each process takes every ``world``-th image
of the epoch's order (padded to a multiple of ``world``, as
``DistributedSampler`` pads): ``batch_size`` is the batch of all processes
together, so a recipe means the same on one process or many. Only rank 0
writes checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from annot.errors import AnnotError

from .data import CocoInstances, collate


@dataclass(frozen=True)
class Recipe:
    epochs: int = 10
    batch_size: int = 2
    max_lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0
    workers: int = 0
    optimizer: str = "sgd"  # sgd (momentum) | adamw
    clip_grad_norm: float | None = None  # gradients rescaled to at most this total L2 norm


def batch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The image order of one epoch: a permutation drawn from (seed, epoch) alone."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def balanced_order(weights: list[float]) -> Callable[[int, int, int], list[int]]:
    """``--balance``: an epoch's order drawn with replacement by ``weights``
    (:func:`annot.training.data.class_balanced_weights`), from (seed, epoch) alone."""
    w = torch.tensor(weights, dtype=torch.double)

    def order(n: int, seed: int, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        return torch.multinomial(w, n, replacement=True, generator=g).tolist()

    return order


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside torchrun."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(order: list[int], rank: int, size: int) -> list[int]:
    """This process's share of an epoch: every ``size``-th item from ``rank``,
    the order padded from its start to a multiple of ``size``."""
    if size == 1:
        return order
    padded = order + order[: (-len(order)) % size]
    return padded[rank::size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD with momentum, or AdamW (OneCycleLR cycles its momentum / beta1 alike)."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.max_lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    raise AnnotError(f"unknown optimizer {recipe.optimizer!r}: use sgd or adamw")


def training_dtype(device: str, precision: str) -> torch.dtype | None:
    """``--precision`` for training: ``auto`` is bf16 on GPUs that have it,
    else fp32; ``bf16`` asks for it; fp16 is not offered (it needs loss scaling)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise AnnotError(f"--precision {precision}: training takes auto, fp32 or bf16")
    if precision == "fp32":
        return None
    cuda = str(device).startswith("cuda")
    if precision == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    return torch.bfloat16


class Trainer:
    """Trains ``model`` on ``dataset`` by ``recipe``; ``checkpoints`` is the
    folder ``epoch-K.pt`` files go to (one per finished epoch). ``order``
    draws an epoch's image order (default :func:`batch_order`); ``dtype``:
    autocast to it (bf16), or None for fp32."""

    def __init__(self, model: torch.nn.Module, dataset: CocoInstances, recipe: Recipe, checkpoints: Path,
                 device: str = "cpu", order: Callable[[int, int, int], list[int]] = batch_order,
                 dtype: torch.dtype | None = None):
        self.model, self.dataset, self.recipe, self.device = model.to(device), dataset, recipe, device
        self.order, self.dtype = order, dtype
        self.rank, self.world = world()
        if recipe.batch_size % self.world:
            raise AnnotError(f"--batch-size {recipe.batch_size} does not divide among {self.world} processes")
        self.local_batch = recipe.batch_size // self.world
        self.forward = model
        if self.world > 1:
            self.forward = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[torch.device(device).index] if str(device).startswith("cuda") else None)
        self.checkpoints = Path(checkpoints)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, recipe)
        per_process = len(shard(list(range(len(dataset))), 0, self.world))
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=recipe.max_lr, epochs=recipe.epochs,
            steps_per_epoch=steps_per_epoch(per_process, self.local_batch))
        self.epoch = 0  # epochs finished
        self.history: list[dict] = []  # per epoch: mean loss, last learning rate

    # -- checkpoints ------------------------------------------------------------------------------

    def checkpoint_path(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch}.pt"

    def save(self) -> Path | None:
        """The state after ``self.epoch`` epochs, written atomically (by rank 0)."""
        if self.rank:
            return None
        path = self.checkpoint_path(self.epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".pt.tmp")
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "history": self.history,
                    "recipe": asdict(self.recipe), "torch_rng": torch.get_rng_state()}, tmp)
        tmp.replace(path)
        return path

    def resume(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.history = state["epoch"], list(state["history"])
        torch.set_rng_state(state["torch_rng"])

    # -- training ---------------------------------------------------------------------------------

    def run(self, until: int | None = None, on_batch=None, on_epoch=None) -> None:
        """Train from the current epoch up to ``until`` (default: all), saving
        after each epoch. ``on_batch(epoch, step, steps, loss, lr)`` sees every
        step, ``on_epoch(trainer)`` each finished epoch before its checkpoint
        is written (what it adds to ``history[-1]`` is saved with it)."""
        until = self.recipe.epochs if until is None else min(until, self.recipe.epochs)
        self.model.train()
        while self.epoch < until:
            self.dataset.set_epoch(self.epoch)
            order = shard(self.order(len(self.dataset), self.recipe.seed, self.epoch), self.rank, self.world)
            loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.local_batch, sampler=order,
                                                 collate_fn=collate, num_workers=self.recipe.workers,
                                                 persistent_workers=False)
            total, steps, n = 0.0, 0, len(loader)
            for step, (images, targets) in enumerate(loader):
                images = [i.to(self.device, non_blocking=True) for i in images]
                targets = [{k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v)
                            for k, v in t.items()} for t in targets]
                lr = self.scheduler.get_last_lr()[0]  # the rate this batch is trained at
                with _autocast(self.device, self.dtype):
                    loss = sum(self.forward(images, targets).values())
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.recipe.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.params, self.recipe.clip_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise AnnotError(f"epoch {self.epoch + 1}, step {step + 1}: the loss is {value} (diverged); "
                                     f"lower --max-lr (now {self.recipe.max_lr:g}) or run --find-lr")
                total, steps = total + value, steps + 1
                if on_batch is not None:
                    on_batch(self.epoch, step, n, value, lr)
            self.epoch += 1
            self.history.append({"epoch": self.epoch, "loss": total / max(steps, 1), "lr": lr})
            if on_epoch is not None:
                on_epoch(self)
            self.save()


def _autocast(device: str, dtype: torch.dtype | None):
    import contextlib

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
