"""From a configured billing source to its collector, through the provider registry: the source's kind
names a collector module (``finops.providers``, ``billing_kinds``), whose ``make_client`` builds the SDK
client (credentials from each SDK's standard chain: AWS profiles/roles, Google ADC,
DefaultAzureCredential) and whose ``collect`` yields the chunks, resuming from the source's cursor in
the store. Every collector module has the same three functions (see :mod:`collectors.billing`), so
nothing here depends on the kind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from collectors.billing import Chunk, CollectError, CollectSettings
from collectors.files import IngestError
from finops import providers
from finops.config import BillingSource, Config
from finops.store import Store


def chunks(provider: str, src: BillingSource, cfg: Config, store: Store, since: date | None) -> Iterator[Chunk]:
    """The chunks of one configured source; any SDK error becomes a :class:`CollectError` naming it."""
    try:
        module = providers.get(provider).billing_module(src.kind)
    except providers.UnknownProvider as e:  # config validation refuses these; a hand-built Config may not
        raise CollectError(f"{src.label}: {e}") from None
    settings = settings_for(cfg, provider)
    try:
        client = module.make_client(src)
        cursor = store.cursor(module.source_id(src, settings))
        yield from module.collect(client, src, cursor, since, settings=settings)
    except (CollectError, IngestError):
        raise
    except Exception as e:  # an SDK's own error (credentials, transport): name the source it came from
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CollectError(f"{src.label}: {type(e).__name__}: {first}") from e


def settings_for(cfg: Config, provider: str) -> CollectSettings:
    """What collectors of ``provider`` may need from the rest of the configuration."""
    pcfg = cfg.providers.get(provider)
    accounts = pcfg.accounts if pcfg else []
    return CollectSettings(tag_keys=tuple(team_tag_keys(cfg)), accounts=tuple(a.id for a in accounts),
                           account_names={a.id: a.name for a in accounts if a.name},
                           billing_accounts=tuple(pcfg.billing_accounts) if pcfg else ())


def team_tag_keys(cfg: Config) -> list[str]:
    """The tag keys that name a team (allocation rules), for APIs that group by tag."""
    return list(cfg.allocation.team_tags) or ["team"]
