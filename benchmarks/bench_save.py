"""CPU per save, in process: ``Program.save`` and the API's save path, 10 boxes each.

Run:  python benchmarks/bench_save.py [--repeat 500] [--profile]

A fresh SQLite file gets the load test's project (``bench_load.production_batch``: one
annotator, tasks of a batch in production). Each save is timed with
``time.process_time`` (CPU, steadier than wall time on a shared machine) and the medians
of ``--repeat`` saves are printed for:

- ``Program.save``: an ``Annotations`` of 10 boxes built once, saved on the task's head
  with a fresh request id (the revision, its 10 annotation rows, the work log entry and
  the audit event are written each time);
- ``api``: what the ``PUT /api/tasks/{id}/labels`` route runs: the request body parsed
  and validated (``LabelsSave``), ``from_objects``, then ``Program.save``.

``--profile`` prints the top of a cProfile of the API path instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import boxes, production_batch
from labelgate.api.labels import from_objects
from labelgate.api.schemas import LabelsSave
from labelgate.store.db import Database, upgrade


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=500, help="saves per measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile the API path")
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

        fixed = from_objects(LabelsSave.model_validate_json(bodies[0]).objects)
        for _ in range(20):  # warm the statement caches
            api_save(bodies[0])
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for i in range(args.repeat):
                api_save(bodies[i % len(bodies)])
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
            return 0
        results = {}
        for name, run in (
            ("Program.save", lambda i: program_save(fixed)),
            ("api (parse + from_objects + save)", lambda i: api_save(bodies[i % len(bodies)])),
        ):
            times = []
            gc.collect()
            for i in range(args.repeat):
                started = time.process_time()
                run(i)
                times.append(time.process_time() - started)
            results[name] = times
        db.dispose()
    print(f"{args.repeat} saves of 10 boxes each, SQLite file, CPU ms per save")
    for name, times in results.items():
        ms = [t * 1000 for t in times]
        print(
            f"  {name:<36} median {statistics.median(ms):6.3f}  "
            f"p90 {statistics.quantiles(ms, n=10)[-1]:6.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
