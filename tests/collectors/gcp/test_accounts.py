"""Billing accounts and projects through a real CloudBillingClient (REST) against tests/fakes/gcp_billing.py."""

from __future__ import annotations

import pytest
from google.api_core import retry as api_retry

from collectors.billing import CollectError
from collectors.gcp import accounts
from collectors.gcp.prices import is_retryable
from tests.fakes.gcp_billing import ACCOUNTS, PROJECTS, FakeCloudBilling

FAST = api_retry.Retry(predicate=is_retryable, initial=0.01, maximum=0.05, timeout=2.0)


@pytest.fixture
def fake():
    with FakeCloudBilling(page_size=2) as f:
        yield f


def test_discovers_open_accounts_and_their_projects_across_pages(fake: FakeCloudBilling) -> None:
    client = accounts.make_client(fake.url)
    found = accounts.discover(client, retry=FAST)
    open_ids = [a["name"].split("/")[1] for a in ACCOUNTS if a["open"]]
    assert [a.id for a in found] == open_ids
    for a in found:
        assert [p.project_id for p in a.projects] == PROJECTS[a.id]
    # 4 accounts over pages of 2, and the 4 projects of the first account over 2 pages
    assert [c.page_token for c in fake.calls("/v1/billingAccounts") if c.path == "/v1/billingAccounts"] == ["", "2"]
    assert len(fake.calls("01A2B3-C4D5E6-F70819/projects")) == 2
    names = accounts.account_names(found)
    assert names["01A2B3-C4D5E6-F70819"] == "ExampleCorp Billing - Primary"
    assert found[2].master == "01A2B3-C4D5E6-F70819"


def test_only_and_closed_accounts(fake: FakeCloudBilling) -> None:
    client = accounts.make_client(fake.url)
    found = accounts.discover(client, only=["0F0F0F-000000-CL05ED"], include_closed=True, retry=FAST)
    assert [(a.id, a.open, a.currency, a.projects) for a in found] == [("0F0F0F-000000-CL05ED", False, "EUR", ())]


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_and_5xx_are_retried(fake: FakeCloudBilling, status: int) -> None:
    fake.fail(2, status, path_contains="/v1/billingAccounts")
    found = accounts.list_accounts(accounts.make_client(fake.url), retry=FAST)
    assert len(found) == len(ACCOUNTS)
    assert [c.status for c in fake.calls()][:3] == [status, status, 200]


def test_a_call_failing_beyond_the_retries_names_the_call(fake: FakeCloudBilling) -> None:
    fake.fail(10_000, 503, path_contains="/projects")
    call = r"list_project_billing_info\(billingAccounts/01A2B3-C4D5E6-F70819\)"
    with pytest.raises(CollectError, match=call + ".*retries"):
        accounts.discover(accounts.make_client(fake.url),
                          retry=api_retry.Retry(predicate=is_retryable, initial=0.01, maximum=0.02, timeout=0.3))


def test_expired_credential_names_the_call(fake: FakeCloudBilling) -> None:
    fake.expire_credentials()
    with pytest.raises(CollectError, match=r"list_billing_accounts refused the credential \(401"):
        accounts.discover(accounts.make_client(fake.url), retry=FAST)
    assert [c.status for c in fake.calls()] == [401]  # not retried
