"""station gateway: station credentials, boot data and the command queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_STATION_COLUMNS = ("password_hash", "vendor", "model", "firmware", "booted_at", "last_seen_at")


def upgrade() -> None:
    with op.batch_alter_table("stations") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(200), nullable=True))
        batch.add_column(sa.Column("vendor", sa.String(50), nullable=True))
        batch.add_column(sa.Column("model", sa.String(50), nullable=True))
        batch.add_column(sa.Column("firmware", sa.String(50), nullable=True))
        batch.add_column(sa.Column("booted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "station_commands",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("station_id", sa.String(40), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_station_commands_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station_commands")),
    )
    op.create_index(
        "ix_station_commands_pending", "station_commands", ["station_id", "state"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_station_commands_pending", table_name="station_commands")
    op.drop_table("station_commands")
    with op.batch_alter_table("stations") as batch:
        for column in _STATION_COLUMNS:
            batch.drop_column(column)
