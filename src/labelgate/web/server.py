"""The API with the pages mounted: what ``labelgate serve`` runs once the API wires ``mount``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labelgate.store.db import Database
from labelgate.web.pages import mount

if TYPE_CHECKING:
    from fastapi import FastAPI

    from labelgate.api.deps import ApiSettings

__all__ = ["create_web_app"]


def create_web_app(db: Database, *, settings: ApiSettings | None = None) -> FastAPI:
    """``labelgate.api.create_app(db)`` plus :func:`labelgate.web.mount`.

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> from labelgate.store.db import upgrade
    >>> db = Database("sqlite://")
    >>> _ = upgrade(db)
    >>> response = TestClient(create_web_app(db)).get("/queue", follow_redirects=False)
    >>> response.status_code, response.headers["location"]
    (303, '/login?next=/queue')
    """
    # imported here: the API may import this package to mount the pages itself
    from labelgate.api import create_app

    app = create_app(db, settings=settings)
    if not getattr(app.state, "labelgate_pages", False):
        mount(app)
    return app
