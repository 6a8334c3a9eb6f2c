"""collectors.azure.cost_query: the real azure-mgmt-costmanagement client, its real ARM bearer-token
policy and retry policy, against a local Cost Management Query API over HTTPS serving the real
cost-details samples (tests/fakes/azure_costmanagement.py)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo

from collectors import billing
from collectors.azure import cost_query as cq
from finops import focus
from finops.config import BillingSource
from finops.store import Store
from tests import focus_validator as fv
from tests.fakes.azure_costmanagement import CostManagementFake, Record, default_ledger

ACCOUNT = "8611537"  # the demo samples' EA enrollment: on-demand, reservation and savings-plan rows
SCOPE = f"/providers/Microsoft.Billing/billingAccounts/{ACCOUNT}"
SOURCE = f"{cq.SOURCE_PREFIX}:{SCOPE}"
TODAY = dt.date(2023, 10, 20)  # the samples' September is then the previous month, October current
TAGS = ["env", "org"]
CENT = Decimal("0.01")


class FakeCredential:
    """The SDK's credential protocol (what DefaultAzureCredential provides), with a fixed token."""

    def __init__(self, token: str = "fake-token") -> None:
        self.token = token

    def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(self.token, int(time.time()) + 3600)


@pytest.fixture
def ledger() -> list[Record]:
    return default_ledger(shift_months=(0, 1))  # the samples' September, repeated as October


@pytest.fixture
def fake(ledger: list[Record], tmp_path: Path) -> Iterator[CostManagementFake]:
    with CostManagementFake(ledger, tmp_path / "tls", page_size=4) as f:
        yield f


def client(fake: CostManagementFake, token: str = "fake-token") -> Any:
    return cq.make_client(BillingSource(kind="cost-management", endpoint_url=fake.url),
                          credential=FakeCredential(token), connection_verify=str(fake.cert),
                          retry_total=3, retry_backoff_factor=0.01, retry_backoff_max=0.05)


def run(store: Store, fake: CostManagementFake, **kw: Any) -> list[billing.ChunkResult]:
    src = BillingSource(kind="cost-management", location=SCOPE)
    assert cq.source_id(src) == SOURCE
    chunks = cq.collect(client(fake, kw.pop("token", "fake-token")), src, store.cursor(SOURCE), kw.pop("since", None),
                        settings=billing.CollectSettings(tag_keys=tuple(TAGS), today=TODAY), **kw)
    return list(billing.run(store, chunks))


def ledger_totals(ledger: list[Record], month: str) -> dict[str, Decimal]:
    mine = [r for r in ledger if r.billing_account == ACCOUNT and f"{r.day:%Y-%m}" == month]
    purchase = lambda r: r.dim("ChargeType") in ("Purchase", "Refund")  # noqa: E731
    return {"BilledCost": sum((r.actual for r in mine if r.actual is not None), Decimal(0)),
            "EffectiveCost": sum((r.amortized for r in mine if r.amortized is not None and not purchase(r)),
                                 Decimal(0))}


def store_totals(store: Store) -> dict[str, dict[str, Decimal]]:
    frame = store.scan("billing").group_by(pl.col("BillingPeriodStart").dt.strftime("%Y-%m").alias("m")).agg(
        pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum()).collect()
    return {m: {"BilledCost": Decimal(b), "EffectiveCost": Decimal(e)} for m, b, e in frame.iter_rows()}


def test_months_map_to_focus_with_the_api_totals(fake: CostManagementFake, ledger: list[Record],
                                                 tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    results = run(store, fake)
    assert [r.period for r in results] == [dt.date(2023, 8, 1), dt.date(2023, 9, 1), dt.date(2023, 10, 1)]
    assert results[0].rows == 0  # nothing billed in August
    got = store_totals(store)
    for month in ("2023-09", "2023-10"):
        want = ledger_totals(ledger, month)
        assert want["BilledCost"] != want["EffectiveCost"]  # commitments make the two views differ
        assert all(abs(got[month][c] - want[c]) < CENT for c in want), month
    frame = store.scan("billing").collect()
    assert [str(p) for p in focus.validate(frame) if p.severity == "error"] == []
    assert set(frame["BillingAccountId"]) == {ACCOUNT}
    purchase = frame.filter(pl.col("ChargeCategory") == "Purchase")
    assert purchase.height == 2 and purchase["EffectiveCost"].sum() == 0 and purchase["BilledCost"].sum() > 0
    used = frame.filter(pl.col("CommitmentDiscountStatus") == "Used")
    assert used.height and used["BilledCost"].sum() == 0 and used["EffectiveCost"].sum() > 0
    tags = set(frame["Tags"].drop_nulls())
    assert '{"env":"prod","org":"trey"}' in tags


def test_every_page_is_fetched_through_next_link(fake: CostManagementFake, tmp_path: Path) -> None:
    run(Store(tmp_path / "store"), fake)
    pages = [r for r in fake.requests if "$skiptoken" in r.query]
    assert pages, "nextLink was not followed"
    first = [r for r in fake.requests if "$skiptoken" not in r.query]
    assert len(first) == 3 * 2  # three months, two views
    for r in fake.requests:
        assert r.path.startswith(SCOPE) and r.query["api-version"] == "2025-03-01"
        assert r.authorization == "Bearer fake-token"
        assert r.body["dataset"]["granularity"] == "Daily"
        assert [g["name"] for g in r.body["dataset"]["grouping"]] == [*cq.DIMENSIONS, *TAGS]
    assert {r.body["type"] for r in fake.requests} == {"ActualCost", "AmortizedCost"}


def test_a_second_run_changes_nothing(fake: CostManagementFake, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    run(store, fake)
    before = [(m.partition, m.rows, m.sums) for m in store.manifests("billing")]
    data = store.scan("billing").collect()
    again = run(store, fake)  # the previous and current month are always read again
    assert [r.period for r in again] == [dt.date(2023, 9, 1), dt.date(2023, 10, 1)]
    assert [(m.partition, m.rows, m.sums) for m in store.manifests("billing")] == before
    after = store.scan("billing").collect()
    assert after.sort(after.columns).equals(data.sort(data.columns))


def test_throttling_and_server_errors_are_retried(fake: CostManagementFake, tmp_path: Path) -> None:
    fake.fail(429, times=1, retry_after="1", page=2, kind="ActualCost", month="2023-09")
    fake.fail(503, times=2, page=1, kind="AmortizedCost", month="2023-10")
    fake.fail(500, times=1, page=1, kind="ActualCost", month="2023-08")
    start = time.monotonic()
    store = Store(tmp_path / "store")
    run(store, fake)
    assert time.monotonic() - start >= 1.0  # Retry-After honoured
    statuses = [r.status for r in fake.requests]
    assert statuses.count(429) == 1 and statuses.count(503) == 2 and statuses.count(500) == 1
    assert sorted(store_totals(store)) == ["2023-09", "2023-10"]


def test_a_run_failing_midway_keeps_finished_months_and_the_next_resumes(fake: CostManagementFake,
                                                                         ledger: list[Record],
                                                                         tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    fake.fail(500, times=None, kind="AmortizedCost", month="2023-10")
    with pytest.raises(billing.CollectError) as err:
        run(store, fake)
    assert "HTTP 500 after retries" in str(err.value)
    assert f"{SCOPE.strip('/')}/providers/Microsoft.CostManagement/query (AmortizedCost, 2023-10)" in str(err.value)
    assert sorted(store_totals(store)) == ["2023-09"]
    assert store.cursor(SOURCE)["period"] == "2023-09-01"
    fake.heal()
    assert [r.period for r in run(store, fake)] == [dt.date(2023, 9, 1), dt.date(2023, 10, 1)]
    got = store_totals(store)
    assert abs(got["2023-10"]["EffectiveCost"] - ledger_totals(ledger, "2023-10")["EffectiveCost"]) < CENT


@pytest.mark.parametrize(("how", "column", "detail"), [
    ("cost", "PreTaxCost", "not a number: 'twelve dollars'"),
    ("date", "UsageDate", "not a yyyymmdd date: 20231345"),
    ("short", None, "field(s) for"),
])
def test_a_page_with_a_malformed_row_names_the_call_and_writes_nothing(fake: CostManagementFake, tmp_path: Path,
                                                                      how: str, column: str | None,
                                                                      detail: str) -> None:
    fake.corrupt(page=2, row=1, how=how)
    store = Store(tmp_path / "store", )
    with pytest.raises(billing.CollectError) as err:
        run(store, fake, since=dt.date(2023, 9, 1))
    msg = str(err.value)
    assert "(ActualCost, 2023-09) page 2, row 2" in msg and detail in msg
    if column:
        assert f"column {column}" in msg
    assert store.manifests("billing") == [] and store.cursor(SOURCE) is None


def test_an_unknown_currency_is_refused(ledger: list[Record], tmp_path: Path) -> None:
    victim = next(i for i, r in enumerate(ledger) if r.billing_account == ACCOUNT)
    bad = [Record(r.day, r.billing_account, r.dims, r.tags, "XYZ" if i == victim else r.currency, r.actual,
                  r.amortized) for i, r in enumerate(ledger)]
    store = Store(tmp_path / "store")
    with CostManagementFake(bad, tmp_path / "tls", page_size=50) as f, pytest.raises(billing.CollectError) as err:
        run(store, f, since=dt.date(2023, 9, 1))
    assert "column Currency: not an ISO 4217 currency code: 'XYZ'" in str(err.value)
    assert store.manifests("billing") == []


def test_an_expired_token_is_a_clear_error(fake: CostManagementFake, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with pytest.raises(billing.CollectError) as err:
        run(store, fake, token="expired-token")
    assert "credential rejected (HTTP 401" in str(err.value) and "(ActualCost, 2023-08)" in str(err.value)
    assert {r.status for r in fake.requests} == {401}
    assert store.manifests("billing") == []


def test_the_output_passes_the_focus_validator(validator_venv: Path, fake: CostManagementFake,
                                               tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    run(store, fake)
    out = tmp_path / "billing.parquet"
    store.scan("billing").sink_parquet(out)
    result = fv.run_focus_validator(out)
    assert result.passed, result.blocking
