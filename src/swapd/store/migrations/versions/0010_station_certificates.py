"""station certificates: OCPP security profile 3

``station_certificates`` lists every certificate the operator's CA signed for a station, by
serial, with its end of validity and, once revoked, when and why: a revoked serial is refused
at the station's next connection.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "station_certificates",
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), nullable=False),
        sa.Column("not_after", _AT, nullable=False),
        sa.Column("issued_at", _AT, nullable=False),
        sa.Column("revoked_at", _AT, nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
    )
    op.create_index("ix_station_certificates_station", "station_certificates", ["station_id"])


def downgrade() -> None:
    op.drop_index("ix_station_certificates_station", "station_certificates")
    op.drop_table("station_certificates")
