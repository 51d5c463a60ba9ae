"""Does ranking beat random sampling? A simulated labelling loop.

    python benchmarks/active_learning.py [--seeds 0 1 2] [--rounds 5] [--strategies ...]
    python benchmarks/active_learning.py --check        # the full pool's AP with the same training budget
    python benchmarks/active_learning.py --check --init pretrain --steps 100 --check-sizes 10 60
                                                        # does a budget learn from more labels at all?
    python benchmarks/active_learning.py --cost         # scoring overhead over plain inference; k-center time

The dataset: ``examples/shapes.py`` with the classes drawn 70/20/10 (square,
disc, triangle) and ~10 % of the pool near-duplicates of another pool image;
a pool of ``--pool`` images and a fixed test set of ``--test`` (other seeds).

Each seed draws a random 5 % of the pool as the first labelled set (the same
for every strategy), then each round a strategy picks another 5 % with the
model trained on what is labelled so far, its ground truth is "labelled"
(revealed), and cpu-tiny is trained again from the same initial weights
(seeded) for ``--epochs`` epochs (or ``--steps`` steps). Test segm/bbox AP
after every round. The initial weights are random (``--init scratch``) or a
one-class model pre-trained once on other synthetic images (``--init
pretrain``, the stand-in for COCO weights: it knows objects and masks, not
which shape is which); ``--heads-only`` then trains only the per-class
predictors on its frozen trunk.

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
from annot.training.init import CLASS_ROWS, Init, apply_init  # noqa: E402
from annot.training.loop import Recipe, Trainer  # noqa: E402
from annot.training.predictions import evaluate_model  # noqa: E402
from annot.training.recipe import ModelConfig, preset  # noqa: E402

CLASSES = ["square", "disc", "triangle"]
WEIGHTS = (0.7, 0.2, 0.1)
RADIUS = 6
PRETRAIN_CLASS = "object"
# name -> (select strategy, score, aggregation, flip); the mc score runs MC_SAMPLES dropout passes
MC_SAMPLES = 8
STRATEGIES = {
    "random": ("random", "combined", "max", False),
    "mc-max": ("uncertainty", "mc", "max", False),
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


def config(size: int, classes: list[str] = CLASSES, norm: str | None = None) -> tuple[ModelConfig, dict]:
    p = preset("cpu-tiny")
    return ModelConfig(classes=list(classes), backbone=p["backbone"], norm=norm or p["norm"], channels=p["channels"],
                       min_stride=p["min_stride"], image_size=size, heads=dict(p["heads"])), p


def initial_model(size: int, seed: int, init: dict | None, heads_only: bool = False,
                  classes: list[str] = CLASSES):
    """The weights every training of a seed starts from: cpu-tiny drawn from
    ``seed``, then ``init`` loaded (all but the new classes' rows).
    ``heads_only``: only the box and mask predictors (the last, per-class
    layers) will learn, on a frozen trunk whose batch norms keep the init's
    statistics (few-shot fine-tuning, as TFA's), and every new class starts
    as the one class the init knew (the same rows, told apart by training)."""
    cfg, _ = config(size, classes, "frozen" if heads_only else None)
    torch.manual_seed(seed)
    model = cfg.build(train_scales=True)
    if init is not None:
        state = {k: v for k, v in init.items() if not (heads_only and k.endswith("num_batches_tracked"))}
        apply_init(model, Init("pretrained", state, [PRETRAIN_CLASS]), list(classes))
        if heads_only:
            own = model.state_dict()
            for key, per in CLASS_ROWS.items():
                rows = state[key][per: 2 * per]
                own[key][per:] = rows.repeat(len(classes), *[1] * (rows.dim() - 1))
            model.load_state_dict(own)
    if heads_only:
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith(("roi_heads.box_predictor.", "roi_heads.mask_predictor."))
    return model


def train(doc: dict, root: Path, size: int, epochs: int, seed: int, init: dict | None = None,
          classes: list[str] = CLASSES, max_lr: float | None = None, heads_only: bool = False):
    """cpu-tiny trained on ``doc`` from :func:`initial_model`; ``epochs`` -N: about N steps."""
    _, p = config(size)
    if epochs < 0:  # -N: about N steps of 4 images, whatever the labelled set's size
        epochs = max(1, round(-epochs * 4 / len(doc["images"])))
    model = initial_model(size, seed, init, heads_only, classes)
    trainer = Trainer(model, CocoInstances(doc, root, list(classes), flip=0.5, seed=seed),
                      Recipe(epochs=epochs, batch_size=4, max_lr=max_lr or p["max_lr"], seed=seed,
                             clip_grad_norm=p["clip_grad_norm"]), Path(tempfile.mkdtemp(prefix="annot-al-")))
    trainer.save = lambda: None
    trainer.run()
    return trainer.model.eval()


def budget_text(args) -> str:
    return f"~{-args.epochs} steps" if args.epochs < 0 else f"{args.epochs} epochs"


def pretrained_init(args) -> dict | None:
    """The weights every training of the loop starts from. ``--init pretrain``:
    cpu-tiny trained on other synthetic images (seed 300, classes drawn evenly,
    no duplicates) where every shape is one class, ``object`` — it knows
    objects and their masks but not which shape is which, as a COCO model
    fine-tuned on new classes does. Cached in the temp folder by its options."""
    if args.init == "scratch":
        return None
    cache = Path(tempfile.gettempdir()) / (f"annot-al-init-{args.size}px-{args.pretrain_images}img-"
                                           f"{args.pretrain_epochs}ep.pt")
    if cache.is_file():
        print(f"pre-trained init: {cache} (cached)", flush=True)
        return torch.load(cache, weights_only=True)
    from shapes import shapes_coco

    start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="annot-al-pretrain-"))
    doc = shapes_coco(root, args.pretrain_images, args.size, seed=300)
    doc["annotations"] = [{**a, "category_id": 1} for a in doc["annotations"]]
    doc["categories"] = [{"id": 1, "name": PRETRAIN_CLASS}]
    state = train(doc, root, args.size, args.pretrain_epochs, seed=0, classes=[PRETRAIN_CLASS]).state_dict()
    torch.save(state, cache)
    print(f"pre-trained init: {args.pretrain_images} images, {args.pretrain_epochs} epochs, one class "
          f"({(time.perf_counter() - start) / 60:.1f} min) -> {cache}", flush=True)
    return state


def test_ap(model, test_doc: dict, root: Path) -> tuple[float, float]:
    ev = evaluate_model(model, CLASSES, test_doc, root)
    return ev.coco["segm"]["AP"], ev.coco["bbox"]["AP"]


def predictor_of(model, mc_samples: int = 0) -> MaskRCNNPredictor:
    p = MaskRCNNPredictor()
    p.load(model=model, classes=CLASSES, device="cpu", score_threshold=0.05, embeddings=True, mc_samples=mc_samples)
    return p


def detect_pool(pred, images: dict[int, np.ndarray], ids: list[int], flip: bool) -> dict[int, tuple]:
    """Each image's detections (and its mirror's), in batches of 8 (2x faster per image than one by one
    at 96 px on the 2-core CPU)."""
    out = {}
    for k in range(0, len(ids), 8):
        chunk = ids[k:k + 8]
        dets = pred.predict([images[i] for i in chunk])
        flipped = pred.predict([np.ascontiguousarray(images[i][:, ::-1]) for i in chunk]) if flip else [None] * 8
        out.update({i: (d, f) for i, d, f in zip(chunk, dets, flipped)})
    return out


def score_pool(dets: dict[int, tuple], images: dict[int, np.ndarray], ids: list[int],
               opts: ScoringOptions) -> dict[int, object]:
    return {i: score_detections(InputImage(Path(f"{i}"), str(i), i), dets[i][0], opts, images[i].shape[:2],
                                images[i].shape[:2], dets[i][1]) for i in ids}


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
    per_class = {i: [0] * len(CLASSES) for i in ids}
    for a in pool_doc["annotations"]:
        instances[a["image_id"]] += 1
        per_class[a["image_id"]][a["category_id"] - 1] += 1
    step = max(1, round(args.pool * args.step))
    print(f"pool {len(ids)} images ({sum(instances.values())} instances), test {len(test_doc['images'])}; "
          f"start {step}, +{step} per round, {args.rounds} rounds, {budget_text(args)} per training, "
          f"{args.size} px; strategies {', '.join(args.strategies)}; seeds {args.seeds}", flush=True)
    t0 = time.perf_counter()
    init = pretrained_init(args)
    full = args.full_ap
    if full is None and not args.picks:
        model = train(pool_doc, root, args.size, args.epochs, 0, init, max_lr=args.max_lr,
                      heads_only=args.heads_only)
        full = test_ap(model, test_doc, root)[0]
        print(f"full pool ({len(ids)} images): test segm AP {full:.3f} ({(time.perf_counter() - t0) / 60:.1f} min)",
              flush=True)
    results = {"full_pool_segm_AP": full, "args": vars(args), "runs": [], "picks": [],
               "pool_classes": [sum(per_class[i][c] for i in ids) for c in range(len(CLASSES))]}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        first = sorted(rng.choice(ids, step, replace=False).tolist())
        model0 = train(subset(pool_doc, set(first)), root, args.size, args.epochs, seed, init,
                       max_lr=args.max_lr, heads_only=args.heads_only)
        ap0 = test_ap(model0, test_doc, root)
        print(f"seed {seed} round 0 ({len(first)} labelled): segm AP {ap0[0]:.3f}", flush=True)
        round1 = {}  # model0's detections of the first pool, shared by every strategy's first round
        for name in args.strategies:
            strategy, score, agg, flip = STRATEGIES[name]
            opts = ScoringOptions(score, agg, 3, 1.0, flip)
            labelled, model, curve = list(first), model0, [(len(first), *ap0, 0, 0.0)]
            dups, score_s = 0, 0.0
            for r in range(1, args.rounds + 1):
                pool = [i for i in ids if i not in set(labelled)]
                pred = predictor_of(model, MC_SAMPLES if score == "mc" else 0)
                start = time.perf_counter()
                scored, lab_emb = {}, None
                if strategy != "random":
                    key = (flip, score == "mc")
                    if r == 1 and key in round1:
                        dets = round1[key]
                    else:
                        dets = detect_pool(pred, images, pool, flip)
                        if r == 1:
                            round1[key] = dets
                    scored = score_pool(dets, images, pool, opts)
                if strategy in ("diversity", "hybrid"):
                    lab = score_pool(detect_pool(pred, images, labelled, False), images, labelled, opts)
                    lab_emb = np.stack([s.embedding for s in lab.values()])
                score_s += time.perf_counter() - start
                cands = [Candidate(str(i), scored[i].components[score] if scored else 0.0, hashes[i],
                                   scored[i].embedding if scored else None) for i in pool]
                sel = select(cands, args.picks or step, strategy, seed=seed * 1000 + r,
                             labelled_hashes=[hashes[i] for i in labelled], labelled_embeddings=lab_emb,
                             radius=RADIUS)
                picked = [pool[p.index] for p in sel.picks]
                dups += duplicates_taken(picked, labelled, hashes)
                if args.picks:  # what the first model's ranking asks to label, no retraining
                    results["picks"].append({"seed": seed, "strategy": name, "dups": dups, "classes": [
                        sum(per_class[i][c] for i in picked) for c in range(len(CLASSES))]})
                    print(f"seed {seed} {name}: {results['picks'][-1]}", flush=True)
                    break
                labelled += picked
                model = train(subset(pool_doc, set(labelled)), root, args.size, args.epochs, seed, init,
                              max_lr=args.max_lr, heads_only=args.heads_only)
                segm, bbox = test_ap(model, test_doc, root)
                curve.append((len(labelled), segm, bbox, sum(instances[i] for i in labelled), dups))
                print(f"seed {seed} {name} round {r} ({len(labelled)} labelled, "
                      f"{curve[-1][3]} instances, {dups} near-duplicates taken): segm AP {segm:.3f} bbox AP "
                      f"{bbox:.3f} [{(time.perf_counter() - t0) / 60:.1f} min]", flush=True)
            if not args.picks:
                results["runs"].append({"seed": seed, "strategy": name, "curve": curve, "scoring_s": score_s})
        Path(args.json).write_text(json.dumps(results, indent=1))
    (report_picks if args.picks else report)(results, args)


def report_picks(results: dict, args) -> None:
    """Per strategy, over seeds: what the batch holds against the pool's own mix."""
    pool = results["pool_classes"]
    share = [f"{c / sum(pool):.0%}" for c in pool]
    print(f"\n{args.picks} images picked by the first model (trained on a random {args.step:.0%} of the pool); "
          f"the pool's instances: {sum(pool)} ({' / '.join(share)} {'/'.join(CLASSES)})\n")
    print(f"| strategy | instances (mean) | {' | '.join(CLASSES)} | near-duplicates |")
    print("|---|---:|" + "---:|" * len(CLASSES) + "---:|")
    for name in dict.fromkeys(p["strategy"] for p in results["picks"]):
        rows = [p for p in results["picks"] if p["strategy"] == name]
        total = [sum(r["classes"]) for r in rows]
        cells = [f"{statistics.mean(r['classes'][c] / max(t, 1) for r, t in zip(rows, total)):.0%}"
                 for c in range(len(CLASSES))]
        print(f"| {name} | {statistics.mean(total):.1f} | {' | '.join(cells)} | "
              f"{statistics.mean(r['dups'] for r in rows):.1f} |")


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
    pred, mc_pred = predictor_of(model), predictor_of(model, MC_SAMPLES)
    model.roi_heads.score_thresh = 0.05  # torchvision's own threshold, as the predictor's
    opts, flip_opts = ScoringOptions(), ScoringOptions(score="flip", flip=True)

    def plain():
        with torch.inference_mode():
            for t in tensors:
                model([t])

    def scored(o, p=pred):
        for im in imgs:
            det = p.predict([im])[0]
            fl = pred.predict([np.ascontiguousarray(im[:, ::-1])])[0] if o.flip else None
            score_detections(InputImage(Path("x"), "x", 1), det, o, im.shape[:2], im.shape[:2], fl)

    times = {"plain": [], "scored": [], "flip": [], "mc": []}
    for _ in range(args.repeat):
        for key, f in (("plain", plain), ("scored", lambda: scored(opts)), ("flip", lambda: scored(flip_opts)),
                       ("mc", lambda: scored(opts, mc_pred))):
            start = time.perf_counter()
            f()
            times[key].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{len(imgs)} images at {args.size} px, median of {args.repeat}: plain torchvision {med['plain']:.2f} s, "
          f"annot scoring {med['scored']:.2f} s ({med['scored'] / med['plain']:.3f}x, goal <= 1.10x), "
          f"with flip {med['flip']:.2f} s ({med['flip'] / med['plain']:.3f}x), with {MC_SAMPLES} MC dropout passes "
          f"{med['mc']:.2f} s ({med['mc'] / med['plain']:.3f}x)")
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
    ap.add_argument("--steps", type=int, help="train every round for about this many steps instead of --epochs "
                                               "epochs (the labelled set's size then changes what, not how long)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), default=DEFAULT)
    ap.add_argument("--init", choices=["pretrain", "scratch"], default="scratch",
                    help="every training starts from a one-class pre-trained model, or from random weights")
    ap.add_argument("--max-lr", type=float, help="the loop's peak learning rate [default: cpu-tiny's]")
    ap.add_argument("--heads-only", action="store_true",
                    help="fine-tune only the box and mask predictors on the pre-trained trunk (frozen)")
    ap.add_argument("--pretrain-images", type=int, default=300)
    ap.add_argument("--pretrain-epochs", type=int, default=8)
    ap.add_argument("--check-sizes", type=int, nargs="*", help="with --check: train on the first N pool images")
    ap.add_argument("--picks", type=int, help="only the first round: what each strategy picks (N images) from "
                                               "the first model, by class, without retraining")
    ap.add_argument("--full-ap", type=float, help="the full pool's AP, measured before (skips its training)")
    ap.add_argument("--check", action="store_true", help="only train on the full pool and report its AP")
    ap.add_argument("--cost", action="store_true", help="only the cost measurements")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default="/tmp/annot-al-results.json")
    ap.add_argument("--plot", default=None, help="PNG of the curves")
    args = ap.parse_args()
    if "random" not in args.strategies and not (args.check or args.cost):
        ap.error("random is the baseline: include it")
    if args.steps:
        args.epochs = -args.steps
    torch.set_num_threads(torch.get_num_threads())
    print("options:", vars(args), flush=True)
    if args.cost:
        cost(args)
    elif args.check:
        root = Path(tempfile.mkdtemp(prefix="annot-al-bench-"))
        pool_doc, test_doc = make_data(root, args.pool, args.test, args.size)
        init = pretrained_init(args)
        for seed in args.seeds:
            torch.manual_seed(seed)
            untrained = test_ap(initial_model(args.size, seed, init, args.heads_only).eval(), test_doc, root)[0]
            for n in args.check_sizes or [args.pool]:
                start = time.perf_counter()
                model = train(subset(pool_doc, {im["id"] for im in pool_doc["images"][:n]}), root, args.size,
                              args.epochs, seed, init, max_lr=args.max_lr, heads_only=args.heads_only)
                segm, bbox = test_ap(model, test_doc, root)
                print(f"seed {seed}: {n} pool images, {budget_text(args)} from {args.init} "
                      f"({(time.perf_counter() - start) / 60:.1f} min): test segm AP {segm:.3f}, bbox AP {bbox:.3f}; "
                      f"the init alone {untrained:.3f}", flush=True)
    else:
        run(args)


if __name__ == "__main__":
    main()
