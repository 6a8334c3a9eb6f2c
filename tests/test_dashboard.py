"""The dashboard's pages under Streamlit's AppTest on a generated store (``finops demo``): the figures are
those of :func:`finops.reports.chargeback` and ``finops store info``, the filters change them, no page
raises, and bad input (empty, old-layout or one-provider store, an unreachable ledger, a team or a date
range without data) gives a sentence on the page. Also: the rollups' cache is invalidated per partition,
and ``finops dashboard`` refuses what it must."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from finops import config, reports
from finops.config import Config
from finops.generate import generate
from finops.periods import Week
from finops.rollups import Rollups, roll
from finops.services import dashboard as dash_svc
from finops.services import demo
from finops.store import Store

PAGES = Path(__file__).resolve().parents[1] / "dashboards" / "pages"
PAGE_NAMES = ("overview", "chargeback", "accelerators", "placements", "budgets", "prices")


@dataclass(frozen=True)
class Site:
    root: Path
    config_path: Path
    cfg: Config
    store: Store


def write_config(path: Path, cfg: Config, **update: Any) -> Path:
    demo.write_config(cfg.model_copy(update=update), path)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """``finops demo`` (40 days, 4 teams, three clouds, a placed queue) in a folder of its own, with the
    configuration it wrote (its teams, accounts and shared pool) plus a dashboard cache there."""
    root = tmp_path_factory.mktemp("dash")
    here = os.getcwd()
    os.chdir(root)  # the demo writes its finops.toml and reports in the working folder
    try:
        res = demo.demo(config.parse({"store": {"url": str(root / "store")}}), days=40, teams=4, work=root / "w")
    finally:
        os.chdir(here)
    assert res.config is not None
    cfg = config.load(root / res.config)
    cfg = cfg.model_copy(update={"dashboard": config.DashboardConfig(cache_dir=str(root / "cache"))})
    path = write_config(root / "dash.toml", cfg)
    cfg = config.load(path)
    return Site(root, path, cfg, cfg.open_store())


def run_page(name: str, config_path: Path, monkeypatch: pytest.MonkeyPatch, **widgets: Any) -> AppTest:
    """Run one page as Streamlit would, with ``FINOPS_CONFIG`` set; ``widgets`` (key → value) are set and the
    page run again."""
    monkeypatch.setenv("FINOPS_CONFIG", str(config_path))
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60).run()
    if widgets:
        for key, value in widgets.items():
            _widget(at, key).set_value(value)
        at.run()
    return at


def _widget(at: AppTest, key: str) -> Any:
    for kind in ("date_input", "multiselect", "radio", "selectbox", "toggle", "segmented_control"):
        try:
            return getattr(at, kind)(key=key)
        except KeyError:
            continue
    raise KeyError(key)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metric(at: AppTest, label: str) -> str:
    """A metric's figure: the exact one from its help where the headline is rounded (``exact: USD 1,234.56``)."""
    found = {m.label: m for m in at.metric}
    assert label in found, list(found)
    exact = re.match(r"exact: ([^;]+)", found[label].proto.help or "")
    return exact.group(1) if exact else str(found[label].value)


def amount(text: str) -> Decimal:
    return Decimal(re.sub(r"[^\d.\-]", "", text))


def cents(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# -- every page, figures ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_page_renders_without_an_error(name: str, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_page(name, site.config_path, monkeypatch)
    assert_clean(at)
    assert at.title[0].value.lower() == name
    assert len(at.metric) >= 3, f"{name}: the page opens with its key figures"


def test_overview_shows_the_chargeback_week_and_the_store_rows(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_page("overview", site.config_path, monkeypatch)
    assert_clean(at)
    week = Week.last_complete()
    cb = reports.chargeback(site.store, site.cfg, week)
    assert amount(metric(at, f"Week {week.label}")) == cb.total
    assert metric(at, "Billing rows in store") == f"{sum(m.rows for m in site.store.manifests('billing')):,}"


def test_chargeback_page_equals_the_report(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_page("chargeback", site.config_path, monkeypatch)
    assert_clean(at)
    week = Week.last_complete()
    cb = reports.chargeback(site.store, site.cfg, week)
    assert amount(metric(at, f"Total {week.label}")) == cb.total
    assert amount(metric(at, "Shared pools")) == sum(cb.summary["shared"], Decimal(0))
    assert metric(at, "Reconciled to the bill") == "to the cent"
    shown = at.dataframe[0].value  # the summary table, per team
    assert sorted(shown["team"]) == sorted(cb.summary["team"].to_list())
    for team, total in cb.summary.select("team", "total").iter_rows():
        assert Decimal(str(shown.loc[shown["team"] == team, "total"].item())).quantize(Decimal("0.01")) == total
    assert {b.label for b in at.get("download_button")} >= {"Download CSV (zip)", "Download XLSX"}


def test_chargeback_project_view_and_an_earlier_week(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    week = Week.last_complete().previous()
    at = run_page("chargeback", site.config_path, monkeypatch, cb_dim="project", cb_week=week)
    assert_clean(at)
    cb = reports.chargeback(site.store, site.cfg, week, "project")
    assert amount(metric(at, f"Total {week.label}")) == cb.total
    assert "project" in at.dataframe[0].value.columns


def raw_week_total(site: Site, lo: dt.date, hi: dt.date, provider: str | None = None) -> Decimal:
    """EffectiveCost of the rows charged from ``lo`` to ``hi`` (commitment purchases left out), straight
    from the store with polars."""
    lf = site.store.scan("billing").filter(pl.col("ChargePeriodStart").dt.date().is_between(lo, hi))
    if provider:
        lf = lf.filter(pl.col("ProviderName") == provider)
    purchase = (pl.col("ChargeCategory") == "Purchase") & pl.col("CommitmentDiscountId").is_not_null()
    return Decimal(lf.filter(~purchase.fill_null(False)).select(pl.col("EffectiveCost").sum()).collect().item())


def test_overview_filters_change_the_figures(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    week = Week.last_complete()
    lo, hi = week.start.date(), week.end.date() - dt.timedelta(days=1)
    at = run_page("overview", site.config_path, monkeypatch, ov_dates=(lo, hi))
    assert_clean(at)
    every = amount(metric(at, "Spend in range"))
    # each day is apportioned to the cent per provider: within a cent per day and provider of the raw sum
    assert abs(every - raw_week_total(site, lo, hi)) <= Decimal("0.01") * 7 * 3
    _widget(at, "ov_providers").set_value(["AWS"])
    at.run()
    aws = amount(metric(at, "Spend in range"))
    assert abs(aws - raw_week_total(site, lo, hi, "AWS")) <= Decimal("0.07")
    assert 0 < aws < every
    _widget(at, "ov_providers").set_value([])
    _widget(at, "ov_teams").set_value(["nlp"])
    at.run()
    assert_clean(at)
    nlp = amount(metric(at, "Spend in range"))
    table = at.dataframe[0].value
    assert list(table["team"]) == ["nlp"] and 0 < nlp < every
    assert abs(Decimal(str(table["total"].item())) - nlp) <= Decimal("0.01")
    _widget(at, "ov_basis").set_value("Billed (BilledCost)")
    at.run()
    assert_clean(at)
    assert amount(metric(at, "Spend in range")) != nlp  # commitments are billed upfront, not as used


def test_accelerator_hours_equal_the_chargeback_gpu_view(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    week = Week.last_complete()
    cb = reports.chargeback(site.store, site.cfg, week)
    at = run_page("accelerators", site.config_path, monkeypatch,
                  acc_dates=(week.start.date(), week.end.date() - dt.timedelta(days=1)))
    assert_clean(at)
    gpu = sum(cb.gpus["gpu_hours"])
    tpu = sum(cb.gpus["tpu_chip_hours"])
    assert gpu > 0 and tpu > 0
    assert abs(float(metric(at, "GPU hours").replace(",", "")) - gpu) <= 1
    assert abs(float(metric(at, "TPU chip-hours").replace(",", "")) - tpu) <= 1
    # The chargeback rounds each team × accelerator line to the cent, the page the exact total: equal
    # within half a cent per line (the lines' own rounding), whatever the week's figures.
    lines = sum(cb.gpus["cost"], Decimal(0))
    assert abs(amount(metric(at, "Accelerator cost")) - lines) <= Decimal("0.005") * cb.gpus.height


def test_placements_page_explains_each_decision(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from finops.services import queue as queue_svc

    at = run_page("placements", site.config_path, monkeypatch)
    assert_clean(at)
    recorded = queue_svc.placements(site.cfg).recorded
    latest = {r.decision.workload_id: r for r in recorded}  # a workload re-placed (after a preemption): its last
    placed = [r for r in latest.values() if r.decision.placed]
    assert metric(at, "Placed") == f"{len(placed):,}"
    assert abs(amount(metric(at, "Expected cost")) - Decimal(str(sum(r.decision.expected_cost for r in placed)))) < 1
    table = at.dataframe[0].value
    assert len(table) == len(latest) and {"runner_up", "why", "saving"} <= set(table.columns)
    assert at.markdown and any("runs on" in m.value or "was not placed" in m.value for m in at.markdown)


def test_prices_page_shows_history_and_the_cheapest_offers(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from finops.services import prices as prices_svc

    at = run_page("prices", site.config_path, monkeypatch, pr_acc="A100-80GB")
    assert_clean(at)
    best = prices_svc.cheapest(site.cfg, "A100-80GB", 8, spot=True, limit=15)
    table = at.dataframe[0].value
    assert list(table["instance_type"]) == best["instance_type"].to_list()
    _widget(at, "pr_spot").set_value(False)
    at.run()
    assert set(at.dataframe[0].value["market"]) == {"on_demand"}


def test_budgets_page_burns_down_against_the_budget(site: Site, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    teams = [t.model_copy(update={"monthly_budget": Decimal(1000)}) for t in site.cfg.teams]
    path = write_config(tmp_path / "b.toml", site.cfg, teams=teams)
    at = run_page("budgets", path, monkeypatch)
    assert_clean(at)
    assert amount(metric(at, "Budgeted")) == 1000 * len(teams)
    over = int(metric(at, "Teams over budget"))
    assert over == len(teams)  # each generated team spends far more than 1,000 a month
    table = at.dataframe[0].value
    assert len(table) == len(teams)
    from finops import budgets

    want = {b.team: b for b in budgets.status(config.load(path), store=site.store)}  # the demo runs to today
    for team, forecast, low, high in table[["team", "forecast", "low", "high"]].itertuples(index=False):
        assert forecast == pytest.approx(float(want[team].forecast), rel=1e-3)
        assert low <= forecast <= high


# -- bad input ---------------------------------------------------------------------------------------
def config_for(tmp_path: Path, store: Path, **extra: Any) -> Path:
    cfg = config.parse({"store": {"url": str(store)}, "dashboard": {"cache_dir": str(tmp_path / "cache")}, **extra})
    return write_config(tmp_path / "c.toml", cfg)


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_an_empty_store_says_so_on_every_page(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_page(name, config_for(tmp_path, tmp_path / "empty"), monkeypatch)
    assert_clean(at)
    assert at.info, "a sentence saying there is nothing yet"


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_an_old_layout_store_names_the_migration(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import SAMPLE_12
    from tests.test_store_migrate import conformed, write_old_layout

    write_old_layout(tmp_path / "old", "billing", conformed(SAMPLE_12))
    write_old_layout(tmp_path / "old", "prices", pl.DataFrame({"provider": ["aws"], "observed_at": ["2026-01-01"]}))
    at = run_page(name, config_for(tmp_path, tmp_path / "old"), monkeypatch)
    assert_clean(at)
    if name != "placements":  # the queue lives in the ledger, which is fine
        assert any("finops store migrate" in w.value for w in at.warning), [w.value for w in at.warning]


def test_an_unreachable_ledger_is_a_sentence_and_the_other_pages_work(site: Site, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    ledger = config.LedgerConfig(url=f"postgresql+psycopg://finops@127.0.0.1:{port}/finops?connect_timeout=2")
    path = write_config(tmp_path / "l.toml", site.cfg, ledger=ledger)
    at = run_page("placements", path, monkeypatch)
    assert_clean(at)
    assert at.warning and "ledger" in at.warning[0].value.lower()
    assert_clean(run_page("overview", path, monkeypatch))


def test_one_provider_and_a_team_without_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bill = pl.concat(list(generate(days=10, end=dt.date(2026, 11, 25), seed=2, teams=2)))
    store = Store(tmp_path / "one")
    store.write("billing", bill.filter(pl.col("ProviderName") == "AWS"))
    path = config_for(tmp_path, tmp_path / "one", teams=[{"name": "ghost-team"}])
    for name in PAGE_NAMES:
        assert_clean(run_page(name, path, monkeypatch))
    at = run_page("overview", path, monkeypatch, ov_teams=["ghost-team"])
    assert_clean(at)
    assert any("No charges" in i.value for i in at.info)
    at = run_page("overview", path, monkeypatch, ov_dates=(dt.date(2026, 11, 1), dt.date(2026, 11, 3)))
    assert_clean(at)
    assert any("No charges" in i.value and "the store holds" in i.value for i in at.info)
    at = run_page("accelerators", path, monkeypatch, acc_dates=(dt.date(2026, 11, 1), dt.date(2026, 11, 3)))
    assert_clean(at)
    assert at.info


# -- rollups ---------------------------------------------------------------------------------------
def test_rollups_are_cached_per_partition_and_a_new_ingest_invalidates_only_its_own(tmp_path: Path) -> None:
    bill = pl.concat(list(generate(days=20, end=dt.date(2026, 11, 10), seed=4, teams=2)))
    store = Store(tmp_path / "s")
    store.write("billing", bill)
    cfg = config.parse({"store": {"url": str(tmp_path / "s")}})
    parts = store.manifests("billing")
    first = Rollups(store, cfg, tmp_path / "cache")
    raw = first.billing().frame
    assert len(first.stats.computed) == len(parts) > 2 and not first.stats.reused
    # the rollup's exact sums are the store's own (what `finops store info` prints), partition by partition
    assert Decimal(raw["billed"].sum()) == sum((m.sum("BilledCost") for m in parts), Decimal(0))
    assert Decimal(raw["effective"].sum()) == sum((m.sum("EffectiveCost") for m in parts), Decimal(0))
    assert raw["rows"].sum() == sum(m.rows for m in parts)
    again = Rollups(store, cfg, tmp_path / "cache")  # a new process: the disk cache serves it
    assert again.billing().frame.equals(raw)
    assert not again.stats.computed and len(again.stats.reused) == len(parts)
    # re-ingest one partition (AWS, 2026-11) with its costs doubled
    one = bill.filter((pl.col("ProviderName") == "AWS")
                      & (pl.col("BillingPeriodStart").dt.strftime("%Y-%m") == "2026-11"))
    store.write("billing", one.with_columns(pl.col("BilledCost") * 2))
    third = Rollups(store, cfg, tmp_path / "cache")
    new = third.billing().frame
    assert len(third.stats.computed) == 1 and third.stats.computed[0].startswith("aws/2026-11")
    assert len(third.stats.reused) == len(parts) - 1
    assert Decimal(new["billed"].sum()) - Decimal(raw["billed"].sum()) == Decimal(one["BilledCost"].sum())
    assert len(list((tmp_path / "cache").rglob("billing/*.parquet"))) == len(parts)  # the stale one is gone


def test_each_day_is_allocated_to_the_cent_of_its_bill(site: Site) -> None:
    r = Rollups(site.store, site.cfg, site.root / "cache")
    a = r.allocated("EffectiveCost").group_by("day", "provider").agg(pl.col("cents").sum())
    raw = r.daily().frame.with_columns(r.daily().cost("EffectiveCost").alias("c"))
    exact = raw.group_by("day", "ProviderName").agg(pl.col("c").sum())
    want = {(d, p): int(cents(Decimal(c)) * 100) for d, p, c in exact.iter_rows()}
    got = {(d, p): c for d, p, c in a.iter_rows()}
    assert got == want


ROW = st.fixed_dictionaries({
    "day": st.integers(0, 3), "ProviderName": st.sampled_from(["AWS", "Microsoft"]),
    "ServiceName": st.sampled_from(["EC2", "S3", None]), "Tags": st.sampled_from(['{"team":"a"}', "{}", None]),
    "cents": st.integers(-10_000, 1_000_000), "hours": st.sampled_from([None, 1.5, 24.0]),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, max_size=30))
def test_a_rollup_keeps_every_row_and_every_cent(rows: list[dict[str, Any]]) -> None:
    start = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    df = pl.DataFrame({
        "ChargePeriodStart": [start + dt.timedelta(days=r["day"], hours=5) for r in rows],
        "ProviderName": [r["ProviderName"] for r in rows], "ServiceName": [r["ServiceName"] for r in rows],
        "Tags": [r["Tags"] for r in rows], "ChargeCategory": ["Usage"] * len(rows),
        "BilledCost": [Decimal(r["cents"]).scaleb(-2) for r in rows],
        "EffectiveCost": [Decimal(r["cents"]).scaleb(-3) for r in rows],
        "ListCost": [Decimal(r["cents"]).scaleb(-2) for r in rows],
        "ConsumedQuantity": [r["hours"] for r in rows],
        "ConsumedUnit": ["Hours" if r["hours"] else None for r in rows],
        "CommitmentDiscountStatus": [None] * len(rows), "CommitmentDiscountId": [None] * len(rows),
        "SkuPriceDetails": [None] * len(rows), "ChargeDescription": ["x"] * len(rows),
    }, schema_overrides={"ChargePeriodStart": pl.Datetime("us", "UTC"), "ProviderName": pl.String,
                         "ChargeCategory": pl.String, "ConsumedUnit": pl.String, "ChargeDescription": pl.String,
                         "BilledCost": pl.Decimal(38, 15), "EffectiveCost": pl.Decimal(38, 15),
                         "ListCost": pl.Decimal(38, 15), "ConsumedQuantity": pl.Float64,
                         "CommitmentDiscountStatus": pl.String, "CommitmentDiscountId": pl.String,
                         "SkuPriceDetails": pl.String, "ServiceName": pl.String, "Tags": pl.String})
    out = roll(df.lazy()).collect()
    assert out["rows"].sum() == len(rows)
    for day in range(4):
        mine = [r for r in rows if r["day"] == day]
        got = out.filter(pl.col("day") == (start + dt.timedelta(days=day)).date())
        assert Decimal(got["billed"].sum() or 0) == sum((Decimal(r["cents"]).scaleb(-2) for r in mine), Decimal(0))
        assert got["hours"].sum() == pytest.approx(sum(r["hours"] or 0 for r in mine))


# -- the command and its service -----------------------------------------------------------------------
def test_the_service_refuses_what_it_must(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(dash_svc.DashboardError, match="login"):
        dash_svc.check(site.cfg, "0.0.0.0", 8501)
    with pytest.raises(dash_svc.DashboardError, match="--port 0"):
        dash_svc.check(site.cfg, "127.0.0.1", 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(dash_svc.DashboardError, match="cannot listen there"):
            dash_svc.check(site.cfg, "127.0.0.1", s.getsockname()[1])
    assert "only this machine" in dash_svc.check(site.cfg, "127.0.0.1", _free_port())[0]
    logged_in = site.cfg.model_copy(update={"dashboard": config.DashboardConfig(login=True)})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(dash_svc.DashboardError, match=r"\[auth\] section"):
        dash_svc.check(logged_in, "0.0.0.0", _free_port())
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[auth]\nredirect_uri = "http://h:8501/oauth2callback"\n')
    assert "sign-in" in dash_svc.check(logged_in, "0.0.0.0", _free_port())[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_command_says_one_sentence_and_exits_2(site: Site) -> None:
    from finops.cli import app, user_errors

    res = CliRunner().invoke(app, ["-c", str(site.config_path), "dashboard", "--host", "0.0.0.0"])
    assert res.exit_code != 0 and isinstance(res.exception, user_errors())
    assert "[dashboard] login" in str(res.exception)


def test_login_gate_asks_to_sign_in(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path / "login.toml", site.cfg, dashboard=config.DashboardConfig(login=True))
    at = run_page("overview", path, monkeypatch)
    assert_clean(at)
    assert not at.metric  # nothing is shown before signing in
    assert any("Sign in" in i.value for i in at.info)
