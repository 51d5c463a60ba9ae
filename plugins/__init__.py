"""Model plugins (Mask R-CNN, Segment Anything, GrabCut) and the Label Studio ML backend.

Not built yet: see the open issue "Model plugins". Nothing here is importable
API until then.
"""
