"""The training loop: one-cycle SGD stepped per batch, a checkpoint per epoch,
and a resume that ends at the same weights as an uninterrupted run.

Everything random is drawn from the seed, never from a state left behind by
other code: the batch order of an epoch from ``(seed, epoch)``, the flips
from ``(seed, epoch, index)`` (:mod:`annot.training.data`), and the global
torch generator, which torchvision's samplers of proposals use, is saved in
each checkpoint and restored on resume. With deterministic algorithms
(``torch.use_deterministic_algorithms``) a run killed after epoch k and
resumed from its checkpoint gives the weights of a run never stopped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

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


def batch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The image order of one epoch: a permutation drawn from (seed, epoch) alone."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


class Trainer:
    """Trains ``model`` on ``dataset`` by ``recipe``; ``checkpoints`` is the
    folder ``epoch-K.pt`` files go to (one per finished epoch)."""

    def __init__(self, model: torch.nn.Module, dataset: CocoInstances, recipe: Recipe, checkpoints: Path,
                 device: str = "cpu"):
        self.model, self.dataset, self.recipe, self.device = model.to(device), dataset, recipe, device
        self.checkpoints = Path(checkpoints)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=recipe.max_lr, momentum=recipe.momentum,
                                         weight_decay=recipe.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=recipe.max_lr, epochs=recipe.epochs,
            steps_per_epoch=steps_per_epoch(len(dataset), recipe.batch_size))
        self.epoch = 0  # epochs finished
        self.history: list[dict] = []  # per epoch: mean loss, last learning rate

    # -- checkpoints ------------------------------------------------------------------------------

    def checkpoint_path(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch}.pt"

    def save(self) -> Path:
        """The state after ``self.epoch`` epochs, written atomically."""
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

    def run(self, until: int | None = None, on_batch=None) -> None:
        """Train from the current epoch up to ``until`` (default: all), saving
        after each epoch. ``on_batch(epoch, step, loss, lr)`` sees every step."""
        until = self.recipe.epochs if until is None else min(until, self.recipe.epochs)
        self.model.train()
        while self.epoch < until:
            self.dataset.set_epoch(self.epoch)
            order = batch_order(len(self.dataset), self.recipe.seed, self.epoch)
            loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.recipe.batch_size, sampler=order,
                                                 collate_fn=collate, num_workers=self.recipe.workers)
            total, steps = 0.0, 0
            for step, (images, targets) in enumerate(loader):
                images = [i.to(self.device) for i in images]
                targets = [{k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in t.items()}
                           for t in targets]
                lr = self.scheduler.get_last_lr()[0]  # the rate this batch is trained at
                loss = sum(self.model(images, targets).values())
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.scheduler.step()
                value = float(loss.detach())
                total, steps = total + value, steps + 1
                if on_batch is not None:
                    on_batch(self.epoch, step, value, lr)
            self.epoch += 1
            self.history.append({"epoch": self.epoch, "loss": total / max(steps, 1), "lr": lr})
            self.save()
