"""Measured work time, pre-label decisions, login attempts and the shared job queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _created() -> sa.Column[dt.datetime]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "work_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("activity", sa.String(length=20), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("objects", sa.Integer(), nullable=False),
        _created(),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_work_log_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_work_log_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_work_log_task_id_tasks")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_work_log_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_log")),
    )
    op.create_index(op.f("ix_work_log_batch_id"), "work_log", ["batch_id"], unique=False)
    op.create_index(op.f("ix_work_log_task_id"), "work_log", ["task_id"], unique=False)
    op.create_index("ix_work_log_project_activity", "work_log", ["project_id", "activity"])

    op.create_table(
        "prelabel_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("prelabel_revision_id", sa.Integer(), nullable=False),
        sa.Column("final_revision_id", sa.Integer(), nullable=False),
        sa.Column("object_key", sa.BigInteger(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("iou", sa.Float(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _created(),
        sa.ForeignKeyConstraint(
            ["final_revision_id"],
            ["revisions.id"],
            name=op.f("fk_prelabel_decisions_final_revision_id_revisions"),
        ),
        sa.ForeignKeyConstraint(
            ["prelabel_revision_id"],
            ["revisions.id"],
            name=op.f("fk_prelabel_decisions_prelabel_revision_id_revisions"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_prelabel_decisions_task_id_tasks")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_prelabel_decisions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prelabel_decisions")),
    )
    op.create_index(
        op.f("ix_prelabel_decisions_task_id"), "prelabel_decisions", ["task_id"], unique=False
    )

    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("remote", sa.String(length=100), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(
        "ix_login_attempts_username_created", "login_attempts", ["username", "created_at"]
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("file", sa.String(length=2000), nullable=True),
        sa.Column("worker", sa.String(length=100), nullable=True),
        _created(),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_jobs_owner_id_users")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_jobs_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_owner_id"), "jobs", ["owner_id"], unique=False)
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_created", table_name="jobs")
    op.drop_index(op.f("ix_jobs_owner_id"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_login_attempts_username_created", table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index(op.f("ix_prelabel_decisions_task_id"), table_name="prelabel_decisions")
    op.drop_table("prelabel_decisions")
    op.drop_index("ix_work_log_project_activity", table_name="work_log")
    op.drop_index(op.f("ix_work_log_task_id"), table_name="work_log")
    op.drop_index(op.f("ix_work_log_batch_id"), table_name="work_log")
    op.drop_table("work_log")
