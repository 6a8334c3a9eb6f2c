"""Re-optimisation on a real store and ledger: a placed workload stays put while prices hold, and goes back
to the queue and onto the cheaper offer when a fresh price beats its plan by more than the margin."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from collectors.catalog import SNAPSHOT_DATE, read_catalog, snapshot_dir
from finops import config as config_mod
from finops import offers
from finops.services import queue, reoptimise
from finops.store import Store
from finops.workloads import loads


def test_a_cheaper_fresh_price_replaces_a_placed_workload(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    offers.record(store, read_catalog(snapshot_dir(), observed_at=SNAPSHOT_DATE))
    cfg = config_mod.parse({"store": {"url": str(tmp_path / "store")}, "prices": {"max_age_hours": 24 * 3650},
                            "scheduler": {"reoptimise_margin": 0.1}})
    spec = loads("{name: r1, team: t, accelerators: {name: A100, count: 8}, runtime_hours: 10, spot: never}")[0]
    led = queue.ledger(cfg)
    (wid,) = led.add([(spec, "q.yaml")])
    queue.place(cfg)
    (_, before), = led.launchable()
    leg = before.decision.legs[0]  # type: ignore[attr-defined]

    same = reoptimise.reoptimise(cfg)
    assert same.checked == 1 and same.requeued == []
    assert led.get(wid).state == "placed"

    latest = offers.latest_offers(store).collect()
    other = latest.filter((pl.col("accelerator_name") == leg.accelerator_name) & (pl.col("accelerator_count") == 8)
                          & (pl.col("market") == "on_demand")
                          & ~((pl.col("provider") == leg.provider) & (pl.col("region") == leg.region)
                              & (pl.col("instance_type") == leg.instance_type))).head(1)
    assert other.height == 1
    cheap = other.select(offers.SCHEMA.names()).with_columns(
        pl.lit(leg.price_per_hour * 0.5).alias("price_per_hour"),
        pl.lit(datetime.now(UTC)).cast(offers.SCHEMA["observed_at"]).alias("observed_at"))
    offers.record(store, cheap)

    moved = reoptimise.reoptimise(cfg)
    assert moved.requeued == [wid] and moved.run_id is not None
    w = led.get(wid)
    assert w.state == "placed"
    (_, after), = led.launchable()
    new = after.decision.legs[0]  # type: ignore[attr-defined]
    assert (new.provider, new.region, new.instance_type) == tuple(other.select("provider", "region",
                                                                               "instance_type").row(0))
    assert [t.new_state for t in led.history(wid)] == ["placed", "queued", "placed"]
