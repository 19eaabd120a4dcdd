"""Login throttling: shared by every worker through ``login_attempts``, on both databases."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from api_world import MANAGER, PASSWORD, spec_text
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from labelgate.api import ApiSettings, create_app
from labelgate.store.db import Database
from labelgate.store.models import LoginAttemptRow, utcnow
from labelgate.workflow import auth
from labelgate.workflow.auth import (
    LoginLimits,
    LoginThrottled,
    configure_hashing,
    login,
    set_password,
)
from labelgate.workflow.program import Program

WRONG = "not the password at all"
WINDOW = dt.timedelta(minutes=15)


class Clock:
    """A settable UTC clock, started at the real time (issued tokens must be usable)."""

    def __init__(self) -> None:
        self.now = utcnow().replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def people(db: Database) -> Database:
    program = Program.create(db, spec_text())
    program.add_user(MANAGER, ["manager"], actor="labelgate")
    for name in ("ana", "bo"):
        program.add_user(name, ["annotator"], actor=MANAGER)
    configure_hashing(time_cost=1, memory_cost_kib=8, parallelism=1)
    for name in (MANAGER, "ana", "bo"):
        set_password(db, name, PASSWORD, actor="labelgate")
    auth._LAST_PRUNE.clear()
    return db


def _client(db: Database, tmp_path: Path, clock: Clock, remote: str = "10.0.0.1") -> TestClient:
    settings = ApiSettings(data_dir=tmp_path / "data", clock=clock)
    return TestClient(create_app(db, settings=settings), client=(remote, 40000))


def _login(client: TestClient, name: str, password: str) -> int:
    return client.post("/api/auth/login", json={"name": name, "password": password}).status_code


def test_the_sixth_attempt_after_five_failures_is_429_even_with_the_right_password(
    people: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    client = _client(people, tmp_path, clock)
    for _ in range(5):
        assert _login(client, "ana", WRONG) == 401
        clock.tick(1)
    # the failures were at t0 .. t0+4 s; now is t0+5 s: the first one leaves the
    # 900 s window at t0+900 s, 895 s from now
    verified: list[str] = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda h, p: verified.append(p) or real(h, p))
    refused = client.post("/api/auth/login", json={"name": "ana", "password": PASSWORD})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "895"
    assert refused.json()["retry_after"] == 895
    assert refused.json()["type"] == "LoginThrottled"
    assert "token" not in refused.json()
    assert verified == [], "a throttled login must not verify the password"
    # the refusal itself is not a counted attempt
    with people.session() as s:
        assert s.execute(select(func.count()).select_from(LoginAttemptRow)).scalar_one() == 5
    monkeypatch.setattr(auth, "verify_password", real)

    # another user, from the same address, is unaffected
    assert _login(client, "bo", PASSWORD) == 200
    # one second before the window ends: still refused; then it works again
    clock.tick(894)
    wait = client.post("/api/auth/login", json={"name": "ana", "password": PASSWORD})
    assert wait.status_code == 429 and wait.headers["Retry-After"] == "1"
    clock.tick(1)
    assert _login(client, "ana", PASSWORD) == 200


def test_a_success_resets_the_users_count(people: Database, tmp_path: Path) -> None:
    clock = Clock()
    client = _client(people, tmp_path, clock)
    for _ in range(4):
        assert _login(client, "ana", WRONG) == 401
        clock.tick(1)
    assert _login(client, "ana", PASSWORD) == 200
    clock.tick(1)
    for _ in range(4):  # 8 failures in the window, but only 4 since the success
        assert _login(client, "ana", WRONG) == 401
        clock.tick(1)
    assert _login(client, "ana", WRONG) == 401  # the 5th since the success
    assert _login(client, "ana", PASSWORD) == 429


def test_unknown_names_are_throttled_like_known_ones(people: Database, tmp_path: Path) -> None:
    clock = Clock()
    client = _client(people, tmp_path, clock)
    for name in ("ana", "mallory"):
        answers = [_login(client, name, WRONG) for _ in range(6)]
        assert answers == [401] * 5 + [429], name


def test_one_address_is_throttled_across_names_and_others_are_not(people: Database) -> None:
    clock = Clock()
    limits = LoginLimits(user_failures=5, remote_failures=20)
    for i in range(20):  # 20 names, one guess each: no name reaches its own limit
        done = login(people, f"guess{i}", WRONG, remote="203.0.113.9", limits=limits, clock=clock)
        assert done is None
        clock.tick(1)
    with pytest.raises(LoginThrottled) as refused:
        login(people, "ana", PASSWORD, remote="203.0.113.9", limits=limits, clock=clock)
    assert refused.value.scope == "remote"
    assert refused.value.retry_after == 900 - 20  # the oldest of the 20 leaves at t0+900
    # ana from elsewhere is fine, and her success does not clear the address's count
    assert login(people, "ana", PASSWORD, remote="198.51.100.7", limits=limits, clock=clock)
    with pytest.raises(LoginThrottled):
        login(people, "bo", PASSWORD, remote="203.0.113.9", limits=limits, clock=clock)


def test_limits_are_configurable_and_checked(people: Database) -> None:
    clock = Clock()
    strict = LoginLimits(user_failures=2, window=dt.timedelta(minutes=1))
    for _ in range(2):
        assert login(people, "bo", WRONG, limits=strict, clock=clock) is None
    with pytest.raises(LoginThrottled) as refused:
        login(people, "bo", PASSWORD, limits=strict, clock=clock)
    assert refused.value.retry_after == 60
    clock.tick(60)
    assert login(people, "bo", PASSWORD, limits=strict, clock=clock) is not None
    with pytest.raises(Exception, match="at least 1"):
        LoginLimits(user_failures=0)
    with pytest.raises(Exception, match="keep >= window"):
        LoginLimits(window=dt.timedelta(hours=2), keep=dt.timedelta(hours=1))


def test_old_attempts_are_pruned(people: Database) -> None:
    clock = Clock()
    limits = LoginLimits(keep=dt.timedelta(hours=1))
    for _ in range(3):
        login(people, "ana", WRONG, remote="a", limits=limits, clock=clock)
    clock.tick(3600 + 1)  # more than `keep` later: the next attempt prunes the three
    login(people, "bo", WRONG, remote="b", limits=limits, clock=clock)
    with people.session() as s:
        left = s.execute(select(LoginAttemptRow.username, LoginAttemptRow.remote)).all()
    assert [tuple(r) for r in left] == [("bo", "b")]


def test_throttling_logs_no_password_and_no_token(
    people: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    client = _client(people, tmp_path, clock)
    good = client.post("/api/auth/login", json={"name": "bo", "password": PASSWORD}).json()
    for _ in range(6):
        client.post("/api/auth/login", json={"name": "ana", "password": WRONG})
    client.post("/api/auth/login", json={"name": "ana", "password": PASSWORD})
    assert any("throttled" in r.getMessage() for r in caplog.records)
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (PASSWORD, WRONG, good["token"], good["csrf_token"]):
        assert secret not in text
    with people.session() as s:
        stored = s.execute(select(LoginAttemptRow)).scalars().all()
    assert {a.remote for a in stored} == {"10.0.0.1"}
    assert all(PASSWORD not in a.username and WRONG not in a.username for a in stored)
