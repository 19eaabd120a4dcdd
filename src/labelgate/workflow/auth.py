"""Who is calling: passwords (argon2id), opaque API tokens, and the role rules of the API.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults, RFC 9106's second
recommended profile); only the hash is stored in ``users.password_hash``. A login issues an
opaque random token (256 bits, URL-safe) of which only the sha256 is stored in
``api_tokens``: the token itself exists only in the client. Tokens expire (default 12 h)
and are revoked by a logout or a password change.

Every check here answers the same way for an unknown user, an inactive one, a wrong password
and a user without a password, and does the same argon2 work for each, so neither the answer
nor its timing tells a caller which names exist.

Nothing in this module logs or returns a password or a token except :func:`issue_token`'s
return value, which goes straight to the client.

Password guessing is throttled across every API worker through the ``login_attempts``
table (:class:`LoginLimits`, :func:`check_login_allowed`): after ``user_failures`` failed
logins for one name (default 5), or ``remote_failures`` from one address (default 20),
within ``window`` (default 15 min), :func:`login` raises :class:`LoginThrottled` (the API's
429 with ``Retry-After``) *before* any password is verified, so the answer and its timing
say nothing about the password; a success resets the name's count (not the address's).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import bindparam, delete, func, select, update

from labelgate.errors import PermissionDenied, WorkflowError
from labelgate.store.db import Database
from labelgate.store.models import ApiTokenRow, LoginAttemptRow, UserRow, utcnow
from labelgate.workflow.audit import append_event

__all__ = [
    "MANAGERS",
    "MIN_PASSWORD_LENGTH",
    "STAFF",
    "TOKEN_TTL",
    "LoginLimits",
    "LoginThrottled",
    "Principal",
    "TokenCache",
    "authenticate",
    "check_login_allowed",
    "check_password",
    "configure_hashing",
    "csrf_token",
    "hash_password",
    "issue_token",
    "login",
    "prune_login_attempts",
    "record_login_attempt",
    "require_role",
    "resolve_token",
    "revoke_token",
    "set_password",
    "token_digest",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 10
TOKEN_TTL = dt.timedelta(hours=12)
MANAGERS = frozenset({"admin", "manager"})
#: roles that may read every project (gates, reports, the audit log)
STAFF = frozenset({"admin", "manager", "auditor"})

_HASHER = PasswordHasher()
# verified against when the user is unknown, so a wrong name costs what a wrong password does;
# computed on first use, not at import (an argon2 hash costs ~0.2 s on every CLI start)
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _HASHER.hash("labelgate-no-such-user")
    return _DUMMY_HASH


def configure_hashing(*, time_cost: int, memory_cost_kib: int, parallelism: int = 1) -> None:
    """Set the argon2id cost of new hashes (existing hashes keep the cost they carry).

    The default is argon2-cffi's (RFC 9106 low-memory profile: 3 passes over 64 MiB), about
    0.1-0.6 s per hash. Test suites lower it, since every login verifies a hash; a
    deployment may raise it.
    """
    global _HASHER, _DUMMY_HASH
    _HASHER = PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism
    )
    _DUMMY_HASH = None  # rehashed at the new cost on first use


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user: id, name and roles (what every permission check reads)."""

    id: int
    name: str
    roles: tuple[str, ...]

    def has_any(self, roles: Iterable[str]) -> bool:
        """Whether the user holds at least one of ``roles``."""
        return bool(set(roles) & set(self.roles))


def hash_password(password: str) -> str:
    """The argon2id hash of a password (PHC string with its own salt and parameters).

    Examples
    --------
    >>> hash_password("correct horse battery").startswith("$argon2id$")
    True
    """
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; ``False`` for no hash or a bad one.

    Examples
    --------
    >>> verify_password(hash_password("correct horse battery"), "correct horse battery")
    True
    >>> verify_password(None, "anything")
    False
    """
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    """The sha256 hex of a token: the only form in which a token is stored.

    Examples
    --------
    >>> len(token_digest("abc"))
    64
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token bound to a session token (HMAC-SHA256 of a fixed label under it).

    The double-submit check compares the ``X-CSRF-Token`` header with the
    ``labelgate_csrf`` cookie *and* with this value, so a cookie planted by a sibling
    subdomain cannot be paired with someone else's session.

    Examples
    --------
    >>> csrf_token("t") == csrf_token("t") != csrf_token("u")
    True
    """
    return hmac.new(token.encode("utf-8"), b"labelgate-csrf", hashlib.sha256).hexdigest()


def _principal(user: UserRow) -> Principal:
    return Principal(user.id, user.name, tuple(sorted(user.roles)))


def check_password(password: str) -> None:
    """Raise :class:`WorkflowError` for a password too short or too long to accept.

    Examples
    --------
    >>> check_password("short")
    Traceback (most recent call last):
    ...
    labelgate.errors.WorkflowError: a password needs at least 10 characters
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WorkflowError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1000 or "\x00" in password:
        raise WorkflowError("a password has at most 1000 characters and no NUL")


def set_password(db: Database, name: str, password: str, *, actor: str) -> None:
    """Set a user's password (argon2id) and revoke every token they hold.

    Users change their own password; admins and managers set anyone's. The audit event
    records that the password changed, never the password or its hash.

    Raises
    ------
    WorkflowError
        The password is shorter than :data:`MIN_PASSWORD_LENGTH` characters.
    PermissionDenied
        ``actor`` is neither the user nor a manager/admin, or the user is unknown.
    """
    check_password(password)
    hashed = hash_password(password)  # before the transaction: argon2 takes ~50 ms
    with db.session() as s:
        user = s.execute(select(UserRow).where(UserRow.name == name)).scalar()
        if user is None:
            raise PermissionDenied(f"unknown user {name!r}")
        if actor != name and actor != "labelgate":
            me = s.execute(select(UserRow).where(UserRow.name == actor)).scalar()
            if me is None or not me.active or not MANAGERS & set(me.roles):
                raise PermissionDenied(f"{actor!r} may not set the password of {name!r}")
        user.password_hash = hashed
        s.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.user_id == user.id, ApiTokenRow.revoked.is_(False))
            .values(revoked=True)
        )
        append_event(
            s,
            actor=actor,
            action="user.password",
            entity_type="user",
            entity_id=user.id,
            after={"password": "changed"},
        )


def authenticate(db: Database, name: str, password: str) -> Principal | None:
    """The user whose name and password match, or ``None`` (one answer for every failure)."""
    with db.session() as s:
        user = s.execute(select(UserRow).where(UserRow.name == name)).scalar()
        stored = user.password_hash if user is not None else None
    ok = verify_password(stored, password)
    if not ok or user is None or not user.active:
        return None
    return _principal(user)


def issue_token(
    db: Database,
    principal: Principal,
    *,
    ttl: dt.timedelta = TOKEN_TTL,
    clock: Callable[[], dt.datetime] = utcnow,
) -> tuple[str, dt.datetime]:
    """A new random token for the user and its expiry; only its sha256 is stored."""
    token = secrets.token_urlsafe(32)
    now = clock()
    expires = now + ttl
    with db.session() as s:
        s.add(
            ApiTokenRow(
                user_id=principal.id,
                token_sha256=token_digest(token),
                created_at=now,
                expires_at=expires,
                revoked=False,
            )
        )
    return token, expires


# --- login throttling ----------------------------------------------------------------------


class LoginThrottled(WorkflowError):
    """Too many failed logins for this name or from this address: wait ``retry_after`` s.

    Raised before any password is verified. The message names neither the user nor the
    address (it may be logged); ``scope`` is ``"user"`` or ``"remote"``.
    """

    def __init__(self, retry_after: int, *, scope: str) -> None:
        self.retry_after = retry_after
        self.scope = scope
        super().__init__(f"too many failed logins; retry in {retry_after} s")


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """How many failed logins are tolerated before :func:`login` answers "wait".

    Parameters
    ----------
    user_failures
        Failed logins for one user name within ``window`` after which the name is
        refused (default 5). A successful login starts the name's count again.
    remote_failures
        Failed logins from one remote address within ``window`` (any names) after which
        the address is refused (default 20; a success does not reset it, so one valid
        account cannot launder guesses at others).
    window
        How far back failures count (default 15 min); a refusal lasts until enough of
        them are older than this.
    keep
        Attempts older than this are deleted (default 1 day, at least ``window``).
    enabled
        ``False`` turns throttling off (attempts are still recorded).
    """

    user_failures: int = 5
    remote_failures: int = 20
    window: dt.timedelta = dt.timedelta(minutes=15)
    keep: dt.timedelta = dt.timedelta(days=1)
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.user_failures < 1 or self.remote_failures < 1:
            raise WorkflowError(
                "login limits: user_failures and remote_failures must be at least 1, got "
                f"{self.user_failures} and {self.remote_failures}"
            )
        if self.window <= dt.timedelta(0) or self.keep < self.window:
            raise WorkflowError(
                f"login limits: window must be positive and keep >= window, got window "
                f"{self.window} and keep {self.keep}"
            )


LOGIN_LIMITS = LoginLimits()
_NAME_CHARS = 200  # login_attempts.username
_REMOTE_CHARS = 100  # login_attempts.remote


def _retry_after(
    failures: list[dt.datetime], allowed: int, window: dt.timedelta, now: dt.datetime
) -> int | None:
    """Seconds until fewer than ``allowed`` of ``failures`` (newest first) are in the window."""
    if len(failures) < allowed:
        return None
    # the refusal lifts when the allowed-th newest failure leaves the window
    lifts = _aware(failures[allowed - 1]) + window
    return max(1, math.ceil((lifts - now).total_seconds()))


def check_login_allowed(
    db: Database,
    name: str,
    remote: str = "",
    *,
    limits: LoginLimits = LOGIN_LIMITS,
    clock: Callable[[], dt.datetime] = utcnow,
) -> None:
    """Raise :class:`LoginThrottled` if ``name`` or ``remote`` has failed too often.

    Counts, in the shared ``login_attempts`` table, the failures within ``limits.window``:
    for ``name`` only those after its newest success, for ``remote`` all of them. Two
    workers checking at the same instant may each let one more guess through; the bound
    holds to within the number of concurrent requests.
    """
    if not limits.enabled:
        return
    now = clock()
    since = now - limits.window
    name = name[:_NAME_CHARS]
    with db.session() as s:
        last_success = s.execute(
            select(func.max(LoginAttemptRow.created_at)).where(
                LoginAttemptRow.username == name,
                LoginAttemptRow.succeeded.is_(True),
                LoginAttemptRow.created_at > since,
            )
        ).scalar()
        user_since = max(since, _aware(last_success)) if last_success is not None else since
        by_user = list(
            s.execute(
                select(LoginAttemptRow.created_at)
                .where(
                    LoginAttemptRow.username == name,
                    LoginAttemptRow.succeeded.is_(False),
                    LoginAttemptRow.created_at > user_since,
                )
                .order_by(LoginAttemptRow.created_at.desc())
                .limit(limits.user_failures)
            ).scalars()
        )
        by_remote: list[dt.datetime] = []
        if remote:
            by_remote = list(
                s.execute(
                    select(LoginAttemptRow.created_at)
                    .where(
                        LoginAttemptRow.remote == remote[:_REMOTE_CHARS],
                        LoginAttemptRow.succeeded.is_(False),
                        LoginAttemptRow.created_at > since,
                    )
                    .order_by(LoginAttemptRow.created_at.desc())
                    .limit(limits.remote_failures)
                ).scalars()
            )
    wait_user = _retry_after(by_user, limits.user_failures, limits.window, now)
    wait_remote = _retry_after(by_remote, limits.remote_failures, limits.window, now)
    if wait_user is not None or wait_remote is not None:
        scope = "user" if (wait_user or 0) >= (wait_remote or 0) else "remote"
        raise LoginThrottled(max(wait_user or 0, wait_remote or 0), scope=scope)


def record_login_attempt(
    db: Database,
    name: str,
    remote: str,
    succeeded: bool,
    *,
    limits: LoginLimits = LOGIN_LIMITS,
    clock: Callable[[], dt.datetime] = utcnow,
) -> None:
    """Append one attempt (never the password) and prune what is older than ``limits.keep``."""
    now = clock()
    with db.session() as s:
        s.add(
            LoginAttemptRow(
                username=name[:_NAME_CHARS],
                remote=remote[:_REMOTE_CHARS],
                succeeded=succeeded,
                created_at=now,
            )
        )
    _maybe_prune(db, now, limits.keep)


_LAST_PRUNE: dict[str, dt.datetime] = {}  # database url -> when this process last pruned
_PRUNE_EVERY = dt.timedelta(minutes=5)


def _maybe_prune(db: Database, now: dt.datetime, keep: dt.timedelta) -> None:
    key = db.url
    last = _LAST_PRUNE.get(key)
    if last is not None and dt.timedelta(0) <= now - last < _PRUNE_EVERY:
        return
    _LAST_PRUNE[key] = now
    prune_login_attempts(db, before=now - keep)


def prune_login_attempts(db: Database, *, before: dt.datetime) -> int:
    """Delete the attempts made before ``before``; how many were deleted.

    :func:`record_login_attempt` calls it (at most every 5 min per process) with
    ``now - limits.keep``; nothing older than the window is ever read.
    """
    with db.session() as s:
        result: Any = s.execute(delete(LoginAttemptRow).where(LoginAttemptRow.created_at < before))
        return int(result.rowcount or 0)


def login(
    db: Database,
    name: str,
    password: str,
    *,
    ttl: dt.timedelta = TOKEN_TTL,
    remote: str = "",
    limits: LoginLimits = LOGIN_LIMITS,
    clock: Callable[[], dt.datetime] = utcnow,
) -> tuple[Principal, str, dt.datetime] | None:
    """Authenticate and issue a token: ``(principal, token, expires_at)`` or ``None``.

    Every attempt is recorded in ``login_attempts`` (name, remote address, outcome).

    Raises
    ------
    LoginThrottled
        ``name`` or ``remote`` failed too often within ``limits.window``; the password
        was not checked and the attempt is not counted.
    """
    check_login_allowed(db, name, remote, limits=limits, clock=clock)
    principal = authenticate(db, name, password)
    record_login_attempt(db, name, remote, principal is not None, limits=limits, clock=clock)
    if principal is None:
        return None
    token, expires = issue_token(db, principal, ttl=ttl, clock=clock)
    return principal, token, expires


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands timestamps back naive (they were stored as UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def resolve_token(
    db: Database, token: str, *, clock: Callable[[], dt.datetime] = utcnow
) -> Principal | None:
    """The active user holding a live (known, unexpired, unrevoked) token, else ``None``."""
    held = _token_holder(db, token, clock)
    return None if held is None else held[0]


def _token_holder(
    db: Database, token: str, clock: Callable[[], dt.datetime]
) -> tuple[Principal, dt.datetime] | None:
    if not token or len(token) > 200:
        return None
    with db.session() as s:
        row: Any = s.execute(_TOKEN_HOLDER, {"digest": token_digest(token)}).first()
    if row is None or row.revoked or not row.active:
        return None
    expires = _aware(row.expires_at)
    if expires <= clock():
        return None
    return Principal(row.id, row.name, tuple(sorted(row.roles))), expires


class TokenCache:
    """Tokens one API process resolved in the last ``seconds``: a request skips the lookup.

    Every authenticated request would otherwise spend a database transaction (and, on
    SQLite, a turn at the write lock) finding who holds its token. Only live tokens are
    kept, each until the earlier of ``seconds`` after its lookup and its own expiry; an
    unknown, expired or revoked token is looked up every time.

    The price is bounded staleness: a change made elsewhere (a logout or password change
    served by another worker process, ``labelgate user`` deactivating someone or changing
    their roles) reaches this process within ``seconds``. Changes this process makes
    itself call :meth:`forget` or :meth:`clear` and apply at once. ``seconds=0`` turns the
    cache off.

    Examples
    --------
    >>> cache = TokenCache(seconds=2.0)
    >>> cache.get("t") is None
    True
    """

    def __init__(
        self,
        seconds: float = 2.0,
        *,
        max_tokens: int = 10_000,
        clock: Callable[[], dt.datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if seconds < 0:
            raise ValueError(f"token cache seconds must be >= 0, got {seconds}")
        self.seconds = seconds
        self._max_tokens = max_tokens
        self._clock = clock
        self._monotonic = monotonic
        self._held: dict[str, tuple[Principal, dt.datetime, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        """The principal cached for ``token``, or ``None`` (not cached, stale or expired)."""
        if not self.seconds:
            return None
        held = self._held.get(token_digest(token)) if 0 < len(token) <= 200 else None
        if held is None:
            return None
        principal, expires, until = held
        if self._monotonic() >= until or expires <= self._clock():
            return None
        return principal

    def resolve(self, db: Database, token: str) -> Principal | None:
        """:func:`resolve_token` through the cache (a miss asks the database)."""
        principal = self.get(token)
        if principal is not None:
            return principal
        held = _token_holder(db, token, self._clock)
        if held is None:
            self.forget(token)
            return None
        if self.seconds:
            with self._lock:
                if len(self._held) >= self._max_tokens:
                    self._held.clear()
                self._held[token_digest(token)] = (
                    held[0],
                    held[1],
                    self._monotonic() + self.seconds,
                )
        return held[0]

    def forget(self, token: str) -> None:
        """Drop one token (this process revoked it)."""
        with self._lock:
            self._held.pop(token_digest(token), None)

    def clear(self) -> None:
        """Drop every token (this process changed a user's password or roles)."""
        with self._lock:
            self._held.clear()


# every authenticated request runs this: built once, and columns rather than ORM objects
_TOKEN_HOLDER = (
    select(
        ApiTokenRow.revoked,
        ApiTokenRow.expires_at,
        UserRow.id,
        UserRow.name,
        UserRow.roles,
        UserRow.active,
    )
    .join(UserRow, UserRow.id == ApiTokenRow.user_id)
    .where(ApiTokenRow.token_sha256 == bindparam("digest"))
)


def revoke_token(db: Database, token: str) -> bool:
    """Revoke a token (logout); whether a live one was revoked."""
    with db.session() as s:
        result: Any = s.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.token_sha256 == token_digest(token), ApiTokenRow.revoked.is_(False))
            .values(revoked=True)
        )
        return bool(result.rowcount)


def require_role(principal: Principal, roles: Iterable[str], what: str) -> None:
    """Raise :class:`PermissionDenied` unless the principal holds one of ``roles``."""
    wanted = set(roles)
    if not principal.has_any(wanted):
        raise PermissionDenied(
            f"{principal.name!r} has roles {sorted(principal.roles)}; {what} needs one of "
            f"{sorted(wanted)}"
        )
