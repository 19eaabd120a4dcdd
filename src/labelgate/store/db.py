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

A server copies the WAL back into the database file from a thread of its own
(:meth:`Database.background_checkpoints`) instead of letting every thousandth page's commit
do it inline, so no request waits for a checkpoint's copy and ``fsync``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import ClauseElement, Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
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
    "Direct",
    "current_revision",
    "head_revision",
    "resolve_url",
    "upgrade",
]

T = TypeVar("T")

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
    """The lock held across one SQLite transaction, shared by threads, processes and a loop.

    Inside one process a :class:`threading.Lock` (a thread re-entering the turn it holds
    just counts the depth); the holder then takes an exclusive ``flock`` on ``path`` (where
    the platform has ``fcntl``), so writers in other processes wait in the kernel's queue
    instead of SQLite's sleeping busy handler. ``path=None`` (an in-memory database) is the
    thread lock alone. :meth:`run` takes the turn for an event loop without blocking it.
    """

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()  # the calling thread's depth of re-entry
        self._path = path
        self._fd: int | None = None
        self._queue: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def _take(self, wait: bool) -> bool:
        """Take the lock and the file lock (blocking or not); ``False`` if not taken."""
        if not self._lock.acquire(blocking=wait):
            return False
        if self._path is not None:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(self._fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock.release()
                return False
            except BaseException:
                self._lock.release()
                raise
        return True

    def _give_back(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def __enter__(self) -> None:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self._take(wait=True)
        self._local.depth = depth + 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            self._give_back()

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)`` in the event loop's thread, holding the turn.

        The loop is never blocked waiting: this loop's callers queue in arrival order on an
        :class:`asyncio.Lock`, and the first of them takes a free turn at once or waits for
        it in a worker thread (a ``threading.Lock`` and a ``flock`` may be released by
        another thread than the one that took them). A turn taken for a caller that was
        cancelled meanwhile is given back.
        """
        loop = asyncio.get_running_loop()
        if self._queue is None or self._queue[0] is not loop:
            self._queue = (loop, asyncio.Lock())
        async with self._queue[1]:
            if not self._take(wait=False):
                waiting = loop.run_in_executor(None, self._take, True)
                try:
                    await asyncio.shield(waiting)
                except asyncio.CancelledError:
                    waiting.add_done_callback(
                        lambda done: (
                            None if done.cancelled() or done.exception() else self._give_back()
                        )
                    )
                    raise
            self._local.depth = 1
            try:
                return call(*args, **kwargs)
            finally:
                self._local.depth = 0
                self._give_back()

    def close(self) -> None:
        """Close the lock file (the next turn opens it again)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class _Checkpointer:
    """A thread running ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval`` seconds.

    A passive checkpoint takes no write lock and waits for no one: writers go on appending
    to the log while it copies committed pages into the database file, and the next writer
    after a complete checkpoint starts the log over, so the file stays small. It runs on a
    connection of its own (not the pool's), and sqlite3 releases the GIL while it works.
    """

    def __init__(self, path: str, interval: float) -> None:
        if not interval > 0:  # 0 or less would spin; NaN never waits either
            raise ValueError(f"checkpoint interval must be > 0 seconds, got {interval!r}")
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self.checkpoints = 0  # completed passes (tests watch it)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="labelgate-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(
                self._path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, check_same_thread=False
            )
        except sqlite3.Error as exc:  # pragma: no cover - the server opened the file already
            self.error = exc
            return
        try:
            while True:
                stopping = self._stop.wait(self._interval)
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # a busy moment: the next pass catches up
                    self.error = exc
                if stopping:
                    return
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop after one last pass (what was committed is copied back)."""
        self._stop.set()
        self._thread.join()


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
        self._checkpointer: _Checkpointer | None = None
        # one SQLite writer at a time anyway: threads and processes wait their turn here
        # instead of in SQLite's sleeping busy handler
        self._turn: AbstractContextManager[Any] = nullcontext()
        # the SQLite file, where there is one (not in memory): the turn's lock file and the
        # checkpoint thread go beside it
        self._file: str | None = None
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and "mode=memory" not in self.url:
                self._file = database
            self._turn = _WriteTurn(
                Path(f"{self._file}-turn") if self._file and fcntl is not None else None
            )

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error."""
        with self._turn, self._sessions() as session, session.begin():
            yield session

    @property
    def has_turn(self) -> bool:
        """Whether transactions queue on a write turn (SQLite) rather than run side by side."""
        return isinstance(self._turn, _WriteTurn)

    async def run_in_turn(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Await SQLite's write turn without blocking the event loop, then run ``call``.

        ``call`` runs in the loop's thread, holding the turn; the sessions it opens
        re-enter it. For short calls only (the loop serves no one else while it runs):
        the API's request work (:func:`labelgate.api.deps.run_db`). Raises
        :class:`StoreError` where there is no turn (PostgreSQL).
        """
        if not isinstance(self._turn, _WriteTurn):
            raise StoreError(f"{self.dialect} has no write turn: run the call in a thread")
        return await self._turn.run(call, *args, **kwargs)

    @contextmanager
    def background_checkpoints(self, interval: float = 0.1) -> Iterator[None]:
        """Checkpoint SQLite's write-ahead log from a thread while the block runs.

        Connections opened meanwhile never checkpoint on commit (``wal_autocheckpoint=0``):
        by default the commit that fills the log past 1,000 pages copies them all back and
        syncs the file, several milliseconds in the middle of someone's request, every
        sixty-odd saves. A thread does it every ``interval`` seconds instead (see
        :class:`_Checkpointer`); leaving the block stops it after a last pass and lets
        connections checkpoint on commit again. Elsewhere (PostgreSQL, an in-memory
        database) this does nothing.
        """
        if self._file is None:
            yield
            return
        checkpointer = _Checkpointer(self._file, interval)

        def manual(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        event.listen(self.engine, "connect", manual)
        self.engine.dispose()  # pooled connections reopen with the setting
        checkpointer.start()
        self._checkpointer = checkpointer
        try:
            yield
        finally:
            event.remove(self.engine, "connect", manual)
            self.engine.dispose()
            checkpointer.stop()
            self._checkpointer = None

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


class _Plan(NamedTuple):
    compiled: Any  # SQLAlchemy's SQLCompiler for one dialect and set of parameter names
    sql: str
    order: tuple[str, ...] | None  # parameter names in placeholder order (positional styles)
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]


class Direct:
    """A Core statement run straight on the DBAPI cursor of a session's connection.

    For the few statements of the hottest request (an editor's save): SQLAlchemy's
    ``execute`` spends 15-20 us per statement on its execution context and result objects,
    more than SQLite takes to run it. The statement is still compiled by SQLAlchemy, once
    per dialect and set of parameter names, so the SQL and the parameters' conversion (each
    bind parameter type's processor, e.g. datetimes to text on SQLite) are the ones
    ``execute`` would use; driver errors are raised as SQLAlchemy's exceptions. Rows come
    back as named tuples of the driver's values, unprocessed: use it for statements whose
    results are numbers and text (SQLite returns booleans as 0 and 1). Where the engine
    echoes SQL or has ``before_cursor_execute``/``after_cursor_execute`` listeners
    (tracing), the statement goes through SQLAlchemy's ``execute`` so they see it.

    Examples
    --------
    >>> import sqlalchemy as sa
    >>> db = Database("sqlite://")
    >>> count = Direct(sa.select(sa.literal(1).label("one"), sa.bindparam("x", type_=sa.Integer)))
    >>> with db.session() as session:
    ...     count.run(session, {"x": 2}).first()
    Row(one=1, x=2)
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        keys = list(getattr(statement, "exported_columns", {}).keys())
        self._row: Any = namedtuple("Row", keys, rename=True) if keys else None
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def _plan(self, dialect: Any, names: tuple[str, ...]) -> _Plan:
        compiled: Any = self.statement.compile(dialect=dialect, column_keys=list(names))
        processors = []
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((name, process))
        order = tuple(compiled.positiontup) if compiled.positional else None
        plan = _Plan(compiled, str(compiled), order, tuple(processors))
        self._plans[(dialect.name, names)] = plan
        return plan

    def run(self, session: Session, params: Mapping[str, Any] | None = None) -> DirectResult:
        """Run in the session's transaction; the rows (if any) and the count of rows changed."""
        connection = session.connection()
        dialect = connection.dialect
        params = params or {}
        watched = connection.dispatch
        if connection.engine.echo or watched.before_cursor_execute or watched.after_cursor_execute:
            # someone watches the SQL (echo, tracing, a test's hook): SQLAlchemy's own path
            result = connection.execute(self.statement, dict(params))  # type: ignore[call-overload]
            return DirectResult(list(result) if result.returns_rows else [], result.rowcount)
        plan = self._plans.get((dialect.name, tuple(params))) or self._plan(dialect, tuple(params))
        values = plan.compiled.construct_params(params)
        for name, process in plan.processors:
            values[name] = process(values[name])
        args: Any = [values[name] for name in plan.order] if plan.order is not None else values
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        rows: list[Any]
        try:
            cursor.execute(plan.sql, args)
            rows = list(cursor.fetchall()) if cursor.description else []
            changed = cursor.rowcount
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                plan.sql, args, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        finally:
            cursor.close()
        if self._row is not None:
            rows = [self._row._make(row) for row in rows]
        return DirectResult(rows, changed)


class DirectResult(NamedTuple):
    """What :meth:`Direct.run` returns: the rows, and the count of rows changed."""

    rows: list[Any]
    rowcount: int

    def first(self) -> Any:
        """The first row, or ``None``."""
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        """The first column of the first row, or ``None``."""
        return self.rows[0][0] if self.rows else None


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
