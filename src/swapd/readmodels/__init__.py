"""Read models: the queries behind every screen and export, by aggregate, one serializer per view.

Nothing here writes: every query runs in one read transaction and creates no rows, not even a
rider's empty ledger accounts. Read models use the store and the domain, never the use cases.
"""
