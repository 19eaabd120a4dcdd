"""What every reader and writer shares: error collection, row-to-record mapping, reports.

Readers run in one of two modes. Strict (the default) raises the first :class:`FormatError`.
Collecting (``labelgate validate``) records every problem, skips the bad records and goes
on, so a user sees all of them at once. Either way the checks on whole columns
(``Annotations.problems``, ``Dataset.problems``) run vectorized after parsing, and
:func:`finish_dataset` turns each row-level problem back into the file's own record and
field names.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from labelgate.core._typing import IntArray
from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.taxonomy import Taxonomy
from labelgate.errors import FormatError, ValidationError

__all__ = [
    "Dropped",
    "ErrorLog",
    "WriteReport",
    "finish_dataset",
    "load_json",
    "no_cyclic_gc",
]


def load_json(path: Path, log: ErrorLog) -> Any:
    """Read and parse a JSON file; unreadable or invalid JSON stops reading with its reason."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise log.fatal(f"cannot read: {exc.strerror or exc}") from exc
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise log.fatal(f"invalid JSON: {exc}") from exc


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building or walking a big JSON tree.

    Millions of fresh objects trigger repeated full collections that find nothing (a
    parsed JSON tree has no cycles): 30-40 % of the read time of a large COCO or Label
    Studio file. Reference counting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ErrorLog:
    """Where a reader reports problems: raise at once (strict) or collect them all.

    Examples
    --------
    >>> log = ErrorLog(Path("a.json"), collect=True)
    >>> log.fail("expected a number, got 'x'", record="annotations[3]", field="bbox")
    >>> [str(e) for e in log.errors]
    ["a.json: annotations[3]: bbox: expected a number, got 'x'"]
    """

    def __init__(self, path: Path, *, collect: bool = False) -> None:
        self.path = Path(path)
        self.collect = collect
        self.errors: list[FormatError] = []

    def fail(
        self,
        message: str,
        *,
        record: str | None = None,
        field: str | None = None,
        path: Path | None = None,
    ) -> None:
        """Report one problem; raises :class:`FormatError` unless collecting."""
        error = FormatError(message, path=path or self.path, record=record, field=field)
        if not self.collect:
            raise error
        self.errors.append(error)

    def fatal(
        self,
        message: str,
        *,
        record: str | None = None,
        field: str | None = None,
        path: Path | None = None,
    ) -> FormatError:
        """Return a problem that stops reading even when collecting (raise the result)."""
        error = FormatError(message, path=path or self.path, record=record, field=field)
        if self.collect:
            self.errors.append(error)
        return error


@dataclass(frozen=True, slots=True)
class Dropped:
    """Information a writer could not express in its format."""

    what: str  # e.g. "attributes", "polygons as boxes", "scores"
    count: int  # how many values / annotations were affected
    detail: str = ""


@dataclass(slots=True)
class WriteReport:
    """What a writer wrote, and what it had to drop."""

    format: str
    path: Path
    images: int
    annotations: int
    dropped: list[Dropped] = field(default_factory=list)

    def drop(self, what: str, count: int, detail: str = "") -> None:
        """Record ``count`` items of ``what`` that the format cannot hold (ignores 0)."""
        if count:
            self.dropped.append(Dropped(what, int(count), detail))

    @property
    def lossless(self) -> bool:
        """True when nothing was dropped."""
        return not self.dropped

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by ``labelgate convert --json``)."""
        return {
            "format": self.format,
            "path": str(self.path),
            "images": self.images,
            "annotations": self.annotations,
            "dropped": [
                {"what": d.what, "count": d.count, "detail": d.detail} for d in self.dropped
            ],
        }


def finish_dataset(
    log: ErrorLog,
    annotations: Annotations,
    images: Images,
    taxonomy: Taxonomy,
    *,
    record_of: Callable[[int], str],
    field_names: Mapping[str, str] | None = None,
    path_of: Callable[[int], Path] | None = None,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """Check parsed columns, report each bad row by its record, and build the data set.

    Parameters
    ----------
    log
        The reader's error log (strict raises the first problem).
    annotations
        Built with ``Annotations.create(check=False)``: the row checks run here.
    images, taxonomy
        Already valid tables.
    record_of
        Maps an annotation row to the file's record, e.g. ``"annotations[12] (id=90211)"``.
    field_names
        Core field name -> the format's name for it (``{"class_id": "category_id"}``).
    path_of
        Maps a row to the file it came from, for folder formats (one file per image).
    info
        Free-form metadata kept on the data set.

    Returns
    -------
    Dataset
        Holding only the rows without problems (all rows in strict mode).
    """
    names = dict(field_names or {})
    bad = np.zeros(len(annotations), dtype=bool)

    def report(problems: Sequence[Any]) -> None:
        for problem in problems:
            if problem.row is None:
                raise log.fatal(problem.message, field=names.get(problem.field, problem.field))
            bad[problem.row] = True
            log.fail(
                problem.message,
                record=record_of(problem.row),
                field=names.get(problem.field, problem.field),
                path=path_of(problem.row) if path_of else None,
            )

    report(annotations.problems(first_only=not log.collect))
    keep: IntArray = np.flatnonzero(~bad)
    if bad.any():
        try:
            clean = annotations.take(keep)
        except ValidationError as exc:  # pragma: no cover - problems() and the constructor agree
            raise log.fatal(str(exc)) from exc
    else:
        # nothing to drop: seal the parsed columns rather than copy a large file's arrays
        clean = annotations._seal()
    # cross-table checks on the clean rows, mapped back to the original rows
    draft = Dataset._unchecked(clean, images, taxonomy, info or {})
    cross = draft.problems(first_only=not log.collect)
    bad2 = np.zeros(len(clean), dtype=bool)
    for problem in cross:
        original = int(keep[problem.row])
        bad2[problem.row] = True
        log.fail(
            problem.message,
            record=record_of(original),
            field=names.get(problem.field, problem.field),
            path=path_of(original) if path_of else None,
        )
    if not bad2.any():
        return draft  # problems() came back empty: the draft is a valid data set
    return Dataset(clean[~bad2], images, taxonomy, info or {})
