"""``annot rank --report DIR``: the picked batch as pictures a person can judge.

``DIR/picked/NNN.png``: each picked image with its predicted masks (the
detections at or above the push threshold, tinted per class) and the boxes of
its most uncertain detections outlined in red; ``DIR/contact_sheet.png``: all of
them on one sheet (matplotlib); ``DIR/index.html``: the sheet's images with
each one's rank, score, components and why it was picked. Files only, no
script, no network: it opens from the file system.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from annot.geometry import segmentation_to_mask

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75), (227, 119, 194),
           (23, 190, 207), (188, 189, 34)]


def overlay(image: np.ndarray, instances, regions: list[dict], classes: list[str]) -> np.ndarray:
    """``image`` with ``instances``' masks tinted and ``regions``' boxes outlined."""
    from PIL import Image, ImageDraw

    out = image.astype(np.float32).copy()
    h, w = image.shape[:2]
    for inst in instances:
        if not inst.segmentation:
            continue
        m = segmentation_to_mask(inst.segmentation, h, w).astype(bool)
        colour = np.array(PALETTE[classes.index(inst.label) % len(PALETTE)] if inst.label in classes else PALETTE[0])
        out[m] = 0.5 * out[m] + 0.5 * colour
    pic = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pic)
    for r in regions:
        x, y, bw, bh = r["box"]
        draw.rectangle([x, y, x + bw, y + bh], outline=(230, 20, 20), width=max(1, round(max(h, w) / 300)))
        draw.text((x + 2, y + 1), f"{r['label']} {r['confidence']:.2f}", fill=(230, 20, 20))
    return np.asarray(pic)


def write_report(folder: Path, rows: list[dict], scored: dict, classes: list[str], title: str) -> Path:
    """``rows``: the ranking; ``scored[name]``: the :class:`ImageScore` of each picked image."""
    from matplotlib.figure import Figure
    from PIL import Image

    from annot.plugins.images import load_rgb

    folder = Path(folder)
    (folder / "picked").mkdir(parents=True, exist_ok=True)
    picked = [r for r in rows if r["selected"]]
    pictures = []
    for r in picked:
        s = scored[r["image"]]
        pic = overlay(load_rgb(Path(r["path"])), s.instances or [], r["regions"], classes)
        rel = f"picked/{r['rank']:03d}.png"
        _save_png(Image.fromarray(pic), folder / rel)
        pictures.append((r, rel, pic))
    cols = min(4, max(1, len(pictures)))
    rows_n = max(1, -(-len(pictures) // cols))
    fig = Figure(figsize=(3.2 * cols, 3.4 * rows_n), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows_n, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (r, _, pic) in zip(axes, pictures):
        ax.imshow(pic)
        ax.set_title(f"#{r['rank']} {Path(r['image']).name}\nscore {r['score']:.3f}", fontsize=8)
    tmp = folder / ".contact_sheet.png.tmp"
    fig.savefig(tmp, format="png", dpi=90)
    tmp.replace(folder / "contact_sheet.png")
    page = folder / "index.html"
    tmp = folder / ".index.html.tmp"
    tmp.write_text(_html(title, pictures), encoding="utf-8")
    tmp.replace(page)
    return page


def _save_png(pic, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pic.save(tmp, format="PNG")
    tmp.replace(path)


def _html(title: str, pictures) -> str:
    esc = html.escape
    cards = []
    for r, rel, _ in pictures:
        comps = " ".join(f"{esc(k)} {v:.3f}" for k, v in r["components"].items())
        regions = "".join(f"<li>{esc(g['label'])} at {g['confidence']:.2f}: "
                          + ", ".join(f"{esc(k)} {v:.3f}" for k, v in g["scores"].items()) + "</li>"
                          for g in r["regions"])
        cards.append(f"""<figure><img src="{esc(rel)}" alt="{esc(r['image'])}">
<figcaption><b>#{r['rank']}</b> {esc(r['image'])}<br>score {r['score']:.3f} ({r['detections']} detections,
cluster {r['cluster'] if r['cluster'] is not None else '-'})<br><i>{esc(r['why'])}</i><br>
<small>{comps}</small><ul>{regions}</ul></figcaption></figure>""")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} main{{display:flex;flex-wrap:wrap;gap:1em}}
figure{{width:300px;margin:0}} img{{width:100%;image-rendering:pixelated;border:1px solid #ccc}}
figcaption{{font-size:13px}} ul{{padding-left:1.2em;margin:.3em 0}}</style></head>
<body><h1>{esc(title)}</h1><p>Masks: the model's detections; red boxes: its most uncertain ones.
<a href="contact_sheet.png">Contact sheet</a>.</p><main>
{''.join(cards)}
</main></body></html>
"""
