"""The Label Studio ML backend: ``annot serve``.

:mod:`.app` (HTTP, FastAPI), :mod:`.backend` (what each request does),
:mod:`.models` (detector and segmenter, loaded in the background),
:mod:`.images` and :mod:`.labelstudio` (task images, Label Studio's token),
:mod:`.training` and :mod:`.retrain_job` (webhooks to retrain jobs),
:mod:`.config`, :mod:`.logs`, :mod:`.cli`.
"""
