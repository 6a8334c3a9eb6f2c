"""Cost Explorer collector (collectors/aws/cost_explorer.py): a real boto3 Cost Explorer client against
moto's ThreadedMotoServer, seeded through moto's ``/moto-api/static/ce/cost-and-usage-results`` with
answers in the real GetCostAndUsage shape, built from the real anonymised CUR sample (its daily cost
by service and usage type). The fault proxy (tests/fakes/aws_faults.py) sits in front of moto to
record the requests and answer throttling, 5xx and expired credentials."""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors import billing
from collectors.aws import cost_explorer as ce_mod
from finops import focus
from finops.config import BillingSource
from finops.store import Store
from tests import focus_validator as fv
from tests.collectors.aws.cur_samples import ANON, column_total, read_rows
from tests.fakes.aws_faults import FaultProxy, ce_op, json_error

PAYER = "123412340534"
GET = ce_op("GetCostAndUsage")
EMPTY = {"ResultsByTime": [], "GroupDefinitions": [], "DimensionValueAttributes": []}


def _post(url: str, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return resp.status


@pytest.fixture
def moto(s3_server: str) -> str:
    """moto's server with Cost Explorer's seeded answers emptied (the queue is server-wide)."""
    _post(f"{s3_server}/moto-api/reset")
    return s3_server


def seed(url: str, *results: dict[str, Any]) -> None:
    assert _post(f"{url}/moto-api/static/ce/cost-and-usage-results", {"results": list(results)}) == 201


def money(amount: Decimal | str, unit: str = "USD") -> dict[str, str]:
    return {"Amount": str(amount), "Unit": unit}


def group(keys: list[str], cost: Decimal | str, qty: Decimal | str = "1", unit: str = "N/A",
          amortized: Decimal | str | None = None) -> dict[str, Any]:
    return {"Keys": keys, "Metrics": {"UnblendedCost": money(cost), "AmortizedCost": money(amortized or cost),
                                      "UsageQuantity": money(qty, unit)}}


def day(d: str, groups: list[dict[str, Any]]) -> dict[str, Any]:
    end = (dt.date.fromisoformat(d) + dt.timedelta(days=1)).isoformat()
    return {"TimePeriod": {"Start": d, "End": end}, "Total": {}, "Groups": groups, "Estimated": False}


def page(days: list[dict[str, Any]], defs: list[tuple[str, str]], token: str | None = None) -> dict[str, Any]:
    out = {"ResultsByTime": days, "GroupDefinitions": [{"Type": t, "Key": k} for t, k in defs],
           "DimensionValueAttributes": []}
    return out | ({"NextPageToken": token} if token else {})


def anon_pages() -> tuple[list[dict[str, Any]], int, Decimal]:
    """The real CUR's November 2023 as Cost Explorer would answer SERVICE × USAGE_TYPE, daily, in two
    pages; with the number of groups and the total cost."""
    _, rows = read_rows(ANON)
    sums: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in rows:
        tax = r["lineItem/LineItemType"] == "Tax"
        key = (r["lineItem/UsageStartDate"][:10], "Tax" if tax else r["product/ProductName"],
               "Tax" if tax else r["lineItem/UsageType"])
        sums[key][0] += Decimal(r["lineItem/UnblendedCost"])
        sums[key][1] += Decimal(r["lineItem/UsageAmount"] or 0)
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (d, service, usage_type), (cost, qty) in sorted(sums.items()):
        by_day[d].append(group([service, usage_type], cost, qty))
    days = [day(d, gs) for d, gs in sorted(by_day.items())]
    defs = [("DIMENSION", "SERVICE"), ("DIMENSION", "USAGE_TYPE")]
    pages = [page(days[:7], defs, "page-2"), page(days[7:], defs)]
    return pages, len(sums), column_total(rows, "lineItem/UnblendedCost")


SOURCE = BillingSource(kind="cost-explorer", location=PAYER)


def client(endpoint: str) -> Any:
    return ce_mod.make_client(BillingSource(kind="cost-explorer", endpoint_url=endpoint))


def run(store: Store, ce: Any, since: dt.date | None = None, today: dt.date | None = None,
        accounts: Sequence[str] = (), tag_keys: Sequence[str] = ()) -> list[billing.ChunkResult]:
    settings = billing.CollectSettings(tag_keys=tuple(tag_keys), accounts=tuple(accounts), today=today)
    cursor = store.cursor(ce_mod.source_id(SOURCE))
    return list(billing.run(store, ce_mod.collect(ce, SOURCE, cursor, since, settings=settings)))


def test_daily_costs_by_service_and_usage_type_land_with_the_source_total(moto: str, store: Store) -> None:
    pages, groups, total = anon_pages()
    seed(moto, *pages)
    with FaultProxy(moto) as proxy:
        ce = client(proxy.url)
        results = run(store, ce, accounts=[PAYER], since=dt.date(2023, 11, 1), today=dt.date(2023, 12, 10))
    assert [(r.period, r.rows) for r in results] == [(dt.date(2023, 11, 1), groups), (dt.date(2023, 12, 1), 0)]
    written = store.scan("billing").collect()
    assert written["BilledCost"].sum() == total
    assert [p for p in focus.validate(written) if p.severity == "error"] == []
    assert set(written.filter(pl.col("ServiceName") == "Tax")["ChargeCategory"]) == {"Tax"}
    asked = [s.json() for s in proxy.seen if GET(s)]
    assert [a.get("NextPageToken") for a in asked] == [None, "page-2", None]  # Nov in two pages, then Dec
    assert asked[0]["TimePeriod"] == {"Start": "2023-11-01", "End": "2023-12-01"}
    assert asked[2]["TimePeriod"] == {"Start": "2023-12-01", "End": "2023-12-11"}
    assert asked[0]["Filter"] == {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": [PAYER]}}
    assert sorted(asked[0]["Metrics"]) == ["AmortizedCost", "UnblendedCost", "UsageQuantity"]


def test_cost_explorer_output_passes_the_focus_validator(validator_venv: Path, moto: str, store: Store,
                                                         tmp_path: Path) -> None:
    seed(moto, *anon_pages()[0])
    run(store, client(moto), accounts=[PAYER], since=dt.date(2023, 11, 1),
        today=dt.date(2023, 12, 10))
    store.scan("billing").sink_parquet(tmp_path / "billing.parquet")
    result = fv.run_focus_validator(tmp_path / "billing.parquet")
    assert result.passed, result.blocking


def test_team_tag_keys_split_the_cost_without_losing_or_doubling_any(moto: str, store: Store) -> None:
    ec2, s3 = "USE1-BoxUsage:p4d.24xlarge", "USE1-TimedStorage-ByteHrs"
    d = "2026-09-01"
    seed(moto, EMPTY, EMPTY, EMPTY,  # August: nothing
         page([day(d, [group(["Amazon Elastic Compute Cloud - Compute", ec2], "100.00", "24", "Hrs"),
                       group(["Amazon Simple Storage Service", s3], "5.00", "700", "GB-Mo")])],
              [("DIMENSION", "SERVICE"), ("DIMENSION", "USAGE_TYPE")]),
         page([day(d, [group([ec2, "team$ml-research"], "60.00", "14.4", "Hrs"),
                       group([ec2, "team$"], "40.00", "9.6", "Hrs"),
                       group([s3, "team$"], "5.00", "700", "GB-Mo")])], [("DIMENSION", "USAGE_TYPE"), ("TAG", "team")]),
         page([day(d, [group([ec2, "Team$Recsys"], "30.00", "7.2", "Hrs"),
                       group([ec2, "Team$"], "10.00", "2.4", "Hrs"),
                       group([s3, "Team$"], "5.00", "700", "GB-Mo")])], [("DIMENSION", "USAGE_TYPE"), ("TAG", "Team")]))
    with FaultProxy(moto) as proxy:
        run(store, client(proxy.url), accounts=["111122223333"], tag_keys=["team", "Team"],
            since=dt.date(2026, 9, 1), today=dt.date(2026, 9, 3))
    got = sorted(store.scan("billing").select("ServiceName", "x_UsageType", "Tags", "BilledCost", "SubAccountId",
                                              "ServiceCategory", "PricingUnit").collect().rows(),
                 key=lambda r: (r[0], r[2] or ""))
    compute, account = "Amazon Elastic Compute Cloud - Compute", "111122223333"
    assert got == [
        (compute, ec2, None, Decimal("10.00"), account, "Compute", "Hours"),
        (compute, ec2, '{"Team":"Recsys"}', Decimal("30.00"), account, "Compute", "Hours"),
        (compute, ec2, '{"team":"ml-research"}', Decimal("60.00"), account, "Compute", "Hours"),
        ("Amazon Simple Storage Service", s3, None, Decimal("5.00"), account, "Storage", "GB-Months"),
    ]
    asked = [s.json() for s in proxy.seen if GET(s)]
    assert all(len(a["GroupBy"]) <= 2 for a in asked)  # Cost Explorer's limit
    sept = [a for a in asked if a["TimePeriod"]["Start"] == "2026-09-01"]
    assert [[g["Key"] for g in a["GroupBy"]] for a in sept] == [["SERVICE", "USAGE_TYPE"], ["USAGE_TYPE", "team"],
                                                                  ["USAGE_TYPE", "Team"]]
    assert sept[2]["Filter"] == {"And": [{"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": ["111122223333"]}},
                                         {"Tags": {"Key": "team", "MatchOptions": ["ABSENT"]}}]}


def test_accounts_are_discovered_when_config_names_none(moto: str, store: Store) -> None:
    seed(moto, EMPTY,  # August: no account had cost
         page([{"TimePeriod": {"Start": "2026-09-01", "End": "2026-09-04"}, "Total": {}, "Estimated": True,
                "Groups": [{"Keys": ["444455556666"], "Metrics": {"UnblendedCost": money("3")}}]}],
              [("DIMENSION", "LINKED_ACCOUNT")]),
         page([day("2026-09-02", [group(["AWS Lambda", "USE1-Lambda-GB-Second"], "3", "1000", "Lambda-GB-Second")])],
              [("DIMENSION", "SERVICE"), ("DIMENSION", "USAGE_TYPE")]))
    run(store, client(moto), since=dt.date(2026, 9, 1), today=dt.date(2026, 9, 3))
    row = store.scan("billing").collect().row(0, named=True)
    assert (row["SubAccountId"], row["BilledCost"], row["ServiceCategory"]) == ("444455556666", Decimal(3), "Compute")
    assert row["PricingUnit"] == "GB-Seconds"  # Lambda-GB-Second in FOCUS unit format


def test_a_second_run_changes_nothing(moto: str, store: Store) -> None:
    seed(moto, *anon_pages()[0])
    ce = client(moto)
    kw = dict(accounts=[PAYER], since=dt.date(2023, 11, 1), today=dt.date(2023, 12, 10))
    run(store, ce, **kw)
    first = [(m.partition, m.rows, m.sums, m.sources) for m in store.manifests("billing")]
    run(store, ce, **kw)  # moto answers a repeated request as it did the first time
    assert [(m.partition, m.rows, m.sums, m.sources) for m in store.manifests("billing")] == first and first


# -- faults ---------------------------------------------------------------------------------------
def test_throttling_and_5xx_are_retried_by_botocore(moto: str, store: Store, backoffs: list[float]) -> None:
    pages, _, total = anon_pages()
    seed(moto, *pages)
    with FaultProxy(moto) as proxy:
        proxy.fail(GET, 400, json_error("LimitExceededException", "Rate exceeded"))
        proxy.fail(GET, 503, b"", content_type="text/plain")
        run(store, client(proxy.url), accounts=[PAYER], since=dt.date(2023, 11, 1),
            today=dt.date(2023, 12, 10))
    assert proxy.served == 2 and len(backoffs) == 2
    assert store.scan("billing").collect()["BilledCost"].sum() == total


def test_an_expired_token_is_a_clear_error_naming_the_call(moto: str, store: Store) -> None:
    with FaultProxy(moto) as proxy:
        expired = json_error("ExpiredTokenException", "The security token included in the request is expired")
        proxy.fail(GET, 400, expired, times=None)
        with pytest.raises(billing.CollectError) as e:
            run(store, client(proxy.url), accounts=[PAYER], since=dt.date(2026, 8, 1),
                today=dt.date(2026, 9, 3))
    assert "ce.get_cost_and_usage(account 123412340534, 2026-08-01..2026-09-01)" in str(e.value)
    assert "ExpiredTokenException" in str(e.value)
    assert store.manifests("billing") == [] and store.cursor(ce_mod.source_id(SOURCE)) is None


def test_a_run_failing_midway_keeps_finished_months_and_the_next_resumes(moto: str, store: Store,
                                                                          backoffs: list[float]) -> None:
    defs = [("DIMENSION", "SERVICE"), ("DIMENSION", "USAGE_TYPE")]
    months = ["2026-07-01", "2026-08-01", "2026-09-01", "2026-10-01"]
    seed(moto, *[page([day(m, [group(["AWS Lambda", "Lambda-GB-Second"], f"{i + 1}.25")])], defs)
                 for i, m in enumerate(months)])
    august = lambda s: GET(s) and s.json()["TimePeriod"]["Start"] == "2026-08-01"  # noqa: E731
    kw = dict(accounts=[PAYER], today=dt.date(2026, 10, 5))
    with FaultProxy(moto) as proxy:
        proxy.fail(august, 500, json_error("InternalServerException", "boom"), times=None)
        with pytest.raises(billing.CollectError, match=re.escape("2026-08-01..2026-09-01")):
            run(store, client(proxy.url), since=dt.date(2026, 7, 1), **kw)
    assert [m.partition["billing_period"] for m in store.manifests("billing")] == ["2026-07"]
    with FaultProxy(moto) as proxy:
        resumed = run(store, client(proxy.url), **kw)
    assert [r.period.isoformat() for r in resumed] == months[1:]
    assert {s.json()["TimePeriod"]["Start"] for s in proxy.seen if GET(s)} == set(months[1:])
    sums = {m.partition["billing_period"]: m.sum("BilledCost") for m in store.manifests("billing")}
    assert sums == {"2026-07": Decimal("1.25"), "2026-08": Decimal("2.25"), "2026-09": Decimal("3.25"),
                    "2026-10": Decimal("4.25")}


def test_the_requests_respect_the_two_group_by_limit() -> None:
    reqs = ce_mod.requests("1", dt.date(2026, 9, 1), dt.date(2026, 10, 1), ["team", "Team", "owner"])
    assert [len(r.body["GroupBy"]) for r in reqs] == [2, 2, 2, 2]
    assert [r.keep_untagged for r in reqs[1:]] == [False, False, True]
    absent = reqs[3].body["Filter"]["And"][1:]
    assert [a["Tags"]["Key"] for a in absent] == ["team", "Team"]


def test_clients_use_botocore_standard_retries(s3_server: str) -> None:
    from collectors.aws import cur_s3

    for c in (client(s3_server), cur_s3.make_client(BillingSource(kind="cur", endpoint_url=s3_server))):
        assert c.meta.config.retries["mode"] == "standard"
        assert c.meta.config.retries["total_max_attempts"] >= 3


amounts = st.lists(st.decimals(min_value=Decimal(-50), max_value=Decimal(500), places=4, allow_nan=False),
                   min_size=1, max_size=6)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(amounts, st.integers(min_value=0, max_value=2)), min_size=1, max_size=8))
def test_tag_requests_partition_the_cost_of_every_usage_type(usage: list[tuple[list[Decimal], int]]) -> None:
    """However the cost of each usage type splits between the first key, the second key and no tag,
    the rows built from the answers add up to the service query's total, each part counted once."""
    keys = ["team", "Team"]
    reqs = ce_mod.requests("1", dt.date(2026, 9, 1), dt.date(2026, 10, 1), keys)
    service, by_key = [], {k: [] for k in keys}
    for i, (parts, owner) in enumerate(usage):
        ut = f"UT{i}"
        service.append(group(["Svc", ut], sum(parts)))
        tagged = {k: [] for k in keys}
        for j, amount in enumerate(parts):  # each part carries key `owner` (2: no tag at all)
            (tagged[keys[owner]] if owner < 2 else tagged[keys[-1]]).append(
                group([ut, f"{keys[owner]}$v{j}" if owner < 2 else f"{keys[-1]}$"], amount))
        # What the first request sees untagged is what the second (key absent) then splits.
        by_key["team"] += tagged["team"] + [group([ut, "team$"], sum(parts) - sum(
            Decimal(g["Metrics"]["UnblendedCost"]["Amount"]) for g in tagged["team"]))]
        by_key["Team"] += tagged["Team"]
    answers = [(reqs[1], [day("2026-09-01", by_key["team"])]), (reqs[2], [day("2026-09-01", by_key["Team"])])]
    out = ce_mod.rows("1", [day("2026-09-01", service)], answers)
    assert sum(Decimal(r["billed"]) for r in out) == sum(sum(p) for p, _ in usage)
    assert all(r["service"] == "Svc" for r in out)
