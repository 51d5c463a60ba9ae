"""Model plugins behind one :class:`~annot.plugins.predictor.Predictor` interface.

Predictors are found through the ``annot.predictors`` entry-point group
(:mod:`annot.plugins.registry`); the built-ins register there too. Only the
GrabCut fallback exists so far; Mask R-CNN, SAM, ``annot predict`` and the
Label Studio ML backend are the open "Model plugins" issue.
"""
