"""Database setup: URL resolution, SQLite pragmas, migrations equal to the models."""

from __future__ import annotations

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
