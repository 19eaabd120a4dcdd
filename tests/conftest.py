"""Shared fixtures: the third-party reference data in ../shared/data, program databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from labelgate.store.db import Database, upgrade

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("LABELGATE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real third-party annotation files (never copied into the repo).

    Skips with a reason on a machine without it; under ``CI=true`` its absence fails.
    """
    if not SHARED_DATA.is_dir():
        message = f"third-party reference data not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (required under CI=true)")
        pytest.skip(message)
    return SHARED_DATA


# --- program databases ------------------------------------------------------------------

POSTGRES_URL = os.environ.get(
    "LABELGATE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A fresh PostgreSQL schema for one test, dropped afterwards.

    Each test gets its own schema (through ``search_path``), so tests never see each other's
    rows, and parallel CI runs on one server never collide.
    """
    import sqlalchemy as sa

    try:
        admin = sa.create_engine(POSTGRES_URL, pool_pre_ping=True)
        with admin.connect():
            pass
    except (sa.exc.OperationalError, ModuleNotFoundError) as exc:
        message = f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (required under CI=true)")
        pytest.skip(message)
    schema = f"lg_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    db = Database(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}")
    try:
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty program database (no tables), on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'labelgate.db'}")
        yield db
        db.dispose()
    else:
        yield from _postgres_database(request)


@pytest.fixture
def db(empty_db: Database) -> Database:
    """A program database migrated to the newest schema, on SQLite and on PostgreSQL."""
    upgrade(empty_db)
    return empty_db
