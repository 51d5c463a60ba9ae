"""``annot rank --push-labelstudio``: the ranking into a Label Studio project.

Each ranked image is matched to the project's task whose image it is, by file
name (the task's reference as ``annot retrain`` stores it,
``data/upload/3/ab12cd34-x.png``, or the plain name Label Studio shows), and
gets one prediction through ``label-studio-sdk``:

- ``result``: the image's detections at or above ``--push-threshold``, in the
  project's labels (the writer ``annot predict`` and ``annot serve`` use);
- ``score``: 1 - the image's uncertainty (:func:`labelstudio_score`), so the
  most uncertain task has the lowest score: Label Studio's Data Manager sorts
  on it, and its "Uncertainty sampling" queue serves the lowest first;
- ``cluster``: the diversity cluster, which the same queue spreads over;
- ``model_version``: the model's label. The project's ``model_version`` is set
  to it, because Label Studio's uncertainty sampling reads only the predictions
  of the project's current model version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from annot.errors import AnnotError


def labelstudio_score(uncertainty: float, agg: str) -> float:
    """1 - the uncertainty, in [0, 1]. Every aggregation but ``sum`` is
    already in [0, 1]; a sum u is squashed to u / (1 + u) first. Both keep
    the order, so Label Studio's order is ``annot rank``'s."""
    u = max(float(uncertainty), 0.0)
    if agg == "sum":
        u = u / (1.0 + u)
    return round(1.0 - min(u, 1.0), 6)


@dataclass
class PushResult:
    pushed: int = 0
    unmatched: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    sampling: str | None = None  # the project's sampling mode


def task_names(task: dict) -> list[str]:
    """The names a ranked image may have for this task: the stored path, the
    path without Label Studio's upload prefix, and the bare file name (a
    ``/data/local-files/?d=data/images/a.png`` task is ``a.png`` to a
    ranking of ``data/images``)."""
    from annot.converters.labelstudio_reader import _image_ref
    from annot.converters.labelstudio_refs import file_name_of

    ref = _image_ref(task)
    if not isinstance(ref, str):
        return []
    names = {file_name_of(ref, keep_upload_prefix=True)[0].lstrip("/"), file_name_of(ref)[0].lstrip("/")}
    return sorted(names | {n.rsplit("/", 1)[-1] for n in names})


def match_tasks(tasks: list[dict], image_names: list[str]) -> tuple[dict[str, int], list[str], list[str]]:
    """image name -> task id, (unmatched names, ambiguous names). A name
    matches by its whole relative path first, then by its last part."""
    by_name: dict[str, set[int]] = {}
    for t in tasks:
        for n in task_names(t):
            by_name.setdefault(n, set()).add(t["id"])
    matched, unmatched, ambiguous = {}, [], []
    for name in image_names:
        ids = by_name.get(name) or by_name.get(name.rsplit("/", 1)[-1]) or set()
        if len(ids) == 1:
            matched[name] = next(iter(ids))
        elif ids:
            ambiguous.append(name)
        else:
            unmatched.append(name)
    return matched, unmatched, ambiguous


def push(url: str, token: str | None, project_id: int, rows: list[dict], instances: dict[str, tuple],
         version: str, agg: str, simplify: float) -> PushResult:
    """``rows``: the ranking; ``instances[name]`` = (instances at the image's
    size, (height, width)) for the regions."""
    from label_studio_sdk.client import LabelStudio

    from annot.converters.labelstudio_config import LabelConfig
    from annot.training.retrain import _one_line, export_tasks

    tasks = export_tasks(url, token, project_id)
    try:
        ls = LabelStudio(base_url=url, api_key=token)
        project = ls.projects.get(id=project_id)
        config = LabelConfig.from_xml(project.label_config or "", f"project {project_id}'s label config")
        matched, unmatched, ambiguous = match_tasks(tasks, [r["image"] for r in rows])
        out = PushResult(unmatched=unmatched, ambiguous=ambiguous, sampling=getattr(project, "sampling", None))
        for r in rows:
            task = matched.get(r["image"])
            if task is None:
                continue
            found, size = instances.get(r["image"], ([], None))
            result = _result(found, size, config, version, simplify) if size else []
            ls.predictions.create(task=task, result=result, score=labelstudio_score(r["score"], agg),
                                  cluster=r["cluster"], model_version=version)
            out.pushed += 1
        if out.pushed:
            ls.projects.update(id=project_id, model_version=version)
    except AnnotError:
        raise
    except Exception as e:  # the SDK raises its ApiError, httpx's errors, ...
        raise AnnotError(f"Label Studio at {url}: cannot write predictions to project {project_id}: "
                         f"{_one_line(e)}") from None
    return out


def _result(instances, size, config, version: str, simplify: float) -> list[dict]:
    from annot.converters.labelstudio_writer import predicted_image, to_tasks
    from annot.model import Image
    from annot.options import ConvertOptions
    from annot.report import Report

    h, w = size
    ds, _ = predicted_image(Image(1, "image", w, h), instances, config.label_for)
    (task,) = to_tasks(ds, config, ConvertOptions(as_="predictions", model_version=version, simplify=simplify),
                       Report("skip"))
    return task["predictions"][0]["result"]
