"""``labelgate db upgrade|current``: migrate the program database and say where it stands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from labelgate.cli._output import console, emit_json, fail
from labelgate.errors import LabelgateError, StoreError
from labelgate.store.db import Database, current_revision, head_revision, resolve_url, upgrade

__all__ = ["DbOption", "JsonFlag", "database_error", "db_app", "display_url", "open_database"]

db_app = typer.Typer(
    name="db",
    no_args_is_help=True,
    add_completion=False,
    help="Create or migrate the program database (SQLite file or PostgreSQL).",
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Database URL or SQLite file (default: $LABELGATE_DB, else sqlite:///labelgate.db).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def open_database(url: str | None, *, must_exist: bool, as_json: bool) -> Database:
    """Open the database at ``url`` (or the environment's/default), or exit 2.

    With ``must_exist``, a SQLite file that is not there is bad input: SQLite would create
    an empty one, and a command that only reads must not leave files behind.
    """
    resolved = resolve_url(url)
    try:
        parsed = make_url(resolved)
        if must_exist and parsed.get_backend_name() == "sqlite":
            path = parsed.database
            if path and path != ":memory:" and not Path(path).expanduser().is_file():
                raise StoreError(f"no database at {path}; run `labelgate db upgrade` first")
        return Database(resolved)
    except SQLAlchemyError as exc:
        fail(database_error(resolved, exc), as_json=as_json)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)


def display_url(db: Database) -> str:
    """The URL without its password, for output."""
    return db.engine.url.render_as_string(hide_password=True)


def database_error(url: str, exc: SQLAlchemyError) -> StoreError:
    """A SQLAlchemy failure (server unreachable, not a labelgate database) as bad input."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:  # not even a URL: show it as given (it holds no parsed password)
        shown = url
    driver_error = getattr(exc, "orig", None)  # DBAPIError: the driver's own message
    lines = str(driver_error if driver_error is not None else exc).strip().splitlines()
    return StoreError(f"{shown}: {lines[0] if lines else type(exc).__name__}")


@db_app.command("upgrade")
def upgrade_command(db_url: DbOption = None, as_json: JsonFlag = False) -> None:
    """Create the schema or migrate it to the newest revision; print the revision reached."""
    database = open_database(db_url, must_exist=False, as_json=as_json)
    try:
        before = current_revision(database)
        revision = upgrade(database)
    except SQLAlchemyError as exc:
        fail(database_error(database.url, exc), as_json=as_json)
    finally:
        database.dispose()
    if as_json:
        emit_json({"database": display_url(database), "from": before, "revision": revision})
        return
    change = "already at" if before == revision else f"{before or 'empty'} ->"
    console.print(f"{display_url(database)}: {change} revision {revision}", highlight=False)


@db_app.command("current")
def current_command(db_url: DbOption = None, as_json: JsonFlag = False) -> None:
    """Print the schema revision of the database and the newest one labelgate ships."""
    database = open_database(db_url, must_exist=True, as_json=as_json)
    try:
        current = current_revision(database)
        head = head_revision(database)
    except SQLAlchemyError as exc:
        fail(database_error(database.url, exc), as_json=as_json)
    finally:
        database.dispose()
    if as_json:
        emit_json(
            {
                "database": display_url(database),
                "current": current,
                "head": head,
                "up_to_date": current == head,
            }
        )
        return
    state = "up to date" if current == head else "run `labelgate db upgrade`"
    console.print(
        f"{display_url(database)}: revision {current or 'none (empty)'}, newest {head} ({state})",
        highlight=False,
    )
