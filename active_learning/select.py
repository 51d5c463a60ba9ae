"""Choosing the next batch to label from scored pool images.

Strategies (deterministic for a seed):

- ``uncertainty``: the highest image scores first.
- ``random``: a seeded shuffle, the baseline every strategy is measured against.
- ``diversity``: k-center greedy on the image embeddings, seeded with the
  labelled images' embeddings (:mod:`.kcenter`).
- ``hybrid``: the top ``pool_factor`` x budget by uncertainty, then k-center
  inside that shortlist.

Whatever the strategy, two images of one batch are never near-duplicates
(pHashes within ``radius`` bits, the split's duplicate radius), and no image
duplicates a labelled one. ``balance`` multiplies each uncertainty score by
1 + rarity, rarity being the largest over the image's predicted classes of
1 - (the class's labelled instances / the commonest class's): an image whose
detections are of a class the labelled set lacks counts up to twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .kcenter import k_center_greedy, nearest_distance

STRATEGIES = ("uncertainty", "random", "diversity", "hybrid")


@dataclass
class Candidate:
    """One pool image, scored."""

    name: str
    score: float  # the aggregated uncertainty
    phash: int | None = None
    embedding: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)  # predicted, one per detection


@dataclass
class Pick:
    index: int  # into the candidates
    reason: str


@dataclass
class Selection:
    picks: list[Pick]
    clusters: list[int | None]  # per candidate: the rank (from 1) of its nearest picked image
    duplicates_skipped: int
    weights: list[float]  # per candidate: the balance multiplier (1 without --balance)


class DuplicateGuard:
    """Refuses an image within ``radius`` pHash bits of a labelled or an
    already picked one."""

    def __init__(self, hashes: list[int | None], labelled: list[int], radius: int):
        self.hashes, self.radius = hashes, radius
        self.taken = np.array([h for h in labelled if h is not None], np.uint64)
        self.skipped = 0

    def ok(self, i: int) -> bool:
        h = self.hashes[i]
        if h is None or self.radius < 0:
            return True
        if len(self.taken) and int(np.bitwise_count(self.taken ^ np.uint64(h)).min()) <= self.radius:
            self.skipped += 1
            return False
        return True

    def take(self, i: int) -> None:
        if self.hashes[i] is not None:
            self.taken = np.append(self.taken, np.uint64(self.hashes[i]))


def balance_weights(candidates: list[Candidate], labelled_counts: dict[str, int]) -> list[float]:
    top = max(labelled_counts.values(), default=0)
    if top == 0:
        return [1.0] * len(candidates)
    return [1.0 + max((1.0 - labelled_counts.get(c, 0) / top for c in set(cand.classes)), default=0.0)
            for cand in candidates]


def select(candidates: list[Candidate], budget: int, strategy: str = "uncertainty", seed: int = 0,
           labelled_hashes: list[int] = (), labelled_embeddings: np.ndarray | None = None, radius: int = 6,
           pool_factor: float = 4.0, balance: dict[str, int] | None = None) -> Selection:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    guard = DuplicateGuard([c.phash for c in candidates], list(labelled_hashes), radius)
    weights = balance_weights(candidates, balance) if balance is not None else [1.0] * len(candidates)
    scores = np.array([c.score * w for c, w in zip(candidates, weights)], float)
    by_score = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i].name))
    if strategy in ("uncertainty", "random"):
        order = by_score if strategy == "uncertainty" else \
            np.random.default_rng(seed).permutation(len(candidates)).tolist()
        picks = []
        for i in order:
            if len(picks) == budget:
                break
            if guard.ok(i):
                guard.take(i)
                picks.append(Pick(i, _why(strategy, candidates[i], scores[i], len(picks) + 1, weights[i])))
    else:
        pool = list(range(len(candidates))) if strategy == "diversity" else \
            by_score[: max(budget, int(np.ceil(pool_factor * budget)))]
        emb = _embeddings(candidates, pool)
        lab = None if labelled_embeddings is None or not len(labelled_embeddings) else labelled_embeddings

        def allowed(j: int, chosen: list[int]) -> bool:
            if guard.ok(pool[j]):
                guard.take(pool[j])
                return True
            return False

        chosen, gaps = k_center_greedy(emb, budget, lab, seed, allowed)
        picks = [Pick(pool[j], _why(strategy, candidates[pool[j]], scores[pool[j]], None, weights[pool[j]], gap,
                                    len(pool))) for j, gap in zip(chosen, gaps)]
    return Selection(picks, _clusters(candidates, picks), guard.skipped, weights)


def _embeddings(candidates: list[Candidate], rows: list[int]) -> np.ndarray:
    missing = [candidates[i].name for i in rows if candidates[i].embedding is None]
    if missing:
        raise ValueError(f"diversity needs image embeddings; {missing[0]} has none")
    return np.stack([np.asarray(candidates[i].embedding, np.float32) for i in rows]) if rows else \
        np.zeros((0, 1), np.float32)


def _clusters(candidates: list[Candidate], picks: list[Pick]) -> list[int | None]:
    """Each candidate's nearest picked image (its rank), by embedding."""
    if not picks or any(c.embedding is None for c in candidates):
        return [None] * len(candidates)
    pool = np.stack([np.asarray(c.embedding, np.float32) for c in candidates])
    _, which = nearest_distance(pool, pool[[p.index for p in picks]])
    out = [int(w) + 1 for w in which]
    for rank, p in enumerate(picks, start=1):  # a picked image heads its own cluster, even among equal embeddings
        out[p.index] = rank
    return out


def _why(strategy: str, c: Candidate, score: float, rank: int | None, weight: float, gap: float | None = None,
         shortlist: int | None = None) -> str:
    balance = f" (x{weight:.2f} for rare classes)" if weight != 1.0 else ""
    if strategy == "uncertainty":
        return f"uncertainty {score:.3f}{balance}: #{rank} of the pool"
    if strategy == "random":
        return "drawn at random (the baseline)"
    far = "the first centre" if gap is None or gap != gap else f"cosine distance {gap:.3g} to the nearest " \
                                                                "labelled or picked image"
    if strategy == "diversity":
        return f"diversity: {far}"
    return f"hybrid: among the {shortlist} most uncertain (score {score:.3f}{balance}), {far}"
