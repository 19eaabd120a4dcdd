"""Program store bulk import and read-back: 20,000 images / ~400,000 boxes on SQLite and
PostgreSQL.

Run:  python benchmarks/bench_store.py [--images 20000] [--postgres URL] [--skip-postgres]

Timed, in one transaction each: registering the images, one task and one revision per image,
and every box as an annotation row (``executemany`` on SQLite, ``COPY`` on PostgreSQL); then
reading every task's head revision back into one ``Annotations`` container. The peer is the
naive path an ORM user writes first: one ``AnnotationRow`` object per box through
``session.add_all`` (timed on a 20,000-box slice and scaled, it is slow). Read-back must equal
the generated boxes, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import select

from labelgate.core.generate import generate_dataset
from labelgate.store.annotations import load_annotations
from labelgate.store.db import Database, upgrade
from labelgate.store.models import AnnotationRow, ProjectRow, TaskRow
from labelgate.store.repository import add_images, add_tasks, add_users, import_revisions


def run(db: Database, images: int, seed: int) -> dict[str, float]:
    data = generate_dataset(images, seed=seed)
    upgrade(db)
    out: dict[str, float] = {"boxes": float(len(data.annotations))}
    start = time.perf_counter()
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
    start = time.perf_counter()
    with db.session() as s:
        back = load_annotations(s, select(TaskRow.head_revision_id))
    out["read_s"] = time.perf_counter() - start
    order = np.argsort(position, kind="stable")
    if not np.array_equal(back.bbox, labels.bbox[order]):
        raise SystemExit("read-back differs from the imported boxes")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "LABELGATE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    results: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="labelgate-bench-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        results.append(("sqlite", run(db, args.images, args.seed)))
        db.dispose()
    if not args.skip_postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = Database(args.postgres)
        with admin.engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            db = Database(f"{args.postgres}?options=-csearch_path%3D{schema}")
            results.append(("postgresql", run(db, args.images, args.seed)))
            db.dispose()
        finally:
            with admin.engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()

    boxes = int(results[0][1]["boxes"])
    print(f"data: {args.images:,} images, {boxes:,} boxes (seed {args.seed})\n")
    print(
        f"{'database':<12}{'import s':>10}{'boxes/s':>12}{'read s':>9}{'ORM add_all s':>15}"
        f"{'vs ORM':>8}"
    )
    for name, r in results:
        print(
            f"{name:<12}{r['import_s']:>10.2f}{boxes / r['import_s']:>12,.0f}{r['read_s']:>9.2f}"
            f"{r['orm_s']:>15.1f}{r['orm_s'] / r['import_s']:>7.1f}x"
        )
    print("\n(ORM add_all timed on a 20,000-box slice, scaled to the data set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
