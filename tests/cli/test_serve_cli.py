"""``labelgate serve --workers N``: several uvicorn processes serve one program database."""

from __future__ import annotations

import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from labelgate.store.db import Database, upgrade
from labelgate.store.repository import add_users
from labelgate.workflow.auth import configure_hashing, set_password

PASSWORD = "correct horse battery staple"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def test_two_workers_answer_from_one_database(empty_db: Database, tmp_path: Path) -> None:
    upgrade(empty_db)
    configure_hashing(time_cost=1, memory_cost_kib=8, parallelism=1)
    with empty_db.session() as s:
        add_users(s, ["ana"])
    set_password(empty_db, "ana", PASSWORD, actor="labelgate")
    port = _free_port()
    log = tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "labelgate", "serve", "--db", empty_db.url, "--port", str(port),
        "--data-dir", str(tmp_path / "data"), "--workers", "2", "--token-cache-seconds", "0",
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # the supervisor's worker processes, each with the app (spawned: python children)
        workers = _children(server.pid)
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert len(workers) >= 2, log.read_text()
        login = httpx.post(f"{base}/api/auth/login", json={"name": "ana", "password": PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        # one kept-alive connection: with Nagle left on, each answer waited ~40 ms for the
        # client's delayed ACK (headers and body go out in two sends)
        with httpx.Client(base_url=base) as client:
            times = []
            for _ in range(21):
                started = time.perf_counter()
                assert client.get("/api/health").status_code == 200
                times.append(time.perf_counter() - started)
        assert statistics.median(times) < 0.030, times
        # fresh connections: whichever worker answers reads the same token table
        for _ in range(6):
            me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
            assert me.json()["name"] == "ana"
        # a logout served by one worker: with the token cache off, every worker refuses the
        # token at once (the default trusts a looked-up token for 2 s)
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{base}/api/auth/logout", headers=bearer).status_code == 204
        for _ in range(6):
            assert httpx.get(f"{base}/api/me", headers=bearer).status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0, log.read_text()
