"""Launch targets in placement (which target may use which offer, at which price) and what placement learns
from our runs and bills (finops.learning applied by placement.run.learn)."""

from __future__ import annotations

import itertools
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finops import learning, offers
from finops.config import Config, parse
from finops.ledger import Correction, Ledger, RunHours, _add_run
from finops.placements import Placed, Unplaced
from finops.workloads import loads
from placement import candidates as cm
from placement import run
from placement.plan import plan

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def offer(provider: str, region: str, itype: str, acc: str, count: float, market: str, price: float, *,
          service: str | None = None, rate: float | None = None) -> dict:
    return {"provider": provider, "region": region, "zone": None, "instance_type": itype, "accelerator_name": acc,
            "accelerator_count": count, "accelerator_memory_gb": offers.ACCELERATORS[acc], "vcpus": 96.0,
            "memory_gb": 1000.0, "market": market, "price_per_hour": price, "currency": "USD",
            "observed_at": NOW - timedelta(hours=1), "source": "test", "sku": None,
            "interruption_rate": rate if rate is not None else (0.001 if market == "spot" else 0.0), "flag": None,
            "service": service}


OFFERS = [
    offer("aws", "us-east-1", "p4d.24xlarge", "A100-40GB", 8, "on_demand", 32.77),
    offer("aws", "us-east-1", "p4d.24xlarge", "A100-40GB", 8, "spot", 12.0),
    offer("aws", "us-east-1", "ml.p4d.24xlarge", "A100-40GB", 8, "on_demand", 37.69, service="sagemaker"),
    offer("aws", "us-east-1", "ml.p4d.24xlarge", "A100-40GB", 8, "on_demand", 39.0, service="sagemaker-hosting"),
    offer("aws", "us-east-1", "ml.p4d.24xlarge", "A100-40GB", 8, "spot", 13.8, service="sagemaker"),
    offer("gcp", "us-central1", "a2-highgpu-8g", "A100-40GB", 8, "on_demand", 33.0),
]
TARGETS = """
[launch.targets.sm]
kind = "sagemaker"
role_arn = "arn:aws:iam::123456789012:role/sm"
output_uri = "s3://bucket/out"
[launch.targets.eks]
kind = "kubernetes"
provider = "aws"
region = "us-east-1"
node_pools = [{ instance_type = "p4d.24xlarge", spot = true }]
"""


def config(extra: str = "", tmp: Path | None = None) -> Config:
    store = f'[store]\nurl = "{tmp / "data"}"\n' if tmp else ""
    return parse(tomllib.loads(store + extra), "finops.toml")


def prepared(cfg: Config, rows: list[dict] = OFFERS) -> pl.DataFrame:
    lf = offers.latest(offers.frame(rows).lazy(), now=NOW)
    return cm.prepare_offers(lf, targets=cfg.launch.all_targets())


def train(targets: str = "", **kw: str) -> str:
    extra = "".join(f", {k}: {v}" for k, v in kw.items())
    launch = f", launch: {{targets: [{targets}]}}" if targets else ""
    return (f"- {{name: t, team: ml, kind: train, accelerators: {{name: A100-40GB, count: 8}}, runtime_hours: 10"
            f"{extra}{launch}}}")


def decide(cfg: Config, yaml: str, off: pl.DataFrame | None = None) -> list:
    specs = list(enumerate(loads(yaml), start=1))
    allowed = {w: run.workload_targets(s, cfg)[0] for w, s in specs}
    return plan(specs, prepared(cfg) if off is None else off, targets=allowed, now=NOW).decisions


# -- which target may use which offer ----------------------------------------------------------------
def test_each_target_gets_only_the_offers_priced_for_it() -> None:
    off = prepared(config(TARGETS))
    got = {(r["target"], r["instance_type"], r["market"], r["service"]) for r in off.iter_rows(named=True)}
    assert got == {
        # the dry run: every VM price, no managed-service price
        ("dry_run", "p4d.24xlarge", "on_demand", "compute"), ("dry_run", "p4d.24xlarge", "spot", "compute"),
        ("dry_run", "a2-highgpu-8g", "on_demand", "compute"),
        # SageMaker: its own prices, on AWS only
        ("sm", "ml.p4d.24xlarge", "on_demand", "sagemaker"), ("sm", "ml.p4d.24xlarge", "on_demand",
                                                               "sagemaker-hosting"),
        ("sm", "ml.p4d.24xlarge", "spot", "sagemaker"),
        # the cluster: its cloud and region, its pools' types, spot only on the spot pool
        ("eks", "p4d.24xlarge", "spot", "compute"),
    }


def test_without_targets_configured_only_vm_prices_are_used() -> None:
    cfg = config()
    d = decide(cfg, train())[0]
    assert isinstance(d, Placed) and d.main.target == "dry_run" and d.main.instance_type == "p4d.24xlarge"
    assert d.main.interruption_rate == pytest.approx(0.001)


def test_a_spec_limited_to_sagemaker_pays_sagemaker_s_price_for_its_kind() -> None:
    cfg = config(TARGETS)
    d = decide(cfg, train("sm", spot="never"))[0]
    assert isinstance(d, Placed) and (d.main.target, d.main.price_per_hour) == ("sm", 37.69)
    serve = ("- {name: s, team: ml, kind: serve, accelerators: {name: A100-40GB, count: 8}, hours_per_week: 10,"
             " spot: never, launch: {targets: [sm]}}")
    s = decide(cfg, serve)[0]
    assert isinstance(s, Placed) and s.main.price_per_hour == 39.0  # hosting, not training


def test_the_optimizer_chooses_the_cheapest_target_allowed() -> None:
    cfg = config(TARGETS)
    d = decide(cfg, train("sm, eks"))[0]
    assert isinstance(d, Placed) and (d.main.target, d.main.market, d.main.price_per_hour) == ("eks", "spot", 12.0)


def test_team_targets_then_default_apply_when_the_spec_names_none() -> None:
    cfg = config(TARGETS + '\n[[teams]]\nname = "ml"\nlaunch_targets = ["sm"]\n')
    assert run.workload_targets(loads(train())[0], cfg) == (["sm"], [])
    assert run.workload_targets(loads(train("eks"))[0], cfg) == (["eks"], [])
    assert run.workload_targets(loads(train().replace("team: ml", "team: other"))[0], cfg) == (["dry_run"], [])
    assert run.workload_targets(loads(train("nope, sm"))[0], cfg) == (["sm"], ["nope"])


def test_a_target_that_can_use_no_fitting_offer_says_so() -> None:
    cfg = config(TARGETS)
    d = decide(cfg, train("eks", spot="never"))[0]
    assert isinstance(d, Unplaced) and "launch targets ['eks']" in d.reason


# -- learning: the rules -------------------------------------------------------------------------------
@pytest.mark.parametrize(("provider", "itype", "fam"), [
    ("aws", "p4d.24xlarge", "p4d"), ("aws", "ml.p4d.24xlarge", "p4d"), ("aws", "p5en.48xlarge", "p5en"),
    ("aws", "ml.g5.xlarge", "g5"), ("gcp", "a2-highgpu-1g", "a2-highgpu"), ("gcp", "a3-megagpu-8g", "a3-megagpu"),
    ("gcp", "g2-standard-4", "g2-standard"), ("azure", "Standard_NC24ads_A100_v4", "NCads_A100_v4"),
    ("azure", "Standard_ND96asr_v4", "NDasr_v4"), ("azure", "Standard_NC4as_T4_v3", "NCas_T4_v3"),
])
def test_family_of_real_instance_names(provider: str, itype: str, fam: str) -> None:
    assert learning.family(provider, itype) == fam


rates = st.floats(0, 1, allow_nan=False)
hours = st.floats(0, 1e6, allow_nan=False)


@given(prior=rates, h=hours, prior_h=st.floats(1, 1e4), share=st.floats(0, 1))
def test_blend_lies_between_the_prior_and_the_observed_rate(prior: float, h: float, prior_h: float,
                                                            share: float) -> None:
    n = round(share * h)
    got = learning.blend(prior, h, n, prior_h)
    observed = n / h if h else prior
    assert min(prior, observed) - 1e-9 <= got <= max(prior, observed) + 1e-9


@given(prior=rates, prior_h=st.floats(1, 1e3))
def test_blend_is_the_prior_without_hours(prior: float, prior_h: float) -> None:
    assert learning.blend(prior, 0, 0, prior_h) == pytest.approx(prior)


@given(prior=rates, observed=st.floats(0, 1), prior_h=st.floats(1, 1e3))
def test_blend_tends_to_the_observed_rate(prior: float, observed: float, prior_h: float) -> None:
    errors = [abs(learning.blend(prior, h, observed * h, prior_h) - observed) for h in (1e2, 1e4, 1e6, 1e8)]
    assert all(later <= earlier + 1e-12 for earlier, later in itertools.pairwise(errors))
    assert errors[-1] < 1e-5


# -- learning: applied to placement ------------------------------------------------------------------
@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def test_a_learnt_high_interruption_rate_flips_a_workload_from_spot_to_on_demand(ledger: Ledger) -> None:
    cfg = config()
    yaml = train(checkpoint_minutes="600")
    before = decide(cfg, yaml, run.learn(prepared(cfg), ledger, cfg.launch))[0]
    assert isinstance(before, Placed) and before.main.market == "spot"
    with ledger.engine.begin() as c:  # what sync records: 400 spot hours on p4d in us-east-1, 200 preemptions
        _add_run(c, RunHours("aws", "us-east-1", "p4d", 400.0, 200))
    learnt = run.learn(prepared(cfg), ledger, cfg.launch)
    rate = learnt.filter((pl.col("market") == "spot") & (pl.col("provider") == "aws"))["interruption_rate"].item()
    assert rate == pytest.approx(learning.blend(0.001, 400, 200, cfg.launch.interruption_prior_hours))
    after = decide(cfg, yaml, learnt)[0]
    assert isinstance(after, Placed) and after.main.market == "on_demand"
    assert after.main.interruption_rate == 0.0


def test_a_learnt_cost_correction_flips_the_choice_between_two_targets(ledger: Ledger) -> None:
    cfg = config(TARGETS)
    yaml = train("sm, eks")
    assert decide(cfg, yaml, run.learn(prepared(cfg), ledger, cfg.launch))[0].main.target == "eks"
    # our Kubernetes runs were billed twice what was predicted (the cluster's overhead): × 1.5 after clamping
    ledger.save_corrections([Correction("aws", "kubernetes", "p4d", 100.0, 200.0, 12, 2.0),
                             Correction("aws", "sagemaker", "p4d", 100.0, 90.0, 3, 0.9)])
    cfg = config("[launch]\ncorrection_bounds = [0.5, 1.5]\n" + TARGETS)
    off = run.learn(prepared(cfg), ledger, cfg.launch)
    specs = list(enumerate(loads(yaml), start=1))
    p = plan(specs, off, targets={1: ["sm", "eks"]}, now=NOW)
    d = p.decisions[0]
    assert isinstance(d, Placed) and (d.main.target, d.main.market) == ("sm", "spot")
    assert p.notes[1] == "cost × 0.90 learnt from 3 billed workloads"
    eks = off.filter(pl.col("target") == "eks")["cost_factor"].unique().to_list()
    assert eks == [1.5]  # clamped to the configured bounds


def test_an_unknown_target_in_a_spec_leaves_that_workload_unplaced(tmp_path: Path) -> None:
    from finops.services.prices import import_catalog

    cfg = config('[placement]\nstale = "allow"\n', tmp_path)
    import_catalog(cfg)
    led = Ledger(cfg.ledger_url())
    led.add([(s, "test") for s in loads(train("nope") + "\n" + train().replace("name: t", "name: u"))])
    _, p = run.place(cfg, cfg.open_store(), led, dry_run=True)
    bad, good = p.decisions
    assert isinstance(bad, Unplaced) and "unknown target(s) 'nope'" in bad.reason
    assert isinstance(good, Placed) and good.main.target == "dry_run"


def test_a_store_written_before_the_service_column_still_places(tmp_path: Path) -> None:
    cfg = config('[placement]\nstale = "allow"\n', tmp_path)
    store = cfg.open_store()
    old = offers.frame(OFFERS[:2] + OFFERS[-1:]).drop("service")  # price history as finops wrote it before
    store.write("prices", old)
    store.write("offers", old)
    assert "service" not in store.scan("offers").collect_schema().names()
    led = Ledger(cfg.ledger_url())
    led.add([(s, "test") for s in loads(train())])
    _, p = run.place(cfg, store, led, dry_run=True, now=NOW)
    assert isinstance(p.decisions[0], Placed) and p.decisions[0].main.instance_type == "p4d.24xlarge"
    # a new observation adds the column; the old rows read as VM prices
    offers.record(store, offers.frame(OFFERS[2:3]))
    got = offers.latest_offers(store).collect()
    assert sorted(got["service"].to_list()) == ["compute", "compute", "compute", "sagemaker"]
