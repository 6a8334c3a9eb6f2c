"""Launches record the nodes their pods ran on (Kubernetes), for reconciliation by node share.

``launches.nodes``: JSON, a list of ``{"pod", "node", "provider_id", "resource_id", "accelerators",
"node_accelerators", "started_at", "ended_at"}`` (see :class:`placement.launchers.base.NodeUse`); NULL for
launches on targets that bill the job itself, and for launches recorded before this revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("launches", sa.Column("nodes", sa.JSON))


def downgrade() -> None:
    op.drop_column("launches", "nodes")
