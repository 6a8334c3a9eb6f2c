"""Price collection across providers, through the provider registry: each cloud's entry names its price
collector module (``finops.providers``, ``prices``), which has the same two functions as every other:
``make_client(endpoint=None)`` (the SDK client, credentials from the SDK's own chain) and
``collect(client, regions, *, observed_at, progress) -> pl.DataFrame`` (an offer frame)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import polars as pl

from finops import providers

Note = Callable[[str], None]


def collect(provider: str, regions: Sequence[str] = (), *, endpoint: str | None = None,
            observed_at: datetime | None = None, progress: Note | None = None) -> pl.DataFrame:
    """Current on-demand and spot offers of ``provider`` in ``regions`` (default: the provider's
    ``default_regions``), from its live price API at ``endpoint`` (default: the provider's own)."""
    entry = providers.get(provider)
    module = providers.resolve(entry.prices)
    when = observed_at or datetime.now(UTC)
    client = module.make_client(endpoint)
    try:
        return module.collect(client, tuple(regions) or entry.default_regions, observed_at=when,
                              progress=progress or (lambda _m: None))
    finally:
        close = getattr(client, "close", None)  # httpx clients hold connections; SDK clients may too
        if callable(close):
            close()


def default_regions(provider: str) -> tuple[str, ...]:
    """The regions priced when none are configured."""
    return providers.get(provider).default_regions

