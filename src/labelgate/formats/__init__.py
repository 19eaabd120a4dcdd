"""Readers and writers: COCO, Pascal VOC, YOLO, CVAT XML, Label Studio JSON."""

from labelgate.formats._base import Dropped, ErrorLog, WriteReport
from labelgate.formats.registry import FORMATS, FormatInfo, detect_format, read, write

__all__ = [
    "FORMATS",
    "Dropped",
    "ErrorLog",
    "FormatInfo",
    "WriteReport",
    "detect_format",
    "read",
    "write",
]
