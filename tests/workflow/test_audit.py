"""The hash-chained audit trail: construction, tamper detection, HMAC, concurrency, kill -9."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from labelgate.errors import StoreError, ValidationError
from labelgate.store.db import Database
from labelgate.store.models import AuditEventRow, ProjectRow
from labelgate.workflow import audit
from labelgate.workflow.audit import (
    AUDIT_KEY_ENV,
    GENESIS_HASH,
    append_event,
    canonical_json,
    digest,
    export_events,
    verify_chain,
)

T0 = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
EVENTS = AuditEventRow.__table__
CONTENT = [c for c in EVENTS.c.keys() if c != "id"]  # noqa: SIM118 (ColumnCollection)


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)


def append_chain(db: Database, n: int, *, key: bytes | None = None) -> list[AuditEventRow]:
    rows = []
    with db.session() as session:
        for i in range(n):
            rows.append(
                append_event(
                    session,
                    actor=f"user{i % 3}",
                    action="batch.advance",
                    entity_type="batch",
                    entity_id=100 + i,
                    before={"stage": "review", "i": i},
                    after={"stage": "qa", "i": i},
                    details={"gate": "accuracy", "value": 0.98 + i / 1000},
                    at=T0 + dt.timedelta(seconds=i),
                    key=key,
                )
            )
    return rows


def documented_hash(prev_hash: str, payload: dict[str, Any], key: bytes | None = None) -> str:
    """The construction docs/audit.md states, written independently of the module."""
    message = prev_hash.encode("ascii") + orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def execute(db: Database, statement: Any, params: dict[str, Any] | None = None) -> None:
    with db.session() as session:
        session.execute(statement, params or {})


def fetch(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        return [dict(r._mapping) for r in session.execute(sa.select(EVENTS).order_by(EVENTS.c.id))]


def count_events(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one())


# --- construction -----------------------------------------------------------------------


def test_hash_is_sha256_over_prev_hash_and_the_documented_canonical_json(db: Database) -> None:
    with db.session() as session:
        row = append_event(
            session,
            actor="ana",
            action="batch.create",
            entity_type="batch",
            entity_id=7,
            after={"stage": "spec"},
            details={"name": "b1", "images": 3},
            at=T0,
        )
    after_digest = hashlib.sha256(b'{"stage":"spec"}').hexdigest()
    message = (
        b"0" * 64
        + b'{"action":"batch.create","actor":"ana","after_digest":"'
        + after_digest.encode()
        + b'","before_digest":null,"created_at":"2026-03-04T05:06:07.890123Z",'
        b'"details":{"images":3,"name":"b1"},"entity_id":"7","entity_type":"batch"}'
    )
    assert row.prev_hash == GENESIS_HASH
    assert row.after_digest == after_digest
    assert row.before_digest is None
    assert row.details == '{"images":3,"name":"b1"}'
    assert row.entity_id == "7"
    assert row.hash == hashlib.sha256(message).hexdigest()


def test_each_event_links_to_the_hash_before_it(db: Database) -> None:
    rows = append_chain(db, 4)
    assert [r.prev_hash for r in rows] == [GENESIS_HASH] + [r.hash for r in rows[:-1]]
    stored = fetch(db)
    for row in stored:
        payload = {k: row[k] for k in CONTENT if k not in ("prev_hash", "hash", "details")}
        payload["created_at"] = audit._iso_utc(row["created_at"])
        payload["details"] = orjson.loads(row["details"])
        assert row["hash"] == documented_hash(row["prev_hash"], payload)


def test_created_at_is_stored_in_utc_to_the_microsecond(db: Database) -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    with db.session() as session:
        append_event(
            session,
            actor="a",
            action="x",
            entity_type="t",
            entity_id=1,
            at=dt.datetime(2026, 1, 1, 1, 0, 0, 5, tzinfo=berlin),
        )
    [row] = fetch(db)
    assert audit._iso_utc(row["created_at"]) == "2026-01-01T00:00:00.000005Z"
    assert verify_chain(db).ok


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        pytest.param("at", {"at": dt.datetime(2026, 1, 1)}, id="naive time"),
        pytest.param("actor", {"actor": "x" * 201}, id="actor too long"),
        pytest.param("action", {"action": "x" * 61}, id="action too long"),
        pytest.param("entity_type", {"entity_type": "x" * 41}, id="entity_type too long"),
        pytest.param("entity_id", {"entity_id": "x" * 101}, id="entity_id too long"),
        pytest.param("details", {"details": [1, 2]}, id="details not a mapping"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    db: Database, field: str, kwargs: dict[str, Any]
) -> None:
    arguments: dict[str, Any] = {"actor": "a", "action": "x", "entity_type": "t", "entity_id": 1}
    arguments.update(kwargs)
    with pytest.raises(ValidationError) as info, db.session() as session:
        append_event(session, **arguments)
    assert info.value.field == field
    assert count_events(db) == 0


def test_an_event_rolls_back_with_the_caller_transaction(db: Database) -> None:
    def change_then_fail() -> None:
        with db.session() as session:
            session.add(ProjectRow(name="p", description=""))
            append_event(
                session, actor="a", action="project.create", entity_type="project", entity_id=1
            )
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        change_then_fail()
    assert count_events(db) == 0
    [row] = append_chain(db, 1)
    assert row.prev_hash == GENESIS_HASH
    assert verify_chain(db).events == 1


def test_empty_chain_is_intact() -> None:
    db = Database("sqlite://")
    db.create_all()
    report = verify_chain(db)
    assert (report.ok, report.events, report.first_broken_id, report.last_hash) == (
        True,
        0,
        None,
        GENESIS_HASH,
    )


def test_unmigrated_database_is_a_store_error(empty_db: Database, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="db upgrade"):
        verify_chain(empty_db)
    with pytest.raises(StoreError):
        export_events(empty_db, tmp_path / "audit.jsonl")
    assert not (tmp_path / "audit.jsonl").exists()


# --- tamper detection -------------------------------------------------------------------


def test_intact_chain_verifies_and_reports_the_last_hash(db: Database) -> None:
    rows = append_chain(db, 6)
    report = verify_chain(db)
    assert report.ok, report.reason
    assert (report.events, report.first_broken_id, report.last_hash) == (6, None, rows[-1].hash)
    assert report.reason == "chain intact: 6 events"


EDITS: list[tuple[str, Any]] = [
    ("actor", "mallory"),
    ("action", "batch.reject"),
    ("entity_type", "task"),
    ("entity_id", "999"),
    ("before_digest", None),
    ("after_digest", "f" * 64),
    # the same JSON value with one space: the stored bytes are what is hashed
    ("details", '{"gate": "accuracy","value":0.982}'),
    ("created_at", T0 + dt.timedelta(days=1)),
    ("prev_hash", "e" * 64),
    ("hash", "d" * 64),
]


@pytest.mark.parametrize(("column", "value"), EDITS, ids=[c for c, _ in EDITS])
def test_editing_any_column_of_a_middle_event_names_it(
    db: Database, column: str, value: Any
) -> None:
    rows = append_chain(db, 5)
    middle = rows[2].id
    execute(db, sa.update(EVENTS).where(EVENTS.c.id == middle).values({column: value}))
    report = verify_chain(db)
    assert not report.ok
    assert report.first_broken_id == middle
    assert report.reason == f"event {middle}: hash mismatch (row edited)"
    assert (report.events, report.last_hash) == (2, rows[1].hash)


@pytest.mark.parametrize(
    "assignment",
    ["created_at = 'not a time'", "details = 42", "prev_hash = x'ff'", "hash = 7"],
)
def test_sqlite_values_of_the_wrong_type_are_reported_not_raised(
    tmp_path: Path, assignment: str
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'raw.db'}")
    db.create_all()
    rows = append_chain(db, 4)
    with db.engine.connect() as conn:  # around the models: SQLite takes any type anywhere
        conn.exec_driver_sql("DROP INDEX IF EXISTS uq_audit_events_hash")
        conn.exec_driver_sql(f"UPDATE audit_events SET {assignment} WHERE id = {rows[1].id}")
        conn.commit()
    report = verify_chain(db)
    assert report.first_broken_id == rows[1].id
    assert report.reason == f"event {rows[1].id}: hash mismatch (row edited)"
    assert export_events(db, tmp_path / "a.jsonl") == 4


def test_deleting_a_middle_event_names_the_one_after_it(db: Database) -> None:
    rows = append_chain(db, 5)
    execute(db, sa.delete(EVENTS).where(EVENTS.c.id == rows[2].id))
    report = verify_chain(db)
    assert report.first_broken_id == rows[3].id
    assert report.reason == (
        f"event {rows[3].id}: prev_hash does not match event {rows[1].id} "
        "(row deleted, inserted or reordered)"
    )


def test_deleting_the_first_event_breaks_the_genesis_link(db: Database) -> None:
    rows = append_chain(db, 3)
    execute(db, sa.delete(EVENTS).where(EVENTS.c.id == rows[0].id))
    report = verify_chain(db)
    assert report.first_broken_id == rows[1].id
    assert "not the genesis hash" in report.reason


def test_deleting_the_newest_events_shows_only_in_the_last_hash(db: Database) -> None:
    """The documented limit: a truncated chain is a valid chain; a recorded head catches it."""
    rows = append_chain(db, 5)
    recorded = verify_chain(db).last_hash
    execute(db, sa.delete(EVENTS).where(EVENTS.c.id >= rows[3].id))
    report = verify_chain(db)
    assert report.ok
    assert report.events == 3
    assert report.last_hash != recorded
    assert recorded == rows[-1].hash


def test_forged_event_inserted_into_a_gap_is_detected(db: Database) -> None:
    rows = append_chain(db, 4)
    # ids are not hashed, only their order is: renumbering keeps the chain intact...
    execute(db, sa.update(EVENTS).values(id=EVENTS.c.id * 10))
    assert verify_chain(db).ok
    ids = [r["id"] for r in fetch(db)]
    # ...and opens a gap where a forger who knows the construction (not a key) inserts a
    # well-formed event linked to the one before it
    previous = fetch(db)[1]
    payload = {
        "action": "batch.advance",
        "actor": "mallory",
        "after_digest": None,
        "before_digest": None,
        "created_at": "2026-03-04T05:06:08.500000Z",
        "details": {},
        "entity_id": "101",
        "entity_type": "batch",
    }
    forged = {
        "id": ids[1] + 5,
        "created_at": dt.datetime(2026, 3, 4, 5, 6, 8, 500000, tzinfo=dt.UTC),
        **{k: v for k, v in payload.items() if k not in ("created_at", "details")},
        "details": "{}",
        "prev_hash": previous["hash"],
        "hash": documented_hash(previous["hash"], payload),
    }
    # the database refuses it: the genuine next event already claims that predecessor
    with pytest.raises(sa.exc.IntegrityError):
        execute(db, sa.insert(EVENTS).values(forged))
    assert verify_chain(db).ok
    # linked to the newest event instead (a predecessor nobody claims yet), it is stored,
    # and verify names it: it does not follow the event before it
    newest = fetch(db)[-1]
    forged |= {"prev_hash": newest["hash"], "hash": documented_hash(newest["hash"], payload)}
    execute(db, sa.insert(EVENTS).values(forged))
    report = verify_chain(db)
    assert report.first_broken_id == ids[1] + 5
    assert report.events == 2  # the two genuine events before it
    assert len(rows) == 4


def test_swapping_the_content_of_two_events_names_the_first(db: Database) -> None:
    append_chain(db, 5)
    stored = fetch(db)
    a, b = stored[1], stored[2]
    with db.session() as session:
        # through free values: PostgreSQL checks the unique hash and prev_hash per row
        session.execute(
            sa.update(EVENTS).where(EVENTS.c.id == a["id"]).values(hash="tmp", prev_hash="tmp-prev")
        )
        session.execute(
            sa.update(EVENTS).where(EVENTS.c.id == b["id"]).values({c: a[c] for c in CONTENT})
        )
        session.execute(
            sa.update(EVENTS).where(EVENTS.c.id == a["id"]).values({c: b[c] for c in CONTENT})
        )
    report = verify_chain(db)
    assert report.first_broken_id == a["id"]
    assert "does not match event" in report.reason


def test_moving_an_event_to_the_end_names_the_event_after_its_old_place(db: Database) -> None:
    rows = append_chain(db, 5)
    execute(db, sa.update(EVENTS).where(EVENTS.c.id == rows[1].id).values(id=1000))
    report = verify_chain(db)
    assert report.first_broken_id == rows[2].id
    assert report.reason.startswith(
        f"event {rows[2].id}: prev_hash does not match event {rows[0].id}"
    )


def test_a_break_is_found_across_chunk_boundaries(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "CHUNK_ROWS", 3)
    rows = append_chain(db, 10)
    assert verify_chain(db).events == 10
    execute(db, sa.delete(EVENTS).where(EVENTS.c.id == rows[5].id))  # last of chunk 2
    report = verify_chain(db)
    assert report.first_broken_id == rows[6].id
    assert report.events == 5


# --- HMAC -------------------------------------------------------------------------------


def test_keyed_chain_verifies_only_with_its_key(db: Database) -> None:
    key = b"program-secret"
    rows = append_chain(db, 3, key=key)
    assert verify_chain(db, key=key).ok
    for wrong in (b"", b"other-secret"):
        report = verify_chain(db, key=wrong)
        assert report.first_broken_id == rows[0].id
        assert "different HMAC key" in report.reason
    payload = {
        "action": rows[0].action,
        "actor": rows[0].actor,
        "after_digest": rows[0].after_digest,
        "before_digest": rows[0].before_digest,
        "created_at": "2026-03-04T05:06:07.890123Z",
        "details": orjson.loads(rows[0].details),
        "entity_id": rows[0].entity_id,
        "entity_type": rows[0].entity_type,
    }
    assert rows[0].hash == documented_hash(GENESIS_HASH, payload, key=key)


def test_key_comes_from_the_environment(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUDIT_KEY_ENV, "from-env")
    append_chain(db, 2)
    assert verify_chain(db).ok
    assert verify_chain(db, key=b"from-env").ok
    assert not verify_chain(db, key=b"").ok  # b"" forces plain sha256
    monkeypatch.delenv(AUDIT_KEY_ENV)
    assert not verify_chain(db).ok


def rewrite_from(db: Database, start: int, *, actor: str, key: bytes | None) -> None:
    """A forger edits one event and recomputes every hash after it, relinking the chain."""
    stored = fetch(db)
    prev = GENESIS_HASH
    with db.session() as session:
        for row in stored:
            if row["id"] >= start:
                if row["id"] == start:
                    row["actor"] = actor
                payload = {k: row[k] for k in CONTENT if k not in ("prev_hash", "hash")}
                payload["created_at"] = audit._iso_utc(row["created_at"])
                payload["details"] = orjson.loads(row["details"])
                new_hash = documented_hash(prev, payload, key)
                session.execute(
                    sa.update(EVENTS)
                    .where(EVENTS.c.id == row["id"])
                    .values(actor=row["actor"], prev_hash=prev, hash=new_hash)
                )
                row["hash"] = new_hash
            prev = row["hash"]


def test_a_forger_without_the_key_cannot_rewrite_a_keyed_chain(db: Database) -> None:
    rows = append_chain(db, 5, key=b"k")
    rewrite_from(db, rows[2].id, actor="mallory", key=None)
    report = verify_chain(db, key=b"k")
    assert report.first_broken_id == rows[2].id
    assert report.reason == f"event {rows[2].id}: hash mismatch (row edited)"


def test_without_a_key_a_full_rewrite_of_the_tail_verifies(db: Database) -> None:
    """Why the key exists: anyone with write access can recompute an unkeyed chain."""
    rows = append_chain(db, 5)
    rewrite_from(db, rows[2].id, actor="mallory", key=None)
    assert verify_chain(db).ok
    assert verify_chain(db).last_hash != rows[-1].hash


# --- concurrency and crashes ------------------------------------------------------------


def test_concurrent_appenders_build_one_linear_chain(db: Database) -> None:
    threads, per_thread = 8, 15
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(worker: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with db.session() as session:
                    append_event(
                        session,
                        actor=f"worker{worker}",
                        action="task.submit",
                        entity_type="task",
                        entity_id=worker * 1000 + i,
                        after={"i": i},
                    )
                    if i % 5 == 0:  # some transactions hold two events
                        append_event(
                            session,
                            actor=f"worker{worker}",
                            action="task.review",
                            entity_type="task",
                            entity_id=worker * 1000 + i,
                        )
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    expected = threads * (per_thread + 3)
    report = verify_chain(db)
    assert report.ok, report.reason
    assert report.events == expected
    stored = fetch(db)
    assert len({r["prev_hash"] for r in stored}) == expected  # no two events share a parent


WRITER = """
import sys
from labelgate.store.db import Database
from labelgate.store.models import ProjectRow
from labelgate.workflow.audit import append_event

db = Database(sys.argv[1])
i = 0
while True:
    with db.session() as session:  # one "import": a change and the events recording it
        project = ProjectRow(name=f"p{i}", description="")
        session.add(project)
        session.flush()
        for k in range(5):
            append_event(session, actor="importer", action="import.item",
                         entity_type="project", entity_id=project.id, after={"k": k})
    i += 1
"""


def test_kill_9_while_appending_leaves_a_valid_consistent_chain(db: Database) -> None:
    env = {k: v for k, v in os.environ.items() if k != AUDIT_KEY_ENV}
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, db.url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while count_events(db) < 100:
            assert time.monotonic() < deadline, "writer wrote fewer than 100 events in 60 s"
            try:  # a short wait between polls that also notices a writer that died
                process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            assert process.stderr is not None
            pytest.fail(f"writer exited early: {process.stderr.read().decode()}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    report = verify_chain(db)
    assert report.ok, report.reason
    with db.session() as session:
        projects = session.execute(sa.text("SELECT count(*) FROM projects")).scalar_one()
    assert report.events >= 100
    assert report.events == 5 * projects  # no change without its events, nor the reverse
    # the chain goes on from where the killed writer stopped
    append_chain(db, 1)
    assert verify_chain(db).events == report.events + 1


# --- digests and export -----------------------------------------------------------------


@dataclasses.dataclass
class Box:
    x: float
    label: str


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param({"a": 1, "b": 2}, {"b": 2, "a": 1}, id="key order"),
        pytest.param(np.float64(0.25), 0.25, id="numpy scalar"),
        pytest.param(np.int32(7), 7, id="numpy int"),
        pytest.param(np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]], id="numpy array"),
        pytest.param(np.arange(6)[::2], [0, 2, 4], id="strided array"),
        pytest.param(
            dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "2026-01-01T00:00:00.000000Z",
            id="one instant",
        ),
        pytest.param(Box(1.5, "car"), {"label": "car", "x": 1.5}, id="dataclass"),
        pytest.param({"s": {3, 1, 2}}, {"s": [1, 2, 3]}, id="set"),
        pytest.param({1: "a"}, {"1": "a"}, id="int key"),
    ],
)
def test_equal_states_have_equal_digests(a: Any, b: Any) -> None:
    assert digest(a) == digest(b)


def test_digest_is_sha256_of_canonical_json_and_none_is_none() -> None:
    assert (
        digest({"b": [1, 2.5], "a": None}) == hashlib.sha256(b'{"a":null,"b":[1,2.5]}').hexdigest()
    )
    assert digest(None) is None
    assert digest({"x": 1}) != digest({"x": 2})
    with pytest.raises(TypeError, match="canonical JSON"):
        canonical_json({"x": object()})


@given(st.dictionaries(st.text(max_size=5), st.integers(-(2**40), 2**40) | st.text(max_size=5)))
def test_digest_ignores_key_order(document: dict[str, Any]) -> None:
    assert digest(dict(reversed(list(document.items())))) == digest(document)


def test_export_writes_every_column_as_jsonl_that_recomputes(db: Database, tmp_path: Path) -> None:
    rows = append_chain(db, 4, key=b"k")
    out = tmp_path / "sub" / "audit.jsonl"
    out.parent.mkdir()
    out.write_text("old\n")
    assert export_events(db, out) == 4
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["id"] for line in lines] == [r.id for r in rows]
    assert list(lines[0]) == ["id", *CONTENT]
    prev = GENESIS_HASH
    for line in lines:
        payload = {k: line[k] for k in CONTENT if k not in ("prev_hash", "hash")}
        assert line["prev_hash"] == prev
        assert line["hash"] == documented_hash(prev, payload, key=b"k")
        prev = line["hash"]
    assert lines[0]["created_at"] == "2026-03-04T05:06:07.890123Z"
    assert [p.name for p in out.parent.iterdir()] == ["audit.jsonl"]  # no temporary left


def test_export_of_an_empty_chain_is_an_empty_file(db: Database, tmp_path: Path) -> None:
    assert export_events(db, tmp_path / "a.jsonl") == 0
    assert (tmp_path / "a.jsonl").read_bytes() == b""
