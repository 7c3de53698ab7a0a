"""unlisted plans: a plan riders cannot find or sign up for

``plans.listed`` is true for every plan the public plan list shows and rider sign-up accepts.
An unlisted plan (the simulator's, one staff keep for a few riders) still works for the riders
put on it by staff. Existing plans stay listed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.add_column(sa.Column("listed", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("listed")
