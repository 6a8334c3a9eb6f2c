"""Price collection across providers: the one place that builds each provider's SDK client (from the
SDK's own credential chain) and calls that provider's collector. Provider choice is a dict lookup."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from urllib.parse import urlparse

import polars as pl

Note = Callable[[str], None]

DEFAULT_REGIONS: dict[str, tuple[str, ...]] = {
    "aws": ("us-east-1", "us-west-2", "eu-west-1"),
    "gcp": ("us-central1", "us-east1", "europe-west4"),
    "azure": ("eastus", "westus2", "westeurope"),
}


def is_loopback(url: str | None) -> bool:
    host = urlparse(url or "").hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _aws(regions: Sequence[str], endpoint: str | None, when: datetime, note: Note) -> pl.DataFrame:
    from collectors.aws import prices as aws

    ec2_for, pricing = aws.clients(endpoint_url=endpoint)
    return aws.collect(ec2_for, pricing, regions, observed_at=when, progress=note)


def _gcp(regions: Sequence[str], endpoint: str | None, when: datetime, note: Note) -> pl.DataFrame:
    from google.api_core.client_options import ClientOptions
    from google.cloud import billing_v1

    from collectors.gcp import prices as gcp

    kwargs: dict[str, object] = {}
    if endpoint:
        kwargs = {"client_options": ClientOptions(api_endpoint=endpoint), "transport": "rest"}
        if is_loopback(endpoint):  # a local emulator or test server, as Google's own emulators are used
            from google.auth.credentials import AnonymousCredentials

            kwargs["credentials"] = AnonymousCredentials()
    catalog = billing_v1.CloudCatalogClient(**kwargs)  # type: ignore[arg-type]
    return gcp.collect(catalog, regions, observed_at=when, progress=lambda svc, n: note(f"{svc}: {n} SKUs"))


def _azure(regions: Sequence[str], endpoint: str | None, when: datetime, note: Note) -> pl.DataFrame:
    from collectors.azure import prices as azure

    with azure.make_client() as http:
        return azure.collect(http, regions, base_url=endpoint or azure.BASE_URL, observed_at=when,
                             progress=lambda region, state: note(f"{region}: {state}"))


COLLECTORS: dict[str, Callable[[Sequence[str], str | None, datetime, Note], pl.DataFrame]] = {
    "aws": _aws, "gcp": _gcp, "azure": _azure,
}


def collect(provider: str, regions: Sequence[str] = (), *, endpoint: str | None = None,
            observed_at: datetime | None = None, progress: Note | None = None) -> pl.DataFrame:
    """Current on-demand and spot offers of ``provider`` in ``regions`` (default:
    :data:`DEFAULT_REGIONS`), from its live price API at ``endpoint`` (default: the provider's own)."""
    when = observed_at or datetime.now(timezone.utc)
    return COLLECTORS[provider](tuple(regions) or DEFAULT_REGIONS[provider], endpoint, when,
                                progress or (lambda _m: None))
