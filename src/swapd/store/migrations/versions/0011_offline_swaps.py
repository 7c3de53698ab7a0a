"""offline swaps: local authorization lists and replayed BatterySwap events

``plans.offline_swaps_max`` is the offline limit a station's local list carries for the plan's
riders. ``packs.placed_at`` is when the reading that put a pack where it is was taken, so that an
older replayed reading cannot move it back. ``local_lists`` and ``local_list_entries`` hold each
station's list version and its entries as last accepted; ``local_list_changes`` tells every
server process that a list's facts changed; ``offline_events`` records the events stations
replayed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMNs (SQLite takes them, constant defaults): a batch would copy the table,
    # and the copy lists its constraints in no fixed order.
    op.add_column(
        "plans",
        sa.Column("offline_swaps_max", sa.Integer, nullable=False, server_default=sa.text("1")),
    )
    op.add_column("packs", sa.Column("placed_at", _AT, nullable=True))
    op.create_table(
        "local_lists",
        sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sent_at", _AT, nullable=True),
        sa.Column("lease_until", _AT, nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("updated_at", _AT, nullable=False),
    )
    op.create_table(
        "local_list_entries",
        sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), primary_key=True),
        sa.Column("token_type", sa.String(20), primary_key=True),
        sa.Column("id_token", sa.String(255), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("group_id", sa.String(40), nullable=True),
        sa.Column("offline_swaps_max", sa.Integer, nullable=True),
    )
    op.create_table(
        "local_list_changes",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", _AT, nullable=False),
    )
    op.create_table(
        "offline_events",
        sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), primary_key=True),
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("event_type", sa.String(24), primary_key=True),
        sa.Column("occurred_at", _AT, nullable=False),
        sa.Column("rider_id", sa.String(40), nullable=True),
        sa.Column("connection_id", sa.String(32), nullable=True),
        sa.Column("received_at", _AT, nullable=False),
    )
    op.create_index("ix_offline_events_rider", "offline_events", ["station_id", "rider_id"])


def downgrade() -> None:
    op.drop_index("ix_offline_events_rider", "offline_events")
    op.drop_table("offline_events")
    op.drop_table("local_list_changes")
    op.drop_table("local_list_entries")
    op.drop_table("local_lists")
    with op.batch_alter_table("packs") as batch:
        batch.drop_column("placed_at")
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("offline_swaps_max")
