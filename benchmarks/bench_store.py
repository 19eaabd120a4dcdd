"""Program store bulk import and read-back: 20,000 images / ~400,000 boxes on SQLite and
PostgreSQL.

Run:  python benchmarks/bench_store.py [--images 20000] [--repeat 3] [--postgres URL]
      [--skip-postgres]

Timed, in one transaction each: registering the images, one task and one revision per image,
and every box as an annotation row (``executemany`` on SQLite, ``COPY`` on PostgreSQL); then
reading every task's head revision back into one ``Annotations`` container. Each repeat
starts from an empty database; the table gives the median wall time with its range, and the
median CPU time of this process (the client's share: on a shared machine the wall time also
holds the server's work and everyone else's load). The peer is the naive path an ORM user
writes first: one ``AnnotationRow`` object per box through ``session.add_all`` (timed once on
a 20,000-box slice and scaled, it is slow). Read-back must equal the generated boxes, or the
benchmark fails.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import select

from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.store.annotations import load_annotations
from labelgate.store.db import Database, upgrade
from labelgate.store.models import AnnotationRow, ProjectRow, TaskRow
from labelgate.store.repository import add_images, add_tasks, add_users, import_revisions


def run(db: Database, data: Dataset, *, orm: bool) -> dict[str, float]:
    """Import ``data`` into an empty ``db`` and read it back; wall and CPU seconds."""
    upgrade(db)
    out: dict[str, float] = {}
    start, cpu = time.perf_counter(), time.process_time()
    with db.session() as s:
        project = ProjectRow(name="bench")
        s.add(project)
        s.flush()
        store_ids = add_images(s, project.id, data.images)
        (user,) = add_users(s, ["ref"]).tolist()
        tasks = add_tasks(
            s,
            project_id=project.id,
            image_id=store_ids,
            assignee_id=np.full(len(store_ids), user),
            purpose="production",
        )
        position = data.images.index_of(data.annotations.image_id)
        labels = data.annotations.replace(image_id=store_ids[position])
        import_revisions(s, tasks, np.full(len(tasks), user), labels, position)
    out["import_s"] = time.perf_counter() - start
    out["import_cpu_s"] = time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    with db.session() as s:
        back = load_annotations(s, select(TaskRow.head_revision_id))
    out["read_s"] = time.perf_counter() - start
    out["read_cpu_s"] = time.process_time() - cpu
    order = np.argsort(position, kind="stable")
    if not np.array_equal(back.bbox, labels.bbox[order]):
        raise SystemExit("read-back differs from the imported boxes")
    if not orm:
        return out
    # the naive peer: one ORM object per box, on a slice
    naive = min(20_000, len(labels))
    start = time.perf_counter()
    with db.session() as s:
        rev = int(s.execute(select(TaskRow.head_revision_id).limit(1)).scalar_one())
        s.add_all(
            AnnotationRow(
                revision_id=rev,
                image_id=int(labels.image_id[i]),
                object_key=int(labels.id[i]),
                class_id=int(labels.class_id[i]),
                kind=int(labels.kind[i]),
                x0=float(labels.bbox[i, 0]),
                y0=float(labels.bbox[i, 1]),
                x1=float(labels.bbox[i, 2]),
                y1=float(labels.bbox[i, 3]),
                source=0,
                area=float(labels.area[i]),
            )
            for i in range(naive)
        )
        s.flush()
        s.rollback()
    out["orm_s"] = (time.perf_counter() - start) * len(labels) / naive
    return out


def repeated(
    fresh: Callable[[], AbstractContextManager[Database]], data: Dataset, repeat: int
) -> list[dict[str, float]]:
    """``repeat`` runs, each on a fresh empty database; the ORM peer on the last only."""
    runs = []
    for i in range(repeat):
        gc.collect()
        with fresh() as db:
            runs.append(run(db, data, orm=i == repeat - 1))
    return runs


@contextmanager
def sqlite_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory(prefix="labelgate-bench-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            yield db
        finally:
            db.dispose()


@contextmanager
def postgres_database(url: str) -> Iterator[Database]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = Database(url)
    with admin.engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        db = Database(f"{url}?options=-csearch_path%3D{schema}")
        try:
            yield db
        finally:
            db.dispose()
    finally:
        with admin.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def _spread(runs: list[dict[str, float]], key: str) -> str:
    values = [r[key] for r in runs]
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per database (median)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "LABELGATE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    data = generate_dataset(args.images, seed=args.seed)
    results = [("sqlite", repeated(sqlite_database, data, args.repeat))]
    if not args.skip_postgres:
        results.append(
            ("postgresql", repeated(lambda: postgres_database(args.postgres), data, args.repeat))
        )

    boxes = len(data.annotations)
    print(f"data: {args.images:,} images, {boxes:,} boxes (seed {args.seed}), {args.repeat} runs\n")
    print(
        f"{'database':<12}{'import s (range)':>22}{'boxes/s':>10}{'cpu s':>7}"
        f"{'read s (range)':>22}{'cpu s':>7}{'ORM add_all s':>15}{'vs ORM':>8}"
    )
    for name, runs in results:
        import_s = statistics.median(r["import_s"] for r in runs)
        orm_s = runs[-1]["orm_s"]
        print(
            f"{name:<12}{_spread(runs, 'import_s'):>22}{boxes / import_s:>10,.0f}"
            f"{statistics.median(r['import_cpu_s'] for r in runs):>7.2f}"
            f"{_spread(runs, 'read_s'):>22}"
            f"{statistics.median(r['read_cpu_s'] for r in runs):>7.2f}"
            f"{orm_s:>15.1f}{orm_s / import_s:>7.1f}x"
        )
    print(
        "\n(median wall time, min..max over the runs; cpu s: median CPU time of this process;"
        "\nORM add_all timed once on a 20,000-box slice, scaled to the data set)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
