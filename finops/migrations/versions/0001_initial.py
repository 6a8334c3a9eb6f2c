"""The ledger as ``metadata.create_all`` made it before migrations: workloads and placements.

A database made by that code (these tables, no ``alembic_version``) is stamped with this revision when
it is first opened, then upgraded.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "workloads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("source", sa.String(500)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    for col in ("name", "team", "state"):
        op.create_index(f"ix_workloads_{col}", "workloads", [col])
    op.create_table(
        "placements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workload_id", sa.Integer, sa.ForeignKey("workloads.id"), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("placed", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(10)), sa.Column("region", sa.String(60)), sa.Column("zone", sa.String(60)),
        sa.Column("instance_type", sa.String(120)), sa.Column("market", sa.String(12)),
        sa.Column("accelerator_name", sa.String(40)), sa.Column("accelerator_count", sa.Float),
        sa.Column("replicas", sa.Integer),
        sa.Column("price_per_hour", sa.Float), sa.Column("price_observed_at", sa.DateTime(timezone=True)),
        sa.Column("expected_hours", sa.Float), sa.Column("expected_cost", sa.Float),
        sa.Column("compute_cost", sa.Float), sa.Column("rework_cost", sa.Float), sa.Column("egress_cost", sa.Float),
        sa.Column("baseline_cost", sa.Float), sa.Column("saving", sa.Float),
        sa.Column("legs", sa.JSON), sa.Column("runner_up", sa.JSON), sa.Column("reason", sa.Text),
    )
    for col in ("workload_id", "run_id"):
        op.create_index(f"ix_placements_{col}", "placements", [col])


def downgrade() -> None:
    op.drop_table("placements")
    op.drop_table("workloads")
