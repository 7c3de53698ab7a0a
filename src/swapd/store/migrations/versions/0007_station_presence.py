"""station presence: which station is connected to a server process now

``stations.connected_at`` and ``stations.connection_id`` are written when a server process accepts
a station's socket and cleared when that connection ends, so that any process (a CLI command, the
HTTP API in another process) can tell a station that is not connected before sending it a command.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stations") as batch:
        batch.add_column(sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("connection_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stations") as batch:
        batch.drop_column("connection_id")
        batch.drop_column("connected_at")
