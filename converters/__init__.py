"""Readers and writers between annotation tools' formats and the COCO core.

One module per direction and format (``labelme_reader``, ``voc_writer``, ...);
:mod:`annot.formats` names them. Tool-specific conventions (Label Studio
percent coordinates and brush RLE, VOC 1-based boxes, YOLO fractions) live
only here.
"""
