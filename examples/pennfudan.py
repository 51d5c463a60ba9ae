"""Penn-Fudan pedestrians as COCO: one instance per id in each PedMasks PNG.

``python examples/pennfudan.py [DATASET_DIR] -o pennfudan.coco.json``
(default DATASET_DIR: ../shared/datasets/PennFudanPed). Masks become COCO RLE
through annot's geometry, so areas and bboxes are pycocotools'.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from annot.geometry import mask_instance

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "PennFudanPed"


def pennfudan_coco(root: Path = DEFAULT, limit: int | None = None) -> dict:
    images, anns = [], []
    for k, png in enumerate(sorted((root / "PNGImages").glob("*.png"))[:limit], start=1):
        mask = np.asarray(Image.open(root / "PedMasks" / f"{png.stem}_mask.png"))
        h, w = mask.shape
        images.append({"id": k, "file_name": f"PNGImages/{png.name}", "width": w, "height": h})
        for inst in np.unique(mask)[1:]:
            rle, bbox, area = mask_instance(mask == inst)
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": 1, "bbox": bbox, "area": area,
                         "iscrowd": 0, "segmentation": rle})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "pedestrian"}]}


if __name__ == "__main__":
    import orjson

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("-o", "--output", type=Path, default=Path("pennfudan.coco.json"))
    args = ap.parse_args()
    args.output.write_bytes(orjson.dumps(pennfudan_coco(args.root)))
    print(f"wrote {args.output}")
