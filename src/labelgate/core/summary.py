"""Counts that describe a data set at a glance (``labelgate info``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labelgate.core._typing import IntArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images

__all__ = [
    "DENSITY_BUCKETS",
    "DatasetSummary",
    "density_bucket",
    "density_bucket_labels",
    "objects_per_image",
    "summarize",
]

#: Objects-per-image buckets (inclusive bounds), shared with the density breakdowns of
#: ``labelgate compare``: sparse, medium and crowded scenes, and the very crowded tail.
DENSITY_BUCKETS: tuple[tuple[int, int], ...] = ((0, 0), (1, 3), (4, 10), (11, 30), (31, 2**62))


def density_bucket_labels() -> list[str]:
    """Labels of :data:`DENSITY_BUCKETS`: ``["0", "1-3", "4-10", "11-30", ">30"]``."""
    labels = []
    for low, high in DENSITY_BUCKETS:
        if low == high:
            labels.append(str(low))
        elif high >= 2**62:
            labels.append(f">{low - 1}")
        else:
            labels.append(f"{low}-{high}")
    return labels


def density_bucket(per_image: IntArray) -> IntArray:
    """Index into :data:`DENSITY_BUCKETS` of each object count (the buckets tile 0..inf).

    Examples
    --------
    >>> density_bucket(np.array([0, 1, 3, 4, 30, 31])).tolist()
    [0, 1, 1, 2, 3, 4]
    """
    lows = np.array([low for low, _ in DENSITY_BUCKETS])
    out: IntArray = np.searchsorted(lows, per_image, side="right") - 1
    return out


def objects_per_image(annotations: Annotations, images: Images) -> IntArray:
    """(len(images),) geometric annotations (tags excluded) on each image of the table."""
    rows = images.index_of(annotations.image_id[annotations.kind != Kind.TAG])
    out: IntArray = np.bincount(rows[rows >= 0], minlength=len(images))
    return out


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """What ``labelgate info`` reports; :meth:`to_dict` is its stable JSON form."""

    images: int
    annotations: int
    per_class: dict[str, int]
    per_kind: dict[str, int]
    objects_per_image: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (documented in docs/cli.md)."""
        return {
            "images": self.images,
            "annotations": self.annotations,
            "per_class": self.per_class,
            "objects_per_image": self.objects_per_image,
        }


def summarize(dataset: Dataset) -> DatasetSummary:
    """Count annotations per class and kind, and objects per image.

    Objects per image count the geometric annotations (tags excluded) on every image of
    the table, so images without objects count as 0.

    Examples
    --------
    >>> from labelgate.core import Annotations, Images, Taxonomy
    >>> ds = Dataset(Annotations.create(image_id=[1, 1, 2], class_id=[1, 2, 1],
    ...                                 bbox=[[0, 0, 1, 1]] * 3),
    ...              Images.create(id=[1, 2, 3]), Taxonomy.from_names(["car", "dog"]))
    >>> s = summarize(ds)
    >>> s.per_class, s.objects_per_image["mean"], s.objects_per_image["buckets"]["0"]
    ({'car': 2, 'dog': 1}, 1.0, 1)
    """
    ann = dataset.annotations
    taxonomy = dataset.taxonomy
    class_ids, counts = ann.counts_by_class()
    names = taxonomy.names_of(class_ids)
    per_class = {name: 0 for name in taxonomy.names}
    per_class.update({name: int(c) for name, c in zip(names, counts.tolist())})
    kind_counts = np.bincount(ann.kind, minlength=len(Kind))
    per_kind = {k.name.lower(): int(kind_counts[k]) for k in Kind if kind_counts[k]}

    per_image = objects_per_image(ann, dataset.images)
    if len(per_image):
        stats: dict[str, Any] = {
            "min": int(per_image.min()),
            "max": int(per_image.max()),
            "mean": round(float(per_image.mean()), 4),
            "median": float(np.median(per_image)),
            "p90": float(np.percentile(per_image, 90)),
        }
    else:
        stats = {"min": 0, "max": 0, "mean": 0.0, "median": 0.0, "p90": 0.0}
    counts_per_bucket = np.bincount(density_bucket(per_image), minlength=len(DENSITY_BUCKETS))
    stats["buckets"] = dict(zip(density_bucket_labels(), counts_per_bucket.tolist()))
    return DatasetSummary(len(dataset.images), len(ann), per_class, per_kind, stats)
