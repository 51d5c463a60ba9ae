"""Multi-GPU and multi-node training under ``torchrun``.

``torchrun --nproc_per_node=G -m annot train ...`` starts G processes with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``)
in their environment; :func:`init_from_env` joins them into one process
group: NCCL on GPUs (each process on ``cuda:LOCAL_RANK``), gloo on CPUs.
The training loop then wraps the model in DistributedDataParallel and gives
each process its share of every epoch (:func:`annot.training.loop.shard`);
only rank 0 evaluates, writes checkpoints, the log and the store.
"""

from __future__ import annotations

import os

import torch

from .loop import world


def rank_and_size() -> tuple[int, int]:
    return world()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str | None) -> str | None:
    """Join the process group torchrun set up; returns this process's device
    (None: leave the choice to the request)."""
    if not launched_by_torchrun():
        return device
    dist = torch.distributed
    cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def shutdown() -> None:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
