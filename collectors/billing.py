"""The contract every billing collector keeps, and the one loop that writes what they collect.

A collector (``collectors/<provider>/<source>.py``) turns one billing source — a CUR bucket, a
BigQuery export table, a Cost Management scope, Cost Explorer for an account — into
:class:`Chunk` objects, one per billing period it (re)read: complete FOCUS rows for that period from
that source. :func:`run` writes each chunk in its own transaction, so the partitions a chunk touches
are replaced whole, and saves the source's cursor after each one: a run that fails midway keeps the
periods it finished, writes nothing partial and the next run resumes where it stopped.

Incremental runs: clouds restate the current and the previous month, so :func:`periods` always
returns them again, plus any period after the cursor.

Every billing collector module (the ``billing_kinds`` of an entry in :mod:`finops.providers`) has the
same three functions, so :mod:`collectors.sources` needs no per-kind code:

- ``make_client(source: BillingSource) -> client`` — the SDK client, credentials from the SDK's own
  chain, pointed at ``source.endpoint_url`` when set;
- ``source_id(source: BillingSource, settings: CollectSettings | None = None) -> str`` — the source's
  chunk id and cursor name (``source.name`` when given, else e.g. ``aws-cur:s3://bucket/prefix``);
- ``collect(client, source, cursor, since, *, settings=None) -> Iterator[Chunk]`` — the periods
  :func:`periods` selects from ``cursor`` (``store.cursor(source_id(...))``) and ``since``, one
  :class:`Chunk` each, oldest first; a source that cannot be read raises :class:`CollectError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl

from finops import focus
from finops import periods as months
from finops.config import BillingSource
from finops.store import Manifest, Source, StagedPart, Store, Transaction


class CollectError(RuntimeError):
    """A source that could not be read: names the source, the file or the API call."""


@dataclass(frozen=True)
class CollectSettings:
    """What some billing collectors need beyond their source, from the rest of the configuration."""

    tag_keys: tuple[str, ...] = ()
    """Tag keys that name a team, most common first (APIs that group by tag: Cost Explorer, Cost
    Management)."""
    accounts: tuple[str, ...] = ()
    """Sub-account ids of the provider (AWS linked accounts …); empty: discovered where the API can."""
    account_names: Mapping[str, str] = field(default_factory=dict)
    """Sub-account id → display name, where the source does not say it."""
    billing_accounts: tuple[str, ...] = ()
    """The provider's billing accounts (AWS payers …), for sources that read per billing account."""
    billing_account_names: Mapping[str, str] = field(default_factory=dict)
    """Billing account id → display name, where the source does not say it (GCP's export: see
    :func:`collectors.gcp.accounts.discover`)."""
    today: date | None = None
    """The day the run counts as today (default: the UTC date); tests pin it."""


def require_location(source: BillingSource) -> str:
    """``source.location``, or a :class:`CollectError` naming the source when it is not set."""
    if not source.location:
        raise CollectError(f"{source.label}: `location` is required for kind {source.kind!r}")
    return source.location


@dataclass
class Chunk:
    """One billing period of one source, complete: its rows replace the store's partitions for it."""

    source: str
    """Stable id of the source, also its cursor's name, e.g. ``aws-cur:s3://bucket/prefix/report``."""
    period: date
    """First day of the billing month."""
    frame: pl.LazyFrame
    """FOCUS 1.2 rows (already through :func:`finops.focus.conform`)."""
    sources: list[Source] = field(default_factory=list)
    """Provenance: the files read (with checksums) or the API calls made."""
    source_totals: dict[str, Decimal] = field(default_factory=dict)
    """What the source itself says the period costs (e.g. ``{"BilledCost": …}``), when it says so;
    checked against the written rows to the cent."""


@dataclass
class ChunkResult:
    source: str
    period: date
    rows: int
    sums: dict[str, Decimal]
    manifests: list[Manifest]


def periods(cursor: dict | None, since: date | None, today: date | None = None,
            default_months: int = 3) -> list[date]:
    """Billing months to (re)collect, oldest first.

    ``since`` wins when given; otherwise the month after the cursor's last finished period
    (``cursor["period"]``, ``YYYY-MM-DD``) — and always the previous and current month, which the
    clouds restate. With neither, the last ``default_months`` months.
    """
    today = today or datetime.now(UTC).date()
    current = months.month_start(today)
    if since is not None:
        first = months.month_start(since)
    elif cursor and cursor.get("period"):
        first = months.add_months(date.fromisoformat(cursor["period"]), 1)
    else:
        first = months.add_months(current, -(default_months - 1))
    first = min(first, months.add_months(current, -1))
    out, d = [], first
    while d <= current:
        out.append(d)
        d = months.add_months(d, 1)
    return out


def stage(tx: Transaction, chunk: Chunk) -> StagedPart:
    """Stage one chunk in ``tx`` and check it: FOCUS-valid rows whose totals equal the source's to
    the cent, else :class:`CollectError` (the transaction, left uncommitted, writes nothing)."""
    part = tx.stage(chunk.frame, chunk.sources)
    errors = [p for p in focus.validate(part.scan()) if p.severity == "error"]
    if errors:
        raise CollectError(f"{chunk.source} {chunk.period:%Y-%m}: not valid FOCUS: " + "; ".join(map(str, errors)))
    sums = {k: Decimal(v) for k, v in part.sums.items()}
    for col, expected in chunk.source_totals.items():
        if abs(sums.get(col, Decimal(0)) - Decimal(expected)) >= Decimal("0.01"):
            raise CollectError(f"{chunk.source} {chunk.period:%Y-%m}: {col} of the rows written "
                               f"({sums.get(col)}) differs from the source's total ({expected})")
    return part


def run(store: Store, chunks: Iterable[Chunk],
        progress: Callable[[Chunk, str], None] | None = None) -> Iterator[ChunkResult]:
    """Write each chunk in its own transaction (:func:`stage`), save its source's cursor; yield results.

    A chunk that fails its checks raises :class:`CollectError` and writes nothing; earlier chunks
    stay written, and the cursor names the last one, so the next run resumes after it.
    """
    note = progress or (lambda _c, _s: None)
    for chunk in chunks:
        note(chunk, "writing")
        with store.transaction("billing") as tx:
            part = stage(tx, chunk)
            manifests = tx.commit() if part.rows else []
        store.save_cursor(chunk.source, {"period": chunk.period.isoformat(),
                                         "at": datetime.now(UTC).isoformat(timespec="seconds")})
        note(chunk, "written")
        yield ChunkResult(chunk.source, chunk.period, part.rows, {k: Decimal(v) for k, v in part.sums.items()},
                          manifests)
