"""Request dependencies: settings, the caller (bearer or cookie + CSRF), paging, programs.

Authentication, in order:

1. ``Authorization: Bearer <token>``: scripts and the CLI; no CSRF check (a browser never
   attaches this header on its own).
2. the ``labelgate_session`` cookie (HttpOnly, SameSite=Strict) that login sets: the pages.
   Unsafe methods (POST, PUT, PATCH, DELETE) must then carry ``X-CSRF-Token`` equal to the
   ``labelgate_csrf`` cookie (readable by the page's script, not by other sites) *and* to
   the value bound to the session token (:func:`labelgate.workflow.auth.csrf_token`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool

from labelgate.api.errors import NotAuthenticated
from labelgate.api.jobs import JobRegistry
from labelgate.errors import PermissionDenied
from labelgate.store.db import Database
from labelgate.store.models import utcnow
from labelgate.workflow.auth import (
    TOKEN_TTL,
    LoginLimits,
    Principal,
    TokenCache,
    csrf_token,
)
from labelgate.workflow.program import Program
from labelgate.workflow.queries import task_project, visible_project

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "UNSAFE_METHODS",
    "ApiSettings",
    "Caller",
    "Paging",
    "Programs",
    "State",
    "add_body_schemas",
    "app_state_of",
    "bearer_token",
    "caller",
    "documented_body",
    "header_value",
    "json_body",
    "open_program",
    "paging",
    "run_db",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

SESSION_COOKIE = "labelgate_session"
CSRF_COOKIE = "labelgate_csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Limits and places of one API process.

    Parameters
    ----------
    data_dir
        Where uploads (``images/<project>/``) and job outputs (``jobs/``) go; default a
        ``labelgate-data`` folder in the working directory.
    max_upload_bytes
        Largest single uploaded file (default 64 MiB).
    max_upload_files
        Most files in one upload request.
    max_image_pixels
        Largest image (width x height) accepted; default 100 megapixels (Pillow's own
        bomb limit is 89 M and warns, it does not refuse).
    token_ttl
        Lifetime of a login's token.
    secure_cookies
        Mark cookies ``Secure`` (serve over HTTPS); off for plain-HTTP loopback.
    job_workers
        Threads running background jobs.
    login_limits
        Failed logins tolerated per user name and per remote address within a window
        (default 5 and 20 per 15 min), shared by every worker through the database.
    clock
        The current time (UTC) for login throttling and issued tokens; tests pass a fake one.
    token_cache_seconds
        How long this process trusts a token it has looked up
        (:class:`~labelgate.workflow.auth.TokenCache`): a logout or role change made by
        another worker process or the CLI applies here within this time; 0 looks every
        request's token up in the database.
    checkpoint_seconds
        On SQLite, how often a thread copies the write-ahead log back into the database
        file (:meth:`~labelgate.store.db.Database.background_checkpoints`) while the app
        runs, instead of the commit that fills it.
    """

    data_dir: Path = field(default_factory=lambda: Path("labelgate-data"))
    max_upload_bytes: int = 64 * 1024 * 1024
    max_upload_files: int = 500
    max_image_pixels: int = 100_000_000
    token_ttl: dt.timedelta = TOKEN_TTL
    secure_cookies: bool = False
    job_workers: int = 2
    login_limits: LoginLimits = field(default_factory=LoginLimits)
    clock: Callable[[], dt.datetime] = utcnow
    token_cache_seconds: float = 2.0
    checkpoint_seconds: float = 0.1


class Programs:
    """The app's memory of which project each task is in, and of each project's Program.

    Neither answer ever changes (a task stays in its project; projects are neither renamed
    nor deleted), so a request does not spend two transactions finding them again: a save
    is four transactions without it, two with it. Only answers found are kept (a missing
    task or project is asked again); past ``max_tasks`` tasks it starts over.
    """

    def __init__(self, max_tasks: int = 100_000) -> None:
        self._max_tasks = max_tasks
        self._projects: dict[int, str] = {}
        self._programs: dict[str, Program] = {}
        self._lock = threading.Lock()

    def of_project(self, db: Database, name: str) -> Program:
        """``Program(db, name)``; :class:`~labelgate.errors.StoreError` for no such project."""
        program = self._programs.get(name)
        if program is None:
            program = Program(db, name)
            with self._lock:
                self._programs[name] = program
        return program

    def of_task(self, db: Database, task_id: int) -> Program:
        """The program holding a task; :class:`~labelgate.workflow.queries.NotVisible` if none."""
        name = self._projects.get(task_id)
        if name is None:
            name = task_project(db, task_id)
            with self._lock:
                if len(self._projects) >= self._max_tasks:
                    self._projects.clear()
                self._projects[task_id] = name
        return self.of_project(db, name)


@dataclass(frozen=True, slots=True)
class State:
    """What every route reaches through ``request.app.state.labelgate``."""

    db: Database
    settings: ApiSettings
    jobs: JobRegistry
    programs: Programs = field(default_factory=Programs)
    tokens: TokenCache = field(default_factory=TokenCache)


# The dependencies below that do no I/O, and the caller on a cached token, are coroutines:
# FastAPI runs a plain function dependency in the thread pool, and a save would hop threads
# three times instead of once (the hops cost more CPU than the save's own SQL).


async def app_state(request: Request) -> State:
    """The app's :class:`State` (a dependency)."""
    return app_state_of(request)


def app_state_of(request: Request) -> State:
    """The app's :class:`State`."""
    state: State = request.app.state.labelgate
    return state


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def caller(request: Request) -> Principal:
    """The authenticated user, or 401; cookie sessions must pass the CSRF check on writes."""
    state = app_state_of(request)
    token = bearer_token(request)
    via_cookie = False
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        via_cookie = token is not None
    if not token:
        raise NotAuthenticated("not authenticated: log in or send a bearer token")
    principal = state.tokens.get(token)
    if principal is None:
        principal = await run_db(state, state.tokens.resolve, state.db, token)
    if principal is None:
        raise NotAuthenticated("not authenticated: the token is unknown, expired or revoked")
    if via_cookie and request.method in UNSAFE_METHODS:
        header = request.headers.get(CSRF_HEADER, "")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        expected = csrf_token(token)
        if not (
            header and hmac.compare_digest(header, cookie) and hmac.compare_digest(header, expected)
        ):
            raise PermissionDenied(
                f"CSRF check failed: a cookie session must send {CSRF_HEADER} equal to the "
                f"{CSRF_COOKIE} cookie"
            )
    return principal


Caller = Annotated[Principal, Depends(caller)]


@dataclass(frozen=True, slots=True)
class Paging:
    """``?limit=&offset=`` of a list."""

    limit: int
    offset: int


async def paging(
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")] = 0,
) -> Paging:
    """The page a list route answers."""
    return Paging(limit, offset)


PagingDep = Annotated[Paging, Depends(paging)]
StateDep = Annotated[State, Depends(app_state)]


async def run_db(state: State, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a short database call (a few milliseconds) for a request.

    On SQLite the event loop awaits the write turn and runs the call inline
    (:meth:`~labelgate.store.db.Database.run_in_turn`). A handoff to the thread pool cost
    more CPU than a save's own SQL, and the thread then waited for the GIL while holding
    the turn, so every writer behind it waited too. The wait itself does not block the
    loop: it parses, authenticates and validates other requests meanwhile, and with
    ``serve --workers N`` one process does that while another holds the turn.

    On PostgreSQL (network round trips, row locks rather than one writer) the call runs
    in the thread pool.
    """
    if state.db.has_turn:
        return await state.db.run_in_turn(call, *args, **kwargs)
    return await run_in_threadpool(call, *args, **kwargs)


# --- a route that reads its own caller, header and body -------------------------------------
#
# FastAPI's parameter machinery (solving the caller dependency, the header, the body) cost
# about a fifth of a save's CPU. The hottest route (``PUT /api/tasks/{id}/labels``) reads
# them itself with these helpers, in FastAPI's order (who is calling, 401/403, before what
# they sent, 422), with FastAPI's 422 body, and declares them to OpenAPI with
# :func:`documented_body` so that the document stays what the parameters would have made.

_BODY_MODELS: list[type[BaseModel]] = []


def documented_body(model: type[BaseModel], *headers: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON body of ``model`` and header parameters.

    The model joins the document's ``components`` through :func:`add_body_schemas`.
    """
    _BODY_MODELS.append(model)
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
        "parameters": list(headers),
    }


def add_body_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Put the models of :func:`documented_body` into an OpenAPI document's components."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in _BODY_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, nested in schema.pop("$defs", {}).items():
            schemas.setdefault(name, nested)
        schemas.setdefault(model.__name__, schema)
    return document


def header_value(request: Request, parameter: Mapping[str, Any]) -> str | None:
    """An optional header, checked against its OpenAPI declaration (else FastAPI's 422).

    ``parameter`` is what the route passes to :func:`documented_body`: the header's name
    and its ``minLength``, ``maxLength`` and ``pattern``, so that the check and the
    document cannot drift apart.
    """
    name, schema = parameter["name"], parameter["schema"]
    value = request.headers.get(name)
    if value is None:
        return None
    low, high, pattern = schema["minLength"], schema["maxLength"], schema["pattern"]
    if not low <= len(value) <= high or not re.fullmatch(pattern, value):
        raise RequestValidationError(
            [
                {
                    "type": "string_pattern_mismatch",
                    "loc": ("header", name),
                    "msg": f"expected {low} to {high} characters matching {pattern!r}",
                    "input": value,
                }
            ]
        )
    return value


async def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model`` (pydantic parses and checks it in one pass)."""
    try:
        return model.model_validate_json(await request.body())
    except PydanticValidationError as exc:
        errors = [
            {
                **e,
                "loc": ("body", *e["loc"]),
                # a body that is not JSON is echoed back as text (it may not be UTF-8)
                "input": e["input"].decode("utf-8", "replace")
                if isinstance(e["input"], bytes)
                else e["input"],
            }
            for e in exc.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from None


def open_program(state: State, principal: Principal, project: str) -> Program:
    """The project as a :class:`Program`, if the caller may see it (else 404)."""
    visible_project(state.db, principal, project)
    return state.programs.of_project(state.db, project)
