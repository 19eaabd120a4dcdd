"""``labelgate serve``: the web API (and, later, the pages) on uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labelgate.cli._output import console, fail
from labelgate.cli.db import DbOption, display_url, open_database
from labelgate.errors import StoreError

__all__ = ["serve_command"]


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
    settings = ApiSettings(data_dir=data_dir, secure_cookies=secure_cookies)
    app = create_app(database, settings=settings)
    mount(app)  # the pages: login, queue, editor, review, dashboards
    console.print(
        f"labelgate on http://{host}:{port}: pages at /, API at /api "
        f"(database {display_url(database)})",
        highlight=False,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
