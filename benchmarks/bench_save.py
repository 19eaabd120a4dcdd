"""CPU per save, in process: ``Program.save`` and the API's save path, 10 boxes each.

Run:  python benchmarks/bench_save.py [--repeat 500] [--profile]

A fresh SQLite file gets the load test's project (``bench_load.production_batch``: one
annotator, tasks of a batch in production). Each save is timed with
``time.process_time`` (CPU, steadier than wall time on a shared machine) and the medians
of ``--repeat`` saves are printed for (with the 10th percentile, the figure a busy
shared machine disturbs least, and the 90th):

- ``Program.save``: an ``Annotations`` of 10 boxes built once, saved on the task's head
  with a fresh request id (the revision, its 10 annotation rows, the work log entry and
  the audit event are written each time);
- ``api``: what the ``PUT /api/tasks/{id}/labels`` route runs: the request body parsed
  and validated (``LabelsSave``), ``from_objects``, then ``Program.save``;
- ``asgi``: the whole request through the application (``create_app``) called as an ASGI
  app on one event loop, bearer token and ``Idempotency-Key`` included: what FastAPI,
  the middleware and the route add to the ``api`` figure. The gap between this and the
  load test's CPU per request is the HTTP server (uvicorn) and the socket.

``--profile`` prints the top of a cProfile of the whole request (``asgi``) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import boxes, production_batch, tokens
from labelgate.api import ApiSettings, create_app
from labelgate.api.labels import from_objects
from labelgate.api.schemas import LabelsSave
from labelgate.store.db import Database, upgrade


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=500, help="saves per measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile the whole request (asgi)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labelgate-save-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'save.db'}")
        upgrade(db)
        program, _, _ = production_batch(db, "save-bench", ["ann00"], 2, seed=3)
        task = program.my_tasks("ann00")[0]
        rng = random.Random(1)
        bodies = [
            json.dumps(
                {
                    "base_revision_id": None,
                    "objects": boxes(rng, task.width, task.height),
                    "work_seconds": 3.5,
                }
            ).encode()
            for _ in range(16)
        ]
        head: int | None = None
        counter = 0

        def program_save(labels: object) -> None:
            nonlocal head, counter
            counter += 1
            saved = program.save(
                "ann00",
                task.task_id,
                labels,  # type: ignore[arg-type]
                base_revision_id=head,
                request_id=f"bench-{counter}",
                work_seconds=3.5,
            )
            head = saved.revision_id

        def api_save(raw: bytes) -> None:
            body = LabelsSave.model_validate_json(raw)
            program_save(from_objects(body.objects))

        token = tokens(db, ["ann00"])["ann00"]
        app = create_app(db, settings=ApiSettings())
        loop = asyncio.new_event_loop()
        path = f"/api/tasks/{task.task_id}/labels"

        async def asgi_call(raw: bytes) -> None:
            nonlocal head, counter
            counter += 1
            body = raw.replace(
                b'"base_revision_id": null', f'"base_revision_id": {json.dumps(head)}'.encode()
            )
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "PUT",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "root_path": "",
                "query_string": b"",
                "headers": [
                    (b"host", b"127.0.0.1"),
                    (b"authorization", f"Bearer {token}".encode()),
                    (b"idempotency-key", f"asgi-{counter}".encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
                "client": ("127.0.0.1", 5000),
                "server": ("127.0.0.1", 8000),
                "state": {},
            }
            sent: list[dict[str, object]] = []

            async def receive() -> dict[str, object]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, object]) -> None:
                sent.append(message)

            await app(scope, receive, send)
            if sent[0]["status"] != 200:
                raise SystemExit(f"asgi save: HTTP {sent[0]['status']}: {sent[1]['body']!r}")
            head = json.loads(sent[1]["body"])["revision_id"]  # type: ignore[arg-type]

        def asgi_save(raw: bytes) -> None:
            loop.run_until_complete(asgi_call(raw))

        for _ in range(20):
            asgi_save(bodies[0])
        fixed = from_objects(LabelsSave.model_validate_json(bodies[0]).objects)
        for _ in range(20):  # warm the statement caches
            api_save(bodies[0])
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for i in range(args.repeat):
                asgi_save(bodies[i % len(bodies)])
            profile.disable()
            stats = pstats.Stats(profile)
            stats.sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(45)
            if os.environ.get("PROFILE_CALLERS"):
                stats.print_callers(os.environ["PROFILE_CALLERS"])
            return 0
        results = {}
        for name, run in (
            ("Program.save", lambda i: program_save(fixed)),
            ("api (parse + from_objects + save)", lambda i: api_save(bodies[i % len(bodies)])),
            ("asgi (the whole request, no socket)", lambda i: asgi_save(bodies[i % len(bodies)])),
        ):
            times = []
            gc.collect()
            for i in range(args.repeat):
                started = time.process_time()
                run(i)
                times.append(time.process_time() - started)
            results[name] = times
        loop.close()
        db.dispose()
    print(f"{args.repeat} saves of 10 boxes each, SQLite file, CPU ms per save")
    for name, times in results.items():
        ms = [t * 1000 for t in times]
        deciles = statistics.quantiles(ms, n=10)
        print(
            f"  {name:<36} p10 {deciles[0]:6.3f}  median {statistics.median(ms):6.3f}  "
            f"p90 {deciles[-1]:6.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
