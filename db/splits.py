"""Leak-free, stratified, stable train/val/test splits.

Rules, in the order they apply:

1. **Stable**: an image assigned once keeps its subset for ever under that
   scheme; a new dataset version only assigns its new images.
2. **Leak-free**: images whose pHashes differ by <= the threshold (default 6
   of 64 bits) form one group (transitively, see :mod:`annot.db.dedup`) and
   land in one subset; a new image near an assigned one joins its subset.
3. **Stratified**: the remaining groups, in an order shuffled by the seed,
   each go to the subset where they bring the image count and every
   category's instance count closest to the requested ratios (least growth of
   the squared error relative to each subset's target, so small subsets are
   not starved of large images).

Deterministic for a seed: the same version, ratios and seed give the same split.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from annot.errors import AnnotError, StoreError

from .datasets import get_version, load_coco
from .dedup import duplicate_groups
from .phash import to_unsigned
from .schema import Image, Split, SplitAssignment, VersionImage
from .session import Store

SUBSETS = ("train", "val", "test")


def parse_ratios(text: str) -> dict[str, float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise AnnotError(f"--ratios {text!r}: expected numbers like 0.8,0.1,0.1") from None
    if len(vals) != 3 or any(v < 0 for v in vals) or abs(sum(vals) - 1) > 1e-6:
        raise AnnotError(f"--ratios {text!r}: three non-negative numbers summing to 1 (train,val,test)")
    return dict(zip(SUBSETS, vals))


@dataclass
class SplitReport:
    scheme: str
    version: int
    images: Counter = field(default_factory=Counter)  # subset -> images
    instances: dict = field(default_factory=lambda: defaultdict(Counter))  # subset -> category -> n
    duplicate_groups: Counter = field(default_factory=Counter)  # subset -> groups of >1 image
    newly_assigned: int = 0

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "version": self.version, "newly_assigned": self.newly_assigned,
                "subsets": {s: {"images": self.images[s], "instances": dict(self.instances[s]),
                                "duplicate_groups": self.duplicate_groups[s]} for s in SUBSETS}}


def split(store: Store, ref: str, scheme: str = "default", ratios: dict[str, float] | None = None,
          seed: int = 0, threshold: int = 6) -> SplitReport:
    ratios = ratios or {"train": 0.8, "val": 0.1, "test": 0.1}
    with store.transaction() as s:
        version = get_version(s, ref)
        sp = s.scalar(select(Split).where(Split.dataset_id == version.dataset_id, Split.scheme == scheme))
        if sp is None:
            sp = Split(dataset_id=version.dataset_id, scheme=scheme, ratios=ratios, seed=seed,
                       dedup_threshold=threshold)
            s.add(sp)
            s.flush()
        elif (sp.ratios, sp.seed, sp.dedup_threshold) != (ratios, seed, threshold):
            raise AnnotError(f"scheme {scheme!r} already exists with ratios {sp.ratios}, seed {sp.seed}, "
                             f"threshold {sp.dedup_threshold}: its assignments are fixed; name a new scheme")
        rows = s.execute(select(VersionImage.file_name, Image.id, Image.phash)
                         .join(Image, Image.id == VersionImage.image_id)
                         .where(VersionImage.version_id == version.id)).all()
        assigned = dict(s.execute(select(SplitAssignment.image_id, SplitAssignment.subset)
                                  .where(SplitAssignment.split_id == sp.id)).all())
        coco = load_coco(store, version)
        per_image = _instances_per_image(coco)  # file_name -> Counter(category)
        image_ids = list(dict.fromkeys(r[1] for r in rows))
        phash = {r[1]: to_unsigned(r[2]) for r in rows}
        counts: dict[int, Counter] = defaultdict(Counter)
        for file_name, img_id, _ in rows:
            counts[img_id] += per_image.get(file_name, Counter())
        rep_of = duplicate_groups([phash[i] for i in image_ids], threshold)
        groups: dict[int, list[int]] = defaultdict(list)
        for img_id, rep in zip(image_ids, rep_of):
            groups[image_ids[rep]].append(img_id)

        new = _assign(groups, counts, assigned, ratios, seed)
        s.add_all(SplitAssignment(split_id=sp.id, image_id=i, subset=sub, group_id=g,
                                  assigned_in_version=version.id) for i, (sub, g) in new.items())
        report = SplitReport(scheme, version.version, newly_assigned=len(new))
        subset_of = {**assigned, **{i: sub for i, (sub, _) in new.items()}}
        for members in groups.values():
            sub = subset_of[members[0]]
            if len(members) > 1:
                report.duplicate_groups[sub] += 1
            for i in members:
                report.images[sub] += 1
                report.instances[sub].update(counts[i])
        return report


def _instances_per_image(coco: dict) -> dict[str, Counter]:
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_id = {im["id"]: im["file_name"] for im in coco["images"]}
    out: dict[str, Counter] = defaultdict(Counter)
    for a in coco["annotations"]:
        if not a.get("iscrowd"):
            out[by_id[a["image_id"]]][names[a["category_id"]]] += 1
    return out


def _assign(groups, counts, assigned, ratios, seed) -> dict[int, tuple[str, int]]:
    """Subset and group of every not yet assigned image."""
    subsets = [s for s in SUBSETS if ratios[s] > 0]
    cur_img = Counter()
    cur_inst: dict[str, Counter] = {s: Counter() for s in SUBSETS}
    total_inst = Counter()
    for members in groups.values():
        for i in members:
            total_inst.update(counts[i])
            if i in assigned:
                cur_img[assigned[i]] += 1
                cur_inst[assigned[i]].update(counts[i])
    n_images = sum(len(m) for m in groups.values())
    out: dict[int, tuple[str, int]] = {}
    pending = []
    for g, members in groups.items():
        done = [assigned[i] for i in members if i in assigned]
        if done:  # a new near-duplicate of an assigned image joins that image's subset
            sub = Counter(done).most_common(1)[0][0]
            for i in members:
                if i not in assigned:
                    out[i] = (sub, g)
                    cur_img[sub] += 1
                    cur_inst[sub].update(counts[i])
        else:
            pending.append(g)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pending))
    pending = [pending[k] for k in order]
    for g in pending:
        members = groups[g]
        need = Counter()
        for i in members:
            need.update(counts[i])

        costs = [_growth(ratios[sub] * n_images, cur_img[sub], len(members))
                 + sum(_growth(ratios[sub] * total_inst[c], cur_inst[sub][c], k) for c, k in need.items())
                 for sub in subsets]
        sub = subsets[costs.index(min(costs))]
        for i in members:
            out[i] = (sub, g)
            cur_img[sub] += 1
            cur_inst[sub].update(counts[i])
    return out


def _growth(target: float, current: float, added: float) -> float:
    """Growth of the squared error relative to a subset's target if ``added``
    joined it: every subset fills at the same pace, small ones are not starved."""
    return ((current + added - target) ** 2 - (current - target) ** 2) / max(target, 1.0) ** 2


def subset_file_names(store: Store, ref: str, scheme: str, subset: str) -> tuple[object, set[str]]:
    with store.transaction() as s:
        version = get_version(s, ref)
        sp = s.scalar(select(Split).where(Split.dataset_id == version.dataset_id, Split.scheme == scheme))
        if sp is None:
            raise StoreError(f"no split scheme {scheme!r} for {ref}: run `annot dataset split {ref}` first")
        rows = s.execute(select(VersionImage.file_name, SplitAssignment.subset)
                         .join(SplitAssignment, (SplitAssignment.image_id == VersionImage.image_id)
                               & (SplitAssignment.split_id == sp.id), isouter=True)
                         .where(VersionImage.version_id == version.id)).all()
    unassigned = [f for f, sub in rows if sub is None]
    if unassigned:
        raise AnnotError(f"{len(unassigned)} image(s) of this version are not assigned in scheme {scheme!r} "
                         f"(e.g. {unassigned[0]!r}): run `annot dataset split` for this version")
    return version, {f for f, sub in rows if sub == subset}
