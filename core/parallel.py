"""Map a per-file function over many files, on every core when it pays.

This is annot's batch conversion runner, and the only library module with
process-wide tricks; a long-lived server never calls it (it converts one
task at a time, in its own thread):

- :func:`bulk` pauses the cyclic garbage collector while a dataset is built
  (with it on, assembling 100,000 annotations took three times as long) and
  hands what was built to the oldest generation on the way out (else the
  next collection walks all of it: ~30 ms per 100,000 annotations);
- worker processes are forked, so a Label Studio export already in memory
  reaches them without pickling (parsing it once in the parent and paying
  for it again in every worker's copy-on-write pages cost 535 MB peak, the
  split now 163 MB); they never collect cycles (every object they build
  lives until it is sent back).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial

PARALLEL_MIN_ITEMS = 200  # below this, process start-up costs more than it saves
SERIAL_BATCH = 64  # items per batch in one process: a progress step


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def progress(iterable: Iterable | None, total: int, desc: str, quiet: bool = False, unit: str = "file"):
    """A progress bar on stderr that appears only after a second and only
    when stdout is a terminal (tqdm is imported only then)."""
    if quiet or not sys.stdout.isatty():
        return _Silent(iterable)
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, delay=1.0, leave=False)


class _Silent:
    """What :func:`progress` returns when no bar is shown."""

    def __init__(self, iterable: Iterable | None):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def map_files(
    func: Callable, items: Sequence, jobs: int | None = None, desc: str = "", quiet: bool = False
) -> Iterator:
    """``func(x) for x in items``, in order, over ``jobs`` processes.

    A generator: the caller assembles results while workers parse the next
    files. Exceptions raised in a worker propagate (the first in input order
    wins).
    """
    return map_batches(partial(_each, func), items, jobs, desc, quiet)


def _each(func: Callable, batch: Sequence) -> list:
    return [func(x) for x in batch]


def map_batches(
    func: Callable, items: Sequence, jobs: int | None = None, desc: str = "", quiet: bool = False
) -> Iterator:
    """The results of ``func(batch)`` for consecutive batches of ``items``,
    one result per item, in order, over ``jobs`` processes: for work that is
    cheaper done for many files at once (:func:`map_files` is the per-item
    case). A generator, like :func:`map_files`."""
    jobs = jobs or default_jobs()
    parallel = jobs > 1 and len(items) >= PARALLEL_MIN_ITEMS
    # ~32 batches per process: fewer leave a process idle at the end, more cost more in messages
    size = max(8, len(items) // (jobs * 32)) if parallel else SERIAL_BATCH
    batches = [items[a : a + size] for a in range(0, len(items), size)]
    bar = progress(None, len(items), desc, quiet)
    if not parallel:
        yield from _counted(map(func, batches), bar)
        return
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    yield from _counted(_pooled(func, batches, jobs, ctx), bar)


def _counted(batches: Iterable[list], bar) -> Iterator:
    for results in batches:
        bar.update(len(results))
        yield from results
    bar.close()


_shared = None  # in a map_shared worker process only: the document it inherited


def _inherit(shared) -> None:
    global _shared
    _shared = shared
    gc.disable()


def _call_range(args):
    func, start, stop = args
    return func(_shared, start, stop)


def map_shared(
    func: Callable, shared: Sequence, jobs: int | None = None, desc: str = "", quiet: bool = False
) -> Iterator:
    """The results of ``func(shared, start, stop)`` over consecutive ranges
    of ``range(len(shared))``, one result per index, in order, over forked
    workers.

    For one big document already in memory (a Label Studio export): forked
    workers inherit ``shared`` (a fork passes the pool's initializer
    arguments without pickling them) instead of receiving it through a pipe,
    and only results travel back. The calling process's modules are left as
    they were.
    """
    n = len(shared)
    jobs = jobs or default_jobs()
    bar = progress(None, n, desc, quiet)
    if jobs <= 1 or n < PARALLEL_MIN_ITEMS or "fork" not in mp.get_all_start_methods():
        yield from _counted((func(shared, a, min(a + SERIAL_BATCH, n)) for a in range(0, n, SERIAL_BATCH)), bar)
        return
    chunk = max(8, n // (jobs * 32))
    ranges = [(func, a, min(a + chunk, n)) for a in range(0, n, chunk)]
    yield from _counted(_pooled(_call_range, ranges, jobs, mp.get_context("fork"), _inherit, (shared,)), bar)


def _pooled(func: Callable, tasks: list, jobs: int, ctx, initializer=gc.disable, initargs=()) -> Iterator[list]:
    """``func(task)`` for each task, in order, over a pool of ``jobs``
    processes; each result list comes back through a temp file.

    A pipe moves 64 KB at a time, each step waking the pool's result thread,
    which must then take the GIL from the main thread assembling the dataset
    while the worker waits to write on; for 29 MB of results that was ~0.2 s
    of the main process. A file is written and read in one call each (and,
    deleted at once, never reaches the disk)."""
    # workers never collect cycles: they build results that all stay alive until pickled
    with tempfile.TemporaryDirectory(prefix="annot-") as spill, \
            ctx.Pool(jobs, initializer=initializer, initargs=initargs) as pool:
        for name in pool.imap(partial(_spilled, func, spill), tasks):
            with open(name, "rb") as f:
                data = f.read()
            os.unlink(name)
            yield pickle.loads(data)


def _spilled(func: Callable, folder: str, task) -> str:
    """``func(task)``'s result pickled to a new file in ``folder``; its name."""
    result = func(task)
    fd, name = tempfile.mkstemp(dir=folder)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(result, f, pickle.HIGHEST_PROTOCOL)
    return name


@contextlib.contextmanager
def bulk():
    """No cyclic garbage collection while building a large dataset.

    Building 100,000 annotations allocates millions of containers that all
    stay alive; each collection re-walks them, tripling the assembly time.
    Nothing built here is cyclic garbage, so collecting afterwards is enough.
    On the way out, what the block built joins the oldest generation (freeze
    then unfreeze: two list splices): else the first collection after
    re-enabling walks every container it allocated (~30 ms per 100,000
    annotations, on the way out of every conversion).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.unfreeze()
            gc.enable()
