"""an index of the swaps still offered, by rider: Authorize looks up a rider's open offers on
every decision, and ix_swaps_rider made that a walk through the rider's whole swap history

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_swaps_offered",
        "swaps",
        ["rider_id"],
        unique=False,
        sqlite_where=sa.text("state = 'offered'"),
        postgresql_where=sa.text("state = 'offered'"),
    )


def downgrade() -> None:
    op.drop_index("ix_swaps_offered", table_name="swaps")
