"""What annot writes for Label Studio, imported into a real Label Studio server
(``make test`` installs it in ``.venv-ls``; the ``label_studio`` fixture starts
it on 127.0.0.1 with a fresh database) and read back through its API."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from label_studio_sdk import LabelStudio  # noqa: E402
from synthetic import write_project  # noqa: E402
from tiny_models import save_checkpoint, write_scenes  # noqa: E402

SHAPES = '<Label value="square"/><Label value="disc"/>'
CONFIGS = {
    "brush": f'<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">{SHAPES}'
             "</BrushLabels></View>",
    "polygon": f'<View><Image name="photo" value="$img"/><PolygonLabels name="outline" toName="photo">{SHAPES}'
               "</PolygonLabels></View>",
}


def _regions(result):
    return [(r["from_name"], r["to_name"], r["type"], r["value"]) for r in result]


def _pred(p):
    return p if isinstance(p, dict) else p.dict()


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_predict_output_imports_with_its_predictions(label_studio, annot, tmp_path, tiny_maskrcnn, kind):
    url, token = label_studio
    write_scenes(tmp_path / "images", 3)
    save_checkpoint(tiny_maskrcnn, tmp_path / "m.pt")
    (tmp_path / "config.xml").write_text(CONFIGS[kind])
    res = annot("predict", "--model", "maskrcnn", "--checkpoint", tmp_path / "m.pt", tmp_path / "images",
                "--label-config", tmp_path / "config.xml", "-o", tmp_path / "tasks.json", "--score-threshold", "0.2",
                "--image-url-prefix", "/data/local-files/?d=images/", "-q")
    assert res.code == 0, res
    tasks = json.loads((tmp_path / "tasks.json").read_text())

    ls = LabelStudio(base_url=url, api_key=token)
    project = ls.projects.create(title=f"annot predict {kind}", label_config=CONFIGS[kind])
    imported = ls.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True)
    assert (imported.task_count, imported.prediction_count) == (3, 3)

    stored = {json.dumps(t.data, sort_keys=True): t for t in ls.tasks.list(project=project.id, fields="all")}
    assert len(stored) == 3
    for task in tasks:
        got = stored[json.dumps(task["data"], sort_keys=True)]
        (mine,) = task["predictions"]
        (theirs,) = [_pred(p) for p in got.predictions]
        assert mine["result"] and theirs["model_version"] == mine["model_version"]
        assert theirs["score"] == pytest.approx(mine["score"])
        assert _regions(theirs["result"]) == _regions(mine["result"])
        assert {r["type"] for r in mine["result"]} <= {f"{kind}labels"}


def test_converted_annotations_and_predictions_import(label_studio, annot, tmp_path):
    url, token = label_studio
    dirs = write_project(tmp_path / "project", n_images=3, seed=5)
    coco = tmp_path / "train.json"
    assert annot("convert", "labelme", "coco", dirs["labelme"], "-o", coco, "-q").code == 0
    config = ('<View><Image name="image" value="$image"/><PolygonLabels name="label" toName="image">'
              '<Label value="bicycle"/><Label value="car"/><Label value="person"/></PolygonLabels>'
              '<RectangleLabels name="box" toName="image"><Label value="bicycle"/><Label value="car"/>'
              '<Label value="person"/></RectangleLabels></View>')
    (tmp_path / "config.xml").write_text(config)
    ls = LabelStudio(base_url=url, api_key=token)
    for as_, counts, extra in (("annotations", "annotation_count", ()),
                               ("predictions", "prediction_count", ("--model-version", "v1"))):
        out = tmp_path / f"{as_}.json"
        res = annot("convert", "coco", "labelstudio", coco, "-o", out, "--as", as_, "--label-config",
                    tmp_path / "config.xml", *extra, "-q")
        assert res.code == 0, res
        tasks = json.loads(out.read_text())
        project = ls.projects.create(title=f"annot convert {as_}", label_config=config)
        imported = ls.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True)
        assert imported.task_count == 3 and getattr(imported, counts) == 3
        stored = list(ls.tasks.list(project=project.id, fields="all"))
        n_regions = sum(len(t[as_][0]["result"]) for t in tasks)
        if as_ == "predictions":
            assert sum(len(_pred(p)["result"]) for t in stored for p in t.predictions) == n_regions
        else:
            assert sum(t.total_annotations for t in stored) == 3
