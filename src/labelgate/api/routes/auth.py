"""Login, logout, the caller and their password."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response, status

from labelgate.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Caller,
    StateDep,
    bearer_token,
)
from labelgate.api.errors import NotAuthenticated
from labelgate.api.schemas import ErrorOut, LoginIn, LoginOut, MeOut, PasswordChange, Responses
from labelgate.workflow.auth import (
    LoginThrottled,
    authenticate,
    csrf_token,
    login,
    revoke_token,
    set_password,
)

__all__ = ["router"]

log = logging.getLogger("labelgate.api")
router = APIRouter(prefix="/api", tags=["auth"])
REFUSED: Responses = {401: {"model": ErrorOut, "description": "Not authenticated"}}
THROTTLED: Responses = {
    429: {
        "model": ErrorOut,
        "description": "Too many failed logins for this name or address; see Retry-After",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
    }
}


@router.post("/auth/login", response_model=LoginOut, responses={**REFUSED, **THROTTLED})
def login_route(body: LoginIn, request: Request, response: Response, state: StateDep) -> LoginOut:
    """Exchange a name and password for a token; also sets the session and CSRF cookies.

    Every failure (unknown user, wrong password, no password set, inactive user) gets the
    same 401, so the answer does not tell which names exist. Too many failures for a name
    or from an address (:class:`~labelgate.workflow.auth.LoginLimits`) get 429 with
    ``Retry-After``, whatever the password; the rule is the workflow's, this only maps it.
    """
    remote = request.client.host if request.client is not None else ""
    try:
        done = login(
            state.db,
            body.name,
            body.password,
            ttl=state.settings.token_ttl,
            remote=remote,
            limits=state.settings.login_limits,
            clock=state.settings.clock,
        )
    except LoginThrottled as exc:
        log.warning("login throttled (%s limit), retry after %d s", exc.scope, exc.retry_after)
        raise
    if done is None:
        log.info("login refused for a user name of %d characters", len(body.name))
        raise NotAuthenticated("wrong name or password")
    principal, token, expires = done
    csrf = csrf_token(token)
    max_age = int(state.settings.token_ttl.total_seconds())
    secure = state.settings.secure_cookies
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="strict", secure=secure
    )
    log.info("login of user id %d", principal.id)
    return LoginOut(
        token=token,
        expires_at=expires,
        csrf_token=csrf,
        user=MeOut(id=principal.id, name=principal.name, roles=list(principal.roles)),
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=REFUSED)
def logout_route(request: Request, response: Response, me: Caller, state: StateDep) -> Response:
    """Revoke the token this request authenticated with and clear the cookies."""
    token = bearer_token(request) or request.cookies.get(SESSION_COOKIE, "")
    revoke_token(state.db, token)
    state.tokens.forget(token)
    out = Response(status_code=status.HTTP_204_NO_CONTENT)
    out.delete_cookie(SESSION_COOKIE, path="/")
    out.delete_cookie(CSRF_COOKIE, path="/")
    return out


@router.get("/me", response_model=MeOut, responses=REFUSED)
def me_route(me: Caller) -> MeOut:
    """The caller: id, name, roles."""
    return MeOut(id=me.id, name=me.name, roles=list(me.roles))


@router.put(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**REFUSED, 409: {"model": ErrorOut}},
)
def password_route(body: PasswordChange, me: Caller, state: StateDep) -> Response:
    """Change the caller's password (the current one proves it); every token is revoked."""
    if authenticate(state.db, me.name, body.current_password) is None:
        raise NotAuthenticated("wrong current password")
    set_password(state.db, me.name, body.new_password, actor=me.name)
    state.tokens.clear()
    out = Response(status_code=status.HTTP_204_NO_CONTENT)
    out.delete_cookie(SESSION_COOKIE, path="/")
    out.delete_cookie(CSRF_COOKIE, path="/")
    return out
