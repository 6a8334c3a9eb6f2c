"""Alembic environment for the ledger. finops runs it programmatically (:mod:`finops.ledger`): the
connection comes in ``config.attributes["connection"]``, already inside a transaction that holds the
migration lock, so the migrations join that transaction rather than opening their own.

A new revision is written by hand from ``script.py.mako`` (numbered: 0003 next); the schema test in
tests/test_ledger_migrations.py checks that head equals ``finops.ledger.metadata``.
"""

from __future__ import annotations

from alembic import context

from finops.ledger import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    # Offline (``--sql``) mode: print the SQL for a DBA to run, against the URL given in the config.
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
