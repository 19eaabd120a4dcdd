"""The API world of ``tests/api/api_world.py`` served with the pages on a real port.

Imported as a helper module by the web tests: ``serve(db, tmp_path)`` builds the world into
``db``, starts uvicorn in a thread on a free loopback port and returns the base URL.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_world import PASSWORD, World, build_world

from labelgate.api import ApiSettings
from labelgate.store.db import Database
from labelgate.web.server import create_web_app

__all__ = ["PASSWORD", "Served", "World", "serve"]


@dataclass
class Served:
    url: str
    world: World


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(db: Database, tmp_path: Path, images: int = 8) -> Iterator[Served]:
    world = build_world(db, tmp_path, images=images)
    app = create_web_app(db, settings=ApiSettings(data_dir=tmp_path / "data"))
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", world)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
