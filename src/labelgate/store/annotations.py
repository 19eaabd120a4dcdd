"""Bulk annotation rows: one set-based write per container, one read per revision set.

``insert_annotations`` writes an ``Annotations`` container; ``load_annotations`` reads any
set of revisions back into one container.

Writes go through the DB-API directly: ``executemany`` of plain tuples on SQLite, ``COPY``
on PostgreSQL (binary records built by numpy where a chunk of rows has one layout, as boxes
do); one ORM object per annotation would make a 400,000-box import take minutes.
Variable-length geometry is one float64 blob (``geometry``) plus one int32 blob (``parts``)
per object:

========  ================================  =======================================
kind      ``geometry`` (float64)            ``parts`` (int32)
========  ================================  =======================================
polygon   x, y of every point, ring by ring  points per ring
mask      RLE run lengths                    height, width
keypoints x, y, visibility per keypoint      (none)
box, tag  (none)                             (none)
========  ================================  =======================================

Reading takes the DB-API cursor's tuples (no SQLAlchemy ``Row`` objects), concatenates the
blobs of every row and decodes them with one ``np.frombuffer``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import orjson
from sqlalchemy import JSON, Boolean, Dialect, LargeBinary, Select, select
from sqlalchemy.orm import Session

from labelgate.core._typing import IntArray
from labelgate.core.annotations import Annotations, AttributeColumn, Kind
from labelgate.core.ragged import Ragged, gather_ranges
from labelgate.store.models import AnnotationRow, Base, RevisionRow

__all__ = ["COLUMNS", "allocate_ids", "bulk_insert", "insert_annotations", "load_annotations"]

#: Insert order of the ``annotations`` columns (``id`` is generated).
COLUMNS = (
    "revision_id",
    "image_id",
    "object_key",
    "class_id",
    "kind",
    "x0",
    "y0",
    "x1",
    "y1",
    "score",
    "source",
    "track_id",
    "z_order",
    "occluded",
    "truncated",
    "iscrowd",
    "difficult",
    "area",
    "geometry",
    "parts",
    "attributes",
)

_BOX = Kind.BOX.value  # a plain int: an IntEnum comparison costs a microsecond


def _split_bytes(values: np.ndarray[Any, Any], offsets: IntArray, rows: IntArray) -> list[bytes]:
    """``values[offsets[r]:offsets[r+1]]`` as bytes for each row in ``rows``."""
    raw = values.tobytes()
    width = values.itemsize * (int(np.prod(values.shape[1:])) if values.ndim > 1 else 1)
    starts = (offsets[rows] * width).tolist()
    stops = (offsets[rows + 1] * width).tolist()
    return [raw[a:b] for a, b in zip(starts, stops)]


def _encode_geometry(ann: Annotations) -> tuple[list[bytes | None], list[bytes | None]]:
    """Per-object ``geometry`` and ``parts`` blobs (None where the kind has none)."""
    n = len(ann)
    geometry: list[bytes | None] = [None] * n
    parts: list[bytes | None] = [None] * n
    kind = ann.kind
    if not n or kind.max() <= _BOX:  # tags and boxes (a usual save): no blobs
        return geometry, parts
    polygons = np.flatnonzero(kind == Kind.POLYGON)
    if len(polygons):
        # point offsets of each object's first and last ring
        ring_starts = ann.ring_offsets
        point_offsets = ann.rings.offsets[ring_starts]  # (n + 1,) points per object
        coords = np.ascontiguousarray(ann.rings.values, dtype="<f8")
        ring_lengths = np.diff(ann.rings.offsets).astype("<i4")
        for row, g, p in zip(
            polygons.tolist(),
            _split_bytes(coords, point_offsets, polygons),
            _split_bytes(ring_lengths, ring_starts, polygons),
        ):
            geometry[row] = g
            parts[row] = p
    masks = np.flatnonzero(kind == Kind.MASK)
    if len(masks):
        counts = np.ascontiguousarray(ann.rle_counts.values, dtype="<f8")
        sizes = ann.rle_size[masks].astype("<i4")
        for row, g, size in zip(
            masks.tolist(), _split_bytes(counts, ann.rle_counts.offsets, masks), sizes
        ):
            geometry[row] = g
            parts[row] = size.tobytes()
    points = np.flatnonzero(kind == Kind.KEYPOINTS)
    if len(points):
        values = np.ascontiguousarray(ann.keypoints.values, dtype="<f8")
        for row, g in zip(points.tolist(), _split_bytes(values, ann.keypoints.offsets, points)):
            geometry[row] = g
    return geometry, parts


def _encode_attributes(ann: Annotations) -> list[str | None]:
    """Per-object JSON of the attributes it carries (None when it carries none)."""
    n = len(ann)
    out: list[str | None] = [None] * n
    if not ann.attributes:
        return out
    names = sorted(ann.attributes)
    present = np.column_stack([ann.attributes[name].present for name in names])
    rows = np.flatnonzero(present.any(axis=1))
    if not len(rows):
        return out
    columns = [ann.attributes[name].values[rows].tolist() for name in names]
    flags = present[rows].tolist()
    for i, row in enumerate(rows.tolist()):
        carried = {name: col[i] for name, col, here in zip(names, columns, flags[i]) if here}
        out[row] = orjson.dumps(carried).decode()
    return out


def _nullable(values: np.ndarray[Any, Any]) -> list[Any]:
    """Floats as a list with None for NaN (SQLite would store NaN as NULL anyway)."""
    out: list[Any] = values.tolist()
    nan = np.flatnonzero(np.isnan(values))
    for i in nan.tolist():
        out[i] = None
    return out


def _columns(revision_id: IntArray, ann: Annotations, image_id: int | None) -> list[list[Any]]:
    geometry, parts = _encode_geometry(ann)
    bbox = ann.bbox
    # a human save's boxes are all finite: one test spares the NaN search of four columns
    box_columns = (
        bbox.T.tolist()
        if len(bbox) and not np.isnan(bbox).any()
        else [_nullable(bbox[:, i]) for i in range(4)]
    )
    return [
        np.asarray(revision_id, dtype=np.int64).tolist(),
        ann.image_id.tolist() if image_id is None else [int(image_id)] * len(ann),
        ann.id.tolist(),
        ann.class_id.tolist(),
        ann.kind.astype(np.int64).tolist(),
        *box_columns,
        _nullable(ann.score),
        ann.source.astype(np.int64).tolist(),
        ann.track_id.tolist(),
        ann.z_order.tolist(),
        ann.occluded.tolist(),
        ann.truncated.tolist(),
        ann.iscrowd.tolist(),
        ann.difficult.tolist(),
        _nullable(ann.area),
        geometry,
        parts,
        _encode_attributes(ann),
    ]


def allocate_ids(session: Session, table: str, n: int) -> IntArray:
    """Reserve ``n`` consecutive-or-not new primary keys of ``table`` for a bulk insert.

    PostgreSQL draws them from the table's identity sequence (safe beside concurrent
    writers); SQLite takes ``max(id) + 1 ...``, safe because its transactions begin
    IMMEDIATE, so no other writer runs until this one commits.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        ids = connection.exec_driver_sql(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
            f"FROM generate_series(1, {int(n)})"
        ).scalars()
        return np.fromiter(ids, dtype=np.int64, count=n)
    top = connection.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}").scalar_one()
    return np.arange(int(top) + 1, int(top) + 1 + n, dtype=np.int64)


_Converter = Callable[[Sequence[Any]], list[Any]]
_CONVERTERS: dict[tuple[str, tuple[str, ...], str], list[_Converter | None]] = {}


def _json_text(column: Sequence[Any]) -> list[Any]:
    return [None if v is None else orjson.dumps(v).decode() for v in column]


def _ints(column: Sequence[Any]) -> list[Any]:
    # as 0/1 ints: sqlite3 binds a bool only after a failed adapter lookup (3x an int's
    # cost), and SQLAlchemy's processor is a Python call per value
    if column.count(None):
        return [None if v is None else int(v) for v in column]
    return list(map(int, column))


def _processed(process: Callable[[Any], Any]) -> _Converter:
    return lambda column: [process(v) for v in column]


def _converters(table: str, names: tuple[str, ...], dialect: Dialect) -> list[_Converter | None]:
    """Per column, what turns its Python values into what the driver binds (None: as is)."""
    key = (table, names, dialect.name)
    found = _CONVERTERS.get(key)
    if found is not None:
        return found
    model = Base.metadata.tables.get(table)
    out: list[_Converter | None] = []
    for name in names:
        convert: _Converter | None = None
        column_type = model.c[name].type if model is not None else None
        if column_type is None or isinstance(column_type, LargeBinary):
            pass  # sqlite3 binds bytes as a BLOB itself; the processor only wraps them
        elif dialect.name == "postgresql":
            if isinstance(column_type, JSON):
                convert = _json_text
        elif isinstance(column_type, Boolean):
            convert = _ints
        else:
            process = column_type.bind_processor(dialect)
            if process is not None:
                convert = _processed(process)
        out.append(convert)
    _CONVERTERS[key] = out
    return out


def bulk_insert(session: Session, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
    """Insert rows given as columns: ``COPY`` on PostgreSQL, raw ``executemany`` on SQLite.

    Runs in the caller's transaction; the column lists must have equal lengths.

    Returns
    -------
    int
        Rows written.
    """
    names = list(columns)
    values = [columns[name] for name in names]
    n = len(values[0]) if values else 0
    if n == 0:
        return 0
    connection = session.connection()
    dbapi: Any = connection.connection.dbapi_connection
    dialect = connection.dialect
    # convert as SQLAlchemy would (JSON to text, datetimes on SQLite), with the converters
    # looked up once per table layout: a save's 10 rows cost less than finding them again
    for i, convert in enumerate(_converters(table, tuple(names), dialect)):
        if convert is not None:
            values[i] = convert(values[i])
    if connection.dialect.name == "postgresql":
        _copy(dbapi, table, names, values, n)
    else:
        # the raw sqlite3 cursor: SQLAlchemy's executemany would build a dict per row
        placeholders = ", ".join(["?"] * len(names))
        cursor = dbapi.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})",
                zip(*values),
            )
        finally:
            cursor.close()
    return n


# PostgreSQL's binary COPY framing (file header, end-of-data marker) and the fixed-width
# types it can take straight from numpy, big-endian
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
_PGCOPY_TRAILER = b"\xff\xff"
_BINARY_DTYPES = {
    "bigint": ">i8",
    "integer": ">i4",
    "smallint": ">i2",
    "double precision": ">f8",
    "boolean": "?",
}
# rows per COPY statement: bounds the encoded rows held at once (~200 bytes a box)
_COPY_CHUNK_ROWS = 50_000


def _copy(dbapi: Any, table: str, names: list[str], values: list[Sequence[Any]], n: int) -> None:
    """``COPY table FROM STDIN``: binary records built by numpy where a chunk allows it.

    psycopg's ``write_row`` adapts every value of every row, and in text format each float
    costs a shortest-repr conversion (~12 us a box row, most of a 400,000-box import). A
    chunk whose columns are each either fixed-width and never NULL, or NULL throughout (a
    box's ``geometry``, a human label's ``score``) has one record layout, so numpy writes
    all its records at once; any other chunk goes through ``write_row``.
    """
    columns = ", ".join(names)
    with dbapi.cursor() as cursor:
        kinds = dict(
            cursor.execute(
                "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (table,),
            ).fetchall()
        )
        dtypes = [_BINARY_DTYPES.get(kinds.get(name, "")) for name in names]
        for start in range(0, n, _COPY_CHUNK_ROWS):
            chunk = [column[start : start + _COPY_CHUNK_ROWS] for column in values]
            records = _binary_records(dtypes, chunk)
            if records is not None:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(_PGCOPY_HEADER + records + _PGCOPY_TRAILER)
                continue
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in zip(*chunk):
                    copy.write_row(row)


def _binary_records(dtypes: list[str | None], columns: list[Sequence[Any]]) -> bytes | None:
    """The binary COPY tuples of equal-length columns, or None when they vary in layout.

    Each tuple is an int16 field count, then per field an int32 byte length (-1 for NULL)
    and the big-endian value. Values numpy would have to coerce (text anywhere, floats or
    only booleans in an integer column, integers out of the column's range) give None as
    well, so that ``write_row`` passes them on and PostgreSQL reports them as before.

    Examples
    --------
    >>> one = _binary_records([">i4", ">f8", None], [[7], [0.5], [None]])
    >>> one.hex(" ", 2)  # 3 fields | 4 bytes: 7 | 8 bytes: 0.5 | NULL
    '0003 0000 0004 0000 0007 0000 0008 3fe0 0000 0000 0000 ffff ffff'
    >>> _binary_records([">i4"], [[2**31]]) is None  # out of range: PostgreSQL says so
    True
    >>> _binary_records([">f8"], [[1.0, None]]) is None  # two layouts in one chunk
    True
    """
    n = len(columns[0])
    fields: list[tuple[str, str]] = [("count", ">i2")]
    filled: dict[str, Any] = {"count": len(columns)}
    for i, (dtype, values) in enumerate(zip(dtypes, columns)):
        nulls = values.count(None)
        fields.append((f"length{i}", ">i4"))
        if nulls == n:
            filled[f"length{i}"] = -1
            continue
        if nulls or dtype is None:
            return None
        wanted = np.dtype(dtype)
        array = np.array(values)  # inferred: int64, float64 or bool for what we accept
        if array.dtype.kind not in _ACCEPTED_KINDS[wanted.kind]:
            return None
        if wanted.kind == "i":
            bounds = np.iinfo(wanted)
            if array.min() < bounds.min or array.max() > bounds.max:
                return None
        fields.append((f"value{i}", dtype))
        filled[f"length{i}"] = wanted.itemsize
        filled[f"value{i}"] = array
    records = np.empty(n, dtype=fields)  # a list of fields is packed: no alignment padding
    for name, value in filled.items():
        records[name] = value
    return records.tobytes()


# numpy kinds of the inferred array each column kind takes without changing a value
_ACCEPTED_KINDS = {"i": "i", "f": "fi", "b": "b"}


def insert_annotations(
    session: Session,
    revision_id: IntArray | int,
    ann: Annotations,
    *,
    image_id: int | None = None,
) -> int:
    """Insert every object of ``ann`` as annotation rows of the given revision(s).

    Parameters
    ----------
    session
        Runs inside the caller's transaction: a failure leaves no row behind.
    revision_id
        One revision id for all objects, or (n,) one per object.
    ann
        The objects; ``ann.image_id`` are store image ids, ``ann.id`` becomes ``object_key``
        (stable across revisions of one task).
    image_id
        The store image of every object, in place of ``ann.image_id`` (a task's save: one
        image, without building a second container just to set the column).

    Returns
    -------
    int
        Rows written.
    """
    n = len(ann)
    if n == 0:
        return 0
    revisions = np.broadcast_to(np.asarray(revision_id, dtype=np.int64), (n,))
    columns = _columns(revisions, ann, image_id)
    return bulk_insert(session, "annotations", dict(zip(COLUMNS, columns)))


def _blob_values(
    blobs: Sequence[bytes | None], dtype: str
) -> tuple[np.ndarray[Any, Any], IntArray]:
    """Concatenate blobs into one array; return it and the (n + 1,) element offsets."""
    itemsize = np.dtype(dtype).itemsize
    if blobs.count(None) == len(blobs):  # boxes only: skip two passes over every row
        return np.zeros(0, dtype=dtype), np.zeros(len(blobs) + 1, dtype=np.int64)
    lengths = np.fromiter((len(b) if b else 0 for b in blobs), dtype=np.int64, count=len(blobs))
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum(lengths // itemsize, out=offsets[1:])
    joined = b"".join(b for b in blobs if b)
    return np.frombuffer(joined, dtype=dtype).copy(), offsets


def _rows_to_annotations(rows: Sequence[Any]) -> Annotations:
    if not rows:
        return Annotations.empty()
    cols = list(zip(*rows))
    (
        image_id,
        object_key,
        class_id,
        kind,
        x0,
        y0,
        x1,
        y1,
        score,
        source,
        track_id,
        z_order,
        occluded,
        truncated,
        iscrowd,
        difficult,
        area,
        geometry,
        parts,
        attributes,
        author_id,
    ) = cols
    n = len(rows)
    kind_arr = np.array(kind, dtype=np.uint8)
    bbox = np.array([x0, y0, x1, y1], dtype=np.float64).T.reshape(n, 4)

    geometry_values, geometry_offsets = _blob_values(geometry, "<f8")
    part_values, part_offsets = _blob_values(parts, "<i4")
    is_polygon = kind_arr == Kind.POLYGON
    is_mask = kind_arr == Kind.MASK
    is_points = kind_arr == Kind.KEYPOINTS
    # polygons: geometry = points (x, y), parts = points per ring
    ring_counts = np.where(is_polygon, np.diff(part_offsets), 0)
    ring_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(ring_counts, out=ring_offsets[1:])
    poly_part_index = _ranges(part_offsets, is_polygon)
    ring_lengths = part_values[poly_part_index].astype(np.int64)
    point_offsets = np.zeros(len(ring_lengths) + 1, dtype=np.int64)
    np.cumsum(ring_lengths, out=point_offsets[1:])
    points = geometry_values[_ranges(geometry_offsets, is_polygon)].reshape(-1, 2)
    rings = Ragged(points, point_offsets)
    # masks: geometry = run lengths, parts = (height, width)
    mask_lengths = np.where(is_mask, np.diff(geometry_offsets), 0)
    rle_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(mask_lengths, out=rle_offsets[1:])
    rle_counts = Ragged(
        geometry_values[_ranges(geometry_offsets, is_mask)].astype(np.int64), rle_offsets
    )
    rle_size = np.zeros((n, 2), dtype=np.int64)
    if is_mask.any():
        rle_size[is_mask] = part_values[_ranges(part_offsets, is_mask)].reshape(-1, 2)
    # keypoints: geometry = (x, y, v) rows
    point_lengths = np.where(is_points, np.diff(geometry_offsets), 0) // 3
    kp_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(point_lengths, out=kp_offsets[1:])
    keypoints = Ragged(
        geometry_values[_ranges(geometry_offsets, is_points)].reshape(-1, 3), kp_offsets
    )

    return Annotations.create(
        id=np.array(object_key, dtype=np.int64),
        image_id=np.array(image_id, dtype=np.int64),
        class_id=np.array(class_id, dtype=np.int64),
        kind=kind_arr,
        bbox=bbox,
        score=np.array(score, dtype=np.float64),
        annotator_id=np.array(author_id, dtype=np.int64),
        source=np.array(source, dtype=np.uint8),
        track_id=np.array(track_id, dtype=np.int64),
        z_order=np.array(z_order, dtype=np.int64),
        occluded=np.array(occluded, dtype=bool),
        truncated=np.array(truncated, dtype=bool),
        iscrowd=np.array(iscrowd, dtype=bool),
        difficult=np.array(difficult, dtype=bool),
        area=np.array(area, dtype=np.float64),
        rings=rings,
        ring_offsets=ring_offsets,
        rle_counts=rle_counts,
        rle_size=rle_size,
        keypoints=keypoints,
        attributes=_decode_attributes(attributes),
    )


def _ranges(offsets: IntArray, rows: np.ndarray[Any, Any]) -> IntArray:
    """Element indices of the selected rows of a CSR offset array."""
    index = np.flatnonzero(rows)
    return gather_ranges(offsets[index], offsets[index + 1])


def _decode_attributes(values: Sequence[str | None]) -> dict[str, AttributeColumn]:
    rows = [i for i, v in enumerate(values) if v]
    if not rows:
        return {}
    decoded = [orjson.loads(values[i]) for i in rows]  # type: ignore[arg-type]
    names = sorted({name for d in decoded for name in d})
    n = len(values)
    out: dict[str, AttributeColumn] = {}
    for name in names:
        items: list[Any] = [None] * n
        for row, d in zip(rows, decoded):
            items[row] = d.get(name)
        out[name] = AttributeColumn.from_list(items)
    return out


_READ_COLUMNS = (
    AnnotationRow.image_id,
    AnnotationRow.object_key,
    AnnotationRow.class_id,
    AnnotationRow.kind,
    AnnotationRow.x0,
    AnnotationRow.y0,
    AnnotationRow.x1,
    AnnotationRow.y1,
    AnnotationRow.score,
    AnnotationRow.source,
    AnnotationRow.track_id,
    AnnotationRow.z_order,
    AnnotationRow.occluded,
    AnnotationRow.truncated,
    AnnotationRow.iscrowd,
    AnnotationRow.difficult,
    AnnotationRow.area,
    AnnotationRow.geometry,
    AnnotationRow.parts,
    AnnotationRow.attributes,
    RevisionRow.author_id,
)


def load_annotations(
    session: Session,
    revisions: Select[Any] | Sequence[int],
    *,
    ids: Literal["object_key", "row"] = "object_key",
) -> Annotations:
    """Every object of the given revisions as one container.

    Parameters
    ----------
    revisions
        Revision ids, or a ``SELECT`` of one column of revision ids (run inside the
        database, so 20,000 task heads need no 20,000-element ``IN`` list).

    ids
        What becomes ``Annotations.id``: the object key (stable across a task's revisions;
        unique within one task, so the default for one revision), or the row id (unique
        across every revision: use it when loading several tasks at once).

    Returns
    -------
    Annotations
        Store image ids; ``annotator_id`` is the revision's author; rows in (revision,
        insertion) order.
    """
    if isinstance(revisions, Select):
        condition = AnnotationRow.revision_id.in_(revisions.scalar_subquery())
    else:
        condition = AnnotationRow.revision_id.in_(list(revisions))
    columns = list(_READ_COLUMNS)
    if ids == "row":
        columns[1] = AnnotationRow.id  # in place of the object key
    query = (
        select(*columns)
        .join(RevisionRow, RevisionRow.id == AnnotationRow.revision_id)
        .where(condition)
        .order_by(AnnotationRow.revision_id, AnnotationRow.id)
    )
    session.flush()  # what session.execute does first (autoflush)
    result = session.connection().execute(query)
    try:
        # the DB-API cursor's own tuples: building SQLAlchemy Row objects and running the ORM
        # loader over them took half of a 400,000-box read; every column here is a number,
        # bytes or text the driver already returns as the Python type wanted
        rows = result.cursor.fetchall()
    finally:
        result.close()
    return _rows_to_annotations(rows)
