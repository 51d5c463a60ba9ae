"""k-center greedy (the core-set selection of Sener & Savarese, 2018).

Embeddings are L2-normalised, so the cosine distance of two is 1 - their dot
product. Each step picks the pool image farthest from everything chosen so
far (the labelled images count as chosen), then lowers every image's distance
to the nearest centre with one matrix-vector product: memory O(N), time
O(budget x N x D); the labelled set is folded in by chunks of columns, never
an N x N (or N x M) matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CHUNK_FLOATS = 1 << 24  # at most this many distances in memory at once (64 MiB of float32)


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1)


def nearest_distance(pool: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pool row, the cosine distance to its nearest centre and that
    centre's index; chunked over the centres."""
    best = np.full(len(pool), np.inf, np.float32)
    which = np.full(len(pool), -1, np.int64)
    step = max(1, CHUNK_FLOATS // max(len(pool), 1))
    for a in range(0, len(centres), step):
        d = 1.0 - pool @ centres[a : a + step].T
        k = d.argmin(axis=1)
        dk = d[np.arange(len(pool)), k]
        closer = dk < best
        best[closer], which[closer] = dk[closer], k[closer] + a
    return best, which


def k_center_greedy(pool: np.ndarray, budget: int, labelled: np.ndarray | None = None, seed: int = 0,
                    allowed: Callable[[int, list[int]], bool] | None = None) -> tuple[list[int], list[float]]:
    """Indices of up to ``budget`` pool rows in the order chosen, and each
    one's distance to the nearest centre when it was chosen.

    ``pool`` and ``labelled`` are (N, D) and (M, D) L2-normalised. Without
    labelled images the first centre is drawn with ``seed``. ``allowed(i,
    chosen)`` may veto a candidate (near-duplicates); a vetoed image is
    never offered again.
    """
    pool = np.asarray(pool, np.float32)
    n = len(pool)
    if n == 0 or budget <= 0:
        return [], []
    live = np.ones(n, bool)
    if labelled is not None and len(labelled):
        dist, _ = nearest_distance(pool, np.asarray(labelled, np.float32))
        firsts = iter(())
    else:  # nothing to be far from: the first centre is a seeded draw
        dist = np.full(n, np.inf, np.float32)
        firsts = iter(np.random.default_rng(seed).permutation(n).tolist())
    chosen, gaps = [], []
    while len(chosen) < budget and live.any():
        i = next((f for f in firsts if live[f]), None) if not chosen else None
        if i is None:
            i = int(np.argmax(np.where(live, dist, -np.inf)))
        live[i] = False
        if allowed is not None and not allowed(i, chosen):
            continue
        chosen.append(i)
        gaps.append(float(dist[i]) if np.isfinite(dist[i]) else float("nan"))
        dist = np.minimum(dist, 1.0 - pool @ pool[i])
    return chosen, gaps
