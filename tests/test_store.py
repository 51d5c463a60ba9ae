"""The store: migrations, import, versions, diff, splits, export."""

from __future__ import annotations

import copy
import json
import random
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from conftest import SHARED, load
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from annot.db.dedup import duplicate_groups
from annot.db.phash import hamming, phash_file

PENNFUDAN = SHARED / "datasets" / "PennFudanPed"
pytestmark = pytest.mark.samples


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh store in tmp_path, reached through ANNOT_DB / ANNOT_STORE like a user's shell."""
    monkeypatch.setenv("ANNOT_DB", f"sqlite:///{tmp_path / 'annot.db'}")
    monkeypatch.setenv("ANNOT_STORE", str(tmp_path / "store"))
    return tmp_path


@pytest.fixture(scope="module")
def pennfudan_small():
    from pennfudan import pennfudan_coco

    return pennfudan_coco(PENNFUDAN, limit=40)


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_migration_upgrade_keeps_rows(tmp_path, annot):
    from annot.db.engine import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")  # a file as the first migration made it
    con = sqlite3.connect(tmp_path / "old.db")
    con.execute("INSERT INTO images VALUES (1, 'ab', 'x.png', 4, 3, -5, '2026-01-01')")
    con.execute("INSERT INTO datasets VALUES (1, 'cars', '[]', '2026-01-01')")
    con.execute("INSERT INTO dataset_versions VALUES (1, 1, 1, NULL, 'm', 'p', 'sha', 1, 0, '{}', '2026-01-01')")
    con.commit()
    con.close()
    res = annot("dataset", "versions", "cars", "--db", url)
    assert res.code == 2 and "run `annot db upgrade`" in res.err
    res = annot("db", "upgrade", "--db", url)
    assert res.code == 0 and "0001 -> 0004" in res.out
    con = sqlite3.connect(tmp_path / "old.db")
    assert con.execute("SELECT phash, path FROM images").fetchall() == [(-5, "x.png")]
    assert con.execute("SELECT name FROM datasets").fetchall() == [("cars",)]
    assert "model_versions" in {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "annotation_events" in {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert annot("db", "upgrade", "--db", url).out.strip().endswith("already at 0004")


def test_import_versions_unchanged_diff(env, annot, pennfudan_small):
    coco = write(env / "a.json", pennfudan_small)
    res = annot("dataset", "import", "peds", coco, "--image-root", PENNFUDAN, "-m", "first", "--json")
    assert res.code == 0, res
    first = json.loads(res.out)
    assert first == {"dataset": "peds", "version": 1, "created": True, "images": 40,
                     "instances": {"pedestrian": len(pennfudan_small["annotations"])}}
    again = json.loads(annot("dataset", "import", "peds", coco, "--image-root", PENNFUDAN, "--json").out)
    assert again["version"] == 1 and again["created"] is False
    # version 2: one annotation removed, five images added
    from pennfudan import pennfudan_coco

    bigger = pennfudan_coco(PENNFUDAN, limit=45)
    removed = bigger["annotations"].pop(0)
    v2 = json.loads(annot("dataset", "import", "peds", write(env / "b.json", bigger), "--image-root", PENNFUDAN,
                          "-m", "more", "--json").out)
    assert v2["version"] == 2 and v2["created"]
    diff = json.loads(annot("dataset", "diff", "peds@1", "peds@2", "--json").out)
    n5 = sum(1 for a in bigger["annotations"] if a["image_id"] > 40)
    assert diff["images_added"] == 5 and diff["images_removed"] == 0 and diff["images_changed"] == 1
    assert diff["instances"]["pedestrian"]["delta"] == n5 - 1
    assert removed["image_id"] == 1
    versions = json.loads(annot("dataset", "versions", "peds", "--json").out)
    assert [(v["version"], v["images"], v["message"]) for v in versions] == [(1, 40, "first"), (2, 45, "more")]


def test_invalid_coco_is_refused_and_nothing_written(env, annot, pennfudan_small):
    bad = copy.deepcopy(pennfudan_small)
    bad["annotations"][0]["category_id"] = 9
    res = annot("dataset", "import", "peds", write(env / "bad.json", bad), "--image-root", PENNFUDAN)
    assert res.code == 1 and "annotations[0].category_id: 9 is not a category id" in res.err
    info = json.loads(annot("db", "info", "--json").out)
    assert (info["datasets"], info["dataset_versions"], info["images"]) == (0, 0, 0)
    missing = copy.deepcopy(pennfudan_small)
    missing["images"][3]["file_name"] = "PNGImages/nope.png"
    res = annot("dataset", "import", "peds", write(env / "m.json", missing), "--image-root", PENNFUDAN)
    assert res.code == 2 and "images[3]: 'PNGImages/nope.png' not found" in res.err


def test_phash_survives_resize_and_reencode(tmp_path):
    src = sorted((PENNFUDAN / "PNGImages").glob("*.png"))[:6]
    far = []
    for k, p in enumerate(src):
        with Image.open(p) as im:
            im.resize((im.width * 3 // 4, im.height * 3 // 4)).convert("RGB").save(tmp_path / f"{k}.jpg", quality=70)
        assert hamming(phash_file(p), phash_file(tmp_path / f"{k}.jpg")) <= 6
        far += [hamming(phash_file(p), phash_file(q)) for q in src if q != p]
    assert min(far) > 6  # different street scenes are far apart


@settings(max_examples=40, deadline=None)
@given(hashes=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=60), t=st.integers(0, 64),
       seed=st.integers(0, 1000))
def test_multi_index_groups_equal_brute_force(hashes, t, seed):
    rng = random.Random(seed)
    # plant near neighbours so groups are not all singletons
    hashes = hashes + [h ^ (1 << rng.randrange(64)) for h in hashes[: len(hashes) // 2]]
    got = duplicate_groups(hashes, t)
    parent = list(range(len(hashes)))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(hashes)):
        for j in range(i):
            if hamming(hashes[i], hashes[j]) <= t:
                a, b = find(i), find(j)
                parent[max(a, b)] = min(a, b)
    assert got == [find(i) for i in range(len(hashes))]


def _noise_project(root, n, seed, prefix="img"):
    """n random-noise images (pairwise far in pHash) with 3 unevenly frequent classes."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for k in range(n):
        name = f"{prefix}{k:04d}.png"
        Image.fromarray(rng.integers(0, 255, (24, 32), dtype=np.uint8)).save(root / name)
        images.append({"id": k + 1, "file_name": name, "width": 32, "height": 24})
        for _ in range(int(rng.integers(1, 4))):
            cat = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
            x, y = int(rng.integers(0, 20)), int(rng.integers(0, 12))
            anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": cat, "bbox": [x, y, 8, 8],
                         "area": 64, "iscrowd": 0, "segmentation": [[x, y, x + 8, y, x + 8, y + 8, x, y + 8]]})
    cats = [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "bus"}]
    return {"images": images, "annotations": anns, "categories": cats}


def _import(annot, name, coco_path, root, *extra):
    res = annot("dataset", "import", name, coco_path, "--image-root", root, *extra)
    assert res.code == 0, res
    return res


def _split(annot, ref, *extra):
    res = annot("dataset", "split", ref, "--json", *extra)
    assert res.code == 0, res
    return json.loads(res.out)


def test_split_stratified_within_five_points(env, annot):
    coco = _noise_project(env / "imgs", 300, seed=1)
    _import(annot, "multi", write(env / "c.json", coco), env / "imgs")
    rep = _split(annot, "multi", "--ratios", "0.7,0.2,0.1")["subsets"]
    totals = Counter()
    for sub in rep.values():
        totals.update(sub["instances"])
    for name, ratio in (("train", 0.7), ("val", 0.2), ("test", 0.1)):
        for cat, n in totals.items():
            share = rep[name]["instances"].get(cat, 0) / n
            assert abs(share - ratio) <= 0.05, (name, cat, share)
        assert abs(rep[name]["images"] / 300 - ratio) <= 0.05


def test_split_is_deterministic_and_stable_across_versions(env, annot, tmp_path_factory):
    coco = _noise_project(env / "imgs", 120, seed=2)
    _import(annot, "d", write(env / "v1.json", coco), env / "imgs")
    _split(annot, "d", "--seed", "7")
    test_v1 = _export_names(annot, env, "d", "test")
    # the same on a fresh store with the same seed
    other = tmp_path_factory.mktemp("other")
    res = annot("dataset", "import", "d", env / "v1.json", "--image-root", env / "imgs",
                "--db", f"sqlite:///{other / 'x.db'}", "--store", other / "s")
    assert res.code == 0
    assert annot("dataset", "split", "d", "--seed", "7", "--db", f"sqlite:///{other / 'x.db'}",
                 "--store", other / "s").code == 0
    assert _export_names(annot, env, "d", "test", "--db", f"sqlite:///{other / 'x.db'}", "--store", other / "s") == test_v1
    # version 2 adds 40 images, among them a re-encoded copy of a test image
    more = _noise_project(env / "imgs", 40, seed=3, prefix="new")
    dup_of = sorted(test_v1)[0]
    with Image.open(env / "imgs" / dup_of) as im:
        im.convert("RGB").save(env / "imgs" / "copy.jpg", quality=95)
    coco2 = copy.deepcopy(coco)  # the new images come unlabelled
    for im in more["images"] + [{"file_name": "copy.jpg", "width": 32, "height": 24}]:
        coco2["images"].append({**im, "id": len(coco2["images"]) + 1})
    _import(annot, "d", write(env / "v2.json", coco2), env / "imgs")
    rep = _split(annot, "d", "--seed", "7")
    assert rep["newly_assigned"] == 41 and rep["version"] == 2
    test_v2 = _export_names(annot, env, "d", "test")
    assert test_v1 <= test_v2  # nothing left test
    assert "copy.jpg" in test_v2  # the near-duplicate followed its original
    train_v2 = _export_names(annot, env, "d", "train")
    assert not (train_v2 & test_v1)
    res = annot("dataset", "split", "d", "--seed", "8")
    assert res.code == 2 and "already exists" in res.err


def _export_names(annot, env, ref, subset, *extra):
    out = env / f"{ref}-{subset}-{len(extra)}.json"
    res = annot("dataset", "export", ref, "--split", subset, "-o", out, "--overwrite", *extra)
    assert res.code == 0, res
    assert annot("validate", "coco", out).code == 0
    return {im["file_name"] for im in load(out)["images"]}


def test_pennfudan_planted_duplicates_land_together(env, annot):
    from pennfudan import pennfudan_coco

    coco = pennfudan_coco(PENNFUDAN, limit=60)
    root = env / "pf"
    (root / "PNGImages").mkdir(parents=True)
    for im in coco["images"]:  # copies: a symlink leading out of the image root is not followed
        shutil.copyfile(PENNFUDAN / im["file_name"], root / im["file_name"])
    planted = []
    for im in coco["images"][:: 6]:  # 10 resized, re-encoded copies
        name = f"PNGImages/copy_{im['id']}.jpg"
        with Image.open(PENNFUDAN / im["file_name"]) as src:
            src.resize((src.width // 2, src.height // 2)).convert("RGB").save(root / name, quality=80)
        planted.append((im["file_name"], name))
        coco["images"].append({"id": 1000 + im["id"], "file_name": name, "width": im["width"] // 2,
                               "height": im["height"] // 2})
    _import(annot, "peds", write(env / "p.json", coco), root)
    rep = _split(annot, "peds")
    assert sum(s["duplicate_groups"] for s in rep["subsets"].values()) >= len(planted)
    where = {}
    for sub in ("train", "val", "test"):
        for name in _export_names(annot, env, "peds", sub):
            where[name] = sub
    assert all(where[a] == where[b] for a, b in planted)


def test_concurrent_imports_and_registrations_lose_nothing(env):
    """Four processes import into one SQLite file while four register model
    versions; a reader polling meanwhile never sees a version without all of
    its images."""
    coco = _noise_project(env / "imgs", 12, seed=4)
    files = []
    for k in range(4):
        c = copy.deepcopy(coco)
        c["annotations"] = c["annotations"][: k + 1]  # four different contents
        files.append(write(env / f"c{k}.json", c))
    cmds = [["dataset", "import", "same", str(f), "--image-root", str(env / "imgs"), "--json"] for f in files]
    cmds += [["models", "register", "m", "--metrics", json.dumps({"k": k}), "--status", "training", "--json"]
             for k in range(4)]
    # no `annot db upgrade` first: the eight processes also race to create the schema
    procs = [subprocess.Popen([sys.executable, "-m", "annot.cli", *c], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in cmds]
    con = sqlite3.connect(env / "annot.db", timeout=30)
    while any(p.poll() is None for p in procs):
        try:
            rows = con.execute("SELECT v.n_images, (SELECT count(*) FROM version_images i"
                               " WHERE i.version_id = v.id) FROM dataset_versions v").fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            continue
        for n_images, n_rows in rows:
            assert n_rows == n_images  # committed versions are whole
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted(json.loads(o)["version"] for o, _ in outs[:4]) == [1, 2, 3, 4]
    assert sorted(json.loads(o)["version"] for o, _ in outs[4:]) == [1, 2, 3, 4]
    assert con.execute("SELECT count(*) FROM images").fetchone() == (12,)
    assert con.execute("SELECT count(*) FROM version_images").fetchone() == (48,)
