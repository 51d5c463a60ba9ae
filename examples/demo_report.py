"""``demo-report/index.html``: what ``make demo`` did, as one page.

Every picture is a PNG rendered from the run (training curves as ``annot
train`` saved them, the per-round AP plot, ground truth against predictions
on the held-out images, the ranked batch as ``annot rank --report`` drew
it), copied next to the page; the page has no script and loads nothing from
a server or the network, so it opens straight from the file system.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np

SECTIONS = (("labels", "The teams' labels"), ("splits", "Dataset versions and splits"),
            ("training", "Training curves"), ("rounds", "AP per labelling round"),
            ("examples", "Ground truth and predictions"), ("ranking", "The ranked batch"),
            ("models", "Model versions"), ("next", "Next"))
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
esc = html.escape


def write_report(folder: Path, facts: dict) -> Path:
    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    body = {
        "labels": _labels(facts),
        "splits": _splits(facts),
        "training": _training(folder, facts),
        "rounds": _rounds(folder, facts),
        "examples": _examples(folder, facts),
        "ranking": _ranking(folder, facts),
        "models": _models(facts),
        "next": _next(facts),
    }
    sections = "\n".join(f'<section id="{key}"><h2>{esc(title)}</h2>\n{body[key]}\n</section>'
                         for key, title in SECTIONS)
    nav = " · ".join(f'<a href="#{key}">{esc(title)}</a>' for key, title in SECTIONS)
    p = facts["plan"]
    page = folder / "index.html"
    tmp = folder / ".index.html.tmp"
    tmp.write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>annot demo report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 1.5em;color:#222}}
h1{{margin-bottom:.2em}} h2{{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}}
table{{border-collapse:collapse;margin:.6em 0;font-size:14px}} td,th{{border:1px solid #ccc;padding:3px 8px}}
td.n{{text-align:right}} tr.promoted{{background:#e8f6e8}} figure{{margin:0}}
.grid{{display:flex;flex-wrap:wrap;gap:1em}} .grid figure{{width:250px;font-size:13px}}
.grid.wide figure{{width:520px}}
img{{max-width:100%;border:1px solid #ddd}} .pix{{image-rendering:pixelated}} nav{{font-size:14px}}
code{{background:#f4f4f4;padding:1px 4px}}
</style></head><body>
<h1>annot demo</h1>
<p>A synthetic shapes project ({p['size']} px): three teams labelled {p['per_team']} images each,
{p['pool']} images waited unlabelled, {p['test']} were held out for testing.
{p['rounds']} labelling rounds of {p['budget']} images, uncertainty-and-diversity ranking against random picks.</p>
<nav>{nav}</nav>
{sections}
</body></html>
""", encoding="utf-8")
    tmp.replace(page)
    return page


def _table(header: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    lines = []
    for k, row in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes and classes[k] else ""
        cells = "".join(f'<td class="n">{v}</td>' if isinstance(v, int | float) else f"<td>{v}</td>" for v in row)
        lines.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _labels(facts: dict) -> str:
    rows = [[esc(s["team"]), esc(s["tool"]), s["images"], s["instances"], s["polygons"], s["rle"]]
            for s in facts["sources"]]
    return (_table(["team", "tool", "images", "instances", "polygons", "RLE masks"], rows)
            + f"<p>Merged with <code>annot merge</code>: <code>{esc(facts['validate'])}</code></p>")


def _splits(facts: dict) -> str:
    rows = []
    for s in sorted(facts["splits"], key=lambda s: (s["ref"].split("@")[0], int(s["ref"].split("@")[1]))):
        for subset, v in s["subsets"].items():
            if v["images"]:
                per_class = ", ".join(f"{esc(c)} {n}" for c, n in sorted(v["instances"].items()))
                rows.append([esc(s["ref"]), subset, v["images"], per_class, v["duplicate_groups"]])
    return ("<p>Stable, stratified, leak-free (near-duplicates share a subset). The test set is a separate "
            "dataset, <code>shapes-test</code>, so labelled picks never land in it.</p>"
            + _table(["version", "subset", "images", "instances per class", "near-duplicate groups"], rows))


def _training(folder: Path, facts: dict) -> str:
    figures = []
    for strategy, entries in facts["rounds"].items():
        for k, e in enumerate(entries):
            if strategy == "random" and k == 0:
                continue  # the first model is shared
            name = f"img/curves-{e['ref'].replace('@', '-v')}.png"
            shutil.copyfile(e["curves"], folder / name)
            alt = f"training curves of {e['ref']}"
            figures.append(f"<figure>{_linked(name, alt)}"
                           f"<figcaption>{esc(e['ref'])} on {esc(e['dataset'])}, from {esc(e['init'])}, "
                           f"{e['epochs']} epochs</figcaption></figure>")
    return ('<p>Loss and validation AP per epoch, as <code>annot train</code> plots them (click for full '
            'size).</p><div class="grid wide">' + "".join(figures) + "</div>")


def _linked(src: str, alt: str, cls: str = "") -> str:
    """A picture that opens at full size when clicked."""
    klass = f' class="{cls}"' if cls else ""
    return f'<a href="{esc(src)}"><img{klass} src="{esc(src)}" alt="{esc(alt)}"></a>'


def _rounds(folder: Path, facts: dict) -> str:
    from matplotlib.figure import Figure

    rounds = facts["rounds"]
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    for strategy, entries in rounds.items():
        xs = [e["labelled"] for e in entries]
        ax.plot(xs, [e["test_segm"] for e in entries], marker="o", label=strategy)
    ax.set_xlabel("labelled images")
    ax.set_ylabel("test segm AP")
    ax.set_title("held-out test set, after each round")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(folder / "img/ap-per-round.png", dpi=100)
    rows = []
    for k in range(len(rounds["uncertainty"])):
        u, r = rounds["uncertainty"][k], rounds["random"][k]
        rows.append([k, u["labelled"], f"{u['test_segm']:.3f}", f"{r['test_segm']:.3f}",
                     esc(_promotion(u)), esc(_promotion(r))])
    return ('<img src="img/ap-per-round.png" alt="test segm AP per round, both strategies">'
            + _table(["round", "labelled images", "uncertainty: test segm AP", "random: test segm AP",
                      "uncertainty model", "random model"], rows)
            + "<p>Each retrain starts from the promoted model and is promoted only if its validation AP is "
              "better. A demo this small ranks the strategies by noise: <code>benchmarks/active_learning.py</code> "
              "measures them with several seeds (benchmarks/RESULTS.md).</p>")


def _promotion(e: dict) -> str:
    """What ``annot train`` said about promoting the version."""
    return f"{e['ref']}: " + ("promoted" if e["promoted"] else "not promoted") + f" ({e['reason']})"


def _examples(folder: Path, facts: dict, n: int = 4) -> str:
    from matplotlib.figure import Figure
    from PIL import Image

    truth = json.loads(Path("data/test/test.coco.json").read_text())
    results = json.loads(Path(facts["predictions"]["test"]).read_text())
    names = {c["id"]: c["name"] for c in truth["categories"]}
    images = truth["images"][:n]  # the first ones, not the best ones
    fig = Figure(figsize=(5, 2.8 * len(images)), layout="constrained")
    axes = fig.subplots(len(images), 2, squeeze=False)
    for row, im in zip(axes, images):
        pixels = np.asarray(Image.open(Path("data/test") / im["file_name"]).convert("RGB"))
        gt = [a for a in truth["annotations"] if a["image_id"] == im["id"]]
        pred = [a for a in results if a["image_id"] == im["id"]]
        for ax, anns, title in ((row[0], gt, "ground truth"), (row[1], pred, "predicted (score >= 0.3)")):
            ax.imshow(pixels, interpolation="nearest")
            for a in anns:
                _outline(ax, a, im["height"], im["width"])
            labels = [names[a["category_id"]] + (f" {a['score']:.2f}" if "score" in a else "") for a in anns]
            lines = [", ".join(labels[k:k + 3]) for k in range(0, len(labels), 3)] or ["nothing"]
            ax.set_title("\n".join([title, *lines]), fontsize=7)
            ax.axis("off")
    fig.savefig(folder / "img/examples.png", dpi=100)
    legend = ", ".join(f'<span style="color:{_hex(cid)}">&#9632;</span> {esc(name)}' for cid, name in names.items())
    return (f"<p>The serving model on the first {len(images)} held-out images: each object's outline in its "
            f"class's colour. {legend}</p>" + _linked("img/examples.png", "ground truth and predicted masks", "pix"))


def _hex(category_id: int) -> str:
    r, g, b = COLOURS[(category_id - 1) % len(COLOURS)]
    return f"#{r:02x}{g:02x}{b:02x}"


def _outline(ax, ann: dict, h: int, w: int) -> None:
    """The mask's outer contours, drawn over the picture."""
    import cv2

    from annot.geometry import segmentation_to_mask

    mask = segmentation_to_mask(ann["segmentation"], h, w).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for c in contours:
        xy = np.vstack([c[:, 0], c[:1, 0]])
        ax.plot(xy[:, 0], xy[:, 1], color=_hex(ann["category_id"]), linewidth=2)


def _ranking(folder: Path, facts: dict) -> str:
    first = facts["rankings"]["round1-uncertainty"]
    sheet_dir = Path(first["sheet"]).parent
    cards = []
    for row in first["picked"]:
        src = sheet_dir / "picked" / f"{row['rank']:03d}.png"
        name = f"img/picked-{row['rank']:03d}.png"
        shutil.copyfile(src, folder / name)
        cards.append(f"<figure>{_linked(name, row['image'], 'pix')}<figcaption>"
                     f"<b>#{row['rank']}</b> {esc(row['image'])}, score {row['score']:.3f}, "
                     f"{row['detections']} detections<br><i>{esc(row['why'])}</i></figcaption></figure>")
    return (f"<p>Round 1: <code>annot rank --strategy hybrid</code> scored {first['pool']} unlabelled images with "
            f"the first model and picked {len(first['picked'])} (masks: its detections, red boxes: the most "
            f"uncertain ones). The full ranking: <code>{esc(first['file'])}</code>.</p>"
            f'<div class="grid">{"".join(cards)}</div>')


def _models(facts: dict) -> str:
    test = {e["ref"]: e["test_segm"] for entries in facts["rounds"].values() for e in entries}
    rows, classes = [], []
    for m in facts["models"]:
        ref = f"{m['name']}@{m['version']}"
        val = m["metrics"].get("val", {}).get("segm", {}).get("AP")
        rows.append([esc(ref), esc(m["status"]), f"{val:.3f}" if val is not None else "", f"{test[ref]:.3f}",
                     "&#9733; promoted" if m["promoted"] else ""])
        classes.append("promoted" if m["promoted"] else "")
    return ("<p>What <code>annot models list</code> shows; the promoted version of each name is what "
            "<code>annot predict</code>, <code>annot rank</code> and <code>annot serve</code> use. A promoted "
            "version is evaluated again on the val images of each newer dataset version it competes on, so its "
            "val AP here can differ from the one its training curves show (that was on its own, smaller val "
            "set).</p>"
            + _table(["model", "status", "val segm AP (its latest val set)", "test segm AP (held out)", ""], rows,
                     classes))


def _next(facts: dict) -> str:
    p = facts["predictions"]
    return (f"<p>{p['tasks']} images are still unlabelled; the promoted model pre-annotated them "
            f"({p['regions']} regions): <code>{esc(p['labelstudio'])}</code> imports into Label Studio for review, "
            f"<code>{esc(p['coco'])}</code> is the same as COCO results. To label them in Label Studio with "
            f'this model as the backend, follow <a href="{esc(facts["plan"]["guide"])}">the Label Studio '
            "guide</a>.</p>")
