"""A data set: annotations, the images they sit on, and the taxonomy they use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelgate.core._typing import IntArray
from labelgate.core.annotations import Annotations, Kind, Problem
from labelgate.core.images import Images
from labelgate.core.taxonomy import Taxonomy

__all__ = ["OUTSIDE_TOLERANCE_PX", "Dataset"]

#: How far (pixels) a box may reach past the image border before it counts as outside.
#: Real exports round coordinates, so a box ending at width + 0.5 is not an error.
OUTSIDE_TOLERANCE_PX = 1.0


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """Annotations, images and taxonomy, checked against each other.

    Every annotation's image must be in ``images`` and its class in ``taxonomy``; a box
    must lie inside its image (within :data:`OUTSIDE_TOLERANCE_PX`) where the size is known.
    ``info`` carries free-form metadata a format wants to keep (COCO ``info``/``licenses``).

    Examples
    --------
    >>> ds = Dataset(
    ...     Annotations.create(image_id=[1], class_id=[9], bbox=[[0, 0, 1, 1]]),
    ...     Images.create(id=[1], width=[4], height=[4]),
    ...     Taxonomy.from_names(["car"]))
    Traceback (most recent call last):
    ...
    labelgate.errors.ValidationError: class_id[0]: unknown class id 9 (taxonomy has [1])
    """

    annotations: Annotations
    images: Images
    taxonomy: Taxonomy
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = self.problems(first_only=True)
        if problems:
            raise problems[0].error()

    @classmethod
    def _unchecked(
        cls, annotations: Annotations, images: Images, taxonomy: Taxonomy, info: dict[str, Any]
    ) -> Dataset:
        """Build without the cross-table checks; the caller runs ``problems()`` itself."""
        self = object.__new__(cls)
        for name, value in (
            ("annotations", annotations),
            ("images", images),
            ("taxonomy", taxonomy),
            ("info", info),
        ):
            object.__setattr__(self, name, value)
        return self

    def problems(self, *, first_only: bool = False) -> list[Problem]:
        """Cross-table problems (the tables validate themselves on construction)."""
        ann = self.annotations
        out: list[Problem] = []
        image_row = self.images.index_of(ann.image_id)
        for row in np.flatnonzero(image_row < 0)[: 1 if first_only else None].tolist():
            out.append(Problem("image_id", row, f"unknown image id {ann.image_id[row]}"))
        if out and first_only:
            return out
        class_pos = self.taxonomy.position(ann.class_id)
        known = self.taxonomy.ids.tolist()
        shown = known if len(known) <= 10 else [*known[:10], "..."]
        for row in np.flatnonzero(class_pos < 0)[: 1 if first_only else None].tolist():
            out.append(
                Problem(
                    "class_id", row, f"unknown class id {ann.class_id[row]} (taxonomy has {shown})"
                )
            )
        if out and first_only:
            return out
        outside = self.outside_image(image_row)
        for row in np.flatnonzero(outside)[: 1 if first_only else None].tolist():
            r = image_row[row]
            out.append(
                Problem(
                    "bbox",
                    row,
                    f"box {ann.bbox[row].tolist()} lies outside its "
                    f"{self.images.width[r]}x{self.images.height[r]} image",
                )
            )
        return out

    def outside_image(
        self, image_row: IntArray | None = None
    ) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """(n,) True for boxes reaching past their image's border (sizes known only)."""
        ann = self.annotations
        if image_row is None:
            image_row = self.images.index_of(ann.image_id)
        safe = np.maximum(image_row, 0)
        width = (
            self.images.width[safe].astype(np.float64) if len(self.images) else np.zeros(len(ann))
        )
        height = (
            self.images.height[safe].astype(np.float64) if len(self.images) else np.zeros(len(ann))
        )
        known = (image_row >= 0) & (width > 0) & (height > 0) & (ann.kind != Kind.TAG)
        tol = OUTSIDE_TOLERANCE_PX
        with np.errstate(invalid="ignore"):
            beyond = (
                (ann.bbox[:, 0] < -tol)
                | (ann.bbox[:, 1] < -tol)
                | (ann.bbox[:, 2] > width + tol)
                | (ann.bbox[:, 3] > height + tol)
            )
        return known & beyond  # type: ignore[no-any-return]  # numpy bool ops are typed Any

    def select_images(self, mask: Any) -> Dataset:
        """Keep a subset of images and only their annotations."""
        images = self.images[mask]
        keep = np.isin(self.annotations.image_id, images.id)
        return Dataset(self.annotations[keep], images, self.taxonomy, dict(self.info))

    def replace(self, **changes: Any) -> Dataset:
        """Return a copy with some parts replaced (checked again)."""
        values: dict[str, Any] = {
            "annotations": self.annotations,
            "images": self.images,
            "taxonomy": self.taxonomy,
            "info": self.info,
        }
        values.update(changes)
        return Dataset(**values)
