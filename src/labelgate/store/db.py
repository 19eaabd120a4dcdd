"""Connecting to the program database: URL resolution, engine setup, migrations.

The embedded default is one SQLite file (``labelgate.db`` in the working directory); a shared
server is PostgreSQL through psycopg 3. The URL comes from ``--db``, else ``LABELGATE_DB``,
else the default. SQLite runs in WAL mode (readers never block the writer) with foreign keys
on, and every transaction starts with ``BEGIN IMMEDIATE`` so that two writers queue for the
lock instead of one of them failing half-way with ``database is locked``. Before that
``BEGIN``, sessions queue on a lock of their own (:class:`_WriteTurn`): a thread lock inside
one process, and across processes (``serve --workers N``, the CLI beside the server) an
advisory ``flock`` on ``<file>-turn``. SQLite's own busy handler polls with growing sleeps
(up to 100 ms), so writers contending for the file lock waited far longer than the
transactions ahead of them took; a ``flock`` waiter wakes as soon as the lock is released.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from labelgate.errors import StoreError

try:  # POSIX: writers of several processes queue in the kernel (see _WriteTurn)
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "Database",
    "current_revision",
    "head_revision",
    "resolve_url",
    "upgrade",
]

ENV_VAR = "LABELGATE_DB"
DEFAULT_URL = "sqlite:///labelgate.db"
SQLITE_BUSY_TIMEOUT_SECONDS = 30


def resolve_url(url: str | None = None) -> str:
    """The database URL in force: ``url``, else ``$LABELGATE_DB``, else ``DEFAULT_URL``.

    A bare file path is taken as a SQLite file, and ``postgresql://`` is mapped to the
    psycopg 3 driver.

    Examples
    --------
    >>> resolve_url("runs/a.db")
    'sqlite:///runs/a.db'
    >>> resolve_url("postgresql://u@h/db")
    'postgresql+psycopg://u@h/db'
    """
    url = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would BEGIN lazily (DEFERRED) and defeat the
    # IMMEDIATE below, so it is switched off and SQLAlchemy's begin event issues BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class _WriteTurn:
    """A re-entrant lock held across one SQLite transaction, shared by threads and processes.

    Threads of one process take a :class:`threading.RLock`; the outermost holder then
    takes an exclusive ``flock`` on ``path`` (where the platform has ``fcntl``), so writers
    in other processes wait in the kernel's queue instead of SQLite's sleeping busy handler.
    ``path=None`` (an in-memory database) is the thread lock alone.
    """

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._depth == 0 and self._path is not None:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._lock.release()
                raise
        self._depth += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the lock file (the next turn opens it again)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class Database:
    """An engine and a session factory for one program database.

    Parameters
    ----------
    url
        SQLAlchemy URL (see :func:`resolve_url`); ``None`` takes the environment/default.
    echo
        Log SQL (debugging).

    Examples
    --------
    >>> db = Database("sqlite://")  # in memory
    >>> db.has_schema()
    False
    >>> db.create_all()
    >>> db.has_schema()
    True
    """

    def __init__(self, url: str | None = None, *, echo: bool = False) -> None:
        self.url = resolve_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise StoreError(f"not a database URL: {self.url!r}") from exc
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        elif self.dialect == "postgresql":
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except (ArgumentError, ModuleNotFoundError, NoSuchModuleError) as exc:
            raise StoreError(f"cannot open {self.url!r}: {exc}") from exc
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # one SQLite writer at a time anyway: threads and processes wait their turn here
        # instead of in SQLite's sleeping busy handler
        self._turn: AbstractContextManager[Any] = nullcontext()
        if self.dialect == "sqlite":
            database = parsed.database
            on_disk = bool(database) and database != ":memory:" and "mode=memory" not in self.url
            self._turn = _WriteTurn(
                Path(f"{database}-turn") if on_disk and fcntl is not None else None
            )

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error."""
        with self._turn, self._sessions() as session, session.begin():
            yield session

    def create_all(self) -> None:
        """Create every table directly from the models (tests; programs use :func:`upgrade`)."""
        from labelgate.store.models import Base

        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection (and the SQLite turn's lock file)."""
        self.engine.dispose()
        if isinstance(self._turn, _WriteTurn):
            self._turn.close()

    def has_schema(self) -> bool:
        """Whether the program tables exist."""
        return inspect(self.engine).has_table("projects")


def _alembic_config(db: Database) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("labelgate.store") / "migrations")
    )
    config.attributes["engine"] = db.engine
    return config


def upgrade(db: Database, revision: str = "head") -> str:
    """Migrate the database schema to ``revision`` (Alembic); return the revision reached."""
    from alembic import command

    command.upgrade(_alembic_config(db), revision)
    return current_revision(db) or ""


def current_revision(db: Database) -> str | None:
    """The Alembic revision the database is at, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str:
    """The newest revision the installed labelgate ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(db)).get_current_head()
    return head or ""
