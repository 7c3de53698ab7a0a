"""The tables. Alembic migrations under ``migrations/`` create exactly these; a test compares them."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from swapd.domain.quantities import MAX_ACCOUNT_COLUMN_AMOUNT, MAX_TRANSFER_AMOUNT
from swapd.store.column_types import UTCDateTime, bounded

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A partial index names its predicate here, as ``info[PARTIAL]``, not as ``sqlite_where`` and
# ``postgresql_where``: SQLAlchemy validates a dialect's keywords by importing that dialect, and the
# PostgreSQL one would cost every ``swapd`` command on SQLite some 40 ms. Both databases get the
# predicate from the migrations, which tests/integration/test_storage.py checks against this.
PARTIAL = "where"

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _now() -> datetime:
    return datetime.now(UTC)


_BALANCE_COLUMNS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


pack_models = sa.Table(
    "pack_models",
    metadata,
    sa.Column("code", sa.String(40), primary_key=True),
    sa.Column("nominal_wh", sa.Integer, nullable=False),
    sa.CheckConstraint("nominal_wh > 0", name="nominal_positive"),
)

stations = sa.Table(
    "stations",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("slot_count", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("charged_soc_bp", sa.Integer, nullable=False),
    sa.Column("min_soh_bp", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
    # OCPP security profiles 1 and 2: the station's Basic-auth password, scrypt-hashed.
    sa.Column("password_hash", sa.String(200), nullable=True),
    sa.Column("vendor", sa.String(50), nullable=True),
    sa.Column("model", sa.String(50), nullable=True),
    sa.Column("firmware", sa.String(50), nullable=True),
    sa.Column("booted_at", UTCDateTime, nullable=True),
    sa.Column("last_seen_at", UTCDateTime, nullable=True),
    # Where riders find the station (the app's "nearby"): a name and WGS84 micro-degrees, so that
    # coordinates are exact integers like every other quantity here.
    sa.Column("name", sa.String(100), nullable=True),
    sa.Column("lat_microdeg", sa.Integer, nullable=True),
    sa.Column("lon_microdeg", sa.Integer, nullable=True),
    # Presence, for every process to read: set when a server process accepts the station's socket,
    # cleared when that same connection (connection_id) ends. A later connection, in this process
    # or another, overwrites both, so an old socket closing late cannot clear a newer one.
    sa.Column("connected_at", UTCDateTime, nullable=True),
    sa.Column("connection_id", sa.String(32), nullable=True),
    # The last FirmwareStatusNotification (UpdateFirmware's progress), for the console's list.
    sa.Column("firmware_status", sa.String(40), nullable=True),
    sa.Column("firmware_status_at", UTCDateTime, nullable=True),
    # Right-sized offers (domain.right_sizing): the lowest SoC offered to a rider short of a full
    # pack's hold; NULL: off. And the fleet policy's weights (domain.pack_choice.PackPolicy).
    sa.Column("right_size_floor_bp", sa.Integer, nullable=True),
    sa.Column("pick_soc_band_bp", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("pick_rest_weight", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("pick_cycles_weight", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("pick_soh_weight", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("pick_retirement_margin_bp", sa.Integer, nullable=False, server_default=sa.text("500")),
    sa.CheckConstraint("slot_count >= 2", name="two_slots"),
)

slots = sa.Table(
    "slots",
    metadata,
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), primary_key=True),
    sa.Column("slot_no", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("pack_serial", sa.String(50), nullable=True, unique=True),
    # The operator's ChangeAvailability: false takes the slot out of service whatever the station
    # reports (a pack in it is never offered) until the operator makes it operative again.
    sa.Column("operative", sa.Boolean, nullable=False, server_default=sa.true()),
)

plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("unit", sa.String(8), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("price_minor", sa.BigInteger, nullable=False),
    sa.Column("price_units", sa.BigInteger, nullable=False),
    sa.Column("granularity_s", sa.Integer, nullable=False),
    sa.Column("time_hold_s", sa.Integer, nullable=False),
    sa.Column("fee_minor", sa.BigInteger, nullable=False),
    sa.Column("included_units", sa.BigInteger, nullable=False),
    sa.Column("carry_over", sa.Boolean, nullable=False),
    sa.Column("prorate_first_cycle", sa.Boolean, nullable=False),
    # Listed plans are the public plan list and what riders may sign up for; set once, at creation.
    sa.Column("listed", sa.Boolean, nullable=False, server_default=sa.true()),
    # Swaps a station may serve the plan's riders from its local list while offline.
    sa.Column("offline_swaps_max", sa.Integer, nullable=False, server_default=sa.text("1")),
)

riders = sa.Table(
    "riders",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("vehicle_packs", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
    # always / ask / never: whether the rider takes a right-sized pack (domain.right_sizing).
    sa.Column("right_size_consent", sa.String(8), nullable=False, server_default="ask"),
)

id_tokens = sa.Table(
    "id_tokens",
    metadata,
    sa.Column("type", sa.String(20), primary_key=True),
    sa.Column("value", sa.String(255), primary_key=True),
    sa.Column("rider_id", sa.String(40), sa.ForeignKey("riders.id"), nullable=True),
    sa.Column("operator", sa.Boolean, nullable=False, default=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("rider_id", sa.String(40), sa.ForeignKey("riders.id"), primary_key=True),
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), nullable=False),
    sa.Column("cycle_no", sa.Integer, nullable=False),
    sa.Column("cycle_start", UTCDateTime, nullable=False),
    sa.Column("cycle_end", UTCDateTime, nullable=False),
    # Units carried in from the previous cycle; they are used first and expire at this cycle's end.
    sa.Column("carried_in_units", sa.BigInteger, nullable=False),
    sa.Column("consumed_units", sa.BigInteger, nullable=False),
)

packs = sa.Table(
    "packs",
    metadata,
    sa.Column("serial", sa.String(50), primary_key=True),
    sa.Column("model_code", sa.String(40), sa.ForeignKey("pack_models.code"), nullable=False),
    sa.Column("soh_bp", sa.Integer, nullable=False),
    sa.Column("soc_bp", sa.Integer, nullable=False),
    sa.Column("cycle_count", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), nullable=True),
    sa.Column("slot_no", sa.Integer, nullable=True),
    sa.Column("rider_id", sa.String(40), sa.ForeignKey("riders.id"), nullable=True),
    sa.Column("reserved_swap_id", sa.BigInteger, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=_now),
    # When the station measured soc_bp (its MeterValues timestamp): a reading a station replays
    # from its offline queue must not overwrite a newer one.
    sa.Column("soc_measured_at", UTCDateTime, nullable=True),
    # When the reading that put the pack where it is was taken (the move's time; a replayed
    # offline event's own time): an older replayed reading must not move the pack back.
    sa.Column("placed_at", UTCDateTime, nullable=True),
    # A pack is in one place: a slot exactly when in_slot, a rider exactly when with_rider.
    sa.CheckConstraint(
        "(status = 'in_slot') = (station_id IS NOT NULL AND slot_no IS NOT NULL)", name="slot_place"
    ),
    sa.CheckConstraint("(status = 'with_rider') = (rider_id IS NOT NULL)", name="rider_place"),
    sa.CheckConstraint("soc_bp BETWEEN 0 AND 10000 AND soh_bp BETWEEN 0 AND 10000", name="pct"),
)
sa.Index("ix_packs_station", packs.c.station_id, packs.c.status)
sa.Index("ix_packs_rider", packs.c.rider_id)

swaps = sa.Table(
    "swaps",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("rider_id", sa.String(40), sa.ForeignKey("riders.id"), nullable=True),
    sa.Column("token_type", sa.String(20), nullable=False),
    sa.Column("token_value", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("station_id", "request_id"),
)
sa.Index("ix_swaps_rider", swaps.c.rider_id, swaps.c.id)
sa.Index("ix_swaps_open", swaps.c.station_id, swaps.c.state)
# The swaps still offered, by rider (Authorize reads them on every decision); a handful at most,
# where a rider's whole history would be read through ix_swaps_rider.
sa.Index("ix_swaps_offered", swaps.c.rider_id, info={PARTIAL: "state = 'offered'"})
sa.Index("ix_swaps_created", swaps.c.created_at)

swap_offers = sa.Table(
    "swap_offers",
    metadata,
    sa.Column("swap_id", Id, sa.ForeignKey("swaps.id"), primary_key=True),
    sa.Column("pack_serial", sa.String(50), sa.ForeignKey("packs.serial"), primary_key=True),
    sa.Column("slot_no", sa.Integer, nullable=False),
    sa.Column("hold_units", sa.BigInteger, nullable=False),
    sa.Column("hold_transfer_id", sa.BigInteger, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),  # offered / taken / released
)

# Why an offer's packs were chosen (domain.pack_choice), one row per swap an Authorize offered;
# and for a right-sized offer, the rider's consent: asked (the offer waits for the rider's yes),
# confirmed (the rider said yes), standing (the rider's setting is "always").
swap_choices = sa.Table(
    "swap_choices",
    metadata,
    sa.Column("swap_id", Id, sa.ForeignKey("swaps.id"), primary_key=True),
    sa.Column("station_id", sa.String(40), nullable=False),
    sa.Column("rule", sa.String(24), nullable=False),
    sa.Column("detail", sa.String(500), nullable=False),
    sa.Column("right_sized", sa.Boolean, nullable=False),
    sa.Column("consent", sa.String(12), nullable=True),
    sa.Column("required_units", sa.BigInteger, nullable=False),
    sa.Column("full_required_units", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("confirmed_at", UTCDateTime, nullable=True),
)
sa.Index("ix_swap_choices_station", swap_choices.c.station_id, swap_choices.c.created_at)

possessions = sa.Table(
    "possessions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("rider_id", sa.String(40), sa.ForeignKey("riders.id"), nullable=False),
    sa.Column("pack_serial", sa.String(50), sa.ForeignKey("packs.serial"), nullable=False),
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), nullable=False),
    sa.Column("swap_out_id", sa.BigInteger, nullable=True),
    sa.Column("station_out", sa.String(40), nullable=False),
    sa.Column("slot_out", sa.Integer, nullable=False),
    sa.Column("at_out", UTCDateTime, nullable=False),
    sa.Column("soc_out_bp", sa.Integer, nullable=False),
    sa.Column("soh_out_bp", sa.Integer, nullable=False),
    sa.Column("hold_units", sa.BigInteger, nullable=False),
    sa.Column("hold_transfer_id", sa.BigInteger, nullable=True),
    sa.Column("swap_in_id", sa.BigInteger, nullable=True),
    sa.Column("station_in", sa.String(40), nullable=True),
    sa.Column("slot_in", sa.Integer, nullable=True),
    sa.Column("at_in", UTCDateTime, nullable=True),
    sa.Column("soc_in_bp", sa.Integer, nullable=True),
    sa.Column("soh_in_bp", sa.Integer, nullable=True),
    sa.Column("usage_units", sa.BigInteger, nullable=True),
    sa.Column("anomaly", sa.String(200), nullable=True),
)
# R2: a pack has at most one open possession; the database enforces it for concurrent writers.
sa.Index(
    "ux_possessions_open_pack", possessions.c.pack_serial, unique=True, info={PARTIAL: "at_in IS NULL"}
)
sa.Index("ix_possessions_rider", possessions.c.rider_id, possessions.c.id)
# A month's statements read the possessions opened or closed in that month. The closing time's
# index leaves the open possessions out, so that a pack's open possession is only ever found
# through ux_possessions_open_pack (with both, PostgreSQL's planner could scan every open one).
sa.Index("ix_possessions_at_out", possessions.c.at_out)
sa.Index("ix_possessions_at_in", possessions.c.at_in, info={PARTIAL: "at_in IS NOT NULL"})

# The station events applied, with their result (what a repeat is answered with). On PostgreSQL
# a table partitioned by month of received_at (docs/PARTITIONING.md), whose primary key must
# hold received_at; an event's uniqueness is kept by station_event_keys.
station_events = sa.Table(
    "station_events",
    metadata,
    sa.Column("station_id", sa.String(40), primary_key=True),
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("event_type", sa.String(24), primary_key=True),
    sa.Column("received_at", UTCDateTime, primary_key=True),
    sa.Column("result", sa.JSON, nullable=False),
)

# Every station event ever applied, archived or not: its key is unique here, in one table, so a
# repeat is refused whichever month (partition) the first one went to, and after that month
# was archived. received_at finds the event's row (and partition) in station_events.
station_event_keys = sa.Table(
    "station_event_keys",
    metadata,
    sa.Column("station_id", sa.String(40), primary_key=True),
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("event_type", sa.String(24), primary_key=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("station_id", sa.String(40), nullable=True),
    sa.Column("pack_serial", sa.String(50), nullable=True),
    sa.Column("rider_id", sa.String(40), nullable=True),
    sa.Column("detail", sa.String(500), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("ledger", sa.String(8), nullable=False),
    sa.Column("code", sa.String(24), nullable=False),
    sa.Column("owner", sa.String(40), nullable=False),  # rider id, "" for the operator
    sa.Column("flags", sa.Integer, nullable=False),
    sa.Column("debits_pending", sa.BigInteger, nullable=False, default=0),
    sa.Column("debits_posted", sa.BigInteger, nullable=False, default=0),
    sa.Column("credits_pending", sa.BigInteger, nullable=False, default=0),
    sa.Column("credits_posted", sa.BigInteger, nullable=False, default=0),
    sa.UniqueConstraint("ledger", "code", "owner"),
    *(bounded(column, 0, MAX_ACCOUNT_COLUMN_AMOUNT) for column in _BALANCE_COLUMNS),
)

# Every transfer ever written, archived or not: the ledger's global index. The id is allocated
# here, and each column that must be unique across all time is unique here: the idempotency key,
# and the pending transfer a post or void resolves (at most once). created_at finds the
# transfer's row (and on PostgreSQL its monthly partition) in transfers.
transfer_keys = sa.Table(
    "transfer_keys",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("resolves_id", sa.BigInteger, nullable=True, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# The transfers themselves, immutable. On PostgreSQL a table partitioned by month of created_at
# whose primary key is (id, created_at) (docs/PARTITIONING.md): its id comes from transfer_keys,
# which also keeps key and pending_id unique (a partitioned table cannot).
transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("ledger", sa.String(8), nullable=False),
    sa.Column("debit_account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("credit_account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("code", sa.String(24), nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
    # A pending transfer is posted or voided at most once: transfer_keys.resolves_id is unique.
    sa.Column("pending_id", sa.BigInteger, nullable=True),
    sa.Column("rider_id", sa.String(40), nullable=True),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("memo", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    bounded("amount", 1, MAX_TRANSFER_AMOUNT),
    sa.CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
)
sa.Index("ix_transfers_rider", transfers.c.rider_id, transfers.c.id)
# Statements and exports read a month of transfers, not the whole history.
sa.Index("ix_transfers_created", transfers.c.created_at)

# What `swapd archive` took out of transfers, per account: the posted sums of the archived
# transfers (archived months hold no open hold, so nothing pending). A balance is its checkpoint
# plus the transfers still here; swapd ledger check recomputes it so.
ledger_checkpoints = sa.Table(
    "ledger_checkpoints",
    metadata,
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("debits_posted", sa.BigInteger, nullable=False),
    sa.Column("credits_posted", sa.BigInteger, nullable=False),
    sa.Column("transfers", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Each month of a history table that `swapd archive` wrote to a file and removed, with the
# file's row count and SHA-256: the record that makes a re-run skip it.
archived_months = sa.Table(
    "archived_months",
    metadata,
    sa.Column("table_name", sa.String(40), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),  # YYYY-MM
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("file", sa.String(300), nullable=False),
    sa.Column("archived_at", UTCDateTime, nullable=False),
)

# Commands for stations (RequestBatterySwap, ...). Whichever server process holds the station's
# socket picks them up: PostgreSQL wakes it with NOTIFY, SQLite by polling.
station_commands = sa.Table(
    "station_commands",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending, sent, answered, failed, expired
    sa.Column("response", sa.JSON, nullable=True),
    sa.Column("error", sa.String(300), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Who asked (a staff email, "api:<key id>", "swapd" for the server's own), and whether a
    # station not connected at the time queues the command until expires_at (else it is refused).
    sa.Column("requested_by", sa.String(120), nullable=True),
    sa.Column("queued", sa.Boolean, nullable=False, server_default=sa.false()),
    # The requestId of commands that a station reports on later (UpdateFirmware, GetLog,
    # GetBaseReport): its notifications are matched to the command by it, and the latest status
    # is kept here.
    sa.Column("request_id", sa.Integer, nullable=True),
    sa.Column("status", sa.String(40), nullable=True),
    sa.Column("status_at", UTCDateTime, nullable=True),
)
sa.Index("ix_station_commands_pending", station_commands.c.station_id, station_commands.c.state)
sa.Index("ix_station_commands_station", station_commands.c.station_id, station_commands.c.id)

# What stations report after a command: FirmwareStatusNotification, LogStatusNotification and
# each NotifyReport part, in arrival order (bounded by the station's message size).
station_notifications = sa.Table(
    "station_notifications",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("request_id", sa.Integer, nullable=True),
    sa.Column("status", sa.String(40), nullable=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
)
sa.Index(
    "ix_station_notifications_station", station_notifications.c.station_id, station_notifications.c.id
)

# A station's inventory: the variables of its last GetBaseReport (NotifyReport), one row per
# component / variable / attribute, replaced by each new report.
station_variables = sa.Table(
    "station_variables",
    metadata,
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), primary_key=True),
    # "Component[instance]@evse.connector/Variable[instance]#AttributeType": one key per value.
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("component", sa.String(50), nullable=False),
    sa.Column("variable", sa.String(50), nullable=False),
    sa.Column("evse_id", sa.Integer, nullable=True),
    sa.Column("attribute_type", sa.String(10), nullable=False),
    sa.Column("value", sa.String(2500), nullable=True),
    sa.Column("mutability", sa.String(10), nullable=True),
    sa.Column("report_request_id", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# OCPP security profile 3: every certificate the operator's CA signed for a station (by hand or
# through SignCertificate), by serial (lower-case hex, swapd.pki.serial_hex). A station whose
# certificate's serial is revoked here is refused at its next connection.
station_certificates = sa.Table(
    "station_certificates",
    metadata,
    sa.Column("serial", sa.String(40), primary_key=True),
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), nullable=False),
    sa.Column("not_after", UTCDateTime, nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("reason", sa.String(200), nullable=True),
)
sa.Index("ix_station_certificates_station", station_certificates.c.station_id)


# Local authorization lists (swapd.domain.local_lists): per station, the version it holds and a
# lease while an update is being sent (one sender at a time); the entries as the station holds
# them after the last message it accepted, which the next update is the difference from.
local_lists = sa.Table(
    "local_lists",
    metadata,
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),  # the last message the station accepted
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

local_list_entries = sa.Table(
    "local_list_entries",
    metadata,
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), primary_key=True),
    sa.Column("token_type", sa.String(20), primary_key=True),
    sa.Column("id_token", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("group_id", sa.String(40), nullable=True),
    sa.Column("offline_swaps_max", sa.Integer, nullable=True),
)

# That something a list is made of changed (a pack moved, a rider was blocked, a card added):
# each server process compares the newest id with the one it saw, and marks the stations with
# a list dirty. Append-only, so concurrent swaps never wait on each other; trimmed as it is read.
local_list_changes = sa.Table(
    "local_list_changes",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
)

# BatterySwap events a station replayed from its offline queue, with the time they happened
# there: their order, each rider's offline hand-overs per station connection (the offline
# limit), and what was served offline.
offline_events = sa.Table(
    "offline_events",
    metadata,
    sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), primary_key=True),
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("event_type", sa.String(24), primary_key=True),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("rider_id", sa.String(40), nullable=True),
    sa.Column("connection_id", sa.String(32), nullable=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
)
sa.Index("ix_offline_events_rider", offline_events.c.station_id, offline_events.c.rider_id)

# -- HTTP API: identity, idempotency, payments, audit ---------------------------------------------

# People who sign in: operator staff (admin, operator, support) and riders (role "rider", linked to
# exactly one rider). Passwords are scrypt hashes (swapd.security).
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("rider_id", sa.String(40), sa.ForeignKey("riders.id"), nullable=True, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("(role = 'rider') = (rider_id IS NOT NULL)", name="rider_link"),
)

# Bearer credentials: session tokens (expire) and API keys (long-lived, revocable). Only a SHA-256
# of the secret is stored: the secrets are 256-bit random, so a slow KDF would add nothing.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # session / api_key
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)
sa.Index("ix_api_tokens_user", api_tokens.c.user_id)

# Fixed-window counters shared by every server process (login attempts per account and per address).
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("window_start", UTCDateTime, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

# Idempotency-Key: the first answer to a (caller, key) is stored and replayed for every repeat with
# the same request; a different request under the same key is refused.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("owner", sa.String(80), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# A payment a rider started with a provider. The allowance is credited only when the provider
# confirms it (webhook), exactly once: credited_at is set in the same transaction as the credit.
payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("rider_id", sa.String(40), sa.ForeignKey("riders.id"), nullable=False),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("provider_ref", sa.String(255), nullable=True),
    sa.Column("purpose", sa.String(16), nullable=False),  # top_up / subscription
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending / succeeded / failed / canceled
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("credited_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("provider", "provider_ref"),
    # A payment becomes one transfer of the ledger (the domain keeps it to MAX_PAYMENT_MINOR).
    bounded("amount_minor", 1, MAX_TRANSFER_AMOUNT),
)
sa.Index("ix_payments_rider", payments.c.rider_id, payments.c.created_at)

# Every provider event seen, so that a replayed webhook is recognised and changes nothing.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("provider", sa.String(16), primary_key=True),
    sa.Column("event_id", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payment_id", sa.String(40), nullable=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
)

# What staff did to money and access, and why: refunds, adjustments, blocks, station changes.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("target", sa.String(120), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)
sa.Index("ix_audit_log_at", audit_log.c.at)
