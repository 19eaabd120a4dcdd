"""labelgate's errors as HTTP answers: one status per error class, one body shape.

============================  ======  =================================================
error                         status  why
============================  ======  =================================================
not authenticated             401     no, unknown, expired or revoked token
``NotFound`` (``NotVisible``) 404     missing, or not the caller's to know about: the
                                      service's "no task N" for someone else's task is
                                      a ``NotVisible``, the same answer as a missing one
``PermissionDenied``          403     role or rule (self-review, submitted task, CSRF)
``LoginThrottled``            429     too many failed logins; ``Retry-After`` header
``ConflictError``             409     stale save; structured fields in the body
``GateFailed``                409     the batch is blocked
``WorkflowError``             409     the request is well formed but the program's state
                                      refuses it (already submitted, illegal transition,
                                      already reviewed): retrying later may succeed, so
                                      it is a conflict with the state, not bad input
``ValidationError``,          422     the body's content breaks a contract (x2 < x1,
``FormatError``, ``SpecError``        a bad file, a bad spec), as pydantic's own 422
``UploadRejected``            413/422 too large / bad name or image
``StoreError``, database      503     the store is unreachable or refused: retry later
unavailable
============================  ======  =================================================

The status is decided by the error's class alone, never by its message.

Bodies are ``{"detail": str, "type": str}``; a 404 always has ``type`` ``"NotFound"`` (a
hidden task and a missing one read alike). A conflict adds what the editor needs to
recover without parsing the message: ``current_revision_id`` (the revision that won),
``your_base_revision_id`` (the one the refused save edited) and ``task_id``. A 429 adds
``retry_after`` (seconds, as in the header).
Nothing a handler writes contains a request's body or headers (passwords, tokens).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError

from labelgate.api.uploads import UploadRejected
from labelgate.errors import (
    ConflictError,
    FormatError,
    GateFailed,
    LabelgateError,
    NotFound,
    PermissionDenied,
    SpecError,
    StoreError,
    ValidationError,
    WorkflowError,
)
from labelgate.workflow.auth import LoginThrottled

__all__ = ["NotAuthenticated", "error_body", "install_handlers", "status_of"]

log = logging.getLogger("labelgate.api")


class NotAuthenticated(LabelgateError):
    """The request carries no live credential."""


def status_of(exc: BaseException) -> int:
    """The HTTP status of one of labelgate's errors (see the module's table)."""
    if isinstance(exc, NotAuthenticated):
        return 401
    if isinstance(exc, NotFound):  # before PermissionDenied: NotVisible is both
        return 404
    if isinstance(exc, LoginThrottled):
        return 429
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, ConflictError | GateFailed | WorkflowError):
        return 409
    if isinstance(exc, UploadRejected):
        return exc.status
    if isinstance(exc, ValidationError | FormatError | SpecError):
        return 422
    if isinstance(exc, StoreError):
        return 503
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON body of an error."""
    body: dict[str, Any] = {"detail": str(exc), "type": type(exc).__name__}
    if isinstance(exc, NotFound):
        body["type"] = "NotFound"
    if isinstance(exc, ConflictError):
        body["current_revision_id"] = exc.current_revision_id
        body["your_base_revision_id"] = exc.base_revision_id
        body["task_id"] = exc.task_id
    if isinstance(exc, LoginThrottled):
        body["retry_after"] = exc.retry_after
    return body


def install_handlers(app: FastAPI) -> None:
    """Register the handlers on an app."""

    async def labelgate_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, LoginThrottled):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(error_body(exc), status_code=status, headers=headers)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        # the statement and its parameters may hold names; log the class only
        log.warning("database error on %s %s: %s", request.method, request.url.path, type(exc))
        if isinstance(exc, DataError):
            return JSONResponse(
                {"detail": "a value the database cannot store", "type": "ValidationError"},
                status_code=422,
            )
        if isinstance(exc, IntegrityError):
            # a unique name taken meanwhile (a batch name twice): the state refuses it
            return JSONResponse(
                {
                    "detail": "conflicts with an existing record (a name already taken?)",
                    "type": "WorkflowError",
                },
                status_code=409,
            )
        status = 503 if isinstance(exc, OperationalError) else 500
        return JSONResponse(
            {"detail": "the program database is unavailable; retry", "type": "StoreError"},
            status_code=status,
        )

    app.add_exception_handler(LabelgateError, labelgate_error)
    app.add_exception_handler(SQLAlchemyError, database_error)
