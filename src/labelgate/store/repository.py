"""Set-based reads and writes of program entities.

Functions here take the caller's :class:`~sqlalchemy.orm.Session` and never commit: the
workflow service decides what one transaction is (an import, a stage transition), so a
failure anywhere leaves nothing half-written. Many-row writes are one ``executemany`` with
``RETURNING`` (SQLAlchemy's insertmanyvalues), never one ORM object per row.

Optimistic locking: every task has a ``version``; a save names the revision it edited and
moves the task's head with ``UPDATE ... WHERE version = :seen``. When another save got there
first, nothing is written and :class:`~labelgate.errors.ConflictError` names the current
revision and who made it. The save holds the task row for its short transaction
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so of N editors
saving from one base at once exactly one wins and the others get the conflict, never a
unique-constraint error (tests/store/test_concurrency.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import (
    Integer,
    SmallInteger,
    String,
    Text,
    bindparam,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from labelgate.core._typing import IntArray
from labelgate.core.annotations import Annotations, Source
from labelgate.core.images import Images
from labelgate.errors import ConflictError, StoreError
from labelgate.store.annotations import allocate_ids, bulk_insert, insert_annotations
from labelgate.store.db import Direct
from labelgate.store.models import (
    ImageRow,
    ProjectRow,
    RevisionRow,
    TaskRow,
    UserRow,
    utcnow,
)

__all__ = [
    "SavedRevision",
    "TaskHead",
    "add_images",
    "add_tasks",
    "add_users",
    "image_table",
    "import_revisions",
    "save_revision",
]


def _insert_returning_ids(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> IntArray:
    """Insert many rows (dicts of one shape); their new ids in the order of ``rows``."""
    if not rows:
        return np.zeros(0, dtype=np.int64)
    ids = allocate_ids(session, table.name, len(rows))
    names = list(rows[0])
    columns: dict[str, list[Any]] = {"id": ids.tolist()}
    for name in names:
        columns[name] = [row[name] for row in rows]
    bulk_insert(session, table.name, columns)
    return ids


def add_users(
    session: Session,
    names: Sequence[str],
    *,
    roles: Sequence[Sequence[str]] | None = None,
    cohorts: Sequence[str | None] | None = None,
) -> IntArray:
    """Create users; their ids in the order given."""
    now = utcnow()
    rows = [
        {
            "name": name,
            "display_name": name,
            "roles": list(roles[i]) if roles else ["annotator"],
            "cohort": cohorts[i] if cohorts else None,
            "password_hash": None,
            "active": True,
            "created_at": now,
        }
        for i, name in enumerate(names)
    ]
    return _insert_returning_ids(session, UserRow.__table__, rows)


def add_images(
    session: Session,
    project_id: int,
    images: Images,
    *,
    uris: Sequence[str] | None = None,
    sha256: Sequence[str | None] | None = None,
    size_bytes: Sequence[int | None] | None = None,
) -> IntArray:
    """Register images of a data set; their store ids, aligned with ``images.id``.

    Raises
    ------
    StoreError
        When a file name is already registered in the project (images are immutable;
        re-importing the same file is a mistake the caller must see).
    """
    names = images.file_name.tolist()
    existing = session.execute(
        select(ImageRow.file_name).where(
            ImageRow.project_id == project_id, ImageRow.file_name.in_(names)
        )
    ).first()
    if existing is not None:
        name = session.execute(select(ProjectRow.name).where(ProjectRow.id == project_id)).scalar()
        raise StoreError(f"image {existing[0]!r} is already in project {name!r}")
    n = len(images)
    rows = [
        {
            "project_id": project_id,
            "external_id": ext,
            "file_name": name,
            "uri": uris[i] if uris else name,
            "sha256": sha256[i] if sha256 else None,
            "size_bytes": size_bytes[i] if size_bytes else None,
            "width": w,
            "height": h,
            "scene_type": scene or "",
            "tags": list(tags) if tags else [],
        }
        for i, ext, name, w, h, scene, tags in zip(
            range(n),
            images.id.tolist(),
            names,
            images.width.tolist(),
            images.height.tolist(),
            images.scene_type.tolist(),
            images.tags.tolist(),
        )
    ]
    return _insert_returning_ids(session, ImageRow.__table__, rows)


def image_table(session: Session, project_id: int) -> tuple[IntArray, Images]:
    """Every image of a project: (store ids, ``Images`` with the original external ids)."""
    rows = session.execute(
        select(
            ImageRow.id,
            ImageRow.external_id,
            ImageRow.file_name,
            ImageRow.width,
            ImageRow.height,
            ImageRow.scene_type,
            type_coerce(ImageRow.tags, Text),  # the JSON text, not decoded row by row
        )
        .where(ImageRow.project_id == project_id)
        .order_by(ImageRow.id)
    ).all()
    if not rows:
        return np.zeros(0, dtype=np.int64), Images.create(id=[], file_name=[], width=[], height=[])
    store_id, ext, name, width, height, scene, tags = zip(*rows)
    # few distinct tag lists (a density bucket, a flag or two): each text is decoded once,
    # not once per image through the JSON type (a fifth of a 5,000-image export's time)
    decoded: dict[str, tuple[Any, ...]] = {}

    def tags_of(value: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, str):  # a driver that decodes JSON itself (psycopg)
            return tuple(value)
        found = decoded.get(value)
        if found is None:
            found = decoded[value] = tuple(json.loads(value) or ())
        return found

    images = Images.create(
        id=list(ext),
        file_name=list(name),
        width=list(width),
        height=list(height),
        scene_type=list(scene),
        tags=[tags_of(t) for t in tags],
    )
    return np.asarray(store_id, dtype=np.int64), images


def add_tasks(
    session: Session,
    *,
    project_id: int,
    image_id: IntArray,
    assignee_id: IntArray,
    purpose: str | Sequence[str],
    batch_id: int | None = None,
    cycle: int = 0,
    parent_task_id: Sequence[int | None] | None = None,
) -> IntArray:
    """Create one task per (image, assignee) row; their ids in row order."""
    n = len(image_id)
    purposes = [purpose] * n if isinstance(purpose, str) else list(purpose)
    parents: list[Any] = list(parent_task_id) if parent_task_id is not None else [None] * n
    now = utcnow()
    rows = [
        {
            "project_id": project_id,
            "batch_id": batch_id,
            "image_id": image,
            "assignee_id": assignee,
            "purpose": p,
            "status": "assigned",
            "cycle": cycle,
            "parent_task_id": parent,
            "head_revision_id": None,
            "version": 0,
            "created_at": now,
            "submitted_at": None,
        }
        for image, assignee, p, parent in zip(
            np.asarray(image_id).tolist(), np.asarray(assignee_id).tolist(), purposes, parents
        )
    ]
    return _insert_returning_ids(session, TaskRow.__table__, rows)


def import_revisions(
    session: Session,
    task_ids: IntArray,
    author_ids: IntArray,
    labels: Annotations,
    label_task: IntArray,
    *,
    source: Source = Source.HUMAN,
) -> IntArray:
    """First revision of many tasks at once, with their objects (a bulk import).

    Parameters
    ----------
    task_ids, author_ids
        (t,) the tasks and who authored each one's labels.
    labels
        Every object of every task (store image ids).
    label_task
        (n,) position in ``task_ids`` of each object's task.

    Returns
    -------
    IntArray
        (t,) the new revision ids; each task's head now points at its revision.
    """
    t = len(task_ids)
    counts = np.bincount(np.asarray(label_task, dtype=np.int64), minlength=t)
    now = utcnow()
    rows = [
        {
            "task_id": task,
            "number": 1,
            "parent_id": None,
            "author_id": author,
            "source": int(source),
            "object_count": count,
            "request_id": None,
            "created_at": now,
        }
        for task, author, count in zip(task_ids.tolist(), author_ids.tolist(), counts.tolist())
    ]
    revision_ids = _insert_returning_ids(session, RevisionRow.__table__, rows)
    _move_heads(session, task_ids, revision_ids)
    insert_annotations(session, revision_ids[label_task], labels)
    return revision_ids


def _move_heads(session: Session, task_ids: IntArray, revision_ids: IntArray) -> None:
    """Point many tasks at new head revisions with one set-based ``UPDATE ... FROM``.

    An ``executemany`` of single-row UPDATEs would cost a round trip per task.
    """
    connection = session.connection()
    connection.exec_driver_sql(
        "CREATE TEMPORARY TABLE IF NOT EXISTS staging_heads (task_id BIGINT, head BIGINT)"
    )
    connection.exec_driver_sql("DELETE FROM staging_heads")
    bulk_insert(
        session, "staging_heads", {"task_id": task_ids.tolist(), "head": revision_ids.tolist()}
    )
    connection.exec_driver_sql(
        "UPDATE tasks SET head_revision_id = staging_heads.head, version = tasks.version + 1 "
        "FROM staging_heads WHERE tasks.id = staging_heads.task_id"
    )
    connection.exec_driver_sql("DELETE FROM staging_heads")


@dataclass(frozen=True, slots=True)
class SavedRevision:
    """The outcome of a save: the new head, or the existing one for a repeated request."""

    revision_id: int
    number: int
    task_version: int
    replayed: bool  # True when request_id had already landed: nothing was written again


_TASKS: Any = TaskRow.__table__
_REVISIONS: Any = RevisionRow.__table__
# run through Direct (see labelgate.store.db.Direct): a save's statements cost SQLAlchemy's
# execute more CPU than SQLite spends on them
_LOCK_TASK = Direct(
    select(_TASKS.c.head_revision_id, _TASKS.c.version)
    .where(_TASKS.c.id == bindparam("task_id"))
    .with_for_update()
)
_BY_REQUEST = Direct(
    select(_REVISIONS.c.id, _REVISIONS.c.number, _REVISIONS.c.task_id).where(
        _REVISIONS.c.request_id == bindparam("request_id")
    )
)
# the next number and the insert in one statement (an aggregate without GROUP BY yields one
# row, so a task's first revision gets number 1)
_INSERT_NEXT_REVISION = Direct(
    insert(_REVISIONS)
    .from_select(
        [
            "task_id",
            "number",
            "parent_id",
            "author_id",
            "source",
            "object_count",
            "request_id",
            "created_at",
        ],
        select(
            bindparam("task_id", type_=Integer),
            func.coalesce(func.max(_REVISIONS.c.number), 0) + 1,
            bindparam("parent_id", type_=Integer),
            bindparam("author_id", type_=Integer),
            bindparam("source", type_=SmallInteger),
            bindparam("object_count", type_=Integer),
            bindparam("request_id", type_=String),
            bindparam("created_at", type_=_REVISIONS.c.created_at.type),
        ).where(_REVISIONS.c.task_id == bindparam("task_id")),
    )
    .returning(_REVISIONS.c.id, _REVISIONS.c.number)
)
# the head moves and the version steps in one compare-and-set
_MOVE_HEAD = Direct(
    update(_TASKS)
    .where(_TASKS.c.id == bindparam("task_id"), _TASKS.c.version == bindparam("seen"))
    .values(head_revision_id=bindparam("head"), version=bindparam("version"))
)


class TaskHead(NamedTuple):
    """A task's head revision and version, as read under its row lock."""

    head_revision_id: int | None
    version: int


def save_revision(
    session: Session,
    *,
    task_id: int,
    base_revision_id: int | None,
    author_id: int,
    labels: Annotations,
    source: Source = Source.HUMAN,
    request_id: str | None = None,
    image_id: int | None = None,
    locked: TaskHead | None = None,
) -> SavedRevision:
    """Save a task's full object list as a new revision on top of ``base_revision_id``.

    Parameters
    ----------
    base_revision_id
        The revision the editor started from (None for a task's first save).
    request_id
        Client idempotency key: a retried save with the same key returns the revision the
        first attempt wrote and writes nothing.
    image_id
        The task's store image, written as every object's image in place of
        ``labels.image_id`` (see :func:`~labelgate.store.annotations.insert_annotations`).
    locked
        The task's head and version when the caller has read them itself in this
        transaction, with the row lock the save needs (``SELECT ... FOR UPDATE`` on
        PostgreSQL); the save then does not read the task again.

    Raises
    ------
    ConflictError
        ``base_revision_id`` is not the task's head any more: someone saved in between.
        Nothing is written; the message names the current head and its author.
    """
    # Lock the task row before reading anything (SELECT ... FOR UPDATE on PostgreSQL; SQLite
    # renders no FOR UPDATE: its BEGIN IMMEDIATE already runs one writer at a time). A second
    # save of the same task waits here until the first commits, then reads the new head and
    # fails as a conflict before writing. Unlocked, both read the same max(number) and the
    # loser hit the (task_id, number) unique constraint as an IntegrityError.
    # The statements are built once (module level, bound parameters) and run on the
    # session's connection: building and coercing them on every save cost more CPU than
    # running them.
    if locked is None:
        task = _LOCK_TASK.run(session, {"task_id": task_id}).first()
        if task is None:
            raise StoreError(f"no task {task_id}")
        locked = TaskHead(task.head_revision_id, task.version)
    if request_id is not None:  # after the lock: a retry racing its first attempt sees it
        done = _BY_REQUEST.run(session, {"request_id": request_id}).first()
        if done is not None:
            if done.task_id != task_id:
                raise ConflictError(
                    f"request id {request_id!r} was already used for task {done.task_id}"
                )
            return SavedRevision(done.id, done.number, locked.version, replayed=True)
    if locked.head_revision_id != base_revision_id:
        raise _conflict(session, task_id, base_revision_id, locked.head_revision_id)
    revision_id, number = _INSERT_NEXT_REVISION.run(
        session,
        {
            "task_id": task_id,
            "parent_id": base_revision_id,
            "author_id": author_id,
            "source": int(source),
            "object_count": len(labels),
            "request_id": request_id,
            "created_at": utcnow(),
        },
    ).rows[0]
    # compare-and-set: the lock makes it unlosable on both databases; it stays in case a
    # caller runs without the lock. A lost race raises inside the caller's transaction,
    # which rolls back with the revision just inserted: nothing is written.
    moved = _MOVE_HEAD.run(
        session,
        {
            "task_id": task_id,
            "seen": locked.version,
            "version": locked.version + 1,
            "head": revision_id,
        },
    )
    if moved.rowcount != 1:
        head = session.execute(
            select(TaskRow.head_revision_id).where(TaskRow.id == task_id)
        ).scalar_one()
        raise _conflict(session, task_id, base_revision_id, head)
    insert_annotations(session, revision_id, labels, image_id=image_id)
    return SavedRevision(revision_id, number, locked.version + 1, replayed=False)


def _conflict(session: Session, task_id: int, base: int | None, head: int | None) -> ConflictError:
    author = "nobody"
    number = 0
    if head is not None:
        row = session.execute(
            select(UserRow.name, RevisionRow.number)
            .join(RevisionRow, RevisionRow.author_id == UserRow.id)
            .where(RevisionRow.id == head)
        ).first()
        if row is not None:
            author, number = row.name, row.number
    return ConflictError(
        f"task {task_id}: the save edited revision {base}, but revision {head} "
        f"(#{number} by {author}) was saved in between; reload and reapply",
        current_revision_id=head,
    )
