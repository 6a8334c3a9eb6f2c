"""Expected cost of each candidate (pure, over polars frames).

Per replica: ``expected_hours = base_hours × stretch`` on spot (:func:`stretch`: work since the last
checkpoint is redone after each interruption, plus the restart; ≈ ``1 + rate × (checkpoint / 2 +
restart)`` for short intervals, exponential in the interval for long ones), base hours on demand;
``cost = price × expected_hours + egress`` where egress moves the dataset from where it
lives to the offer's region. ``cost_factor`` (a learnt correction, billed over predicted for the
offer's provider, launch target kind and instance family; 1 without one — see :mod:`finops.learning`)
multiplies the compute and rework cost. A candidate whose expected hours overrun the deadline is kept with
``deadline_ok = false`` (so an unplaced workload can say "deadline"). Unused commitments add candidates
at zero marginal compute cost, each using hours of a commitment pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class EgressRates:
    """USD per GB: ``internet`` out of each provider, ``inter_region`` within one, ``pairs`` overriding
    both for (source, destination) written ``provider`` or ``provider:region``."""

    internet: Mapping[str, float] = field(default_factory=lambda: {"aws": 0.09, "gcp": 0.12, "azure": 0.087})
    inter_region: Mapping[str, float] = field(default_factory=lambda: {"aws": 0.02, "gcp": 0.02, "azure": 0.02})
    pairs: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def rate(self, src_provider: str, src_region: str, dst_provider: str, dst_region: str) -> float:
        for key in ((f"{src_provider}:{src_region}", f"{dst_provider}:{dst_region}"),
                    (f"{src_provider}:{src_region}", dst_provider), (src_provider, f"{dst_provider}:{dst_region}"),
                    (src_provider, dst_provider)):
            if key in self.pairs:
                return self.pairs[key]
        if (src_provider, src_region) == (dst_provider, dst_region):
            return 0.0
        if src_provider == dst_provider:
            return self.inter_region.get(src_provider, 0.02)
        return self.internet.get(src_provider, 0.09)


def egress_table(specs: pl.DataFrame, offers: pl.DataFrame, egress: EgressRates) -> pl.DataFrame:
    """USD per GB from each dataset location in ``specs`` to each offer region (a small table)."""
    src = specs.filter(pl.col("ds_id").is_not_null()).select("ds_id", "ds_provider", "ds_region").unique()
    dst = offers.select("place", "provider", "region").unique()
    pairs = src.join(dst, how="cross")
    rates = [egress.rate(sp, sr, p, r)
             for sp, sr, p, r in pairs.select("ds_provider", "ds_region", "provider", "region").iter_rows()]
    return pairs.select("ds_id", "place", pl.Series("egress_per_gb", rates, dtype=pl.Float64))


def stretch(rate: pl.Expr, checkpoint_hours: pl.Expr, restart_hours: float) -> pl.Expr:
    """Expected wall hours per hour of work on spot, for interruptions arriving at ``rate`` per hour
    (a Poisson process), work saved every ``checkpoint_hours`` (0: nothing to lose, as a stateless
    replica; the whole run: no checkpoints) and ``restart_hours`` lost at each interruption.

    A segment of c hours of work is retried from its start until it runs c hours uninterrupted; its
    expected wall time is ``(1/λ + r)(e^{λc} - 1)`` (the classic restart-from-checkpoint result), so the
    stretch is that over c. For small λc this is ``1 + λ(c/2 + r)`` — the old linear rule — but a long
    job without checkpoints grows exponentially with its length, which is what makes on-demand win.
    λ → 0 gives 1; c → 0 gives ``1 + λr``."""
    lam = pl.max_horizontal(rate, pl.lit(1e-12))
    c = checkpoint_hours.fill_null(0.0)
    exact = (1 / lam + restart_hours) * ((lam * c).exp() - 1) / c
    return (pl.when(rate <= 0).then(1.0)
            .when(c <= 1e-9).then(1 + rate * restart_hours)
            .when(lam * c < 1e-6).then(1 + rate * (c / 2 + restart_hours))  # the series, where exp() loses digits
            .otherwise(exact))


def cost(cands: pl.LazyFrame, egress_per_gb: pl.DataFrame, *, restart_hours: float = 1 / 6) -> pl.LazyFrame:
    """``cands`` (with the spec's cost inputs) plus expected_hours, compute_cost, rework_cost,
    egress_cost, cost (all per replica) and deadline_ok."""
    df = cands.join(egress_per_gb.lazy(), on=["ds_id", "place"], how="left", maintain_order="left")
    rework = pl.when(pl.col("market") == "spot").then(
        stretch(pl.col("interruption_rate").fill_null(0.0), pl.col("checkpoint_hours"), restart_hours) - 1
    ).otherwise(0.0)
    if "cost_factor" not in df.collect_schema().names():
        df = df.with_columns(pl.lit(1.0).alias("cost_factor"))
    price = pl.col("price_per_hour") * pl.col("cost_factor").fill_null(1.0)
    return (df.with_columns((pl.col("base_hours") * (1 + rework)).alias("expected_hours"),
                            (pl.col("ds_gb") * pl.col("egress_per_gb").fill_null(0.0)).alias("egress_cost"))
            .with_columns((price * pl.col("base_hours")).alias("compute_cost"),
                          (price * (pl.col("expected_hours") - pl.col("base_hours"))).alias("rework_cost"))
            .with_columns((pl.col("compute_cost") + pl.col("rework_cost") + pl.col("egress_cost")).alias("cost"),
                          (pl.col("deadline_hours").is_null()
                           | (pl.col("expected_hours") <= pl.col("deadline_hours"))).alias("deadline_ok"))
            .drop("base_hours", "checkpoint_hours", "ds_id", "ds_gb", "deadline_hours", "egress_per_gb", "place",
                  "cost_factor"))


def with_commitments(cands: pl.DataFrame, pools: pl.DataFrame, offers: pl.DataFrame) -> pl.DataFrame:
    """``cands`` plus, for each on-demand candidate on an instance type with an unused commitment pool
    (``pool``, provider, region, instance_type, hours), the same offer at zero compute cost using
    ``expected_hours`` of the pool (market ``commitment``). Other rows get a null ``pool``."""
    base = cands.with_columns(pl.lit(None, pl.String).alias("pool"))
    if pools.is_empty():
        return base
    # Reservations, savings plans and committed-use discounts cover VMs, not managed services' own prices.
    vm = pl.col("service") == "compute" if "service" in offers.columns else pl.lit(True)
    oids = (offers.filter((pl.col("market") == "on_demand") & vm)
            .join(pools.select("pool", "provider", "region", "instance_type"),
                  on=["provider", "region", "instance_type"])
            .select("oid", "pool"))
    committed = (cands.join(oids, on="oid", how="inner")
                 .with_columns(pl.lit("commitment").alias("market"), pl.lit(0.0).alias("price_per_hour"),
                               pl.lit(0.0).alias("compute_cost"), pl.lit(0.0).alias("rework_cost"))
                 .with_columns(pl.col("egress_cost").alias("cost")))
    return pl.concat([base, committed.select(base.columns)])


def with_learnt_rates(offers: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
    """``offers`` with the spot ``interruption_rate`` replaced where ``rates`` (provider, region,
    instance_type, interruption_rate — learnt, see :func:`finops.learning.blend`) has one."""
    if rates.is_empty():
        return offers
    learnt = rates.select("provider", "region", "instance_type", pl.col("interruption_rate").alias("_learnt"))
    return (offers.join(learnt, on=["provider", "region", "instance_type"], how="left", maintain_order="left")
            .with_columns(pl.when((pl.col("market") == "spot") & pl.col("_learnt").is_not_null())
                          .then(pl.col("_learnt")).otherwise(pl.col("interruption_rate")).alias("interruption_rate"))
            .drop("_learnt"))


def with_corrections(offers: pl.DataFrame, factors: pl.DataFrame) -> pl.DataFrame:
    """``offers`` (with ``target_kind``) with ``cost_factor`` and ``cost_note`` from ``factors``
    (provider, target_kind, instance_type, factor, note — already clamped); 1 and null elsewhere."""
    if factors.is_empty():
        return offers
    f = factors.select("provider", "target_kind", "instance_type", pl.col("factor").alias("_f"),
                       pl.col("note").alias("_n"))
    return (offers.join(f, on=["provider", "target_kind", "instance_type"], how="left", maintain_order="left")
            .with_columns(pl.col("_f").fill_null(1.0).alias("cost_factor"), pl.col("_n").alias("cost_note"))
            .drop("_f", "_n"))
