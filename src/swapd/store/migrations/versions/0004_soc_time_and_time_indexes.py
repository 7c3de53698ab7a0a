"""when a pack's SoC was measured; indexes for time ranges (statements, exports, swap filters)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packs") as batch:
        batch.add_column(sa.Column("soc_measured_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_transfers_created", "transfers", ["created_at"], unique=False)
    op.create_index("ix_swaps_created", "swaps", ["created_at"], unique=False)
    op.create_index("ix_possessions_at_out", "possessions", ["at_out"], unique=False)
    op.create_index("ix_possessions_at_in", "possessions", ["at_in"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_possessions_at_in", table_name="possessions")
    op.drop_index("ix_possessions_at_out", table_name="possessions")
    op.drop_index("ix_swaps_created", table_name="swaps")
    op.drop_index("ix_transfers_created", table_name="transfers")
    with op.batch_alter_table("packs") as batch:
        batch.drop_column("soc_measured_at")
