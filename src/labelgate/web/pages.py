"""HTML routes, static files and the web-only read endpoints of the pages.

The pages are static HTML plus JavaScript modules (``static/``); every piece of data comes
from the API (``/api/...``) or from the few read endpoints below (``/web/api/...``), each
of which asks the workflow service, which checks who may see what. A page route only
checks that a session cookie is live (otherwise it redirects to the login page) and that
the caller holds a role that can use the page; the data behind the page is guarded by the
API exactly as for any other client.
"""

from __future__ import annotations

import functools
import mimetypes
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select

from labelgate.errors import PermissionDenied
from labelgate.store.db import Database
from labelgate.store.models import ImageRow, ProjectRow
from labelgate.web.review import review_pair
from labelgate.workflow.auth import MANAGERS, STAFF, Principal, resolve_token
from labelgate.workflow.program import Program
from labelgate.workflow.qa_views import INSPECTORS
from labelgate.workflow.queries import NotVisible, task_project

__all__ = ["PAGE_HEADERS", "SESSION_COOKIE", "mount"]

#: the API's session cookie (``labelgate.api.deps.SESSION_COOKIE``; a test checks they agree)
SESSION_COOKIE = "labelgate_session"
#: every page: scripts and styles from this origin only, never framed, never cached
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_ID = 2**31 - 1
Id = Annotated[int, PathParam(ge=1, le=MAX_ID)]
REVIEWERS = frozenset({"reviewer", "adjudicator", *STAFF})
ADJUDICATORS = frozenset({"adjudicator", *MANAGERS})
_STATIC = Path(str(resources.files("labelgate.web") / "static"))
_PAGES = resources.files("labelgate.web") / "pages"


@functools.cache
def _page_text(name: str) -> str:
    return (_PAGES / f"{name}.html").read_text(encoding="utf-8")


def _db(request: Request) -> Database:
    db: Database = request.app.state.labelgate.db
    return db


def _principal(request: Request) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    return resolve_token(_db(request), token) if token else None


def _page(request: Request, name: str, roles: frozenset[str] | None = None) -> Response:
    principal = _principal(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    if roles is not None and not principal.has_any(roles):
        html = _page_text("forbidden").replace("{{roles}}", ", ".join(sorted(roles)))
        return HTMLResponse(html, status_code=403, headers=PAGE_HEADERS)
    return HTMLResponse(_page_text(name), headers=PAGE_HEADERS)


def _caller(request: Request) -> Principal:
    principal = _principal(request)
    if principal is None:
        raise HTTPException(
            401, "not authenticated: log in first", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal


router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request) -> Response:
    """Managers land on their dashboards, everyone else on their queue."""
    principal = _principal(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    target = "/dashboard" if principal.has_any(STAFF) else "/queue"
    if principal.has_any({"reviewer", "adjudicator"}) and not principal.has_any(STAFF):
        target = "/review"
    return RedirectResponse(target, status_code=303)


@router.get("/login")
def login_page() -> Response:
    """The login form (no session needed)."""
    return HTMLResponse(_page_text("login"), headers=PAGE_HEADERS)


@router.get("/queue")
def queue_page(request: Request) -> Response:
    """The caller's own task queue."""
    return _page(request, "queue")


@router.get("/annotate/{task_id}")
def annotate_page(request: Request, task_id: Id) -> Response:
    """The editor for one of the caller's tasks (the API refuses anyone else's)."""
    return _page(request, "annotate")


@router.get("/review")
def review_home(request: Request) -> Response:
    """Reviewers' and adjudicators' start: projects, batches, their queues."""
    return _page(request, "review_home", REVIEWERS)


@router.get("/review/{task_id}")
def review_page(request: Request, task_id: Id) -> Response:
    """One submitted task beside its blind twin, with per-object verdicts."""
    return _page(request, "review", REVIEWERS)


@router.get("/adjudicate/{adjudication_id}")
def adjudication_page(request: Request, adjudication_id: Id) -> Response:
    """One dispute: annotator A's and B's versions side by side, take one with a reason."""
    return _page(request, "adjudicate", ADJUDICATORS)


@router.get("/qa")
def qa_home(request: Request) -> Response:
    """The batches in which the caller holds QA tasks (reviewers, managers, admins)."""
    return _page(request, "qa", INSPECTORS)


@router.get("/qa/{project}/{batch_id}")
def qa_page(request: Request, project: str, batch_id: Id) -> Response:
    """The caller's sampled items of a batch, one after another: flag defects or call clean."""
    return _page(request, "qa", INSPECTORS)


@router.get("/manage")
def manage_home(request: Request) -> Response:
    """The projects a manager or auditor may manage or trace."""
    return _page(request, "manage", STAFF)


@router.get("/manage/{project}")
def manage_page(request: Request, project: str) -> Response:
    """Batches and their gates (advance), qualification, QA sample, audit and lineage."""
    return _page(request, "manage", STAFF)


@router.get("/dashboard")
def dashboard_home(request: Request) -> Response:
    """The projects a manager may watch."""
    return _page(request, "dashboard", STAFF)


@router.get("/dashboard/{project}")
def dashboard_page(request: Request, project: str) -> Response:
    """Gates, quality, annotators, QA and cost of one project."""
    return _page(request, "dashboard", STAFF)


# --- web-only read endpoints (each one call into the workflow) ---------------------------


@router.get("/web/api/tasks/{task_id}")
def task_context(request: Request, task_id: Id) -> dict[str, Any]:
    """The caller's own task as their queue lists it, with its project's name.

    The same answer for a missing task and for anyone else's: the workflow's "no task".
    """
    me = _caller(request)
    project = task_project(_db(request), task_id)
    for view in Program(_db(request), project).my_tasks(me.name):
        if view.task_id == task_id:
            return {
                "task_id": view.task_id,
                "project": project,
                "image_id": view.image_id,
                "file_name": view.file_name,
                "width": view.width,
                "height": view.height,
                "batch": view.batch,
                "status": view.status,
                "image_url": f"/web/images/{task_id}",
            }
    raise NotVisible(f"no task {task_id} for {me.name!r}")


@router.get("/web/api/review/{task_id}")
def review_context(request: Request, task_id: Id) -> dict[str, Any]:
    """A submitted task, its blind twin (if any) and their matched pairs with IoU."""
    me = _caller(request)
    return review_pair(_db(request), me, task_id)


@router.get("/web/images/{task_id}")
def task_image(request: Request, task_id: Id) -> Response:
    """The image of a task, for its assignee or a reviewer; 404 while no file is stored."""
    me = _caller(request)
    db = _db(request)
    project = task_project(db, task_id)
    image_id = Program(db, project).task_image(me.name, task_id)
    with db.session() as s:
        uri = s.execute(
            select(ImageRow.uri)
            .join(ProjectRow, ProjectRow.id == ImageRow.project_id)
            .where(ProjectRow.name == project, ImageRow.external_id == image_id)
        ).scalar()
    path = Path(uri) if uri else None
    if path is None or not path.is_file():
        raise NotVisible(f"task {task_id}: no image file stored")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if not media_type.startswith("image/") or media_type == "image/svg+xml":
        raise PermissionDenied(f"task {task_id}: the stored file is not a raster image")
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private"})


def mount(app: FastAPI) -> None:
    """Add the pages, their static files and the web read endpoints to an API app.

    Parameters
    ----------
    app
        An app from :func:`labelgate.api.create_app` (its ``state.labelgate.db`` and its
        error handlers are used). Mounting twice is a no-op.
    """
    if getattr(app.state, "labelgate_pages", False):
        return
    app.state.labelgate_pages = True
    app.include_router(router)
    app.mount("/static/web", StaticFiles(directory=_STATIC), name="web-static")
