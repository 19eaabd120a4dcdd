"""Drop ``ix_revisions_task_id``: the ``(task_id, number)`` unique index already serves it.

Every query that looked revisions up by task can use the unique index's leading column, so
the second index only cost a save one more B-tree insert and one more page written to the
log (a save writes about 16 pages on SQLite).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revisions_task_id"))


def downgrade() -> None:
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revisions_task_id"), ["task_id"], unique=False)
