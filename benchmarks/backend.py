"""What `annot serve` adds to the model: HTTP, images, conversion to Label Studio regions.

    python benchmarks/backend.py [--requests 20] [--clicks 20] [--sam]

A real uvicorn server on 127.0.0.1 (in this process), Penn-Fudan images read
as Label Studio local files, Mask R-CNN (MobileNetV3-FPN, random weights,
--score-threshold chosen so that it keeps detections) and GrabCut:

- ``/predict`` with 8 tasks, against the detector called in-process on the
  same 8 decoded images (the model time); goal: HTTP + images + conversion
  <= 10 % of the model time;
- interactive clicks on one image: the first (fetch, decode), the later ones,
  against the bare ``GrabCut.segment`` call with the same prompt; goal: later
  clicks <= 1.2x the bare call. With ``--sam`` the same for SAM (vit_b,
  random weights: the encoder takes many seconds on a CPU) against
  ``SamPredictor.predict`` with its image set.

Prints p50 and p95 of each and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from live_server import LiveServer  # noqa: E402

from annot.plugins.grabcut import GrabCutPredictor  # noqa: E402
from annot.plugins.maskrcnn import build  # noqa: E402
from annot.plugins.predictor import Prompt  # noqa: E402
from annot.serve.app import create_app  # noqa: E402
from annot.serve.config import ServeConfig  # noqa: E402

PENNFUDAN = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "PennFudanPed"
CONFIG = """<View><Image name="image" value="$image"/>
<BrushLabels name="tag" toName="image"><Label value="pedestrian"/></BrushLabels>
<KeyPointLabels name="kp" toName="image" smart="true"><Label value="pedestrian"/></KeyPointLabels>
<RectangleLabels name="rect" toName="image" smart="true"><Label value="pedestrian"/></RectangleLabels></View>"""


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def timed(f, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000)
    return out


def line(name: str, ms: list[float]) -> str:
    return f"  {name:44s} p50 {statistics.median(ms):8.1f} ms   p95 {pct(ms, 95):8.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--score-threshold", type=float, default=0.5)
    ap.add_argument("--sam", action="store_true", help="also SAM vit_b with random weights (slow on a CPU)")
    args = ap.parse_args()
    torch.manual_seed(0)
    images = sorted((PENNFUDAN / "PNGImages").glob("*.png"))[:8]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "m.pt"
        torch.save({"model": build("mobilenet_v3_large_fpn", 2).state_dict(), "classes": ["pedestrian"],
                    "backbone": "mobilenet_v3_large_fpn"}, ckpt)
        config = ServeConfig(model="maskrcnn", checkpoint=str(ckpt), device="cpu",
                             score_threshold=args.score_threshold, local_files_root=str(PENNFUDAN),
                             db_url=f"sqlite:///{tmp / 'annot.db'}", store_path=str(tmp / "store"))
        app = create_app(config)
        tasks = [{"id": k, "data": {"image": f"/data/local-files/?d=PNGImages/{p.name}"}} for k, p in enumerate(images)]
        with LiveServer(app) as server, httpx.Client(timeout=300) as client:
            server.wait_ready(client)
            backend = server.backend
            detector = backend.models.detector.predictor
            decoded = [np.asarray(Image.open(p).convert("RGB")) for p in images]
            detector.predict(decoded)  # warm-up
            body = {"tasks": tasks, "label_config": CONFIG, "project": "1.1"}
            client.post(f"{server.url}/predict", json=body)  # warm-up: images cached
            # interleaved, so that the machine's drift falls on both alike; the overhead is the
            # median of each pair's difference
            model, http = [], []
            for _ in range(args.requests):
                model += timed(lambda: detector.predict(decoded), 1)
                http += timed(lambda: client.post(f"{server.url}/predict", json=body).raise_for_status(), 1)
            results = client.post(f"{server.url}/predict", json=body).json()["results"]
            regions = sum(len(r["result"]) for r in results)
            project, dets = backend.project(CONFIG), detector.predict(decoded)
            convert = timed(lambda: [backend._to_prediction(d, img.shape[:2], project, "v", t, "")
                                     for d, img, t in zip(dets, decoded, tasks)], args.requests)
            print(f"/predict, 8 Penn-Fudan tasks, {regions / 8:.1f} regions per task, {args.requests} interleaved:")
            print(line("detector in-process (model time)", model))
            print(line("POST /predict", http))
            print(line("  of which: regions for 8 tasks (in-process)", convert))
            overhead = statistics.median(h - m for h, m in zip(http, model)) / statistics.median(model)
            print(f"  overhead (HTTP + images + conversion) = {overhead:.1%} of the model time (goal <= 10 %)")

            image = decoded[0]
            h, w = image.shape[:2]
            box = [160.0, 120.0, 120.0, 300.0]
            click = {"type": "rectanglelabels", "original_width": w, "original_height": h,
                     "value": {"x": box[0] * 100 / w, "y": box[1] * 100 / h, "width": box[2] * 100 / w,
                               "height": box[3] * 100 / h, "rectanglelabels": ["pedestrian"]}}

            def ask(task_id: int):
                r = client.post(f"{server.url}/predict", json={"tasks": [{"id": task_id, "data": {
                    "image": tasks[0]["data"]["image"]}}], "label_config": CONFIG, "params": {"context": {
                        "result": [click]}}})
                r.raise_for_status()

            first = timed(lambda: ask(1000), 1)
            backend.images._files.items.clear()
            backend.images._decoded.items.clear()
            first += timed(lambda: ask(1001), 1)
            later = timed(lambda: ask(1002), args.clicks)
            bare = timed(lambda: GrabCutPredictor().segment(image, Prompt(box=box)), args.clicks)
            print(f"interactive GrabCut clicks (a box on a {w}x{h} image), median of {args.clicks}:")
            print(line("bare GrabCut.segment", bare))
            print(line("first click (fetch + decode)", first))
            print(line("later clicks", later))
            print(f"  later / bare = {statistics.median(later) / statistics.median(bare):.2f}x (goal <= 1.2x)")
    if args.sam:
        sam_clicks(args.clicks)
    return 0


def sam_clicks(clicks: int) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("sam_bench", Path(__file__).with_name("sam.py"))
    sam_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sam_bench)
    r = sam_bench.measure(clicks=clicks, images=1)
    print("SAM vit_b, random weights (benchmarks/sam.py):")
    sam_bench.report(r, "vit_b", "cpu", None)


if __name__ == "__main__":
    sys.exit(main())
