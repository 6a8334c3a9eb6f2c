"""Property: whatever the queue and the limits, no decision breaks a workload's needs or a shared limit,
and every workload left out says why (the whole pipeline, on the small offer table)."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops import regions
from finops.workloads import WorkloadSpec
from placement.plan import Limits, plan
from tests.placement.test_candidates_costing import NOW, OFFERS, prepared

ACCS = [{"name": "H100", "count": 8}, {"name": "A100"}, {"min_memory_gb": 40}, {"any_of": ["L4", "A10"]},
        {"name": "T4"}]
OFFER = {(o["provider"], o["region"], o["instance_type"]): o for o in OFFERS}


@st.composite
def queues(draw: st.DrawFn) -> tuple[list[tuple[int, WorkloadSpec]], Limits]:
    specs = []
    for i in range(draw(st.integers(1, 6))):
        serve = draw(st.booleans())
        d: dict = {"name": f"w{i}", "team": draw(st.sampled_from(["a", "b"])),
                   "accelerators": draw(st.sampled_from(ACCS)),
                   "spot": draw(st.sampled_from(["never", "allowed", "required"])),
                   "priority": draw(st.integers(1, 9))}
        if serve:
            replicas = draw(st.integers(1, 3))
            d |= {"kind": "serve", "hours_per_week": draw(st.sampled_from([10, 40, 168])), "replicas": replicas,
                  "spread": draw(st.integers(1, min(2, replicas)))}
        else:
            d |= {"runtime_hours": draw(st.sampled_from([1, 10, 100])), "checkpoint_minutes": 30}
        if draw(st.booleans()):
            d["residency"] = [draw(st.sampled_from(["EU", "US", "EUROPE"]))]
        if draw(st.booleans()):
            d["providers"] = draw(st.lists(st.sampled_from(["aws", "gcp", "azure"]),
                                           min_size=1, max_size=3, unique=True))
        if draw(st.booleans()):
            d["min_vcpus"] = draw(st.sampled_from([8, 24, 64]))
        try:
            specs.append((i, WorkloadSpec.model_validate(d)))
        except ValueError:
            continue  # e.g. spread on fewer providers than asked: refused at load time
    cap = [(p, "*", a, float(draw(st.integers(0, 16)))) for p, a in
           draw(st.sets(st.sampled_from([("aws", "H100"), ("gcp", "H100"), ("azure", "A100-80GB")])))]
    budgets = {t: float(draw(st.integers(0, 3000))) for t in draw(st.sets(st.sampled_from(["a", "b"])))}
    return specs, Limits(capacity=cap, budgets=budgets)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queues())
def test_decisions_respect_needs_and_limits(q: tuple) -> None:
    specs, limits = q
    p = plan(specs, prepared(), limits, now=NOW)
    by_id = dict(specs)
    spent: dict[str, float] = defaultdict(float)
    used: dict[tuple[str, str], float] = defaultdict(float)
    assert len(p.decisions) == len(specs)
    for d in p.decisions:
        s = by_id[d.workload_id]
        if not d.placed:
            assert d.reason
            continue
        spent[s.team] += d.expected_cost
        assert sum(leg.replicas for leg in d.legs) == s.replicas
        assert len({leg.provider for leg in d.legs}) >= s.spread
        for leg in d.legs:
            o = OFFER[(leg.provider, leg.region, leg.instance_type)]
            assert leg.accelerator_name in s.accelerators.names()
            assert leg.accelerator_count == s.accelerators.count
            assert leg.market in s.markets()
            assert o["vcpus"] >= s.min_vcpus
            assert not s.providers or leg.provider in s.providers
            assert not s.residency or regions.jurisdiction(leg.provider, leg.region) in regions.expand(s.residency)
            used[(leg.provider, leg.accelerator_name)] += leg.accelerator_count * leg.replicas
    for team, left in limits.budgets.items():
        assert spent[team] <= left + 1e-6
    for prov, _, acc, cap in limits.capacity:
        assert used[(prov, acc)] <= cap + 1e-9
