"""The tamper-evident audit trail: append-only events, each hash-chained to the one before.

Every change the workflow makes is recorded by :func:`append_event` inside the transaction
that makes it, so the change and its event commit or roll back together. Each event stores
``prev_hash`` (the previous event's hash; 64 zeros for the first) and

``hash = sha256(prev_hash + canonical_json(payload))``

or, when a key is given (argument, or the ``LABELGATE_AUDIT_KEY`` environment variable),
``HMAC-sha256(key, prev_hash + canonical_json(payload))``. ``prev_hash`` is the 64 ASCII hex
characters; ``canonical_json`` is orjson with sorted keys and no whitespace of::

    {"action", "actor", "after_digest", "before_digest", "created_at", "details",
     "entity_id", "entity_type"}

where ``created_at`` is ISO 8601 in UTC with microseconds (``2026-01-02T03:04:05.000006Z``),
``entity_id`` is a string, the digests are :func:`digest` of the states before and after
(``null`` when absent), and ``details`` is the JSON object stored, byte for byte, in the
``details`` column. :func:`verify_chain` recomputes every hash in id order and names the
first event that does not fit; docs/audit.md lists what it detects and what it cannot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import hmac
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from labelgate.errors import StoreError, ValidationError
from labelgate.formats._atomic import atomic_file
from labelgate.store.db import Database, Direct
from labelgate.store.models import AuditEventRow

__all__ = [
    "AUDIT_KEY_ENV",
    "GENESIS_HASH",
    "ChainReport",
    "append_event",
    "canonical_json",
    "digest",
    "export_events",
    "verify_chain",
]

AUDIT_KEY_ENV = "LABELGATE_AUDIT_KEY"
GENESIS_HASH = "0" * 64

# pg_advisory_xact_lock key that serializes appenders on PostgreSQL: the ASCII bytes of
# "labelgat" as a big-endian int64. Any constant works as long as every appender uses it.
ADVISORY_LOCK_KEY = 7809631416587084148

# Rows per query when streaming the chain: bounded memory at any length, and few round trips.
CHUNK_ROWS = 10_000

# orjson writes dataclass fields in declaration order even with OPT_SORT_KEYS, so they pass
# through to _default and come back as dicts.
_JSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)

# Column lengths of audit_events: PostgreSQL enforces them and SQLite does not, so they are
# checked here to fail the same way on both.
_MAX_LENGTHS = {"actor": 200, "action": 60, "entity_type": 40, "entity_id": 100}

_audit: Any = AuditEventRow.__table__
_TABLE_NAME = AuditEventRow.__tablename__
# run through Direct (labelgate.store.db.Direct): every save appends an event, and
# SQLAlchemy's execute cost more CPU than SQLite spends on these
_ADVISORY_LOCK = Direct(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
_LAST_HASH = Direct(sa.select(_audit.c.hash).order_by(_audit.c.id.desc()).limit(1))
_INSERT_EVENT = Direct(sa.insert(_audit).returning(_audit.c.id))


def _iso_utc(value: dt.datetime) -> str:
    """``value`` as ISO 8601 in UTC with microseconds and a ``Z``; naive values are UTC.

    Naive values only come back from SQLite, which stores the UTC wall time without offset.
    """
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _default(value: Any) -> Any:
    """Encode what orjson does not encode itself (or is told to pass on)."""
    # numpy is not imported here: .tolist() is duck-typed, so numpy scalars and
    # arrays encode exactly as the Python numbers and lists they hold (np.float64(0.5) and
    # 0.5 have one digest, and float32 keeps its full float64 value).
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.isoformat(timespec="microseconds")
        return _iso_utc(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=canonical_json)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, enum.Enum):
        return value.value
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic models
        return model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # shallow: orjson encodes the field values, calling back here for nested ones
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    raise TypeError(f"cannot encode {type(value).__name__} as canonical JSON")


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON: orjson, sorted keys, no whitespace.

    Beyond what JSON holds natively: numpy scalars and arrays encode as the Python numbers
    and (nested) lists they hold; timezone-aware datetimes as UTC ISO 8601 with microseconds
    and ``Z`` (so one instant has one encoding), naive ones as ISO 8601 with microseconds;
    dates and times as ISO 8601; dataclasses and pydantic models as objects of their fields;
    sets as sorted lists; bytes as hex; paths as POSIX strings; non-string keys as strings.
    NaN and infinities encode as ``null`` (orjson's rule).

    Raises
    ------
    TypeError
        A value of a type with no JSON encoding.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [1.5, None]})
    b'{"a":[1.5,null],"b":1}'
    >>> canonical_json(dt.datetime(2026, 1, 2, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    b'"2026-01-02T03:05:06.000000Z"'
    """
    try:
        return orjson.dumps(value, default=_default, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"cannot encode as canonical JSON: {exc}") from exc


def digest(value: Any) -> str | None:
    """sha256 hex of :func:`canonical_json` of ``value``; ``None`` for ``None``.

    What an audit event stores of the states before and after a change: equal states (up
    to key order, numpy vs Python numbers, time zone of one instant) have equal digests.

    Examples
    --------
    >>> digest({"stage": "review", "version": 2}) == digest({"version": 2, "stage": "review"})
    True
    >>> digest({"a": 1})
    '015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862'
    >>> digest(None) is None
    True
    """
    if value is None:
        return None
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _key_in_force(key: bytes | None) -> bytes | None:
    """The HMAC key: ``key``, else ``$LABELGATE_AUDIT_KEY`` (UTF-8), else none.

    An explicit empty key means no key even when the environment holds one.
    """
    if key is None:
        text = os.environ.get(AUDIT_KEY_ENV)
        return text.encode() if text else None
    return key or None


def _message(
    prev_hash: str,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before_digest: str | None,
    after_digest: str | None,
    details_json: str,
    created_at: str,
) -> bytes:
    """The hashed bytes: ``prev_hash`` then the canonical JSON of the payload.

    ``details`` is spliced in exactly as stored (it is canonical JSON already), so that any
    byte-level edit of the column changes the hash, and so that verifying needs no JSON
    parse. The result equals ``orjson.dumps(payload, option=OPT_SORT_KEYS)``: ``details``
    sorts between ``created_at`` and ``entity_id``.
    """
    head = orjson.dumps(
        {
            "action": action,
            "actor": actor,
            "after_digest": after_digest,
            "before_digest": before_digest,
            "created_at": created_at,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    tail = orjson.dumps(
        {"entity_id": entity_id, "entity_type": entity_type}, option=orjson.OPT_SORT_KEYS
    )
    return b"".join(
        (
            prev_hash.encode("ascii"),
            head[:-1],
            b',"details":',
            details_json.encode(),
            b",",
            tail[1:],
        )
    )


def _hash(message: bytes, key: bytes | None) -> str:
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | int,
    before: Any = None,
    after: Any = None,
    details: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
    key: bytes | None = None,
) -> AuditEventRow:
    """Append one event to the chain inside the caller's transaction.

    The event commits or rolls back with the change it records. Appenders are serialized
    for the rest of the transaction, so the chain never forks: on PostgreSQL by
    ``pg_advisory_xact_lock``, on SQLite by the ``BEGIN IMMEDIATE`` every
    :class:`~labelgate.store.db.Database` transaction starts with. Keep transactions that
    append short: other appenders wait for them to end.

    Parameters
    ----------
    session
        A session inside a transaction (``with db.session() as session``). On PostgreSQL
        it must run at READ COMMITTED (the default), so that the last hash it reads after
        taking the lock is the newest committed one.
    actor
        Who made the change (user name, or ``system``); at most 200 characters.
    action
        What was done, e.g. ``batch.advance``; at most 60 characters.
    entity_type, entity_id
        What it was done to, e.g. ``batch`` and ``17``; at most 40 and 100 characters.
        ``entity_id`` is stored and hashed as a string.
    before, after
        The entity's state before and after (any value :func:`canonical_json` encodes);
        only their :func:`digest` is stored. ``None`` for "did not exist".
    details
        Small JSON-able context (gate value, threshold, file name), stored as canonical
        JSON and covered by the hash.
    at
        The event time, timezone-aware; default now. Stored in UTC to the microsecond.
    key
        HMAC key; default ``$LABELGATE_AUDIT_KEY`` when set. ``b""`` forces plain sha256.

    Returns
    -------
    AuditEventRow
        The stored values with the new ``id`` (inserted with a Core statement, so the
        object is not attached to ``session``).

    Raises
    ------
    ValidationError
        A naive ``at``, or a text longer than its column.
    TypeError
        ``before``, ``after`` or ``details`` holds a value with no JSON encoding.

    Examples
    --------
    >>> from labelgate.store.db import Database
    >>> db = Database("sqlite://")
    >>> db.create_all()
    >>> with db.session() as session:
    ...     row = append_event(session, actor="ana", action="batch.create", entity_type="batch",
    ...                        entity_id=1, after={"stage": "spec"}, key=b"")
    >>> row.id, row.prev_hash == GENESIS_HASH, len(row.hash)
    (1, True, 64)
    >>> verify_chain(db, key=b"").ok
    True
    """
    entity_id = str(entity_id)
    for name, text in (
        ("actor", actor),
        ("action", action),
        ("entity_type", entity_type),
        ("entity_id", entity_id),
    ):
        if len(text) > _MAX_LENGTHS[name]:
            raise ValidationError(
                f"expected at most {_MAX_LENGTHS[name]} characters, got {len(text)}", field=name
            )
    if at is None:
        at = dt.datetime.now(dt.UTC)
    elif at.tzinfo is None or at.utcoffset() is None:
        raise ValidationError(f"expected a timezone-aware datetime, got {at!r}", field="at")
    created_at = at.astimezone(dt.UTC)
    if details is None:
        details = {}
    elif not isinstance(details, Mapping):
        raise ValidationError(f"expected a mapping, got {type(details).__name__}", field="details")
    details_json = canonical_json(details).decode()
    before_digest, after_digest = digest(before), digest(after)

    # Core statements on the session's connection, built once: an ORM add and flush (which
    # also flushed whatever else the caller had pending) cost more CPU than the hashing.
    if session.connection().dialect.name == "postgresql":
        # held until the caller's transaction ends, so the next appender reads this hash
        _ADVISORY_LOCK.run(session)
    # read in this transaction, after the lock (never cached across transactions: another
    # worker process may have appended since); the primary-key index finds the newest row
    last = _LAST_HASH.run(session).scalar()
    prev_hash = last or GENESIS_HASH
    message = _message(
        prev_hash,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before_digest=before_digest,
        after_digest=after_digest,
        details_json=details_json,
        created_at=_iso_utc(created_at),
    )
    values = {
        "created_at": created_at,
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "before_digest": before_digest,
        "after_digest": after_digest,
        "details": details_json,
        "prev_hash": prev_hash,
        "hash": _hash(message, _key_in_force(key)),
    }
    event_id = _INSERT_EVENT.run(session, values).scalar()
    # what the caller gets back: the stored values (not attached to the session)
    return AuditEventRow(id=event_id, **values)


@dataclasses.dataclass(frozen=True, slots=True)
class ChainReport:
    """The verdict of :func:`verify_chain`.

    Attributes
    ----------
    ok
        Every event fits its hash and links to the one before.
    events
        Events verified intact (all of them when ``ok``; those before the first broken one
        otherwise).
    first_broken_id
        Id of the first event that does not fit; ``None`` when ``ok``.
    reason
        What is wrong with it, e.g. ``event 17: hash mismatch (row edited)``; a summary
        when ``ok``.
    last_hash
        Hash of the last intact event (the genesis hash for none): record it somewhere
        else to detect later deletion of the newest events.
    """

    ok: bool
    events: int
    first_broken_id: int | None
    reason: str
    last_hash: str

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-able dict (field order as declared)."""
        return dataclasses.asdict(self)


def _columns(dialect: str) -> list[Any]:
    """The columns in the order :func:`_stream` yields them (``verify_chain`` unpacks it)."""
    created_at: Any = _audit.c.created_at
    if dialect == "sqlite":
        # SQLite keeps timestamps as text that SQLAlchemy parses while fetching, so one
        # edited to garbage would abort the whole chunk; read the text and parse it per row
        created_at = sa.type_coerce(_audit.c.created_at, sa.String).label("created_at")
    return [
        _audit.c.id,
        created_at,
        _audit.c.actor,
        _audit.c.action,
        _audit.c.entity_type,
        _audit.c.entity_id,
        _audit.c.before_digest,
        _audit.c.after_digest,
        _audit.c.details,
        _audit.c.prev_hash,
        _audit.c.hash,
    ]


def _timestamp_text(value: dt.datetime | str) -> str:
    """The hashed form of a stored ``created_at`` (a datetime, or SQLite's text).

    Raises
    ------
    ValueError
        SQLite text that is not a timestamp.
    """
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " ":
            # SQLAlchemy's own SQLite layout, 2026-01-02 03:04:05.000006: rewritten without
            # parsing (a third of verify's time). Safe: only the original text maps to the
            # hashed form, so an edited text still fails its hash.
            return f"{value[:10]}T{value[11:]}Z"
        value = dt.datetime.fromisoformat(value)
    return _iso_utc(value)


def _stream(db: Database) -> Iterator[Any]:
    """Every event in id order, ``CHUNK_ROWS`` at a time (keyset pagination).

    Each chunk is its own short transaction, so a long verification never holds SQLite's
    write lock (every transaction there is ``BEGIN IMMEDIATE``) for more than one chunk;
    events appended meanwhile are simply read too.
    """
    if not sa.inspect(db.engine).has_table(_TABLE_NAME):
        raise StoreError(f"{db!r} has no audit_events table; run `labelgate db upgrade` first")
    columns = _columns(db.dialect)
    after = None
    with db.engine.connect() as conn:
        while True:
            query = sa.select(*columns).order_by(_audit.c.id).limit(CHUNK_ROWS)
            if after is not None:
                query = query.where(_audit.c.id > after)
            rows = conn.execute(query).all()
            conn.commit()
            if not rows:
                return
            yield from rows
            after = rows[-1].id


def verify_chain(db: Database, *, key: bytes | None = None) -> ChainReport:
    """Recompute the chain in id order and report the first event that does not fit.

    For each event, first its own hash is recomputed from its stored columns (a mismatch
    means the row was edited: any column but ``id``, including ``prev_hash`` and ``hash``),
    then its ``prev_hash`` is compared with the hash of the event before it (a mismatch
    means an event was deleted, inserted or moved). Events are streamed, so memory stays
    flat at any length. A deletion of the newest events leaves a shorter chain that is
    still intact: compare ``last_hash`` with one recorded earlier to catch it.

    Parameters
    ----------
    db
        The program database.
    key
        The HMAC key the chain was built with; default ``$LABELGATE_AUDIT_KEY`` when set.
        ``b""`` verifies a plain sha256 chain even when the environment holds a key.

    Returns
    -------
    ChainReport
        ``ok``, the events verified, and the first broken event with the reason.

    Raises
    ------
    StoreError
        The database has no audit table (not migrated).

    Examples
    --------
    >>> from labelgate.store.db import Database
    >>> db = Database("sqlite://")
    >>> db.create_all()
    >>> verify_chain(db, key=b"")
    ChainReport(ok=True, events=0, first_broken_id=None, reason='chain intact: 0 events', last_hash='0000000000000000000000000000000000000000000000000000000000000000')
    """  # noqa: E501
    key = _key_in_force(key)
    expected_prev = GENESIS_HASH
    previous_id: int | None = None
    count = 0
    for (
        event_id,
        created_at,
        actor,
        action,
        entity_type,
        entity_id,
        before_digest,
        after_digest,
        details,
        prev_hash,
        stored_hash,
    ) in _stream(db):
        try:
            message = _message(
                prev_hash,
                actor=actor,
                action=action,
                entity_type=entity_type,
                entity_id=entity_id,
                before_digest=before_digest,
                after_digest=after_digest,
                details_json=details,
                created_at=_timestamp_text(created_at),
            )
            intact = hmac.compare_digest(_hash(message, key), stored_hash)
        except (TypeError, ValueError, AttributeError):
            # a column edited (on SQLite) to a value of another type, or to a timestamp
            # or hash that cannot be read
            intact = False
        reason = None
        if not intact:
            reason = f"event {event_id}: hash mismatch (row edited)"
            if previous_id is None:
                reason = (
                    f"event {event_id}: hash mismatch (row edited, or the chain was built "
                    "with a different HMAC key)"
                )
        elif prev_hash != expected_prev:
            if previous_id is None:
                reason = (
                    f"event {event_id}: prev_hash is not the genesis hash (earlier events "
                    "deleted, or a row inserted before them)"
                )
            else:
                reason = (
                    f"event {event_id}: prev_hash does not match event {previous_id} "
                    "(row deleted, inserted or reordered)"
                )
        if reason is not None:
            return ChainReport(
                ok=False,
                events=count,
                first_broken_id=event_id,
                reason=reason,
                last_hash=expected_prev,
            )
        expected_prev = stored_hash
        previous_id = event_id
        count += 1
    return ChainReport(
        ok=True,
        events=count,
        first_broken_id=None,
        reason=f"chain intact: {count} events",
        last_hash=expected_prev,
    )


def export_events(db: Database, out: Path) -> int:
    """Write every event as JSON Lines, in id order, atomically; return the count.

    One object per line with every column: ``id``, ``created_at`` (UTC ISO 8601 with
    microseconds and ``Z``, exactly as hashed), ``actor``, ``action``, ``entity_type``,
    ``entity_id``, ``before_digest``, ``after_digest``, ``details`` (the stored JSON, as an
    object; its canonical re-encoding is the stored text), ``prev_hash`` and ``hash``. The
    file appears only once complete; an existing ``out`` is replaced.

    Raises
    ------
    StoreError
        The database has no audit table (not migrated).

    Examples
    --------
    >>> import tempfile
    >>> from labelgate.store.db import Database
    >>> db = Database("sqlite://")
    >>> db.create_all()
    >>> with db.session() as session:
    ...     _ = append_event(session, actor="ana", action="project.create",
    ...                      entity_type="project", entity_id=1, key=b"")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = Path(folder) / "audit.jsonl"
    ...     count = export_events(db, out)
    ...     line = orjson.loads(out.read_bytes().splitlines()[0])
    >>> count, line["actor"], line["prev_hash"] == GENESIS_HASH
    (1, 'ana', True)
    """
    count = 0
    with atomic_file(Path(out)) as tmp, open(tmp, "wb") as handle:
        for row in _stream(db):
            (
                event_id,
                created_at,
                actor,
                action,
                entity_type,
                entity_id,
                before_digest,
                after_digest,
                details,
                prev_hash,
                stored_hash,
            ) = row
            record = {
                "id": event_id,
                "created_at": _export_timestamp(created_at),
                "actor": actor,
                "action": action,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "before_digest": before_digest,
                "after_digest": after_digest,
                "details": _details_value(details),
                "prev_hash": prev_hash,
                "hash": stored_hash,
            }
            # default=: a column SQLite let someone set to bytes is still exported
            handle.write(orjson.dumps(record, default=_default) + b"\n")
            count += 1
    return count


def _details_value(text: str) -> Any:
    """The stored details as JSON; a tampered, unparseable text is exported as the string."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _export_timestamp(value: dt.datetime | str) -> str:
    """The hashed form of ``created_at``; text SQLite cannot parse is exported as stored."""
    try:
        return _timestamp_text(value)
    except ValueError:
        return str(value)
