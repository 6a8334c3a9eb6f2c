"""Dispatch: the launches of each placement, offers blocked after a capacity answer, what runs taught us.

``launches`` holds one row per leg submitted to a target (its job id, state, run times, preemptions);
``blocks`` the offers kept out of placement until a time; ``interruptions`` the hours our spot runs ran
and the preemptions they met, per provider, region and instance family; ``corrections`` the ratio of
billed to predicted cost per provider, target kind and instance family. ``transitions`` gains the
placement a move belongs to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("transitions", sa.Column("placement_id", sa.Integer))
    op.create_table(
        "launches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workload_id", sa.Integer, sa.ForeignKey("workloads.id"), nullable=False),
        sa.Column("placement_id", sa.Integer, sa.ForeignKey("placements.id"), nullable=False),
        sa.Column("leg", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("external_id", sa.String(500), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(10), nullable=False),
        sa.Column("region", sa.String(60), nullable=False),
        sa.Column("instance_type", sa.String(120), nullable=False),
        sa.Column("market", sa.String(12), nullable=False),
        sa.Column("replicas", sa.Integer, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("preemptions", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message", sa.Text),
        sa.UniqueConstraint("target", "external_id", name="ux_launches_target_external_id"),
        sa.UniqueConstraint("placement_id", "leg", name="ux_launches_placement_leg"),
    )
    op.create_index("ix_launches_workload_id", "launches", ["workload_id"])
    op.create_index("ix_launches_state", "launches", ["state"])
    op.create_table(
        "blocks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(10), nullable=False),
        sa.Column("region", sa.String(60), nullable=False),
        sa.Column("instance_type", sa.String(120), nullable=False),
        sa.Column("market", sa.String(12), nullable=False),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_blocks_until", "blocks", ["until"])
    op.create_table(
        "interruptions",
        sa.Column("provider", sa.String(10), primary_key=True),
        sa.Column("region", sa.String(60), primary_key=True),
        sa.Column("family", sa.String(60), primary_key=True),
        sa.Column("hours", sa.Float, nullable=False),
        sa.Column("preemptions", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "corrections",
        sa.Column("provider", sa.String(10), primary_key=True),
        sa.Column("target", sa.String(20), primary_key=True),
        sa.Column("family", sa.String(60), primary_key=True),
        sa.Column("predicted", sa.Float, nullable=False),
        sa.Column("billed", sa.Float, nullable=False),
        sa.Column("workloads", sa.Integer, nullable=False),
        sa.Column("factor", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("corrections", "interruptions", "blocks", "launches"):
        op.drop_table(table)
    op.drop_column("transitions", "placement_id")
