"""Read a long table of categorical ratings: a CSV with columns ``item,annotator,label``.

One row per rating; a missing rating is an absent row. Items, annotators and labels are
strings, coded here into integer arrays for :mod:`labelgate.core.agreement`, with the string
vocabularies kept beside them. Labels that all parse as finite numbers are ordered by value
(so ordinal and interval statistics see ``2 < 10``) and carry those values; other labels are
ordered as strings.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelgate.core._typing import FloatArray, IntArray
from labelgate.errors import FormatError

__all__ = ["RATING_COLUMNS", "Ratings", "read_ratings"]

RATING_COLUMNS = ("item", "annotator", "label")


@dataclass(frozen=True, slots=True, eq=False)  # == on arrays is ambiguous
class Ratings:
    """A rating table as codes plus vocabularies.

    Attributes
    ----------
    item_id, annotator_id, label_id
        (n,) int64 codes into ``items``, ``annotators`` and ``categories``.
    items, annotators, categories
        The strings behind the codes; items and annotators in order of first appearance.
    values
        (len(categories),) numeric value of each category when every label is a finite
        number, else ``None``.
    """

    item_id: IntArray
    annotator_id: IntArray
    label_id: IntArray
    items: tuple[str, ...]
    annotators: tuple[str, ...]
    categories: tuple[str, ...]
    values: FloatArray | None


def _first_appearance_codes(column: list[str]) -> tuple[IntArray, tuple[str, ...]]:
    names, first, inverse = np.unique(np.array(column, dtype=object), return_index=True,
                                      return_inverse=True)  # fmt: skip
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse].astype(np.int64), tuple(str(n) for n in names[order])


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_ratings(path: Path | str, *, numeric: bool = False) -> Ratings:
    r"""Read ``item,annotator,label`` rows (header required, extra columns ignored).

    Parameters
    ----------
    path
        The CSV file.
    numeric
        Require every label to be a finite number (ordinal, interval and ratio levels).

    Returns
    -------
    Ratings

    Raises
    ------
    FormatError
        Naming the file, the line and the column: a missing header column, no rows, an
        empty field, a label that is not a number when ``numeric``, or a second rating of the same
        item by the same annotator.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ratings.csv"
    >>> _ = path.write_text("item,annotator,label\n1,ann,dog\n1,bob,cat\n2,ann,dog\n")
    >>> ratings = read_ratings(path)
    >>> ratings.categories, ratings.label_id, ratings.item_id, ratings.annotators
    (('cat', 'dog'), array([1, 0, 1]), array([0, 0, 1]), ('ann', 'bob'))
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise FormatError("empty file; expected a header item,annotator,label", path=path)
        header = [name.strip() for name in header]
        missing = [name for name in RATING_COLUMNS if name not in header]
        if missing:
            raise FormatError(
                f"header lacks column(s) {', '.join(missing)}; expected item,annotator,label, "
                f"got {','.join(header)}",
                path=path,
                record="line 1",
            )
        where = [header.index(name) for name in RATING_COLUMNS]
        width = max(where) + 1
        columns: tuple[list[str], list[str], list[str]] = ([], [], [])
        lines: list[int] = []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines carry no rating
            line = reader.line_num
            if len(row) < width:
                raise FormatError(
                    f"expected {len(header)} fields, got {len(row)}",
                    path=path,
                    record=f"line {line}",
                )
            for name, index, column in zip(RATING_COLUMNS, where, columns):
                cell = row[index].strip()
                if not cell:
                    raise FormatError("empty", path=path, record=f"line {line}", field=name)
                column.append(cell)
            lines.append(line)
    items, annotators, labels = columns
    if not labels:
        raise FormatError("no ratings after the header", path=path, record="line 2")
    numbers = [_number(text) for text in labels]
    parsed = all(value is not None for value in numbers)
    if numeric and not parsed:
        bad = next(i for i, value in enumerate(numbers) if value is None)
        raise FormatError(
            f"expected a finite number for this level, got {labels[bad]!r}",
            path=path,
            record=f"line {lines[bad]}",
            field="label",
        )
    item_id, item_names = _first_appearance_codes(items)
    annotator_id, annotator_names = _first_appearance_codes(annotators)
    key = item_id * max(len(annotator_names), 1) + annotator_id
    _, first_row, inverse = np.unique(key, return_index=True, return_inverse=True)
    repeated = np.flatnonzero(first_row[inverse] != np.arange(key.size))
    if repeated.size:
        second = int(repeated[0])
        first = int(first_row[inverse[second]])
        raise FormatError(
            f"annotator {annotators[second]!r} rated item {items[second]!r} again "
            f"(first on line {lines[first]}); one rating per item and annotator",
            path=path,
            record=f"line {lines[second]}",
            field="annotator",
        )
    values: FloatArray | None = None
    if parsed and labels:
        numeric_labels = np.array(numbers, dtype=np.float64)
        values, first_label, label_inverse = np.unique(
            numeric_labels, return_index=True, return_inverse=True
        )
        categories = tuple(labels[i] for i in first_label)  # "1" and "1.0" are one category
        label_id = label_inverse.astype(np.int64)
    else:
        names, label_inverse = np.unique(np.array(labels, dtype=object), return_inverse=True)
        categories = tuple(str(n) for n in names)
        label_id = label_inverse.astype(np.int64)
    return Ratings(
        item_id=item_id,
        annotator_id=annotator_id,
        label_id=label_id,
        items=item_names,
        annotators=annotator_names,
        categories=categories,
        values=values,
    )
