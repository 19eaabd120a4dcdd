"""The FastAPI application: ``create_app(db)`` wires routes, errors, jobs and settings.

Routes parse, call the workflow (:class:`~labelgate.workflow.program.Program`,
:mod:`labelgate.workflow.auth`, :mod:`labelgate.workflow.queries`) and render; no rule of
the program lives here. The OpenAPI document is at ``/openapi.json``, the interactive docs
at ``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from labelgate.api import job_kinds  # noqa: F401  (registers the job kinds)
from labelgate.api.deps import ApiSettings, State, StateDep, add_body_schemas
from labelgate.api.errors import install_handlers
from labelgate.api.jobs import JobRegistry
from labelgate.api.routes import (
    auth_router,
    jobs_router,
    projects_router,
    review_router,
    tasks_router,
)
from labelgate.api.routes.manage import router as manage_router
from labelgate.store.db import Database
from labelgate.workflow.auth import TokenCache

__all__ = ["create_app"]


def create_app(db: Database, *, settings: ApiSettings | None = None) -> FastAPI:
    """Build the API for one program database (migrated: ``labelgate db upgrade``).

    Parameters
    ----------
    db
        The program database.
    settings
        Limits and folders; default :class:`~labelgate.api.deps.ApiSettings`.

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> from labelgate.store.db import Database, upgrade
    >>> db = Database("sqlite://")
    >>> _ = upgrade(db)
    >>> TestClient(create_app(db)).get("/api/health").json()
    {'status': 'ok', 'database': 'ok'}
    """
    settings = settings or ApiSettings()
    jobs = JobRegistry(db, data_dir=settings.data_dir, workers=settings.job_workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # SQLite: the log is copied back by a thread, not by whichever save fills it
        with db.background_checkpoints(settings.checkpoint_seconds):
            jobs.start()  # this process also runs jobs other workers queued
            yield
            jobs.shutdown()

    app = FastAPI(
        title="labelgate",
        summary="Quality-gated image annotation: tasks, labels, review, gates, reports.",
        version="0.1.0",
        lifespan=lifespan,
    )
    tokens = TokenCache(settings.token_cache_seconds)
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_body_schemas(base_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.labelgate = State(db=db, settings=settings, jobs=jobs, tokens=tokens)
    install_handlers(app)

    @app.get("/api/health", tags=["health"])
    def health(state: StateDep) -> dict[str, Any]:
        """Liveness and database reachability (no authentication)."""
        with state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "database": "ok"}

    for router in (
        auth_router,
        tasks_router,
        review_router,
        projects_router,
        manage_router,
        jobs_router,
    ):
        app.include_router(router)
    return app
