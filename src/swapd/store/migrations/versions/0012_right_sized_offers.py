"""right-sized offers and the fleet-aware choice of pack

``stations.right_size_floor_bp`` is the lowest SoC a station offers to a rider whose allowance
cannot hold a charged pack (NULL: right-sizing off, as before); ``stations.pick_*`` are the
weights of the station's choice of pack (all 0: the fullest pack first, as before).
``riders.right_size_consent`` is the rider's answer to a right-sized offer (always / ask /
never). ``swap_choices`` records, per offer, the rule that chose its packs and, for a right-sized
one, the rider's consent.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)
_PICKS = (
    ("pick_soc_band_bp", "0"),
    ("pick_rest_weight", "0"),
    ("pick_cycles_weight", "0"),
    ("pick_soh_weight", "0"),
    ("pick_retirement_margin_bp", "500"),
)


def upgrade() -> None:
    # Plain ADD COLUMNs with constant defaults (see 0011): every existing station keeps today's
    # behaviour until its operator turns the features on.
    op.add_column("stations", sa.Column("right_size_floor_bp", sa.Integer, nullable=True))
    for name, default in _PICKS:
        op.add_column(
            "stations",
            sa.Column(name, sa.Integer, nullable=False, server_default=sa.text(default)),
        )
    op.add_column(
        "riders",
        sa.Column("right_size_consent", sa.String(8), nullable=False, server_default="ask"),
    )
    op.create_table(
        "swap_choices",
        sa.Column("swap_id", _ID, sa.ForeignKey("swaps.id"), primary_key=True),
        sa.Column("station_id", sa.String(40), nullable=False),
        sa.Column("rule", sa.String(24), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("right_sized", sa.Boolean, nullable=False),
        sa.Column("consent", sa.String(12), nullable=True),
        sa.Column("required_units", sa.BigInteger, nullable=False),
        sa.Column("full_required_units", sa.BigInteger, nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("confirmed_at", _AT, nullable=True),
    )
    op.create_index("ix_swap_choices_station", "swap_choices", ["station_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_swap_choices_station", "swap_choices")
    op.drop_table("swap_choices")
    with op.batch_alter_table("riders") as batch:
        batch.drop_column("right_size_consent")
    with op.batch_alter_table("stations") as batch:
        for name, _default in reversed(_PICKS):
            batch.drop_column(name)
        batch.drop_column("right_size_floor_bp")
