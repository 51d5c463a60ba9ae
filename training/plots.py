"""The pictures a run leaves: ``train_curves.png`` (loss, learning rate and
val AP per epoch), the learning-rate range test, and PR curves. matplotlib
with the Agg backend, written atomically (temp file + rename)."""

from __future__ import annotations

from pathlib import Path


def _figure(rows: int, cols: int, size=(11, 3.6)):
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)[0]


def _save(fig, path: Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100)
    tmp.replace(path)
    return path


def train_curves(history: list[dict], lrs: list[float], metric: str, path: Path) -> Path:
    """``history``: per epoch ``{"epoch", "loss", "val"}``; ``lrs``: the rate of every batch."""
    fig, (loss_ax, lr_ax, ap_ax) = _figure(1, 3)
    epochs = [h["epoch"] for h in history]
    loss_ax.plot(epochs, [h["loss"] for h in history], marker="o")
    loss_ax.set(title="training loss", xlabel="epoch")
    lr_ax.plot(range(1, len(lrs) + 1), lrs)
    lr_ax.set(title="learning rate (one cycle)", xlabel="batch")
    vals = [(h["epoch"], h["val"]) for h in history if h.get("val") is not None]
    ap_ax.plot([e for e, _ in vals], [v for _, v in vals], marker="o", color="tab:green")
    ap_ax.set(title=f"val {metric}", xlabel="epoch", ylim=(0, max([0.05, *(v for _, v in vals)]) * 1.1))
    for ax in (loss_ax, lr_ax, ap_ax):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def lr_range(lrs: list[float], losses: list[float], suggested: float | None, path: Path) -> Path:
    fig, (ax,) = _figure(1, 1, (6, 4))
    ax.plot(lrs, losses)
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss (smoothed)", title="learning-rate range test")
    if suggested is not None:
        ax.axvline(suggested, color="tab:red", linestyle="--", label=f"suggested max LR {suggested:.2g}")
        ax.legend()
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def pr_curves(curves: dict, path: Path) -> Path:
    """``curves``: iou type -> per class ``{"class", "recall", "precision"}`` (IoU 0.5), as
    :class:`annot.training.evaluate.Evaluation` keeps them."""
    fig, axes = _figure(1, max(len(curves), 1), (5.5 * max(len(curves), 1), 4.5))
    for ax, (iou_type, per_class) in zip(axes, curves.items()):
        for c in per_class:
            ax.plot(c["recall"], c["precision"], label=c["class"])
        ax.set(title=f"{iou_type} precision-recall, IoU 0.5", xlabel="recall", ylabel="precision",
               xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        if per_class:
            ax.legend(fontsize="small")
    return _save(fig, path)
