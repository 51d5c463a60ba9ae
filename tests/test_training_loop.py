"""annot.training.loop: the one-cycle schedule per batch, checkpoints per
epoch, and a run resumed from a checkpoint ending at exactly the weights of a
run never stopped (CPU, deterministic algorithms, a tiny Mask R-CNN)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from test_training_data import write_dataset  # noqa: E402

from annot.plugins.maskrcnn import build  # noqa: E402
from annot.training.data import CocoInstances  # noqa: E402
from annot.training.loop import Recipe, Trainer, batch_order  # noqa: E402

RECIPE = Recipe(epochs=3, batch_size=2, max_lr=0.01, seed=3)


def tiny(classes: int, seed: int = 0):
    torch.manual_seed(seed)
    model = build("mobilenet_v3_large_fpn", classes + 1, min_size=64, max_size=96)
    # few anchors and proposals on such small images: sample fewer than there are, so that the
    # samplers' draws from the global torch generator matter to the result
    model.rpn.fg_bg_sampler.batch_size_per_image = 16
    model.roi_heads.fg_bg_sampler.batch_size_per_image = 16
    return model


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "img").mkdir()
    doc = write_dataset(tmp_path / "img")
    return CocoInstances(doc, tmp_path / "img", flip=0.5, seed=RECIPE.seed)


def test_resumed_run_ends_at_the_uninterrupted_runs_weights(dataset, tmp_path, deterministic):
    torch.manual_seed(11)
    whole = Trainer(tiny(2), dataset, RECIPE, tmp_path / "whole")
    whole.run()

    torch.manual_seed(11)
    first = Trainer(tiny(2), dataset, RECIPE, tmp_path / "killed")
    first.run(until=1)  # "killed" after its first epoch
    torch.manual_seed(999)  # whatever ran in between
    resumed = Trainer(tiny(2, seed=5), dataset, RECIPE, tmp_path / "killed")
    resumed.resume(first.checkpoint_path(1))
    resumed.run()

    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in whole.history] == [h["loss"] for h in resumed.history]
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == ["epoch-1.pt", "epoch-2.pt", "epoch-3.pt"]


def test_one_cycle_schedule_per_batch(dataset, tmp_path):
    seen = []
    trainer = Trainer(tiny(2), dataset, RECIPE, tmp_path)
    trainer.run(on_batch=lambda epoch, step, steps, loss, lr: seen.append((epoch, step, lr)))
    assert trainer.history[-1]["lr"] == seen[-1][2]
    steps = 2  # 3 images in batches of 2
    assert [(e, s) for e, s, _ in seen] == [(e, s) for e in range(3) for s in range(steps)]
    lrs = [lr for *_, lr in seen]
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(RECIPE.max_lr, rel=0.05)
    assert all(x <= y for x, y in zip(lrs[:peak], lrs[1 : peak + 1]))  # warms up
    assert all(x >= y for x, y in zip(lrs[peak:], lrs[peak + 1 :]))  # then anneals
    assert lrs[0] == pytest.approx(RECIPE.max_lr / 25) and lrs[-1] < RECIPE.max_lr / 1e4  # OneCycleLR's ends


def test_batch_order_depends_on_seed_and_epoch_only():
    torch.manual_seed(1)
    a = batch_order(50, 3, 0)
    torch.manual_seed(2)
    assert batch_order(50, 3, 0) == a and sorted(a) == list(range(50))
    assert batch_order(50, 3, 1) != a and batch_order(50, 4, 0) != a


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clipping_bounds_the_first_step(dataset, tmp_path, clip):
    """SGD's first step moves the weights by the learning rate x the gradient
    (the momentum buffer starts as the gradient): with ``clip_grad_norm`` the
    gradient's norm is the clip, without it the gradient's own, far larger."""
    recipe = Recipe(epochs=3, batch_size=4, max_lr=0.01, weight_decay=0.0, seed=3, clip_grad_norm=clip)
    trainer = Trainer(tiny(2), dataset, recipe, tmp_path)  # 3 images: one step an epoch
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    first = []

    def after_the_first_step(epoch, step, steps, loss, lr):
        if epoch == 0:
            moved = sum(((p.detach() - before[n]) ** 2).sum() for n, p in trainer.model.named_parameters())
            first.append(float(torch.sqrt(moved)) / lr)

    trainer.run(on_batch=after_the_first_step)
    (moved_per_lr,) = first
    if clip is None:
        assert moved_per_lr > 100 * 1e-3  # the raw gradient's norm: the clip below really bites
    else:
        assert moved_per_lr == pytest.approx(clip, rel=1e-3)


def test_range_test_clips_like_the_recipe(dataset):
    """Rates up to 10 make the unclipped tiny model diverge; clipped to a
    norm of 1e-6 its weights cannot move enough to, and every step is taken."""
    from annot.training.find_lr import range_test

    free = range_test(tiny(2), dataset, 2, start=1e-3, end=10.0, steps=20)
    clipped = range_test(tiny(2), dataset, 2, start=1e-3, end=10.0, steps=20, clip_grad_norm=1e-6)
    assert free.diverged and len(free.lrs) < 20
    assert not clipped.diverged and len(clipped.lrs) == 20
