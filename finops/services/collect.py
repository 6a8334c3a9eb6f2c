"""Collection from the clouds' APIs: the bill from the configured billing sources, live GPU/TPU prices,
and the GCP billing accounts the credentials can see. A provider or source that fails is named in the
result and the others still run; what each finished step wrote stays written."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from finops import offers, providers
from finops.config import Config
from finops.services.progress import QUIET, Progress


def first_line(e: BaseException) -> str:
    """An SDK exception as one line: its class and the first line of its message."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


class ChoiceError(ValueError):
    """An option naming something that does not exist (a provider, a kind)."""


def _check_providers(chosen: Sequence[str]) -> None:
    unknown = [p for p in chosen if p not in providers.clouds()]
    if unknown:
        raise ChoiceError(f"--provider {', '.join(unknown)}: expected {providers.expected()}")


@dataclass(frozen=True)
class BillingMonth:
    """One billing month of one source, written."""

    provider: str
    source: str
    month: str
    rows: int
    billed_cost: Decimal
    effective_cost: Decimal


@dataclass(frozen=True)
class BillingCollection:
    collected: list[BillingMonth] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """One sentence per failed source (the months before the failure are kept)."""


def collect_billing(cfg: Config, only: Sequence[str] = (), since: date | None = None,
                    progress: Progress = QUIET) -> BillingCollection:
    """The bill from every ``[[providers.<cloud>.billing]]`` source (of ``only`` these providers), month by
    month, each month in its own transaction; the source's cursor saved after each."""
    from collectors import billing, sources
    from collectors.files import IngestError

    store = cfg.open_store()
    chosen = list(only) or [p for p, c in cfg.providers.items() if c.enabled and c.billing]
    _check_providers(chosen)
    todo = [(p, s) for p in chosen if p in cfg.providers for s in cfg.providers[p].billing]
    if not todo:
        kinds = "|".join(providers.clouds())
        raise ChoiceError(f"no billing sources configured: add [[providers.<{kinds}>.billing]] to finops.toml "
                          "(see `finops init`), or ingest exported files with `finops ingest`")
    result = BillingCollection()
    step = progress.start("billing", total=len(todo))
    for p, src in todo:
        def note(c: billing.Chunk, state: str, p: str = p) -> None:
            step.update(f"{p} {c.source} {c.period:%Y-%m}: {state}")
        try:
            for r in billing.run(store, sources.chunks(p, src, cfg, store, since), note):
                result.collected.append(BillingMonth(p, r.source, f"{r.period:%Y-%m}", r.rows,
                                                     Decimal(r.sums.get("BilledCost", 0)),
                                                     Decimal(r.sums.get("EffectiveCost", 0))))
        except (billing.CollectError, IngestError) as e:
            result.failed.append(str(e))
        step.advance()
    step.finish()
    return result


@dataclass(frozen=True)
class PriceRun:
    """One provider's live price collection, recorded."""

    provider: str
    observations: int
    spot: int
    on_demand: int
    flagged: int
    offers_known: int
    seconds: float


@dataclass(frozen=True)
class PriceCollection:
    collected: list[PriceRun] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """One sentence per provider that recorded nothing (the history is unchanged for it)."""


def collect_prices(cfg: Config, only: Sequence[str] = (), regions: Sequence[str] = (),
                   progress: Progress = QUIET) -> PriceCollection:
    """Current spot and on-demand GPU/TPU prices from each provider's price API into the price history:
    ``only`` these providers (default: the enabled ones in the configuration, else all), in ``regions``
    (default: each provider's configured regions, else a few GPU regions)."""
    from collectors import prices as price_collectors

    store = cfg.open_store()
    chosen = list(only) or [p for p, c in cfg.providers.items() if c.enabled] or list(providers.clouds())
    _check_providers(chosen)
    result = PriceCollection()
    step = progress.start("prices", total=len(chosen))
    for p in chosen:
        where = list(regions) or (cfg.providers[p].regions if p in cfg.providers else [])
        t0 = time.perf_counter()
        def note(msg: str, p: str = p) -> None:
            step.update(f"{p}: {msg}")
        try:
            df = price_collectors.collect(p, where, endpoint=cfg.prices.endpoints.get(p), progress=note)
            df = offers.with_interruption(df, cfg.prices.interruption)
            known = offers.record(store, df)
        except offers.OfferError as e:
            result.failed.append(f"{p}: {e}")
        except Exception as e:  # noqa: BLE001 — an SDK error (no credentials, transport) fails this provider, not the run
            result.failed.append(f"{p}: {first_line(e)}")
        else:
            result.collected.append(PriceRun(p, df.height, int((df["market"] == "spot").sum()),
                                             int((df["market"] == "on_demand").sum()),
                                             int(df["flag"].is_not_null().sum()), known,
                                             round(time.perf_counter() - t0, 2)))
        step.advance()
    step.finish()
    return result


@dataclass(frozen=True)
class GcpAccount:
    billing_account: str
    name: str
    open: bool
    currency: str | None
    projects: list[str]


def gcp_accounts(endpoint: str | None = None, include_closed: bool = False) -> list[GcpAccount]:
    """The GCP billing accounts the credentials can see and their projects (Cloud Billing API)."""
    from collectors.billing import CollectError
    from collectors.gcp import accounts

    try:
        client = accounts.make_client(endpoint)
    except Exception as e:  # google.auth's DefaultCredentialsError and kin: say what, not where in the SDK
        raise CollectError(f"GCP Cloud Billing API: {first_line(e)}") from e
    found = accounts.discover(client, include_closed=include_closed)
    return [GcpAccount(a.id, a.display_name, a.open, a.currency, [p.project_id for p in a.projects]) for a in found]
