"""Entry points for the store's multi-process tests (tests/test_store_delta.py).

They live in a module of their own so that a ``spawn``ed child can import them by name. Processes are
made with the ``spawn`` method, never ``fork``: delta-rs' Tokio runtime (threads, locks) does not
survive ``fork()`` in a process that has used it, and a forked child can hang or crash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl


def prices(provider: str, day: int, price: float, n: int = 3) -> pl.DataFrame:
    """``n`` price observations of one provider on 2026-11-``day``."""
    return pl.DataFrame({
        "provider": [provider] * n, "instance_type": [f"p{i}" for i in range(n)], "price": [price] * n,
        "observed_at": [datetime(2026, 11, day, 12, i, tzinfo=UTC) for i in range(n)],
    })


def append_prices(root: str, price: float, barrier: Any = None) -> int:
    """Append three observations to prices/aws/2026-11-01, waiting at ``barrier`` just before the
    commit (both writers then commit on the same version). Returns the version committed."""
    from finops.store import Store

    hold = (lambda: barrier.wait(timeout=60)) if barrier is not None else None
    with Store(root).transaction("prices", before_commit=hold) as tx:
        tx.stage(prices("aws", 1, price))
        tx.commit()
        assert tx.version is not None
        return tx.version


def ingest(root: str, csv: str, provider: str | None = None, copies: int = 1, barrier: Any = None) -> int:
    """Ingest a FOCUS CSV (only ``provider``'s rows when given, ``copies`` times over) into billing."""
    from finops import focus
    from finops.store import Store

    lf = focus.conform(pl.scan_csv(csv, infer_schema=False))
    if provider:
        lf = lf.filter(pl.col("ProviderName") == provider)
    if copies > 1:
        lf = pl.concat([lf] * copies)
    hold = (lambda: barrier.wait(timeout=60)) if barrier is not None else None
    return sum(m.rows for m in Store(root).write("billing", lf, before_commit=hold))


def rewrite_forever(root: str, csv: str, rounds: int) -> None:
    """Replace the billing partitions ``rounds`` times, alternating one and three copies of the file."""
    for i in range(rounds):
        ingest(root, csv, copies=1 if i % 2 else 3)


def run(target: str, *args: Any) -> Any:
    """Call ``target`` (a name in this module) with ``args`` — a child's entry point."""
    return globals()[target](*args)
