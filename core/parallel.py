"""Map a per-file function over many files, on every core when it pays."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterable, Sequence

from tqdm import tqdm

PARALLEL_MIN_ITEMS = 200  # below this, process start-up costs more than it saves


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def progress(iterable: Iterable, total: int, desc: str, quiet: bool = False):
    """A progress bar on stderr that appears only after a second and only
    when stdout is a terminal."""
    disable = quiet or not sys.stdout.isatty()
    return tqdm(iterable, total=total, desc=desc, unit="file", delay=1.0, disable=disable, leave=False)


def map_files(
    func: Callable, items: Sequence, jobs: int | None = None, desc: str = "", quiet: bool = False
) -> list:
    """``[func(x) for x in items]`` in order, over ``jobs`` processes.

    Exceptions raised in a worker propagate (the first in input order wins).
    """
    jobs = jobs or default_jobs()
    if jobs <= 1 or len(items) < PARALLEL_MIN_ITEMS:
        return list(progress(map(func, items), len(items), desc, quiet))
    chunk = max(16, len(items) // (jobs * 16))
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(jobs) as pool:
        return list(progress(pool.imap(func, items, chunksize=chunk), len(items), desc, quiet))
