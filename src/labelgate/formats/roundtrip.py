"""Write a data set in a format, read it back, and measure what survived.

Used by ``labelgate demo`` and the cross-format tests: a conversion is only trusted when
the boxes and classes that come back equal the ones that went out, within the precision
the format writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.annotations import Kind
from labelgate.core.dataset import Dataset
from labelgate.formats._base import Dropped
from labelgate.formats.registry import FORMATS, read, write

__all__ = ["BoxAgreement", "RoundTrip", "compare_boxes", "roundtrip"]


@dataclass(frozen=True, slots=True)
class BoxAgreement:
    """How two readings of the same data set agree on (image, class, box).

    Rows are paired by image file name, then class name, then sorted coordinates; boxes are
    compared only where both sides hold the same number of objects per (image, class).
    """

    left: int  # geometric annotations on the left
    right: int  # ... and on the right
    paired: int  # annotations paired by image, class and order
    mismatched_groups: int  # (image, class) groups whose counts differ
    max_error_px: float  # largest coordinate difference over paired boxes

    @property
    def identical(self) -> bool:
        """Same counts everywhere (coordinates may differ by ``max_error_px``)."""
        return self.left == self.right == self.paired and self.mismatched_groups == 0


def _parts(dataset: Dataset) -> tuple[Any, Any, IntArray, IntArray, FloatArray]:
    """Image base names, class names, and per geometric annotation its image row and class."""
    ann = dataset.annotations
    ann = ann[ann.kind != Kind.TAG]
    base_names = np.array(
        [Path(str(n)).name for n in dataset.images.file_name.tolist()], dtype=object
    )
    class_names = np.array((*dataset.taxonomy.names, "?"), dtype=object)
    return (
        base_names,
        class_names,
        dataset.images.index_of(ann.image_id),
        dataset.taxonomy.position(ann.class_id),  # -1 picks the trailing "?"
        ann.bbox,
    )


def _codes(
    parts: tuple[Any, Any, IntArray, IntArray, FloatArray], images: Any, classes: Any
) -> IntArray:
    base_names, class_names, image_rows, class_rows, _ = parts
    image_code = np.searchsorted(images, base_names)[image_rows]
    class_code = np.searchsorted(classes, class_names)[class_rows]
    codes: IntArray = image_code * len(classes) + class_code
    return codes


def compare_boxes(left: Dataset, right: Dataset, *, decimals: int = 3) -> BoxAgreement:
    """Pair the boxes of two readings of one data set and measure their differences.

    Parameters
    ----------
    left, right
        The same data set, e.g. before and after a format round trip. Images are matched
        by file name (without folders), classes by name.
    decimals
        Coordinates are rounded to this many decimals for ordering within a group only, so
        that tiny format rounding does not reorder nearly equal boxes.
    """
    left_parts, right_parts = _parts(left), _parts(right)
    images = np.unique(np.concatenate([left_parts[0], right_parts[0]]))
    classes = np.unique(np.concatenate([left_parts[1], right_parts[1]]))
    left_codes = _codes(left_parts, images, classes)
    right_codes = _codes(right_parts, images, classes)
    left_boxes, right_boxes = left_parts[4], right_parts[4]
    size = len(images) * len(classes)
    left_counts = np.bincount(left_codes, minlength=size)
    right_counts = np.bincount(right_codes, minlength=size)
    same = left_counts == right_counts
    keep_left = same[left_codes]
    keep_right = same[right_codes]

    def ordered(codes: IntArray, boxes: FloatArray) -> tuple[IntArray, FloatArray]:
        rounded = np.round(boxes, decimals)
        order = np.lexsort((rounded[:, 3], rounded[:, 2], rounded[:, 1], rounded[:, 0], codes))
        return codes[order], boxes[order]

    lc, lb = ordered(left_codes[keep_left], left_boxes[keep_left])
    rc, rb = ordered(right_codes[keep_right], right_boxes[keep_right])
    assert np.array_equal(lc, rc)  # same per-group counts, same sort keys
    error = float(np.abs(lb - rb).max()) if len(lb) else 0.0
    return BoxAgreement(
        left=len(left_codes),
        right=len(right_codes),
        paired=len(lc),
        mismatched_groups=int((~same).sum()),
        max_error_px=error,
    )


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One format's round trip: what was written, what was dropped, what came back."""

    format: str
    path: Path
    write_seconds: float
    read_seconds: float
    images: int
    dropped: list[Dropped] = field(default_factory=list)
    agreement: BoxAgreement | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        agreement = self.agreement
        return {
            "format": self.format,
            "path": str(self.path),
            "write_seconds": round(self.write_seconds, 4),
            "read_seconds": round(self.read_seconds, 4),
            "images": self.images,
            "annotations_written": agreement.left if agreement else None,
            "annotations_read": agreement.right if agreement else None,
            "identical_boxes_and_classes": agreement.identical if agreement else None,
            "max_box_error_px": agreement.max_error_px if agreement else None,
            "dropped": [
                {"what": d.what, "count": d.count, "detail": d.detail} for d in self.dropped
            ],
        }


def roundtrip(dataset: Dataset, format: str, target: Path, *, overwrite: bool = False) -> RoundTrip:
    """Write ``dataset`` as ``format`` at ``target``, read it back, compare boxes and classes.

    YOLO needs image sizes that its files do not hold; they are taken from ``dataset``
    (as a caller with the image folder would get them from the image headers).
    """
    started = time.perf_counter()
    report = write(dataset, target, format, overwrite=overwrite)
    written = time.perf_counter()
    if format == "yolo":
        from labelgate.formats.yolo import read_yolo

        sizes = {
            str(name): (int(w), int(h))
            for name, w, h in zip(
                dataset.images.file_name.tolist(),
                dataset.images.width.tolist(),
                dataset.images.height.tolist(),
            )
        }
        again = read_yolo(target, image_sizes=sizes)
    else:
        again = read(target, format)
    finished = time.perf_counter()
    assert format in FORMATS
    return RoundTrip(
        format=format,
        path=target,
        write_seconds=written - started,
        read_seconds=finished - written,
        images=len(again.images),
        dropped=list(report.dropped),
        agreement=compare_boxes(dataset, again),
    )
