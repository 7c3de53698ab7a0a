"""Alembic environment: runs on the connection swapd hands over (see store.engine.upgrade)."""

from __future__ import annotations

from alembic import context

from swapd.store.engine import make_engine
from swapd.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    # Plain `alembic` command line use: connect with the configured URL.
    with make_engine().begin() as own_connection:
        context.configure(connection=own_connection, target_metadata=metadata)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
