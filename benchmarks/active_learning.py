"""Does ranking beat random sampling? A simulated labelling loop.

    python benchmarks/active_learning.py [--seeds 0 1 2] [--rounds 5] [--strategies ...]
    python benchmarks/active_learning.py --check        # the full pool's AP with the same training budget
    python benchmarks/active_learning.py --cost         # scoring overhead over plain inference; k-center time

The dataset: ``examples/shapes.py`` with the classes drawn 70/20/10 (square,
disc, triangle) and ~10 % of the pool near-duplicates of another pool image;
a pool of ``--pool`` images and a fixed test set of ``--test`` (other seeds).

Each seed draws a random 5 % of the pool as the first labelled set (the same
for every strategy), then each round a strategy picks another 5 % with the
model trained on what is labelled so far, its ground truth is "labelled"
(revealed), and cpu-tiny is trained again from the same initial weights
(seeded) for ``--epochs`` epochs. Test segm/bbox AP after every round.

Reported: AP per round per strategy; the normalised area under the
AP-vs-labels curve (AULC: the curve's mean height between the first and last
round); paired delta AULC against random (same seed, same first set, same
training seed); labels needed to reach 90 % of the full-pool AP; instances
labelled (sum aggregation favours crowded images); near-duplicates taken.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from annot.active_learning.scoring import ScoringOptions, score_detections  # noqa: E402
from annot.active_learning.select import Candidate, select  # noqa: E402
from annot.db.phash import phash_file  # noqa: E402
from annot.plugins.images import load_rgb  # noqa: E402
from annot.plugins.inputs import InputImage  # noqa: E402
from annot.plugins.maskrcnn import MaskRCNNPredictor  # noqa: E402
from annot.training.data import CocoInstances  # noqa: E402
from annot.training.loop import Recipe, Trainer  # noqa: E402
from annot.training.predictions import evaluate_model  # noqa: E402
from annot.training.recipe import ModelConfig, preset  # noqa: E402

CLASSES = ["square", "disc", "triangle"]
WEIGHTS = (0.7, 0.2, 0.1)
RADIUS = 6
# name -> (select strategy, score, aggregation, flip)
STRATEGIES = {
    "random": ("random", "combined", "max", False),
    "uncertainty-max": ("uncertainty", "combined", "max", False),
    "uncertainty-mean": ("uncertainty", "combined", "mean", False),
    "uncertainty-sum": ("uncertainty", "combined", "sum", False),
    "margin-max": ("uncertainty", "margin", "max", False),
    "flip-max": ("uncertainty", "flip", "max", True),
    "diversity": ("diversity", "combined", "max", False),
    "hybrid-max": ("hybrid", "combined", "max", False),
}
DEFAULT = ["random", "uncertainty-max", "uncertainty-sum", "flip-max", "hybrid-max"]


def subset(doc: dict, ids: set[int]) -> dict:
    return {**doc, "images": [im for im in doc["images"] if im["id"] in ids],
            "annotations": [a for a in doc["annotations"] if a["image_id"] in ids]}


def make_data(root: Path, pool: int, test: int, size: int) -> tuple[dict, dict]:
    from shapes import shapes_coco

    pool_doc = shapes_coco(root / "pool", pool, size, seed=100, weights=WEIGHTS, duplicates=0.1)
    test_doc = shapes_coco(root / "test", test, size, seed=200, weights=WEIGHTS)
    for doc, folder in ((pool_doc, "pool"), (test_doc, "test")):
        for im in doc["images"]:
            im["file_name"] = f"{folder}/{im['file_name']}"
    return pool_doc, test_doc


def config(size: int) -> tuple[ModelConfig, dict]:
    p = preset("cpu-tiny")
    return ModelConfig(classes=CLASSES, backbone=p["backbone"], norm=p["norm"], channels=p["channels"],
                       min_stride=p["min_stride"], image_size=size, heads=dict(p["heads"])), p


def train(doc: dict, root: Path, size: int, epochs: int, seed: int):
    cfg, p = config(size)
    torch.manual_seed(seed)  # the same initial weights every round
    trainer = Trainer(cfg.build(train_scales=True), CocoInstances(doc, root, CLASSES, flip=0.5, seed=seed),
                      Recipe(epochs=epochs, batch_size=4, max_lr=p["max_lr"], seed=seed,
                             clip_grad_norm=p["clip_grad_norm"]), Path(tempfile.mkdtemp(prefix="annot-al-")))
    trainer.save = lambda: None
    trainer.run()
    return trainer.model.eval()


def test_ap(model, test_doc: dict, root: Path) -> tuple[float, float]:
    ev = evaluate_model(model, CLASSES, test_doc, root)
    return ev.coco["segm"]["AP"], ev.coco["bbox"]["AP"]


def predictor_of(model) -> MaskRCNNPredictor:
    p = MaskRCNNPredictor()
    p.load(model=model, classes=CLASSES, device="cpu", score_threshold=0.05, embeddings=True)
    return p


def score_pool(pred, images: dict[int, np.ndarray], ids: list[int], opts: ScoringOptions) -> dict[int, object]:
    out = {}
    for i in ids:
        img = images[i]
        det = pred.predict([img])[0]
        flipped = pred.predict([np.ascontiguousarray(img[:, ::-1])])[0] if opts.flip else None
        out[i] = score_detections(InputImage(Path(f"{i}"), str(i), i), det, opts, img.shape[:2], img.shape[:2],
                                  flipped)
    return out


def aulc(xs: list[float], ys: list[float]) -> float:
    """Mean height of the piecewise-linear curve between its first and last x."""
    return float(np.trapezoid(ys, xs) / (xs[-1] - xs[0]))


def labels_to_reach(xs: list[int], ys: list[float], target: float) -> float | None:
    """Labels where the curve first reaches ``target`` (linear between rounds); None if never."""
    for k, (x, y) in enumerate(zip(xs, ys)):
        if y >= target:
            if k == 0:
                return float(x)
            x0, y0 = xs[k - 1], ys[k - 1]
            return x0 + (target - y0) / (y - y0) * (x - x0)
    return None


def duplicates_taken(picked: list[int], labelled: list[int], hashes: dict[int, int]) -> int:
    """Picked images within RADIUS bits of a labelled or another picked image."""
    n, seen = 0, [hashes[i] for i in labelled]
    for i in picked:
        if any((hashes[i] ^ h).bit_count() <= RADIUS for h in seen):
            n += 1
        seen.append(hashes[i])
    return n


def run(args) -> None:
    root = Path(tempfile.mkdtemp(prefix="annot-al-bench-"))
    pool_doc, test_doc = make_data(root, args.pool, args.test, args.size)
    ids = [im["id"] for im in pool_doc["images"]]
    images = {im["id"]: load_rgb(root / im["file_name"]) for im in pool_doc["images"]}
    hashes = {im["id"]: phash_file(root / im["file_name"]) for im in pool_doc["images"]}
    instances = {i: 0 for i in ids}
    for a in pool_doc["annotations"]:
        instances[a["image_id"]] += 1
    step = max(1, round(args.pool * args.step))
    print(f"pool {len(ids)} images ({sum(instances.values())} instances), test {len(test_doc['images'])}; "
          f"start {step}, +{step} per round, {args.rounds} rounds, {args.epochs} epochs per training, "
          f"{args.size} px; strategies {', '.join(args.strategies)}; seeds {args.seeds}", flush=True)
    t0 = time.perf_counter()
    full = args.full_ap
    if full is None:
        model = train(pool_doc, root, args.size, args.epochs, seed=0)
        full = test_ap(model, test_doc, root)[0]
        print(f"full pool ({len(ids)} images): test segm AP {full:.3f} ({(time.perf_counter() - t0) / 60:.1f} min)",
              flush=True)
    results = {"full_pool_segm_AP": full, "args": vars(args), "runs": []}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        first = sorted(rng.choice(ids, step, replace=False).tolist())
        model0 = train(subset(pool_doc, set(first)), root, args.size, args.epochs, seed)
        ap0 = test_ap(model0, test_doc, root)
        print(f"seed {seed} round 0 ({len(first)} labelled): segm AP {ap0[0]:.3f}", flush=True)
        for name in args.strategies:
            strategy, score, agg, flip = STRATEGIES[name]
            opts = ScoringOptions(score, agg, 3, 1.0, flip)
            labelled, model, curve = list(first), model0, [(len(first), *ap0, 0, 0.0)]
            dups, score_s = 0, 0.0
            for r in range(1, args.rounds + 1):
                pool = [i for i in ids if i not in set(labelled)]
                pred = predictor_of(model)
                start = time.perf_counter()
                scored = score_pool(pred, images, pool, opts) if strategy != "random" else {}
                lab_emb = None
                if strategy in ("diversity", "hybrid"):
                    lab_scores = score_pool(pred, images, labelled, opts)
                    lab_emb = np.stack([s.embedding for s in lab_scores.values()])
                score_s += time.perf_counter() - start
                cands = [Candidate(str(i), scored[i].components[score] if scored else 0.0, hashes[i],
                                   scored[i].embedding if scored else None) for i in pool]
                sel = select(cands, step, strategy, seed=seed * 1000 + r,
                             labelled_hashes=[hashes[i] for i in labelled], labelled_embeddings=lab_emb,
                             radius=RADIUS)
                picked = [pool[p.index] for p in sel.picks]
                dups += duplicates_taken(picked, labelled, hashes)
                labelled += picked
                model = train(subset(pool_doc, set(labelled)), root, args.size, args.epochs, seed)
                segm, bbox = test_ap(model, test_doc, root)
                curve.append((len(labelled), segm, bbox, sum(instances[i] for i in labelled), dups))
                print(f"seed {seed} {name} round {r} ({len(labelled)} labelled, "
                      f"{curve[-1][3]} instances, {dups} near-duplicates taken): segm AP {segm:.3f} bbox AP "
                      f"{bbox:.3f} [{(time.perf_counter() - t0) / 60:.1f} min]", flush=True)
            results["runs"].append({"seed": seed, "strategy": name, "curve": curve, "scoring_s": score_s})
        Path(args.json).write_text(json.dumps(results, indent=1))
    report(results, args)


def report(results: dict, args) -> None:
    full = results["full_pool_segm_AP"]
    runs = results["runs"]
    names = list(dict.fromkeys(r["strategy"] for r in runs))
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["seed"], r["strategy"]): r["curve"] for r in runs}
    xs = [c[0] for c in runs[0]["curve"]]
    print(f"\nfull pool: test segm AP {full:.3f}; 90 % of it: {0.9 * full:.3f}\n")
    print("| strategy | " + " | ".join(f"{x} labels" for x in xs) + " | AULC | ΔAULC vs random | labels to 90 % |"
          " instances | near-dups |")
    print("|---|" + "---:|" * (len(xs) + 5))
    summary = {}
    for name in names:
        curves = [by[(s, name)] for s in seeds if (s, name) in by]
        mean_ap = [statistics.mean(c[k][1] for c in curves) for k in range(len(xs))]
        aulcs = [aulc([p[0] for p in c], [p[1] for p in c]) for c in curves]
        deltas = [aulc([p[0] for p in c], [p[1] for p in c])
                  - aulc([p[0] for p in by[(s, "random")]], [p[1] for p in by[(s, "random")]])
                  for s, c in zip(seeds, curves) if (s, "random") in by]
        reach = [labels_to_reach([p[0] for p in c], [p[1] for p in c], 0.9 * full) for c in curves]
        reach_txt = ", ".join("never" if v is None else f"{v:.0f}" for v in reach)
        sd = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
        summary[name] = {"aulc": aulcs, "delta": deltas, "reach": reach}
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in mean_ap)
              + f" | {statistics.mean(aulcs):.3f} | {statistics.mean(deltas):+.3f} ± {sd:.3f} "
                f"({', '.join(f'{d:+.3f}' for d in deltas)}) | {reach_txt} | "
                f"{statistics.mean(c[-1][3] for c in curves):.0f} | {statistics.mean(c[-1][4] for c in curves):.1f} |")
    if args.plot:
        plot(by, names, seeds, full, Path(args.plot))
        print(f"\nplot: {args.plot}")


def plot(by, names, seeds, full: float, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for k, name in enumerate(names):
        colour = f"C{k}"
        curves = [by[(s, name)] for s in seeds if (s, name) in by]
        for c in curves:
            ax.plot([p[0] for p in c], [p[1] for p in c], color=colour, alpha=0.25, linewidth=0.8)
        xs = [p[0] for p in curves[0]]
        ax.plot(xs, [statistics.mean(c[i][1] for c in curves) for i in range(len(xs))], color=colour,
                marker="o", label=name, linewidth=2)
    ax.axhline(0.9 * full, color="grey", linestyle="--", label="90 % of full-pool AP")
    ax.set(xlabel="labelled images", ylabel="test segm AP", title="active learning vs random (thin: seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)


def cost(args) -> None:
    """Scoring overhead over plain inference, and k-center on 100,000 x 256."""
    from annot.active_learning.kcenter import k_center_greedy, normalise

    root = Path(tempfile.mkdtemp(prefix="annot-al-cost-"))
    pool_doc, _ = make_data(root, 30, 1, args.size)
    imgs = [load_rgb(root / im["file_name"]) for im in pool_doc["images"]]
    model = train(subset(pool_doc, {im["id"] for im in pool_doc["images"][:24]}), root, args.size, 10, 0)
    tensors = [torch.from_numpy(im).permute(2, 0, 1).float() / 255 for im in imgs]
    pred = predictor_of(model)
    model.roi_heads.score_thresh = 0.05  # torchvision's own threshold, as the predictor's
    opts, flip_opts = ScoringOptions(), ScoringOptions(score="flip", flip=True)

    def plain():
        with torch.inference_mode():
            for t in tensors:
                model([t])

    def scored(o):
        for im in imgs:
            det = pred.predict([im])[0]
            fl = pred.predict([np.ascontiguousarray(im[:, ::-1])])[0] if o.flip else None
            score_detections(InputImage(Path("x"), "x", 1), det, o, im.shape[:2], im.shape[:2], fl)

    times = {"plain": [], "scored": [], "flip": []}
    for _ in range(args.repeat):
        for key, f in (("plain", plain), ("scored", lambda: scored(opts)), ("flip", lambda: scored(flip_opts))):
            start = time.perf_counter()
            f()
            times[key].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{len(imgs)} images at {args.size} px, median of {args.repeat}: plain torchvision {med['plain']:.2f} s, "
          f"annot scoring {med['scored']:.2f} s ({med['scored'] / med['plain']:.3f}x, goal <= 1.10x), "
          f"with flip {med['flip']:.2f} s ({med['flip'] / med['plain']:.3f}x)")
    rng = np.random.default_rng(0)
    emb = normalise(rng.normal(size=(100_000, 256)).astype(np.float32))
    lab = normalise(rng.normal(size=(1_000, 256)).astype(np.float32))
    for budget in (100, 1000):
        start = time.perf_counter()
        k_center_greedy(emb, budget, lab)
        print(f"k-center greedy, 100,000 x 256, 1,000 labelled, budget {budget}: {time.perf_counter() - start:.1f} s "
              "(goal <= 30 s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=int, default=240)
    ap.add_argument("--test", type=int, default=80)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--step", type=float, default=0.05, help="share of the pool labelled first and per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), default=DEFAULT)
    ap.add_argument("--full-ap", type=float, help="the full pool's AP, measured before (skips its training)")
    ap.add_argument("--check", action="store_true", help="only train on the full pool and report its AP")
    ap.add_argument("--cost", action="store_true", help="only the cost measurements")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default="/tmp/annot-al-results.json")
    ap.add_argument("--plot", default=None, help="PNG of the curves")
    args = ap.parse_args()
    if "random" not in args.strategies and not (args.check or args.cost):
        ap.error("random is the baseline: include it")
    torch.set_num_threads(torch.get_num_threads())
    print("options:", vars(args), flush=True)
    if args.cost:
        cost(args)
    elif args.check:
        root = Path(tempfile.mkdtemp(prefix="annot-al-bench-"))
        pool_doc, test_doc = make_data(root, args.pool, args.test, args.size)
        for seed in args.seeds:
            start = time.perf_counter()
            model = train(pool_doc, root, args.size, args.epochs, seed)
            segm, bbox = test_ap(model, test_doc, root)
            untrained = test_ap(config(args.size)[0].build().eval(), test_doc, root)[0]
            print(f"seed {seed}: full pool ({args.pool} images, {args.epochs} epochs, "
                  f"{(time.perf_counter() - start) / 60:.1f} min): test segm AP {segm:.3f}, bbox AP {bbox:.3f}; "
                  f"untrained {untrained:.3f}", flush=True)
    else:
        run(args)


if __name__ == "__main__":
    main()
