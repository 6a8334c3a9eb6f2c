"""Launches: what the ledger keeps per workload for the launchers, and the history of every move.

``workloads`` gains the launch target and the provider's job id (unique per target), the attempt count
(placed → submitted adds one), the last error and when the workload last entered each state.
``transitions`` records every state change (who moved what, from where, with which job id or error),
so a retried or failed launch keeps its earlier attempts.

Existing rows get the time of their current state from ``updated_at`` (the last change was the move
into it); earlier states' times are unknown and stay empty.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

STAMPS = {"placed_at": ("placed",), "submitted_at": ("submitted",), "running_at": ("running",),
          "ended_at": ("done", "failed", "cancelled")}


def upgrade() -> None:
    op.add_column("workloads", sa.Column("target", sa.String(40)))
    op.add_column("workloads", sa.Column("external_id", sa.String(500)))
    op.add_column("workloads", sa.Column("attempt", sa.Integer, nullable=False, server_default="0"))
    op.add_column("workloads", sa.Column("last_error", sa.Text))
    for col in STAMPS:
        op.add_column("workloads", sa.Column(col, sa.DateTime(timezone=True)))
    op.create_index("ux_workloads_target_external_id", "workloads", ["target", "external_id"], unique=True)
    w = sa.table("workloads", sa.column("state", sa.String), sa.column("updated_at", sa.DateTime(timezone=True)),
                 *(sa.column(c, sa.DateTime(timezone=True)) for c in STAMPS))
    for col, states in STAMPS.items():
        op.execute(w.update().where(w.c.state.in_(states)).values({col: w.c.updated_at}))
    op.create_table(
        "transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workload_id", sa.Integer, sa.ForeignKey("workloads.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("old_state", sa.String(12), nullable=False),
        sa.Column("new_state", sa.String(12), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("target", sa.String(40)),
        sa.Column("external_id", sa.String(500)),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_transitions_workload_id", "transitions", ["workload_id"])


def downgrade() -> None:
    op.drop_table("transitions")
    op.drop_index("ux_workloads_target_external_id", "workloads")
    # Plain DROP COLUMN (SQLite >= 3.35, PostgreSQL): a batch table copy would trip the foreign key
    # from placements on SQLite.
    for col in ("target", "external_id", "attempt", "last_error", *STAMPS):
        op.drop_column("workloads", col)
