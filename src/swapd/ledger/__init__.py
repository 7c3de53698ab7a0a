"""A double-entry ledger in TigerBeetle's model: immutable transfers, two-phase holds, idempotency.

Pure: the accounts, transfers and their rules (``model``). Where they are stored, and the check
that recomputes every balance, is the store's (swapd.store.ledger_book, swapd.store.ledger_check).
"""
