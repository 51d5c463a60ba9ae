"""annot: annotation-to-training workflow suite.

The core package holds what every other part builds on: the COCO-shaped data
model (:mod:`annot.model`), geometry and coordinate conventions
(:mod:`annot.geometry`), user-facing errors (:mod:`annot.errors`) and the CLI.
"""

__version__ = "0.1.0"
