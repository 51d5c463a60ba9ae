"""``python -m annot``: the command line, as ``torchrun -m annot train ...`` starts it."""

from annot.cli import entry

entry()
