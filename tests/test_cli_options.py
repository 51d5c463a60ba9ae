"""The command line never silently ignores what it is told: every option that
a conversion, a model or an output would not read is refused before any work,
and everything a user types gets one line of help and one error style."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from annot.cli import cli

READERS = ["coco", "labelme", "voc", "yolo", "createml", "labelstudio"]
WRITERS = ["coco", "labelme", "voc", "yolo", "labelstudio"]
# What each option is read by, as docs/formats.md documents it (a second
# statement of the table in annot.formats, on purpose).
READ_BY = {
    "--ignore-as-crowd": {"labelme"}, "--extract-images": {"labelme"}, "--pixel-convention": {"voc"},
    "--difficult-as-crowd": {"voc"}, "--image-root": set(READERS), "--annotations": {"labelstudio"},
    "--predictions": {"labelstudio"}, "--keep-upload-prefix": {"labelstudio"}, "--gt": {"coco"},
}
WRITTEN_BY = {
    "--pixel-convention": {"voc"}, "--image-root": {"labelme"}, "--as": {"labelstudio"},
    "--model-version": {"labelstudio"}, "--image-url-prefix": {"labelstudio"}, "--label-config": {"labelstudio"},
    "--simplify": {"yolo", "labelstudio"},
}


@pytest.fixture(scope="module")
def values(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("opts")
    (tmp / "config.xml").write_text('<View><Image name="image" value="$image"/>'
                                    '<PolygonLabels name="label" toName="image"><Label value="a"/></PolygonLabels></View>')
    (tmp / "gt.json").write_text("{}")
    (tmp / "images").mkdir()
    return {
        "--ignore-as-crowd": [], "--extract-images": [tmp / "extracted"], "--pixel-convention": ["voc1"],
        "--difficult-as-crowd": [], "--image-root": [tmp / "images"], "--annotations": ["all"],
        "--predictions": [], "--keep-upload-prefix": [], "--gt": [tmp / "gt.json"], "--as": ["predictions"],
        "--model-version": ["v7", "--as", "predictions"], "--image-url-prefix": ["s3://b/"],
        "--label-config": [tmp / "config.xml"], "--simplify": ["2"],
    }


OPTIONS = sorted(set(READ_BY) | set(WRITTEN_BY))


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("src", READERS)
def test_every_option_in_every_direction(annot, tmp_path, values, src, option):
    for dst in WRITERS:
        applies = src in READ_BY.get(option, ()) or dst in WRITTEN_BY.get(option, ())
        if option == "--model-version" and dst != "labelstudio":
            applies = False
        res = annot("convert", src, dst, tmp_path / "missing.json", "-o", tmp_path / "out", option,
                    *values[option])
        assert res.code == 2 and res.err.count("\n") == 1, (src, dst, option, res)
        if applies:  # checked, then the work starts and finds no input
            assert "does not apply" not in res.err and "missing.json" in res.err, (src, dst, option, res)
        else:
            assert f"annot: error: {option} does not apply to {src} -> {dst}; it is read by the " in res.err, \
                (src, dst, option, res)
        assert not (tmp_path / "out").exists()


def test_options_that_need_another(annot, tmp_path):
    res = annot("convert", "coco", "labelstudio", tmp_path / "x.json", "-o", tmp_path / "o.json", "--model-version",
                "v3")
    assert res.code == 2 and "--model-version needs --as predictions" in res.err
    (tmp_path / "x.json").write_text("[]")
    res = annot("convert", "labelstudio", "coco", tmp_path / "x.json", "-o", tmp_path / "o.json", "--annotations",
                "predictions", "--predictions")
    assert res.code == 2 and "give one of the two" in res.err


def test_labelimg_names_its_three_formats(annot, tmp_path):
    res = annot("convert", "labelimg", "coco", tmp_path, "-o", tmp_path / "o.json")
    assert res.code == 2 and "labelimg saves in three formats; name the one your files are in: voc, yolo, createml" \
        in res.err


def test_click_errors_are_one_line_in_annots_style(annot):
    for args, message in [(("convert",), "Missing argument 'SRC'. (see 'annot convert --help')"),
                          (("convert", "coco", "coco", "x", "-o", "y", "--bogus"), "No such option '--bogus'"),
                          (("convert", "coco", "coco", "x", "-o", "y", "--on-error", "maybe"), "'maybe' is not one of"),
                          (("predict", "x", "-o", "y"), "Missing option '--model'")]:
        res = annot(*args)
        assert res.code == 2 and res.err.startswith("annot: error: ") and message in res.err, (args, res)
        assert res.err.count("\n") == 1 and "Usage:" not in res.err


def test_a_missing_output_folder_is_created_and_said(annot, tmp_path):
    (tmp_path / "in.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 4,
                                                              "height": 4}], "annotations": [],
                                                  "categories": [{"id": 1, "name": "a"}]}))
    res = annot("convert", "coco", "coco", tmp_path / "in.json", "-o", tmp_path / "new" / "sub" / "out.json")
    assert res.code == 0 and (tmp_path / "new" / "sub" / "out.json").is_file()
    assert f"annot: created folder {tmp_path / 'new' / 'sub'}\n" in res.err


# -- annot predict: options by model and output ----------------------------------

PREDICT_MODEL_OPTIONS = {  # option -> (value, the models that read it)
    "--checkpoint": ("CKPT", {"maskrcnn", "sam"}),
    "--weights": ("coco", {"maskrcnn"}),
    "--backbone": ("resnet50_fpn_v2", {"maskrcnn"}),
    "--score-threshold": ("0.3", {"maskrcnn"}),
    "--device": ("cpu", {"maskrcnn", "sam"}),
    "--precision": ("fp32", {"maskrcnn", "sam"}),
}


@pytest.mark.parametrize("option", sorted(PREDICT_MODEL_OPTIONS))
@pytest.mark.parametrize("model", ["maskrcnn", "grabcut", "sam"])
def test_predict_model_options_by_model(annot, tmp_path, model, option):
    from annot.plugins.model_spec import resolve
    from annot.plugins.predict_cli import check_options

    value, readers = PREDICT_MODEL_OPTIONS[option]
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"")
    value = str(ckpt) if value == "CKPT" else value
    key = option.lstrip("-").replace("-", "_")
    if model in readers:  # checked without loading anything: nothing refuses it
        choice = resolve(model, checkpoint=ckpt if key == "checkpoint" or model == "maskrcnn" else None,
                         weights=None)
        check_options({key}, choice, "labelstudio", None, from_store=False)  # raises when it refuses
    else:
        extra = ["--checkpoint", ckpt] if model == "maskrcnn" and key not in ("checkpoint", "weights") else []
        res = annot("predict", tmp_path, "-o", tmp_path / "o.json", "--model", model, option, value, *extra)
        assert res.code == 2 and f"{option} does not apply to --model {model}" in res.err, res
        assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--model", "maskrcnn", "--checkpoint", "CKPT", "--weights", "coco"], "--checkpoint and --weights exclude"),
    (["--model", "maskrcnn", "--checkpoint", "CKPT", "--format", "coco", "--label-config", "CFG"],
     "--label-config applies to --format labelstudio, not coco"),
    (["--model", "maskrcnn", "--checkpoint", "CKPT", "--format", "coco", "--simplify", "2"],
     "--simplify applies to --format labelstudio"),
    (["--model", "maskrcnn", "--checkpoint", "CKPT", "--format", "coco", "--image-url-prefix", "s3://x/"],
     "--image-url-prefix applies to --format labelstudio"),
    (["--model", "grabcut", "--refine", "sam"], "--refine re-segments a detector's boxes; grabcut is not a detector"),
    (["--model", "maskrcnn", "--checkpoint", "CKPT", "--sam-checkpoint", "CKPT"], "--sam-checkpoint applies to "
                                                                                  "--refine sam"),
    (["--model", "maskrcnn", "--checkpoint", "CKPT", "--db", "sqlite:///x.db"], "--db applies to models from the "
                                                                                "store"),
    (["--model", "grabcut", "--weights", "coco"], "--weights does not apply to --model grabcut"),
    (["--model", "grabcut", "--gt", "GT"], "none of the 1 input image(s) is an image of it"),
    (["--model", "maskrcnn", "--checkpoint", "TEXT"], "text.pt: not a readable checkpoint"),
    (["--model", "maskrcnn", "--checkpoint", "CKPT"], "m.pt: not a readable checkpoint"),
])
def test_predict_refuses_what_it_would_ignore(annot, tmp_path, args, message):
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    (tmp_path / "m.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("hello\n")
    (tmp_path / "c.xml").write_text("<View/>")
    (tmp_path / "gt.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "other.png"}],
                                                  "categories": [{"id": 1, "name": "a"}]}))
    subst = {"CKPT": tmp_path / "m.pt", "TEXT": tmp_path / "text.pt", "CFG": tmp_path / "c.xml", "GT": tmp_path / "gt.json"}
    res = annot("predict", tmp_path / "images", "-o", tmp_path / "o.json", *[subst.get(a, a) for a in args])
    assert res.code == 2 and message in res.err and res.err.count("\n") == 1, res
    assert not (tmp_path / "o.json").exists()


def test_one_simplify_default_everywhere():
    from annot.options import SIMPLIFY_PX
    from annot.plugins.predict_cli import predict

    convert_cmd = cli.get_command(click.Context(cli), "convert")
    defaults = {p.default for cmd in (convert_cmd, predict) for p in cmd.params if p.name == "simplify"}
    assert defaults == {SIMPLIFY_PX}


# -- help -----------------------------------------------------------------------


def _commands(group: click.Group, ctx: click.Context, prefix=()):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, click.Context(cmd, parent=ctx, info_name=name), (*prefix, name))


def _cut(help_text: str) -> list[str]:
    """Lines that click cut short with "..." (the usage line's "[ARGS]..." is not one)."""
    return [ln for ln in help_text.splitlines() if ln.rstrip().endswith("...") and not ln.startswith("Usage:")]


def test_every_option_has_help_and_no_summary_is_cut(annot):
    ctx = click.Context(cli, info_name="annot")
    seen = 0
    for path, cmd in _commands(cli, ctx):
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert p.help, f"annot {' '.join(path)} {p.opts[0]}: no help"
                seen += 1
        if isinstance(cmd, click.Group):
            res = annot(*path, "--help")
            assert res.code == 0 and not _cut(res.out), (path, res.out)
    assert seen > 80
    res = annot("--help")
    assert not _cut(res.out) and "validate" in res.out
    for args in (("dataset", "list", "--help"), ("models", "register", "--help"), ("predict", "--help")):
        text = " ".join(annot(*args).out.split())  # help is wrapped
        assert "env var: ANNOT_DB" in text and "env var: ANNOT_STORE" in text, args


# -- the store ------------------------------------------------------------------

READ_ONLY = [["db", "info"], ["dataset", "versions", "x"], ["dataset", "show", "x"],
             ["dataset", "diff", "x@1", "x@2"], ["dataset", "export", "x", "-o", "out.json"], ["models", "show", "m"],
             ["dataset", "list"], ["models", "list", "--json"], ["runs", "list"]]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_store_commands_never_create_a_database(annot, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANNOT_DB", "sqlite:///sub/../annot.db")  # relative: the message names the absolute file
    monkeypatch.delenv("ANNOT_STORE", raising=False)
    res = annot(*args)
    listing = args[1] == "list"  # an empty listing, with a note; a lookup is an error
    assert res.code == (0 if listing else 2) and f"no store at {Path(tmp_path, 'sub/../annot.db')}" in res.err, res
    if "--json" in args:
        assert json.loads(res.out) == []
    assert list(tmp_path.iterdir()) == []


def test_store_errors_name_the_database(annot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANNOT_DB", "sqlite:///annot.db")
    monkeypatch.setenv("ANNOT_STORE", str(tmp_path / "files"))
    assert annot("models", "register", "m", "--status", "training").code == 0  # creates the store
    where = str(tmp_path / "annot.db")
    for args, message in [(("dataset", "versions", "peds"), "unknown dataset 'peds'; known: none"),
                          (("models", "show", "x"), "unknown model 'x'; known: m"),
                          (("models", "promote", "m@1"), "m-v1 is training, only a ready version can be promoted"),
                          (("models", "rollback", "m"), "m has no promoted version (none is ready yet)")]:
        res = annot(*args)
        assert res.code == 2 and f"{message} (store: {where})" in res.err, (args, res)
    assert json.loads(annot("dataset", "list", "--json").out) == []


def test_registering_a_ready_version_loads_its_checkpoint(annot, tmp_path, monkeypatch, toy_predictor):
    monkeypatch.setenv("ANNOT_DB", f"sqlite:///{tmp_path / 'annot.db'}")
    monkeypatch.setenv("ANNOT_STORE", str(tmp_path / "files"))
    (tmp_path / "notes.pt").write_text("not weights\n")
    cases = [
        (("m", "--predictor", "toy", "--checkpoint", tmp_path / "notes.pt"), "notes.pt: not a readable checkpoint"),
        (("m", "--predictor", "toy"), "a ready version needs --checkpoint"),
        (("m", "--checkpoint", toy_predictor(tmp_path / "ok.pt")), "m: no predictor named 'm'"),
        (("m", "--predictor", "grabcut", "--checkpoint", tmp_path / "ok.pt"), "the grabcut predictor does not load"),
        (("m", "--predictor", "toy", "--checkpoint", tmp_path / "ok.pt", "--metrics", "[1, 2]"),
         "--metrics must be a JSON object ({...}), not list"),
        (("m", "--predictor", "toy", "--checkpoint", tmp_path / "ok.pt", "--config", "3"), "--config must be a JSON"),
    ]
    for args, message in cases:
        res = annot("models", "register", *args)
        assert res.code == 2 and message in res.err and res.err.count("\n") == 1, (args, res)
    assert not (tmp_path / "annot.db").exists() or json.loads(annot("models", "list", "--json").out) == []
    res = annot("models", "register", "m", "--predictor", "toy", "--checkpoint", tmp_path / "ok.pt", "--json")
    assert res.code == 0 and json.loads(res.out)["model"] == "m-v1"
    (row,) = json.loads(annot("models", "list", "--json").out)
    assert row["status"] == "ready" and row["config"] == {"predictor": "toy"} and row["checkpoint_problem"] is None
