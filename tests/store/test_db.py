"""Database setup: URL resolution, SQLite pragmas, migrations equal to the models."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from labelgate.errors import StoreError
from labelgate.store.db import Database, current_revision, head_revision, resolve_url, upgrade
from labelgate.store.models import Base


def test_url_comes_from_argument_then_environment_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LABELGATE_DB", raising=False)
    assert resolve_url() == "sqlite:///labelgate.db"
    monkeypatch.setenv("LABELGATE_DB", "postgres://u@h:5/x")
    assert resolve_url() == "postgresql+psycopg://u@h:5/x"
    assert resolve_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"
    assert resolve_url("out/run.db") == "sqlite:///out/run.db"


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Database("nosuchdialect://")


def test_upgrade_builds_exactly_the_models(empty_db: Database) -> None:
    assert current_revision(empty_db) is None
    newest = sorted(
        (Path(__file__).parents[2] / "src/labelgate/store/migrations/versions").glob("0*.py")
    )[-1]
    assert upgrade(empty_db) == head_revision(empty_db) == newest.name.split("_")[0]
    with empty_db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    # idempotent
    assert upgrade(empty_db) == head_revision(empty_db)


def test_sqlite_runs_wal_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")  # parent folder is created
    upgrade(db)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    with pytest.raises(sa.exc.IntegrityError), db.session() as session:
        session.execute(
            sa.text(
                "INSERT INTO spec_versions (project_id, version, toml, digest, taxonomy_digest,"
                " locked, created_by, created_at) VALUES (999, 1, '', '', '', 0, '', '2026-01-01')"
            )
        )


def test_session_rolls_back_on_error(db: Database) -> None:
    def insert_then_fail() -> None:
        with db.session() as session:
            session.execute(
                sa.text(
                    "INSERT INTO projects (name, description, created_at) VALUES ('p', '', :t)"
                ),
                {"t": "2026-01-01"},
            )
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with db.session() as session:
        assert session.execute(sa.text("SELECT count(*) FROM projects")).scalar_one() == 0


def test_sqlite_writers_of_two_processes_take_turns(tmp_path: Path) -> None:
    """The write turn is a ``flock`` too: a second process waits in the kernel, not in
    SQLite's busy handler, and gets the turn as soon as the first one lets go."""
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / 'turns.db'}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from labelgate.store.db import Database\n"
            f"db = Database({url!r})\n"
            "with db._turn:\n"
            "    print('held', flush=True)\n"
            "    time.sleep(0.6)\n"
            "    print(time.time(), flush=True)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    db = Database(url)
    with db._turn:
        got_it = time.time()
    released = float(holder.stdout.readline())
    assert holder.wait(10) == 0
    # this process waited for the other's turn, and not long after it ended
    assert released <= got_it < released + 0.5
    db.dispose()
    with db._turn, db._turn:  # re-entrant in one thread; the file reopens after dispose
        pass


def hold_turn_in_a_thread(db: Database) -> tuple[threading.Thread, threading.Event]:
    """A thread holding the database's write turn until the returned event is set."""
    holder_has_it, let_go = threading.Event(), threading.Event()

    def hold() -> None:
        with db._turn:
            holder_has_it.set()
            let_go.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holder_has_it.wait(5)
    return holder, let_go


def test_an_event_loop_awaits_the_turn_without_blocking_and_in_arrival_order(
    tmp_path: Path,
) -> None:
    import asyncio
    import time

    db = Database(f"sqlite:///{tmp_path / 'loop.db'}")
    db.create_all()
    holder, let_go = hold_turn_in_a_thread(db)
    ran: list[str] = []

    def write(name: str) -> str:
        with db.session() as s:  # re-enters the turn the loop holds for this call
            s.execute(sa.text("SELECT 1"))
        ran.append(name)
        return name

    async def main() -> tuple[list[str], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while not ran:
                ticks += 1
                await asyncio.sleep(0.005)

        ticker = asyncio.create_task(tick())
        calls = [asyncio.create_task(db.run_in_turn(write, f"w{i}")) for i in range(5)]
        await asyncio.sleep(0.2)
        assert ran == []  # the thread still holds the turn: nobody ran yet
        let_go.set()
        done = await asyncio.gather(*calls)
        await ticker
        return done, ticks

    started = time.perf_counter()
    done, ticks = asyncio.run(main())
    holder.join()
    assert done == ran == [f"w{i}" for i in range(5)]  # in arrival order
    assert ticks >= 20  # the loop went on serving while it waited (0.2 s / 5 ms ≈ 40)
    assert time.perf_counter() - started < 5


def test_a_cancelled_wait_for_the_turn_gives_it_back(tmp_path: Path) -> None:
    import asyncio
    import threading

    db = Database(f"sqlite:///{tmp_path / 'cancel.db'}")
    db.create_all()
    holder, let_go = hold_turn_in_a_thread(db)

    async def main() -> None:
        waiting = asyncio.create_task(db.run_in_turn(lambda: None))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        let_go.set()
        await asyncio.sleep(0.2)  # the waiting thread takes the turn, then gives it back

    asyncio.run(main())
    holder.join()
    taken = threading.Event()

    def take() -> None:
        with db._turn:
            taken.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    assert taken.wait(5), "the cancelled caller's turn was never given back"


def test_only_sqlite_has_a_turn(db: Database) -> None:
    import asyncio

    if db.dialect == "sqlite":
        assert db.has_turn and asyncio.run(db.run_in_turn(lambda x: x + 1, 1)) == 2
    else:
        assert not db.has_turn
        with pytest.raises(StoreError, match="no write turn"):
            asyncio.run(db.run_in_turn(lambda: None))


def _autocheckpoint(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_background_checkpoints_keep_the_log_small_off_the_commit_path(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, blob BLOB)")
    assert _autocheckpoint(db) == 1000  # SQLite's default: the commit checkpoints

    def write(transactions: int) -> None:
        for i in range(transactions):  # each commit appends about 3 pages to the log
            with db.session() as s:
                s.execute(sa.text("INSERT INTO t (blob) VALUES (:b)"), {"b": bytes(8000 + i)})

    log = Path(f"{path}-wal")
    with db.background_checkpoints(interval=0.005):
        assert _autocheckpoint(db) == 0  # commits no longer checkpoint
        largest = 0
        for _ in range(40):
            write(25)
            largest = max(largest, log.stat().st_size)
            threading.Event().wait(0.02)  # the thread takes its turns
        checkpointer = db._checkpointer
        assert checkpointer is not None and checkpointer.checkpoints > 0
    assert checkpointer.error is None
    # 1,000 commits of ~3 pages: without checkpoints the log would pass 12 MB; the
    # thread's passes let writers start it over every few dozen commits
    assert largest < 3_000_000, largest
    assert not checkpointer._thread.is_alive()
    assert _autocheckpoint(db) == 1000  # commits checkpoint again
    # the last pass copied everything back: the file alone holds every row
    db.dispose()
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    with sa.create_engine(f"sqlite:///{copy}").connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1000


def test_background_checkpoints_run_only_for_a_sqlite_file(db: Database) -> None:
    with db.background_checkpoints():
        assert (db._checkpointer is not None) == (db.dialect == "sqlite")
    memory = Database("sqlite://")
    with memory.background_checkpoints():
        assert memory._checkpointer is None


def test_direct_statements_store_and_read_what_sqlalchemy_execute_does(db: Database) -> None:
    """Direct binds through the types' processors (datetimes on SQLite), returns the rows and
    counts, and raises SQLAlchemy's exceptions; both paths leave identical rows."""
    import datetime as dt

    from labelgate.store.db import Direct
    from labelgate.store.models import UserRow

    users = UserRow.__table__
    when = dt.datetime(2026, 12, 1, 4, 5, 6, 789012, tzinfo=dt.UTC)
    insert = sa.insert(users).returning(users.c.id, users.c.name)
    row = {"display_name": "D", "roles": ["annotator"], "active": True, "created_at": when}
    with db.session() as s:
        direct = Direct(insert).run(s, {"name": "direct", **row})
        assert [tuple(r) for r in direct.rows] == [(direct.rows[0].id, "direct")]
        s.execute(insert, {"name": "execute", **row})
    with db.session() as s:
        stored = s.execute(
            sa.select(users.c.name, users.c.roles, users.c.active, users.c.created_at)
        ).all()
        raw = s.connection().exec_driver_sql("SELECT name, created_at FROM users").all()
    assert stored[0][1:] == stored[1][1:] == (["annotator"], True, stored[0].created_at)
    assert stored[0].created_at.replace(tzinfo=dt.UTC) == when  # naive UTC back on SQLite
    assert raw[0][1] == raw[1][1]  # the very same stored value (text on SQLite)
    update = Direct(
        sa.update(users).where(users.c.name == sa.bindparam("who")).values(active=False)
    )
    with db.session() as s:
        assert update.run(s, {"who": "direct"}).rowcount == 1
        assert update.run(s, {"who": "nobody"}).rowcount == 0
    select = Direct(sa.select(users.c.active).where(users.c.name == sa.bindparam("who")))
    with db.session() as s:
        assert not select.run(s, {"who": "direct"}).scalar()
        assert select.run(s, {"who": "nobody"}).first() is None
    with pytest.raises(sa.exc.IntegrityError), db.session() as s:  # name is unique
        Direct(sa.insert(users)).run(s, {"name": "direct", **row})


def test_direct_statements_show_themselves_to_sql_listeners(tmp_path: Path) -> None:
    from labelgate.store.db import Direct

    db = Database(f"sqlite:///{tmp_path / 'seen.db'}")
    seen: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with db.session() as s:
        assert Direct(sa.select(sa.literal(7).label("n"))).run(s).scalar() == 7
    assert any(sql.startswith("SELECT ?") for sql in seen), seen


def test_background_checkpoints_refuse_an_interval_that_would_spin(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'spin.db'}")
    for interval in (0.0, -1.0, float("nan")):
        with (
            pytest.raises(ValueError, match="checkpoint interval must be > 0"),
            db.background_checkpoints(interval),
        ):
            pass
    assert _autocheckpoint(db) == 1000  # nothing was switched off on the way
