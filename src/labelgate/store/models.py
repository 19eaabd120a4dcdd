"""SQLAlchemy 2 models of an annotation program: one table per entity of the workflow.

Every table is plain relational SQL that SQLite and PostgreSQL both run. Annotations are rows
(one per object per revision) so that set-based SQL can insert and read them in bulk; their
variable-length geometry (polygon points, mask runs, keypoints) is one little-endian float64
blob per object plus a small int32 blob of part lengths, which a reader decodes for the whole
data set with one ``np.frombuffer`` over the concatenated blobs.

Revisions are append-only: a save never updates an annotation row, it writes a new revision
whose rows are the full object list, and moves the task's ``head_revision_id`` with a
compare-and-set on ``tasks.version`` (optimistic locking, see :mod:`labelgate.store.repository`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AdjudicationRow",
    "AnnotationRow",
    "ApiTokenRow",
    "AuditEventRow",
    "Base",
    "BatchItemRow",
    "BatchRow",
    "DefectRow",
    "GateResultRow",
    "GoldItemRow",
    "ImageRow",
    "JobRow",
    "LoginAttemptRow",
    "PrelabelDecisionRow",
    "ProjectRow",
    "QualificationRow",
    "ReviewDecisionRow",
    "RevisionRow",
    "SpecVersionRow",
    "TaskRow",
    "UserRow",
    "WorkLogRow",
    "utcnow",
]

# Constraint names are fixed so that Alembic migrations name the same objects on every
# database (SQLite batch migrations need named constraints to alter them).
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (what every timestamp column stores)."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base with the fixed naming convention."""

    metadata = MetaData(naming_convention=NAMING)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class ProjectRow(Base):
    """An annotation program: one data set, one evolving spec."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = _created()


class SpecVersionRow(Base):
    """One version of a project's spec; a locked version never changes."""

    __tablename__ = "spec_versions"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    toml: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    taxonomy_digest: Mapped[str] = mapped_column(String(64))
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = _created()


class UserRow(Base):
    """A person: annotator, reviewer, manager, admin or auditor (``roles``)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cohort: Mapped[str | None] = mapped_column(String(50))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = _created()


class ImageRow(Base):
    """An image of a project; ``external_id`` is the id it had in the imported file."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "file_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    external_id: Mapped[int] = mapped_column(BigInteger)
    file_name: Mapped[str] = mapped_column(String(1000))
    uri: Mapped[str] = mapped_column(String(2000), default="")
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    scene_type: Mapped[str] = mapped_column(String(100), default="")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)


class BatchRow(Base):
    """A batch of images moving through the seven stages under one spec version."""

    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    spec_version_id: Mapped[int] = mapped_column(ForeignKey("spec_versions.id"))
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20), default="open")
    rework_cycle: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class BatchItemRow(Base):
    """An image in a batch, with its state and, once accepted, the revision delivered."""

    __tablename__ = "batch_items"

    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True, index=True)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    final_revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))


class GoldItemRow(Base):
    """A gold or honeypot image with its reference answer (a revision of a reference task)."""

    __tablename__ = "gold_items"
    __table_args__ = (UniqueConstraint("project_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"))
    purpose: Mapped[str] = mapped_column(String(20))  # gold | honeypot


class TaskRow(Base):
    """One image for one person for one purpose; its labels are its revisions."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_assignee_status", "assignee_id", "status"),
        Index("ix_tasks_batch_image", "batch_id", "image_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    assignee_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    purpose: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="assigned")
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    parent_task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    # no foreign key: tasks and revisions would reference each other, and the workflow
    # service sets it only to a revision of this task it has just written
    head_revision_id: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = _created()
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class RevisionRow(Base):
    """One save of a task's labels: who, when, from what, and the revision it edited."""

    __tablename__ = "revisions"
    # the unique (task_id, number) index also finds a task's revisions: no second index
    __table_args__ = (UniqueConstraint("task_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    number: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    source: Mapped[int] = mapped_column(SmallInteger)
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[dt.datetime] = _created()


class AnnotationRow(Base):
    """One object of one revision (the columns of :class:`labelgate.core.Annotations`)."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"), index=True)
    # a copy of the task's image, so readers filter objects by image without two joins; no
    # foreign key: PostgreSQL checks each one per row, which doubles the cost of a bulk COPY
    image_id: Mapped[int] = mapped_column(Integer)
    object_key: Mapped[int] = mapped_column(BigInteger)
    class_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[int] = mapped_column(SmallInteger)
    x0: Mapped[float | None] = mapped_column(Float)
    y0: Mapped[float | None] = mapped_column(Float)
    x1: Mapped[float | None] = mapped_column(Float)
    y1: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    source: Mapped[int] = mapped_column(SmallInteger)
    track_id: Mapped[int] = mapped_column(BigInteger, default=-1)
    z_order: Mapped[int] = mapped_column(Integer, default=0)
    occluded: Mapped[bool] = mapped_column(Boolean, default=False)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    iscrowd: Mapped[bool] = mapped_column(Boolean, default=False)
    difficult: Mapped[bool] = mapped_column(Boolean, default=False)
    area: Mapped[float | None] = mapped_column(Float)
    geometry: Mapped[bytes | None] = mapped_column(LargeBinary)
    parts: Mapped[bytes | None] = mapped_column(LargeBinary)
    attributes: Mapped[str | None] = mapped_column(Text)


class ReviewDecisionRow(Base):
    """A reviewer's verdict on one object (``object_key``) or the whole item (null)."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"), index=True)
    object_key: Mapped[int | None] = mapped_column(BigInteger)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(20))  # accept | reject
    defect_type: Mapped[str | None] = mapped_column(String(40))
    severity: Mapped[str | None] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = _created()


class DefectRow(Base):
    """A defect found by review, QA sampling, gold comparison or a model."""

    __tablename__ = "defects"
    __table_args__ = (Index("ix_defects_batch_cycle", "batch_id", "cycle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))
    object_key: Mapped[int | None] = mapped_column(BigInteger)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    type: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20), default="major")
    found_by: Mapped[str] = mapped_column(String(20))  # review | qa | gold | model
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = _created()


class AdjudicationRow(Base):
    """A disagreement the consensus could not settle, and the adjudicator's decision."""

    __tablename__ = "adjudications"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    reason: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="open")
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    adjudicator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = _created()
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class QualificationRow(Base):
    """An annotator's pilot result on the gold set of one spec version."""

    __tablename__ = "qualifications"
    __table_args__ = (Index("ix_qualifications_user_spec", "user_id", "spec_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    spec_version_id: Mapped[int] = mapped_column(ForeignKey("spec_versions.id"))
    taxonomy_digest: Mapped[str] = mapped_column(String(64))
    gold_images: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = _created()


class GateResultRow(Base):
    """One evaluation of a gate: its inputs, measured value, threshold and verdict."""

    __tablename__ = "gate_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    stage: Mapped[str] = mapped_column(String(40))
    gate: Mapped[str] = mapped_column(String(60))
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = _created()


class AuditEventRow(Base):
    """One link of the append-only, hash-chained audit log (see ``workflow.audit``)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(100))
    before_digest: Mapped[str | None] = mapped_column(String(64))
    after_digest: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="{}")
    # unique: two events claiming the same predecessor would fork the chain; the database
    # refuses that even if an appender forgot the serializing lock
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ApiTokenRow(Base):
    """An opaque API token of a user; only its sha256 is stored, never the token itself.

    A stolen database therefore holds no usable credential; a token dies at ``expires_at``
    or when ``revoked`` (logout, password change).
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = _created()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class WorkLogRow(Base):
    """Measured working time: one entry per save, review, QA inspection or adjudication.

    ``seconds`` is the active time the client measured since its previous entry for the same
    task (the editor counts only time with input, the simulator its annotators' speed);
    ``objects`` is how many objects the work touched. A program is priced from these rows
    (hours x the spec's hourly rates) beside the unit-price model.
    """

    __tablename__ = "work_log"
    __table_args__ = (Index("ix_work_log_project_activity", "project_id", "activity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # annotate | rework | review | qa | adjudicate
    activity: Mapped[str] = mapped_column(String(20))
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float)
    objects: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = _created()


class PrelabelDecisionRow(Base):
    """What the annotator did with one pre-labelled object: accept, adjust or reject.

    Recorded when the task is submitted, by comparing its pre-label revision with the
    submitted head: the same object key with unchanged class and geometry is ``accept``, a
    changed one ``adjust`` (``iou`` of final vs proposal), a missing one ``reject``.
    """

    __tablename__ = "prelabel_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    prelabel_revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"))
    final_revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"))
    object_key: Mapped[int] = mapped_column(BigInteger)
    class_id: Mapped[int] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(10))  # accept | adjust | reject
    iou: Mapped[float | None] = mapped_column(Float)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = _created()


class LoginAttemptRow(Base):
    """A password login attempt, for throttling guessing across every API worker."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_created", "username", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(200))
    remote: Mapped[str] = mapped_column(String(100), default="")
    succeeded: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = _created()


class JobRow(Base):
    """A background job in the queue every API worker shares (claimed by compare-and-set)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    file: Mapped[str | None] = mapped_column(String(2000))
    worker: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = _created()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
