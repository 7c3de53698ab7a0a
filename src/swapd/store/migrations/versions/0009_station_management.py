"""station management: commands recorded with who asked, queueing, and later notifications

``station_commands`` gains ``requested_by``, ``queued`` (a command for a station that is not
connected waits until it expires instead of being refused), and ``request_id``/``status``/
``status_at`` for the commands a station reports on later (UpdateFirmware, GetLog,
GetBaseReport). ``station_notifications`` keeps those reports; ``station_variables`` is a
station's inventory from its last base report. ``slots.operative`` is the operator's
ChangeAvailability; ``stations.firmware_status`` the last firmware status.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMNs (SQLite takes them, constant defaults): a batch would copy the table,
    # and the copy lists its constraints in no fixed order.
    commands = "station_commands"
    op.add_column(commands, sa.Column("requested_by", sa.String(120), nullable=True))
    op.add_column(commands, sa.Column("queued", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column(commands, sa.Column("request_id", sa.Integer, nullable=True))
    op.add_column(commands, sa.Column("status", sa.String(40), nullable=True))
    op.add_column(commands, sa.Column("status_at", _AT, nullable=True))
    op.create_index("ix_station_commands_station", "station_commands", ["station_id", "id"])
    op.add_column("slots", sa.Column("operative", sa.Boolean, nullable=False, server_default=sa.true()))
    op.add_column("stations", sa.Column("firmware_status", sa.String(40), nullable=True))
    op.add_column("stations", sa.Column("firmware_status_at", _AT, nullable=True))
    op.create_table(
        "station_notifications",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("request_id", sa.Integer, nullable=True),
        sa.Column("status", sa.String(40), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("received_at", _AT, nullable=False),
    )
    op.create_index("ix_station_notifications_station", "station_notifications", ["station_id", "id"])
    op.create_table(
        "station_variables",
        sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("component", sa.String(50), nullable=False),
        sa.Column("variable", sa.String(50), nullable=False),
        sa.Column("evse_id", sa.Integer, nullable=True),
        sa.Column("attribute_type", sa.String(10), nullable=False),
        sa.Column("value", sa.String(2500), nullable=True),
        sa.Column("mutability", sa.String(10), nullable=True),
        sa.Column("report_request_id", sa.Integer, nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("station_variables")
    op.drop_index("ix_station_notifications_station", "station_notifications")
    op.drop_table("station_notifications")
    with op.batch_alter_table("stations") as batch:
        batch.drop_column("firmware_status_at")
        batch.drop_column("firmware_status")
    with op.batch_alter_table("slots") as batch:
        batch.drop_column("operative")
    op.drop_index("ix_station_commands_station", "station_commands")
    with op.batch_alter_table("station_commands") as batch:
        batch.drop_column("status_at")
        batch.drop_column("status")
        batch.drop_column("request_id")
        batch.drop_column("queued")
        batch.drop_column("requested_by")
