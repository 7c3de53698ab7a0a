"""A double-entry ledger in TigerBeetle's model: immutable transfers, two-phase holds, idempotency."""
