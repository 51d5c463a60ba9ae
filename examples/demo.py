"""``make demo``: the whole annot loop on a synthetic project, offline.

Three teams labelled shapes in labelme, labelImg and Label Studio. The demo
converts their files to COCO (GrabCut turns the labelImg boxes into masks),
merges and validates them, imports them into a fresh store and splits them,
trains a cpu-tiny Mask R-CNN, then runs the labelling loop: ``annot rank``
picks the next batch from the unlabelled pool, a simulated annotator labels
it (reveals its ground truth), a new dataset version is imported and the model
retrained from the promoted one, and promoted only if it is better on
validation. Random picks run beside it as the baseline, from the same first
model. Finally ``annot predict`` pre-annotates the images still unlabelled, as
a Label Studio import file and COCO results, and ``demo-report/index.html``
shows what happened.

Every step is an ``annot`` command, printed as it runs (run in this process,
so torch is imported once). Everything is written under ``--out``.

    python examples/demo.py [--out build/demo] [--size full|quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from demo_data import TEAMS, World, write_world  # noqa: E402
from rich import progress as bars  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

LABEL_CONFIG = HERE / "labelstudio" / "shapes.xml"
MARKER = ".annot-demo"  # the folder is the demo's: the next run may replace it
RATIOS = "0.8,0.2,0"  # train, val; the test set is held out as its own dataset
BATCH = 4  # cpu-tiny's images per step
STAGES = ("three teams' labels", "every tool's files to one COCO dataset", "a fresh store: import, leak-free split",
          "the first model", "the labelling loop", "pre-annotations for the images still unlabelled", "the report")


@dataclass(frozen=True)
class Plan:
    world: World
    rounds: int  # labelling rounds after the first model
    budget: int  # images picked per round
    first_steps: int  # training steps of the first model (from scratch)
    retrain_steps: int  # of each retrain (from the promoted model)


PLANS = {
    # ~5 minutes on a 2-core CPU (benchmarks/RESULTS.md "make demo")
    "full": Plan(World(per_team=20, pool=120, test=30, size=96), rounds=2, budget=20, first_steps=300,
                 retrain_steps=150),
    # the test suite's: every step and artefact, tens of seconds
    "quick": Plan(World(per_team=4, pool=12, test=4, size=64), rounds=2, budget=3, first_steps=3, retrain_steps=2),
}


class CommandFailed(Exception):
    pass


@dataclass
class Run:
    """The demo's console and what it has learnt so far (the report's facts)."""

    console: Console
    out: Path
    progress: bars.Progress
    task: bars.TaskID
    commands: int = 0
    facts: dict = field(default_factory=dict)

    def stage(self, k: int) -> None:
        self.progress.update(self.task, completed=k)
        self.console.rule(f"{k + 1}. {STAGES[k]}")

    def annot(self, *args, parse: bool = False):
        """Run one ``annot`` command in this process; its output is kept
        (parsed when it is JSON), shown only when it fails."""
        from annot.cli import main

        argv = [str(a) for a in args]
        self.commands += 1
        self.progress.update(self.task, description=f"annot {' '.join(argv[:2])}")
        stdout, stderr = io.StringIO(), io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
        took = time.perf_counter() - started
        self.console.print(f"[cyan]{took:4.0f} s[/cyan]  [dim]$ annot {shown(argv)}[/dim]")
        if code:
            raise CommandFailed(f"annot {argv[0]} failed ({code}): {(stderr.getvalue() or stdout.getvalue()).strip()}")
        return json.loads(stdout.getvalue()) if parse else stdout.getvalue()


def shown(argv: list[str], most: int = 4) -> str:
    """The command as typed, a long run of image paths cut to its first ones."""
    images = [k for k, a in enumerate(argv) if a.endswith(".png")]
    if len(images) <= most:
        return shlex.join(argv)
    cut = images[most:]
    return f"{shlex.join(argv[:cut[0]])} ... ({len(cut)} more images) {shlex.join(argv[cut[-1] + 1:])}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE.parent / "build" / "demo",
                    help="The demo's folder; a previous demo's is replaced, any other non-empty folder refused "
                         "[default: build/demo].")
    ap.add_argument("--size", choices=sorted(PLANS), default="full",
                    help="full: ~5 minutes on a 2-core CPU; quick: the test suite's, every step in seconds.")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    if out.exists() and not out.is_dir():
        print(f"demo: --out {out} is a file; give a folder", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            print(f"demo: {out} exists and is not a demo's folder; give another --out", file=sys.stderr)
            return 2
        print(f"demo: replacing the previous demo in {out}")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by examples/demo.py; replaced by the next run\n")
    os.environ["MPLCONFIGDIR"] = str(out / ".cache" / "matplotlib")  # nothing written outside --out
    os.environ["ANNOT_DB"] = f"sqlite:///{out / 'annot.db'}"
    os.environ["ANNOT_STORE"] = str(out / "annot-store")
    os.chdir(out)
    # bound to stdout now (the commands' own output is captured); 120 columns when it is not a terminal
    console = Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 120)
    started = time.perf_counter()
    with bars.Progress(bars.SpinnerColumn(), bars.TextColumn("{task.description:<24}"), bars.BarColumn(),
                       bars.MofNCompleteColumn(), bars.TextColumn("stages"), bars.TimeElapsedColumn(),
                       console=console) as progress:
        run = Run(console, out, progress, progress.add_task("", total=len(STAGES)))
        try:
            loop(run, PLANS[args.size])
        except CommandFailed as e:
            console.print(f"[red]{e}[/red]")
            return 1
        run.stage(6)
        from demo_report import write_report

        page = write_report(out / "demo-report", run.facts)
        progress.update(run.task, completed=len(STAGES), description="done")
    console.print(f"\n[bold]report:[/bold] {page}")
    console.print(f"{run.commands} annot commands, {time.perf_counter() - started:.0f} s in all")
    return 0


def loop(run: Run, plan: Plan) -> None:
    c = run.console
    run.stage(0)
    names = write_world(run.out, plan.world)
    run.facts["plan"] = {"guide": (HERE.parent / "docs" / "guide-labelstudio.md").as_uri(), "size": plan.world.size, "per_team": plan.world.per_team, "pool": plan.world.pool,
                         "test": plan.world.test, "rounds": plan.rounds, "budget": plan.budget}
    c.print(f"{plan.world.per_team} images per team (labelme polygons, labelImg boxes, Label Studio polygons and "
            f"brush), {plan.world.pool} unlabelled, {plan.world.test} held out for testing; {plan.world.size} px")
    run.stage(1)
    labelled = convert_and_merge(run)
    run.stage(2)
    store_setup(run, labelled)
    run.stage(3)
    first = train(run, "shapes", "maskrcnn", "scratch", plan.first_steps)
    # each line's serving model: the promoted version, or the first model until one is promoted
    lines = {"uncertainty": ("shapes", "maskrcnn"), "random": ("shapes-random", "maskrcnn-random")}
    serving = {s: first["ref"] for s in lines}
    rounds = {s: [first] for s in lines}
    run.stage(4)
    labelled_files = {s: labelled for s in lines}
    picked: dict[str, list[str]] = {s: [] for s in lines}
    for r in range(1, plan.rounds + 1):
        for strategy, (dataset, name) in lines.items():
            batch = pick(run, r, strategy, dataset, serving[strategy], plan.budget)
            picked[strategy] += batch
            labelled_files[strategy] = label(run, r, strategy, dataset, labelled_files[strategy], batch)
            entry = train(run, dataset, name, serving[strategy], plan.retrain_steps)
            serving[strategy] = entry["ref"] if entry["promoted"] else serving[strategy]
            rounds[strategy].append(entry)
        round_table(run, rounds, r)
    run.facts["serving"] = serving
    run.facts["rounds"] = rounds
    run.stage(5)
    remaining = [n for n in names["pool"] if n not in set(picked["uncertainty"])]
    pre_annotate(run, serving["uncertainty"], remaining)
    run.facts["models"] = run.annot("models", "list", "--json", parse=True)
    models_table(run)


def convert_and_merge(run: Run) -> Path:
    labels = "teams/labels.txt"
    Path("coco").mkdir()
    run.annot("convert", "labelme", "coco", "teams/labelme", "--labels", labels, "-o", "coco/labelme.coco.json", "-q")
    run.annot("convert", "voc", "coco", "teams/labelimg", "--labels", labels, "-o", "coco/labelimg.boxes.coco.json",
              "-q")
    # labelImg draws boxes only: GrabCut cuts each object out of its box
    run.annot("predict", "--model", "grabcut", "teams/labelimg", "--gt", "coco/labelimg.boxes.coco.json",
              "--format", "coco", "-o", "coco/labelimg.grabcut.json", "-q")
    run.annot("convert", "coco", "coco", "coco/labelimg.grabcut.json", "-o", "coco/labelimg.coco.json", "-q")
    run.annot("convert", "labelstudio", "coco", "teams/labelstudio/export.json", "--labels", labels,
              "-o", "coco/labelstudio.coco.json", "-q")
    parts = {"labelme": "coco/labelme.coco.json", "labelimg": "coco/labelimg.coco.json",
             "labelstudio": "coco/labelstudio.coco.json"}
    merged = Path("coco/labelled.coco.json")
    run.annot("merge", *parts.values(), "--labels", labels, "-o", merged, "-q")
    verdict = run.annot("validate", "coco", merged).strip()
    table = Table(title="the teams' labels as COCO")
    for col in ("team", "tool", "images", "instances", "polygons", "RLE masks"):
        table.add_column(col, justify="left" if col in ("team", "tool") else "right")
    sources = []
    for team, path in zip(TEAMS, parts.values()):
        doc = json.loads(Path(path).read_text())
        anns = doc["annotations"]
        row = {"team": team, "tool": {"labelme": "labelme", "labelimg": "labelImg (boxes) + GrabCut",
                                      "labelstudio": "Label Studio"}[team],
               "images": len(doc["images"]), "instances": len(anns),
               "polygons": sum(isinstance(a["segmentation"], list) for a in anns),
               "rle": sum(isinstance(a["segmentation"], dict) for a in anns)}
        sources.append(row)
        table.add_row(*(str(v) for v in row.values()))
    run.console.print(table)
    run.console.print(verdict)
    run.facts["sources"] = sources
    run.facts["validate"] = verdict
    return merged


def store_setup(run: Run, labelled: Path) -> None:
    run.annot("dataset", "import", "shapes", labelled, "--image-root", "data/images", "-m", "labels of the three teams")
    split = run.annot("dataset", "split", "shapes", "--ratios", RATIOS, "--json", parse=True)
    run.annot("dataset", "import", "shapes-test", "data/test/test.coco.json", "--image-root", "data/test",
              "-m", "held out: never trained on, never ranked")
    # the baseline's own line of versions, from the same labels and split seed
    run.annot("dataset", "import", "shapes-random", labelled, "--image-root", "data/images", "-m", "baseline")
    random_split = run.annot("dataset", "split", "shapes-random", "--ratios", RATIOS, "--json", parse=True)
    run.facts["splits"] = [{**split, "ref": "shapes@1"}, {**random_split, "ref": "shapes-random@1"}]
    run.facts["latest"] = {"shapes": split, "shapes-random": random_split}  # each dataset's newest split
    split_table(run, split, "shapes@1")


def split_table(run: Run, split: dict, ref: str) -> None:
    subsets = {k: v for k, v in split["subsets"].items() if v["images"]}
    classes = sorted({c for v in subsets.values() for c in v["instances"]})
    table = Table(title=f"{ref} split")
    for col in ("subset", "images", *classes):
        table.add_column(col, justify="left" if col == "subset" else "right")
    for name, v in subsets.items():
        table.add_row(name, str(v["images"]), *(str(v["instances"].get(c, 0)) for c in classes))
    run.console.print(table)


def train(run: Run, dataset: str, name: str, init: str, steps: int) -> dict:
    """Train ``name`` on ``dataset``'s newest version for about ``steps``
    steps from ``init``; evaluate it on the held-out test set."""
    split = run.facts["latest"][dataset]
    epochs = max(1, math.ceil(steps * BATCH / split["subsets"]["train"]["images"]))
    size = str(run.facts["plan"]["size"])
    result = run.annot("train", dataset, "--name", name, "--preset", "cpu-tiny", "--init", init, "--epochs", epochs,
                       "--image-size", size, "-q", "--json", parse=True)
    ref = result["model"]
    test = run.annot("evaluate", ref, "shapes-test", "--split", "all", "--json", parse=True)
    entry = {"ref": ref, "dataset": f"{dataset}@{split['version']}", "init": init,
             "epochs": epochs, "val": result["value"], "test_segm": test["segm"]["AP"],
             "test_bbox": test["bbox"]["AP"], "promoted": result["promoted"], "reason": result["reason"],
             "curves": str(Path(result["run_dir"]) / "train_curves.png"), "history": result["history"],
             "labelled": sum(v["images"] for v in split["subsets"].values())}
    mark = "[green]promoted[/green]" if result["promoted"] else "[yellow]not promoted[/yellow]"
    run.console.print(f"{ref}: val segm AP {entry['val']:.3f}, test segm AP {entry['test_segm']:.3f} "
                      f"({epochs} epochs on {entry['dataset']}); {mark}")
    return entry


def pick(run: Run, r: int, strategy: str, dataset: str, model: str, budget: int) -> list[str]:
    Path("rounds").mkdir(exist_ok=True)
    out = Path(f"rounds/round{r}-{strategy}.ranking.json")
    extra = ["--report", f"rounds/round{r}-{strategy}-picks"] if strategy == "uncertainty" else []
    run.annot("rank", "--model", model, "--dataset", dataset, "--unlabelled", "--budget", budget,
              "--strategy", "hybrid" if strategy == "uncertainty" else "random", "-o", out, *extra)
    rows = json.loads(out.read_text())
    chosen = sorted((row for row in rows if row["selected"]), key=lambda row: row["rank"])
    run.facts.setdefault("rankings", {})[f"round{r}-{strategy}"] = {
        "file": str(out), "pool": len(rows), "picked": chosen,
        "sheet": f"rounds/round{r}-{strategy}-picks/contact_sheet.png" if extra else None}
    return [row["image"] for row in chosen]


def label(run: Run, r: int, strategy: str, dataset: str, previous: Path, batch: list[str]) -> Path:
    """The simulated annotator: the picked images' ground truth, as a new dataset version."""
    truth = json.loads(Path("data/truth.coco.json").read_text())
    ids = {im["id"] for im in truth["images"] if im["file_name"] in set(batch)}
    labels = {**truth, "images": [im for im in truth["images"] if im["id"] in ids],
              "annotations": [a for a in truth["annotations"] if a["image_id"] in ids]}
    new_labels = Path(f"rounds/round{r}-{strategy}.labels.coco.json")
    new_labels.write_text(json.dumps(labels))
    run.console.print(f"labelled {len(ids)} images picked by {strategy} ({len(labels['annotations'])} objects)")
    merged = Path(f"rounds/round{r}-{strategy}.labelled.coco.json")
    run.annot("merge", previous, new_labels, "-o", merged, "-q")
    run.annot("dataset", "import", dataset, merged, "--image-root", "data/images",
              "-m", f"round {r}: {len(ids)} images picked by {strategy}")
    split = run.annot("dataset", "split", dataset, "--ratios", RATIOS, "--json", parse=True)
    run.facts["splits"].append({**split, "ref": f"{dataset}@{split['version']}"})
    run.facts["latest"][dataset] = split
    return merged


def round_table(run: Run, rounds: dict, r: int) -> None:
    table = Table(title=f"after round {r}: test segm AP (the held-out set)")
    table.add_column("round", justify="right")
    for strategy in rounds:
        table.add_column(strategy, justify="right")
    for k in range(r + 1):
        table.add_row(str(k), *(f"{rounds[s][k]['test_segm']:.3f}" + ("" if rounds[s][k]["promoted"] else " (kept)")
                                for s in rounds))
    run.console.print(table)


def pre_annotate(run: Run, model: str, remaining: list[str]) -> None:
    Path("predictions").mkdir()
    images = [f"data/images/{n}" for n in remaining]
    run.annot("predict", "--model", model, *images, "--label-config", LABEL_CONFIG,
              "--image-url-prefix", "/data/local-files/?d=data/images/", "-o", "predictions/unlabelled.labelstudio.json",
              "-q")
    run.annot("predict", "--model", model, *images, "--format", "coco", "-o", "predictions/unlabelled.coco.json",
              "-q")
    run.annot("predict", "--model", model, "data/test/images", "--gt", "data/test/test.coco.json",
              "--score-threshold", "0.3", "--format", "coco", "-o", "predictions/test.coco.json", "-q")
    tasks = json.loads(Path("predictions/unlabelled.labelstudio.json").read_text())
    regions = sum(len(t["predictions"][0]["result"]) for t in tasks if t.get("predictions"))
    run.console.print(f"{len(tasks)} Label Studio tasks with {regions} pre-annotated regions: "
                      f"predictions/unlabelled.labelstudio.json; COCO results: predictions/unlabelled.coco.json")
    run.facts["predictions"] = {"tasks": len(tasks), "regions": regions,
                                "labelstudio": "predictions/unlabelled.labelstudio.json",
                                "coco": "predictions/unlabelled.coco.json", "test": "predictions/test.coco.json"}


def models_table(run: Run) -> None:
    table = Table(title="model versions in the store")
    for col in ("model", "status", "val segm AP (its latest val set)", "promoted"):
        table.add_column(col)
    for m in run.facts["models"]:
        table.add_row(m["model"], m["status"], f"{m['metrics'].get('val', {}).get('segm', {}).get('AP', float('nan')):.3f}",
                      "[green]yes[/green]" if m["promoted"] else "")
    run.console.print(table)


if __name__ == "__main__":
    sys.exit(main())
