"""Billing accounts and their projects, from the Cloud Billing API (google-cloud-billing).

``CloudBillingClient.list_billing_accounts`` and ``list_project_billing_info``, both paged by the SDK's
pagers and retried (429/5xx) through ``retry=``. What they give the billing collection: the display
name of each billing account (FOCUS BillingAccountName) and which projects bill to it. A refused
credential (401/403) or a call that keeps failing raises :class:`collectors.billing.CollectError`
naming the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from google.api_core import retry as api_retry
from google.cloud import billing_v1

from collectors.gcp import errors
from collectors.gcp.endpoints import client_kwargs
from collectors.gcp.prices import is_retryable

RETRY = api_retry.Retry(predicate=is_retryable, initial=1.0, maximum=32.0, multiplier=2.0, timeout=300.0)
"""Per page: 429, 500, 502, 503, 504 retried with exponential backoff for up to five minutes."""


@dataclass(frozen=True)
class Project:
    """A project billed to an account."""

    project_id: str
    billing_enabled: bool


@dataclass(frozen=True)
class BillingAccount:
    """A Cloud Billing account: ``id`` as the export writes it (``012345-6789AB-CDEF01``)."""

    id: str
    display_name: str
    open: bool
    currency: str | None = None
    master: str | None = None
    projects: tuple[Project, ...] = field(default=())


def _id(name: str) -> str:
    return name.split("/", 1)[1] if name.startswith("billingAccounts/") else name


def _guard(call: str, fn):  # type: ignore[no-untyped-def]
    with errors.named(f"Cloud Billing API {call}"):
        return fn()


def list_accounts(client: billing_v1.CloudBillingClient, *, retry: api_retry.Retry = RETRY,
                  page_size: int = 100) -> list[BillingAccount]:
    """Every billing account the credential can see (the pager follows ``nextPageToken``)."""
    def run() -> list[BillingAccount]:
        pager = client.list_billing_accounts(request={"page_size": page_size}, retry=retry)
        return [BillingAccount(_id(a.name), a.display_name, a.open, getattr(a, "currency_code", None) or None,
                               _id(a.master_billing_account) if a.master_billing_account else None)
                for a in pager]
    return _guard("CloudBillingClient.list_billing_accounts", run)


def list_projects(client: billing_v1.CloudBillingClient, account_id: str, *, retry: api_retry.Retry = RETRY,
                  page_size: int = 100) -> list[Project]:
    """The projects billed to ``account_id``."""
    def run() -> list[Project]:
        pager = client.list_project_billing_info(
            request={"name": f"billingAccounts/{account_id}", "page_size": page_size}, retry=retry)
        return [Project(p.project_id, p.billing_enabled) for p in pager]
    return _guard(f"CloudBillingClient.list_project_billing_info(billingAccounts/{account_id})", run)


def discover(client: billing_v1.CloudBillingClient, *, only: Iterable[str] = (), include_closed: bool = False,
             retry: api_retry.Retry = RETRY) -> list[BillingAccount]:
    """Billing accounts (``only`` these ids when given; open ones unless ``include_closed``) with their projects."""
    wanted = set(only)
    out = []
    for account in list_accounts(client, retry=retry):
        if (wanted and account.id not in wanted) or (not account.open and not include_closed):
            continue
        projects = tuple(list_projects(client, account.id, retry=retry))
        out.append(BillingAccount(account.id, account.display_name, account.open, account.currency,
                                  account.master, projects))
    return out


def account_names(accounts: Sequence[BillingAccount]) -> dict[str, str]:
    """Billing account id → display name, for :func:`collectors.gcp.bigquery.collect`."""
    return {a.id: a.display_name for a in accounts if a.display_name}


def make_client(endpoint: str | None = None) -> billing_v1.CloudBillingClient:
    """A CloudBillingClient with Application Default Credentials; with ``endpoint`` (REST transport) a
    local server on loopback is called anonymously, as Google's own emulators are."""
    return billing_v1.CloudBillingClient(**client_kwargs(endpoint, rest=True))
