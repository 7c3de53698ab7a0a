"""the time index of possessions holds closed possessions only

``ix_possessions_at_in`` indexed every possession, the open ones (``at_in IS NULL``) included.
For the return's lookup of a pack's open possession (``pack_serial = ? AND at_in IS NULL``)
PostgreSQL's planner then had two indexes of equal cost before the table was analyzed, and took
this one in the bench: every return scanned all open possessions, one per pack out with a rider.
Made partial on ``at_in IS NOT NULL`` it serves the time ranges it is for (statements, the
overview), and the open possession can only be found through ``ux_possessions_open_pack``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_CLOSED = sa.text("at_in IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_possessions_at_in", table_name="possessions")
    op.create_index(
        "ix_possessions_at_in",
        "possessions",
        ["at_in"],
        unique=False,
        sqlite_where=_CLOSED,
        postgresql_where=_CLOSED,
    )


def downgrade() -> None:
    op.drop_index("ix_possessions_at_in", table_name="possessions")
    op.create_index("ix_possessions_at_in", "possessions", ["at_in"], unique=False)
