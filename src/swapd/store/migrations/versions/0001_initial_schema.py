"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ledger", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("owner", sa.String(length=40), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("ledger", "code", "owner", name=op.f("uq_accounts_ledger_code_owner")),
    )
    op.create_table(
        "alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("pack_serial", sa.String(length=50), nullable=True),
        sa.Column("rider_id", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_table(
        "pack_models",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("nominal_wh", sa.Integer(), nullable=False),
        sa.CheckConstraint("nominal_wh > 0", name=op.f("ck_pack_models_nominal_positive")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_pack_models")),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("price_units", sa.BigInteger(), nullable=False),
        sa.Column("granularity_s", sa.Integer(), nullable=False),
        sa.Column("time_hold_s", sa.Integer(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("included_units", sa.BigInteger(), nullable=False),
        sa.Column("carry_over", sa.Boolean(), nullable=False),
        sa.Column("prorate_first_cycle", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
    )
    op.create_table(
        "station_events",
        sa.Column("station_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=24), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(
            "station_id", "request_id", "event_type", name=op.f("pk_station_events")
        ),
    )
    op.create_table(
        "stations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("slot_count", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("charged_soc_bp", sa.Integer(), nullable=False),
        sa.Column("min_soh_bp", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("slot_count >= 2", name=op.f("ck_stations_two_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stations")),
    )
    op.create_table(
        "riders",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("plan_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("vehicle_packs", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_riders_plan_id_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_riders")),
    )
    op.create_table(
        "slots",
        sa.Column("station_id", sa.String(length=40), nullable=False),
        sa.Column("slot_no", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pack_serial", sa.String(length=50), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_slots_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("station_id", "slot_no", name=op.f("pk_slots")),
        sa.UniqueConstraint("pack_serial", name=op.f("uq_slots_pack_serial")),
    )
    op.create_table(
        "transfers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("ledger", sa.String(length=8), nullable=False),
        sa.Column("debit_account_id", sa.BigInteger(), nullable=False),
        sa.Column("credit_account_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("pending_id", sa.BigInteger(), nullable=True),
        sa.Column("rider_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("memo", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transfers_amount_positive")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name=op.f("ck_transfers_two_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["accounts.id"],
            name=op.f("fk_transfers_credit_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"],
            ["accounts.id"],
            name=op.f("fk_transfers_debit_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["pending_id"], ["transfers.id"], name=op.f("fk_transfers_pending_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("key", name=op.f("uq_transfers_key")),
        sa.UniqueConstraint("pending_id", name=op.f("uq_transfers_pending_id")),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index("ix_transfers_rider", ["rider_id", "id"], unique=False)

    op.create_table(
        "id_tokens",
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("rider_id", sa.String(length=40), nullable=True),
        sa.Column("operator", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["rider_id"], ["riders.id"], name=op.f("fk_id_tokens_rider_id_riders")),
        sa.PrimaryKeyConstraint("type", "value", name=op.f("pk_id_tokens")),
    )
    op.create_table(
        "packs",
        sa.Column("serial", sa.String(length=50), nullable=False),
        sa.Column("model_code", sa.String(length=40), nullable=False),
        sa.Column("soh_bp", sa.Integer(), nullable=False),
        sa.Column("soc_bp", sa.Integer(), nullable=False),
        sa.Column("cycle_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("station_id", sa.String(length=40), nullable=True),
        sa.Column("slot_no", sa.Integer(), nullable=True),
        sa.Column("rider_id", sa.String(length=40), nullable=True),
        sa.Column("reserved_swap_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(status = 'in_slot') = (station_id IS NOT NULL AND slot_no IS NOT NULL)",
            name=op.f("ck_packs_slot_place"),
        ),
        sa.CheckConstraint(
            "(status = 'with_rider') = (rider_id IS NOT NULL)", name=op.f("ck_packs_rider_place")
        ),
        sa.CheckConstraint(
            "soc_bp BETWEEN 0 AND 10000 AND soh_bp BETWEEN 0 AND 10000", name=op.f("ck_packs_pct")
        ),
        sa.ForeignKeyConstraint(
            ["model_code"], ["pack_models.code"], name=op.f("fk_packs_model_code_pack_models")
        ),
        sa.ForeignKeyConstraint(["rider_id"], ["riders.id"], name=op.f("fk_packs_rider_id_riders")),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_packs_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_packs")),
    )
    with op.batch_alter_table("packs", schema=None) as batch_op:
        batch_op.create_index("ix_packs_rider", ["rider_id"], unique=False)
        batch_op.create_index("ix_packs_station", ["station_id", "status"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("rider_id", sa.String(length=40), nullable=False),
        sa.Column("plan_id", sa.String(length=40), nullable=False),
        sa.Column("cycle_no", sa.Integer(), nullable=False),
        sa.Column("cycle_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cycle_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("carried_in_units", sa.BigInteger(), nullable=False),
        sa.Column("consumed_units", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_subscriptions_plan_id_plans")),
        sa.ForeignKeyConstraint(
            ["rider_id"], ["riders.id"], name=op.f("fk_subscriptions_rider_id_riders")
        ),
        sa.PrimaryKeyConstraint("rider_id", name=op.f("pk_subscriptions")),
    )
    op.create_table(
        "swaps",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("station_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("rider_id", sa.String(length=40), nullable=True),
        sa.Column("token_type", sa.String(length=20), nullable=False),
        sa.Column("token_value", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rider_id"], ["riders.id"], name=op.f("fk_swaps_rider_id_riders")),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_swaps_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_swaps")),
        sa.UniqueConstraint("station_id", "request_id", name=op.f("uq_swaps_station_id_request_id")),
    )
    with op.batch_alter_table("swaps", schema=None) as batch_op:
        batch_op.create_index("ix_swaps_open", ["station_id", "state"], unique=False)
        batch_op.create_index("ix_swaps_rider", ["rider_id", "id"], unique=False)

    op.create_table(
        "possessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rider_id", sa.String(length=40), nullable=False),
        sa.Column("pack_serial", sa.String(length=50), nullable=False),
        sa.Column("plan_id", sa.String(length=40), nullable=False),
        sa.Column("swap_out_id", sa.BigInteger(), nullable=True),
        sa.Column("station_out", sa.String(length=40), nullable=False),
        sa.Column("slot_out", sa.Integer(), nullable=False),
        sa.Column("at_out", sa.DateTime(timezone=True), nullable=False),
        sa.Column("soc_out_bp", sa.Integer(), nullable=False),
        sa.Column("soh_out_bp", sa.Integer(), nullable=False),
        sa.Column("hold_units", sa.BigInteger(), nullable=False),
        sa.Column("hold_transfer_id", sa.BigInteger(), nullable=True),
        sa.Column("swap_in_id", sa.BigInteger(), nullable=True),
        sa.Column("station_in", sa.String(length=40), nullable=True),
        sa.Column("slot_in", sa.Integer(), nullable=True),
        sa.Column("at_in", sa.DateTime(timezone=True), nullable=True),
        sa.Column("soc_in_bp", sa.Integer(), nullable=True),
        sa.Column("soh_in_bp", sa.Integer(), nullable=True),
        sa.Column("usage_units", sa.BigInteger(), nullable=True),
        sa.Column("anomaly", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["pack_serial"], ["packs.serial"], name=op.f("fk_possessions_pack_serial_packs")
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_possessions_plan_id_plans")),
        sa.ForeignKeyConstraint(
            ["rider_id"], ["riders.id"], name=op.f("fk_possessions_rider_id_riders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_possessions")),
    )
    with op.batch_alter_table("possessions", schema=None) as batch_op:
        batch_op.create_index("ix_possessions_rider", ["rider_id", "id"], unique=False)
        batch_op.create_index(
            "ux_possessions_open_pack",
            ["pack_serial"],
            unique=True,
            sqlite_where=sa.text("at_in IS NULL"),
            postgresql_where=sa.text("at_in IS NULL"),
        )

    op.create_table(
        "swap_offers",
        sa.Column("swap_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pack_serial", sa.String(length=50), nullable=False),
        sa.Column("slot_no", sa.Integer(), nullable=False),
        sa.Column("hold_units", sa.BigInteger(), nullable=False),
        sa.Column("hold_transfer_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["pack_serial"], ["packs.serial"], name=op.f("fk_swap_offers_pack_serial_packs")
        ),
        sa.ForeignKeyConstraint(["swap_id"], ["swaps.id"], name=op.f("fk_swap_offers_swap_id_swaps")),
        sa.PrimaryKeyConstraint("swap_id", "pack_serial", name=op.f("pk_swap_offers")),
    )


def downgrade() -> None:
    op.drop_table("swap_offers")
    with op.batch_alter_table("possessions", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_possessions_open_pack",
            sqlite_where=sa.text("at_in IS NULL"),
            postgresql_where=sa.text("at_in IS NULL"),
        )
        batch_op.drop_index("ix_possessions_rider")

    op.drop_table("possessions")
    with op.batch_alter_table("swaps", schema=None) as batch_op:
        batch_op.drop_index("ix_swaps_rider")
        batch_op.drop_index("ix_swaps_open")

    op.drop_table("swaps")
    op.drop_table("subscriptions")
    with op.batch_alter_table("packs", schema=None) as batch_op:
        batch_op.drop_index("ix_packs_station")
        batch_op.drop_index("ix_packs_rider")

    op.drop_table("packs")
    op.drop_table("id_tokens")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_transfers_rider")

    op.drop_table("transfers")
    op.drop_table("slots")
    op.drop_table("riders")
    op.drop_table("stations")
    op.drop_table("station_events")
    op.drop_table("plans")
    op.drop_table("pack_models")
    op.drop_table("alerts")
    op.drop_table("accounts")
