"""The image table of a data set: ids, file names, sizes, scene types and tags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from labelgate.core._typing import BoolArray, IntArray, ObjectArray
from labelgate.errors import ValidationError

__all__ = ["Images"]


def _object_array(items: Sequence[Any]) -> ObjectArray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Images:
    """One row per image, one array per field.

    Attributes
    ----------
    id : (n,) int64
        Unique image ids.
    file_name : (n,) object
        Path relative to the data set root, as the source format names it.
    width, height : (n,) int64
        Pixels; 0 when unknown (e.g. a results file without its ground truth).
    scene_type : (n,) object
        Free text (``"urban"``, ``"highway"``); empty when none.
    tags : (n,) object
        Tuple of str per image.

    Examples
    --------
    >>> imgs = Images.create(id=[7, 3], file_name=["a.jpg", "b.jpg"], width=[640, 10],
    ...                      height=[480, 5])
    >>> imgs.index_of(np.array([3, 7, 9])).tolist()
    [1, 0, -1]
    """

    id: IntArray
    file_name: ObjectArray
    width: IntArray
    height: IntArray
    scene_type: ObjectArray
    tags: ObjectArray

    def __post_init__(self) -> None:
        for name in ("id", "width", "height"):
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind not in "iu" and arr.size:
                if arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr)):
                    arr = arr.astype(np.int64)
                else:
                    raise ValidationError(f"expected integers, got dtype {arr.dtype}", field=name)
            object.__setattr__(self, name, arr.astype(np.int64, copy=False))
        n = len(self.id)
        for f in fields(self):
            value = getattr(self, f.name)
            if value.shape != (n,):
                raise ValidationError(f"expected shape ({n},), got {value.shape}", field=f.name)
        problem = self._first_problem()
        if problem is not None:
            raise problem
        for f in fields(self):
            getattr(self, f.name).setflags(write=False)

    def _first_problem(self) -> ValidationError | None:
        for name in ("width", "height"):
            bad = np.flatnonzero(getattr(self, name) < 0)
            if len(bad):
                row = int(bad[0])
                return ValidationError(
                    f"expected {name} >= 0, got {getattr(self, name)[row]}", field=name, row=row
                )
        if len(self.id):
            order = np.argsort(self.id, kind="stable")
            dup = np.flatnonzero(self.id[order[1:]] == self.id[order[:-1]])
            if len(dup):
                row = int(order[dup[0] + 1])
                return ValidationError(f"duplicate image id {self.id[row]}", field="id", row=row)
        return None

    @classmethod
    def create(
        cls,
        *,
        id: Any,
        file_name: Sequence[str] | None = None,
        width: Any = None,
        height: Any = None,
        scene_type: Sequence[str] | None = None,
        tags: Sequence[tuple[str, ...]] | None = None,
    ) -> Images:
        """Build the table, filling omitted fields (names from ids, sizes 0, no scene, no tags)."""
        ids = np.asarray(id, dtype=np.int64).reshape(-1)
        n = len(ids)
        return cls(
            id=ids,
            file_name=_object_array(
                file_name if file_name is not None else [f"{i}" for i in ids.tolist()]
            ),
            width=np.zeros(n, np.int64) if width is None else np.asarray(width),
            height=np.zeros(n, np.int64) if height is None else np.asarray(height),
            scene_type=_object_array(scene_type if scene_type is not None else [""] * n),
            tags=_object_array(tags if tags is not None else [()] * n),
        )

    @classmethod
    def empty(cls) -> Images:
        """A table with no images."""
        return cls.create(id=np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.id)

    def __getitem__(self, index: Any) -> Images:
        """Select rows by a boolean mask, an integer index array or a slice."""
        idx = np.atleast_1d(np.arange(len(self))[index]).astype(np.int64)
        return Images(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def index_of(self, image_ids: IntArray) -> IntArray:
        """(n,) the row of each image id; -1 where the id is not in the table."""
        image_ids = np.asarray(image_ids, dtype=np.int64)
        if len(self) == 0:
            return np.full(len(image_ids), -1, dtype=np.int64)
        order = np.argsort(self.id, kind="stable")
        sorted_ids = self.id[order]
        pos = np.minimum(np.searchsorted(sorted_ids, image_ids), len(order) - 1)
        return np.where(sorted_ids[pos] == image_ids, order[pos], -1).astype(np.int64)

    @property
    def has_size(self) -> BoolArray:
        """(n,) True where width and height are known."""
        return (self.width > 0) & (self.height > 0)

    @staticmethod
    def concat(parts: Sequence[Images]) -> Images:
        """Concatenate tables (ids must stay unique)."""
        if not parts:
            return Images.empty()
        return Images(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Images)}
        )

    def replace(self, **changes: Any) -> Images:
        """Return a copy with some fields replaced (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Images(**values)
