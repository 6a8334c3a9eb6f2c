"""From a configured billing source to its collector: builds the SDK client (credentials from each
SDK's standard chain: AWS profiles/roles, Google ADC, DefaultAzureCredential) and returns the
collector's chunks, resuming from the source's cursor in the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from collectors.billing import Chunk, CollectError
from collectors.files import IngestError
from finops.config import BillingSource, Config
from finops.store import Store

KINDS = {"aws": ("cur", "cost-explorer"), "gcp": ("bigquery-export",), "azure": ("cost-management", "cost-details")}


def chunks(provider: str, src: BillingSource, cfg: Config, store: Store, since: date | None) -> Iterator[Chunk]:
    """The chunks of one configured source; any SDK error becomes a :class:`CollectError` naming it."""
    if src.kind not in KINDS.get(provider, ()):
        raise CollectError(f"{src.label}: a {provider} billing source cannot be of kind {src.kind!r} "
                           f"(expected {', '.join(KINDS.get(provider, ()))})")
    if src.kind not in ("cost-explorer",) and not src.location:
        raise CollectError(f"{src.label}: `location` is required for kind {src.kind!r}")
    try:
        yield from _chunks(provider, src, cfg, store, since)
    except (CollectError, IngestError):
        raise
    except Exception as e:  # an SDK's own error (credentials, transport): name the source it came from
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CollectError(f"{src.label}: {type(e).__name__}: {first}") from e


def team_tag_keys(cfg: Config) -> list[str]:
    """The tag keys that name a team (allocation rules), for APIs that group by tag."""
    return list(cfg.allocation.team_tags) or ["team"]


def _chunks(provider: str, src: BillingSource, cfg: Config, store: Store, since: date | None) -> Iterator[Chunk]:
    pcfg = cfg.providers[provider]  # type: ignore[index]
    if src.kind == "cur":
        from collectors.aws import cur_s3

        s3 = cur_s3.client(endpoint_url=src.endpoint_url)
        yield from cur_s3.chunks(s3, src.location, store.cursor(cur_s3.source_id(src.location)), since)
    elif src.kind == "cost-explorer":
        from collectors.aws import cost_explorer

        ce = cost_explorer.client(endpoint_url=src.endpoint_url)
        payers = pcfg.billing_accounts or ([src.location] if src.location else [])
        if not payers:
            raise CollectError(f"{src.label}: name the payer account in providers.aws.billing_accounts")
        accounts = [a.id for a in pcfg.accounts] or None
        names = {a.id: a.name for a in pcfg.accounts if a.name}
        for payer in payers:
            yield from cost_explorer.chunks(ce, payer, accounts, team_tag_keys(cfg),
                                            store.cursor(cost_explorer.source_id(payer)), since,
                                            account_names=names)
    elif src.kind == "bigquery-export":
        from collectors.gcp import bigquery

        client = bigquery.make_client(project=src.location.split(".")[0], endpoint=src.endpoint_url)
        yield from bigquery.chunks(client, src.location, store, since=since)
    elif src.kind == "cost-management":
        from collectors.azure import cost_query

        client = cost_query.make_client(base_url=src.endpoint_url or cost_query.MANAGEMENT)
        yield from cost_query.collect(client, src.location, tag_keys=team_tag_keys(cfg), since=since,
                                      cursor=store.cursor(f"{cost_query.SOURCE_PREFIX}:{src.location}"))
    else:
        from collectors.azure import cost_details

        yield from cost_details.read_exports(src.location, since=since,
                                             cursor=store.cursor(f"{cost_details.SOURCE_PREFIX}:{src.location}"))

