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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update

from labelgate.errors import PermissionDenied, WorkflowError
from labelgate.store.db import Database
from labelgate.store.models import ApiTokenRow, UserRow, utcnow
from labelgate.workflow.audit import append_event

__all__ = [
    "MANAGERS",
    "MIN_PASSWORD_LENGTH",
    "STAFF",
    "TOKEN_TTL",
    "Principal",
    "authenticate",
    "check_password",
    "configure_hashing",
    "csrf_token",
    "hash_password",
    "issue_token",
    "login",
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


def login(
    db: Database, name: str, password: str, *, ttl: dt.timedelta = TOKEN_TTL
) -> tuple[Principal, str, dt.datetime] | None:
    """Authenticate and issue a token: ``(principal, token, expires_at)`` or ``None``."""
    principal = authenticate(db, name, password)
    if principal is None:
        return None
    token, expires = issue_token(db, principal, ttl=ttl)
    return principal, token, expires


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands timestamps back naive (they were stored as UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def resolve_token(
    db: Database, token: str, *, clock: Callable[[], dt.datetime] = utcnow
) -> Principal | None:
    """The active user holding a live (known, unexpired, unrevoked) token, else ``None``."""
    if not token or len(token) > 200:
        return None
    with db.session() as s:
        row: Any = s.execute(
            select(ApiTokenRow, UserRow)
            .join(UserRow, UserRow.id == ApiTokenRow.user_id)
            .where(ApiTokenRow.token_sha256 == token_digest(token))
        ).first()
    if row is None:
        return None
    record, user = row
    if record.revoked or not user.active or _aware(record.expires_at) <= clock():
        return None
    return _principal(user)


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
