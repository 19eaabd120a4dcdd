"""``labelgate serve``: the web API and the pages on uvicorn, in one or several processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from labelgate.cli._output import console, fail
from labelgate.cli.db import DbOption, display_url, open_database
from labelgate.errors import StoreError

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["serve_command", "worker_app"]

# how `serve --workers N` hands its settings to the worker processes uvicorn starts
_WORKER_ENV = "LABELGATE_SERVE_WORKER"


def serve_command(
    db_url: DbOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", help="Folder for uploaded images and job outputs."),
    ] = Path("labelgate-data"),
    secure_cookies: Annotated[
        bool,
        typer.Option("--secure-cookies", help="Mark session cookies Secure (behind HTTPS)."),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Worker processes (uvicorn); on SQLite they take turns at the write lock.",
        ),
    ] = 1,
    token_cache_seconds: Annotated[
        float,
        typer.Option(
            "--token-cache-seconds",
            min=0.0,
            max=300.0,
            help=(
                "How long a process trusts a login token it looked up: a logout or role "
                "change made by another worker or the CLI applies within this time (0: "
                "look every request's token up)."
            ),
        ),
    ] = 2.0,
) -> None:
    """Serve the web API: OpenAPI at /openapi.json, interactive docs at /docs.

    The database must be migrated (`labelgate db upgrade`). Users log in with a password
    set by `labelgate user add NAME --role R --password-stdin` or `labelgate user passwd`.
    """
    import uvicorn

    from labelgate.api import ApiSettings, create_app
    from labelgate.store.db import current_revision, head_revision
    from labelgate.web import mount

    database = open_database(db_url, must_exist=True, as_json=False)
    if current_revision(database) != head_revision(database):
        fail(
            StoreError(
                f"{display_url(database)} is at schema {current_revision(database)}, not "
                f"{head_revision(database)}: run `labelgate db upgrade` first"
            ),
            as_json=False,
        )
    console.print(
        f"labelgate on http://{host}:{port}: pages at /, API at /api "
        f"(database {display_url(database)}, {workers} worker process(es))",
        highlight=False,
    )
    if workers > 1:
        # uvicorn starts each worker from an import string: the factory reads this back
        os.environ[_WORKER_ENV] = json.dumps(
            {
                "db": database.url,
                "data_dir": str(data_dir),
                "secure_cookies": secure_cookies,
                "token_cache_seconds": token_cache_seconds,
            }
        )
        database.dispose()
        from labelgate.cli._uvicorn import NoDelayProtocol

        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=workers,
            http=NoDelayProtocol,  # the workers' connections would keep Nagle on
            host=host,
            port=port,
            log_level="info",
            server_header=False,
        )
        return
    settings = ApiSettings(
        data_dir=data_dir,
        secure_cookies=secure_cookies,
        token_cache_seconds=token_cache_seconds,
    )
    app = create_app(database, settings=settings)
    mount(app)  # the pages: login, queue, editor, review, dashboards
    _freeze_startup_objects()
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)


def _freeze_startup_objects() -> None:
    """Move what start-up built out of the cyclic collector's sight (``gc.freeze``).

    Modules, routes, models and compiled statements live as long as the process; with them
    in view, a full collection paused every request in flight for ~90 ms (measured at 50
    clients), without them a few milliseconds.
    """
    import gc

    gc.collect()
    gc.freeze()


def worker_app() -> FastAPI:
    """The app of one ``serve --workers`` process, from the settings ``serve`` left it."""
    from labelgate.api import ApiSettings, create_app
    from labelgate.store.db import Database
    from labelgate.web import mount

    config = json.loads(os.environ[_WORKER_ENV])
    settings = ApiSettings(
        data_dir=Path(config["data_dir"]),
        secure_cookies=bool(config["secure_cookies"]),
        token_cache_seconds=float(config["token_cache_seconds"]),
    )
    app = create_app(Database(config["db"]), settings=settings)
    mount(app)
    _freeze_startup_objects()
    return app
