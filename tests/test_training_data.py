"""annot.training.data against the COCO file it reads: masks as pycocotools
rasterises them, boxes of those masks, crowd regions and negatives, flips
that follow (seed, epoch, index), and a batch torchvision's Mask R-CNN trains on."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from annot.errors import AnnotError  # noqa: E402
from annot.training.data import CocoInstances, class_balanced_weights, collate  # noqa: E402

H, W = 40, 60


def write_dataset(root):
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / name)
    tri = [5, 5, 30, 5, 5, 30]
    square = [35, 10, 55, 10, 55, 30, 35, 30]
    return {
        "images": [{"id": i, "file_name": n, "width": W, "height": H} for i, n in enumerate(("a.png", "b.png", "c.png"), 1)],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "segmentation": [tri], "bbox": [5, 5, 25, 25], "area": 1, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "segmentation": [square], "bbox": [35, 10, 20, 20], "area": 1, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 3, "segmentation": [square], "bbox": [35, 10, 20, 20], "area": 1, "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 7, "bbox": [10, 12, 8, 6], "area": 48, "iscrowd": 0},  # box only
            {"id": 5, "image_id": 2, "category_id": 7, "bbox": [10, 12, 0, 6], "area": 0, "iscrowd": 0},  # no pixel
        ],
    }


@pytest.fixture
def ds(tmp_path):
    return write_dataset(tmp_path), tmp_path


def test_targets_are_the_files_masks_and_labels(ds):
    doc, root = ds
    data = CocoInstances(doc, root)
    assert data.classes == ["dog", "cat"]  # by category id, as the COCO file orders them
    image, target = data[0]
    assert image.shape == (3, H, W) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert np.array_equal((image * 255).round().byte().permute(1, 2, 0).numpy(), np.asarray(Image.open(root / "a.png")))
    assert target["labels"].tolist() == [2, 1]  # cat, dog; the crowd region left out
    truth = [mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], H, W)))
             for a in doc["annotations"][:2]]
    for m, t in zip(target["masks"].numpy(), truth):
        assert np.array_equal(m, t)
    boxes = target["boxes"].tolist()
    for box, t in zip(boxes, truth):
        ys, xs = np.nonzero(t)
        assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert target["image_id"] == 1


def test_box_only_instances_negatives_and_empty_boxes(ds):
    doc, root = ds
    data = CocoInstances(doc, root)
    _, t2 = data[1]
    assert t2["boxes"].tolist() == [[10, 12, 18, 18]] and t2["masks"][0].sum() == 48
    _, t3 = data[2]  # no instances: kept, with empty targets shaped for the model
    assert t3["boxes"].shape == (0, 4) and t3["labels"].shape == (0,) and t3["masks"].shape == (0, H, W)


def test_flips_follow_seed_epoch_and_index(ds):
    doc, root = ds
    plain = CocoInstances(doc, root)[0]
    flips = []
    for epoch in range(12):
        data = CocoInstances(doc, root, flip=0.5, seed=4)
        data.set_epoch(epoch)
        image, target = data[0]
        again = CocoInstances(doc, root, flip=0.5, seed=4)
        again.set_epoch(epoch)
        assert torch.equal(again[0][0], image)  # the same (seed, epoch, index): the same flip
        flipped = not torch.equal(image, plain[0])
        flips.append(flipped)
        if flipped:
            assert torch.equal(image, plain[0].flip(-1))
            assert torch.equal(target["masks"], plain[1]["masks"].flip(-1))
            for box, m in zip(target["boxes"].tolist(), target["masks"].numpy()):
                ys, xs = np.nonzero(m)
                assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert any(flips) and not all(flips)


def test_a_file_name_never_leads_out_of_the_image_root(ds):
    doc, root = ds
    doc["images"][0]["file_name"] = "../a.png"
    with pytest.raises(AnnotError, match="leads outside"):
        CocoInstances(doc, root)[0]


def test_class_balanced_weights():
    doc = {"images": [{"id": i, "file_name": f"{i}.png", "width": 4, "height": 4} for i in range(1, 5)],
           "categories": [{"id": 1, "name": "common"}, {"id": 2, "name": "rare"}],
           "annotations": [{"id": k, "image_id": i, "category_id": c, "bbox": [0, 0, 2, 2], "iscrowd": 0}
                           for k, (i, c) in enumerate([(1, 1), (2, 1), (3, 1), (3, 2)], 1)]}
    data = CocoInstances(doc, ".")
    assert class_balanced_weights(data) == [1 / 3, 1 / 3, 1.0, 1 / 4]


def test_a_batch_trains_torchvisions_mask_rcnn(ds):
    from annot.plugins.maskrcnn import build

    doc, root = ds
    data = CocoInstances(doc, root, flip=0.5)
    images, targets = collate([data[0], data[1], data[2]])
    torch.manual_seed(0)
    model = build("mobilenet_v3_large_fpn", len(data.classes) + 1, min_size=64, max_size=96).train()
    losses = model(list(images), list(targets))
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
