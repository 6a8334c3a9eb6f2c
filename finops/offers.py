"""The offer contract: one row per purchasable unit of capacity at a time, from any provider.

Every price observation is kept in the store's ``prices`` dataset (appended, never rewritten);
:func:`latest_offers` gives the newest price per offer, flagging stale ones. Accelerators have one
naming across providers (:func:`canonical_accelerator`): ``A100-40GB`` and ``A100-80GB``, ``H100``,
``L4``, ``T4``, ``TPU-v5e`` … with the count in chips.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl

Market = Literal["on_demand", "spot"]
MARKETS: tuple[str, ...] = ("on_demand", "spot")

SCHEMA = pl.Schema({
    "provider": pl.String(),            # aws | gcp | azure
    "region": pl.String(),
    "zone": pl.String(),                # null where the price is regional
    "instance_type": pl.String(),
    "accelerator_name": pl.String(),    # canonical (see ACCELERATORS); null for CPU-only offers
    "accelerator_count": pl.Float64(),  # chips; a share of one GPU is a fraction (Azure NVads A10 v5: 1/6)
    "accelerator_memory_gb": pl.Float64(),  # per whole accelerator: a 1/6 share of an A10 still says 24
    "vcpus": pl.Float64(),
    "memory_gb": pl.Float64(),          # as the provider sizes it (GiB on GCP and Azure)
    "market": pl.String(),              # on_demand | spot
    "price_per_hour": pl.Float64(),     # in `currency`
    "currency": pl.String(),
    "observed_at": pl.Datetime("us", "UTC"),
    "source": pl.String(),              # e.g. aws:pricing.get_products, catalog:skypilot
    "sku": pl.String(),                 # the provider's SKU or meter id, where there is one
    "interruption_rate": pl.Float64(),  # expected interruptions per hour (spot), 0 on demand
    "flag": pl.String(),                # why a row is doubtful (unknown instance type, …); null if fine
    "service": pl.String(),             # the price list: compute | sagemaker | sagemaker-hosting | vertex
})
KEY = ("provider", "region", "zone", "instance_type", "market", "service")
"""What identifies an offer across observations."""
COMPUTE = "compute"
SERVICES: dict[str, tuple[str, str | None]] = {
    COMPUTE: (COMPUTE, None),
    "sagemaker": ("sagemaker", "train"),
    "sagemaker-hosting": ("sagemaker", "serve"),
    "vertex": ("vertex", None),
}
"""Each ``service`` an offer is priced by → (the price list a launch target bills at — the registry's
``Target.service`` —, the workload kind it prices, None: any). ``compute`` is the VM price (EC2, Compute
Engine, Azure VMs — Azure ML compute clusters too: Azure bills them as the VMs they run on, so Azure ML
has no price list of its own). SageMaker bills training jobs (``sagemaker``, the "Training" component)
and real-time endpoints (``sagemaker-hosting``, "Hosting") at separate prices. Vertex AI's prices
(``vertex``) are those of custom training; they are also used for serving on Vertex AI, whose online
prediction node prices are not collected (see the README). Price history written before this column
existed has it null: read as ``compute``, which it was."""
FLAG_UNKNOWN_ACCELERATOR = "unknown accelerator"
FLAG_UNKNOWN_INSTANCE_TYPE = "unknown instance type"
FLAG_NO_GPU_PRICE = "GPU machine without a GPU price"
"""A GPU machine whose GPUs have no price in its zone: the VM alone would be priced without them."""
FLAG_FRACTION = "fractional accelerator count without a size entry"
"""A share of a GPU we cannot size (its memory share unknown): never matched as a whole GPU."""
FLAG_SPOT_ABOVE_ON_DEMAND = "spot price above on-demand"
FLAG_SPOT_PLACEHOLDER = "spot price exactly 10% of on-demand (a catalog placeholder)"
"""Flags set on rows that are kept but left out of placement (``flag`` not null)."""


class OfferError(ValueError):
    """Offers that break the contract: names the provider, region and SKU or instance type."""


# -- accelerators ----------------------------------------------------------------------------------
ACCELERATORS: dict[str, float] = {
    # NVIDIA
    "A100-40GB": 40, "A100-80GB": 80, "H100": 80, "H100-NVL": 94, "H200": 141, "B200": 180, "GB200": 186, "L4": 24,
    "L40S": 48, "L40": 48, "A10G": 24, "A10": 24, "T4": 16, "V100-16GB": 16, "V100-32GB": 32,
    "P100": 16, "P4": 8, "K80": 12, "M60": 8, "A40": 48, "RTX6000-Ada": 48,
    # AMD, AWS silicon
    "MI300X": 192, "MI25": 16, "V620": 32, "V710": 28, "Inferentia2": 32, "Trainium": 32, "Trainium2": 96,
    # Google TPUs, memory per chip
    "TPU-v2": 8, "TPU-v3": 16, "TPU-v4": 32, "TPU-v5e": 16, "TPU-v5p": 95, "TPU-v6e": 32,
}
_ALIASES: dict[str, str] = {
    "A100": "A100-40GB", "A100-SXM4-40GB": "A100-40GB", "A100-80GB-SXM": "A100-80GB",
    "A100-SXM4-80GB": "A100-80GB", "H100-MEGA": "H100", "H100-SXM": "H100", "H100-NVLINK": "H100",
    "H100-80GB": "H100", "RADEON-PRO-V620": "V620", "RADEON-PRO-V710": "V710", "H200-SXM": "H200", "V100": "V100-16GB",
    "V100-SXM2-16GB": "V100-16GB", "V100-SXM2-32GB": "V100-32GB", "RADEON-MI25": "MI25",
    "INSTINCT-MI300X": "MI300X", "TESLA-T4": "T4", "TESLA-V100": "V100-16GB", "TESLA-P100": "P100",
    "TESLA-P4": "P4", "TESLA-K80": "K80", "TESLA-M60": "M60", "NVIDIA-L4": "L4",
    "TPU-V5LITEPOD": "TPU-v5e", "TPU-V5-LITE": "TPU-v5e", "TPU-V5LITE": "TPU-v5e", "TPU-V5E": "TPU-v5e",
    "TPU-V5P": "TPU-v5p", "TPU-V6E": "TPU-v6e", "TPU-V4": "TPU-v4", "TPU-V3": "TPU-v3", "TPU-V2": "TPU-v2",
}
_BY_UPPER = {k.upper(): k for k in ACCELERATORS} | {k.upper(): v for k, v in _ALIASES.items()}


def canonical_accelerator(name: str | None, memory_gb: float | None = None) -> str | None:
    """One name across providers: ``"NVIDIA A100-SXM4-80GB"`` → ``A100-80GB``; ``"A100"`` with 80 GB
    → ``A100-80GB``; ``"tpu-v5litepod-8"`` → ``TPU-v5e``. Unknown names come back as given (trimmed),
    for the caller to flag rather than guess."""
    if name is None or not name.strip():
        return None
    raw = name.strip()
    key = re.sub(r"^(NVIDIA|AMD|TESLA)[\s_-]+", "", raw.upper().replace(" ", "-"))
    key = re.sub(r"-(\d+)$", "", key) if key.startswith("TPU") else key  # slice size: tpu-v5e-8
    canon = _BY_UPPER.get(key) or _BY_UPPER.get(f"TESLA-{key}")
    if canon is None:
        return raw
    if memory_gb and canon in ("A100-40GB", "V100-16GB") and memory_gb > ACCELERATORS[canon] * 1.5:
        canon = {"A100-40GB": "A100-80GB", "V100-16GB": "V100-32GB"}[canon]
    return canon


def accelerator_family(name: str) -> list[str]:
    """Canonical names a request means: ``A100`` → both A100s, ``A100-80GB`` → itself."""
    up = name.strip().upper()
    family = [n for n in ACCELERATORS if n.upper() == up or n.upper().startswith(f"{up}-")]
    return family or [canonical_accelerator(name) or name]


def tpu_chips(slice_name: str) -> int | None:
    """Chips in a TPU slice name: ``tpu-v5litepod-8`` → 8; ``tpu-v3-32`` (cores) → 16."""
    m = re.search(r"tpu-(v\d+\w*?)-(\d+)$", slice_name.lower())
    if not m:
        return None
    version, n = m.group(1), int(m.group(2))
    # v2, v3 and v4/v5p name slices by TensorCores (two per chip); v5e and v6e by chips.
    return n // 2 if version in ("v2", "v3", "v4", "v5p") else n


# -- interruption risk -----------------------------------------------------------------------------
HOURS_PER_MONTH = 730.0
# Every figure here is a *monthly share*: the probability that a spot instance running through a month
# is interrupted in it. A share f becomes an hourly hazard λ = -ln(1 - f) / 730 (a constant hazard over
# the month gives exactly f), not f / 730, which understates it badly for large f.
#
# AWS publishes, per instance type and region, Spot Advisor's "frequency of interruption" band over the
# trailing month (<5%, 5-10%, 10-15%, 15-20%, >20%). We take the band's *upper* edge (a band says no
# more than that; its midpoint would be a guess in our favour) and 30% for the open ">20%" band, where
# the GPU training families sit.
AWS_BAND_UPPER = {"<5%": 0.05, "5-10%": 0.10, "10-15%": 0.15, "15-20%": 0.20, ">20%": 0.30}
AWS_FAMILY_BAND = {"p5": ">20%", "p5e": ">20%", "p5en": ">20%", "p4d": ">20%", "p4de": ">20%", "p6-b200": ">20%",
                   "p3": "15-20%", "p3dn": "15-20%", "g6": "10-15%", "g6e": "10-15%", "trn1": "10-15%",
                   "g5": "5-10%", "g4dn": "5-10%", "inf2": "5-10%", "*": "10-15%"}


def monthly_from_daily(per_day: float) -> float:
    """The monthly share equivalent to a daily one at a constant hazard: 1 - (1 - d)^(730/24)."""
    return 1.0 - (1.0 - per_day) ** (HOURS_PER_MONTH / 24.0)


# GCP and Azure publish no per-family interruption rate. GCP's preemptible-VM documentation gives an
# observed average of 5-15% of instances preempted *per day* (seven-day average, per project), more for
# larger machines; Azure shows eviction-rate bands per size and region in its portal, with no API or
# per-family table. So per accelerator class, conservatively: the scarce flagship GPUs at the top of
# that range (15% a day), mid-size GPUs and TPUs 10%, small inference GPUs 5%; anything else 10%.
DAILY_BY_ACCELERATOR_CLASS: dict[str, float] = {
    **dict.fromkeys(("H100", "H100-NVL", "H200", "B200", "GB200", "A100-80GB", "MI300X"), 0.15),
    **dict.fromkeys(("A100-40GB", "L40S", "L40", "A40", "RTX6000-Ada", "V100-16GB", "V100-32GB", "TPU-v2", "TPU-v3",
                     "TPU-v4", "TPU-v5e", "TPU-v5p", "TPU-v6e"), 0.10),
    **dict.fromkeys(("T4", "L4", "A10", "A10G", "P4", "P100", "K80", "M60", "MI25", "V620", "V710"), 0.05),
    "*": 0.10,
}
_BY_CLASS = {k: monthly_from_daily(v) for k, v in DAILY_BY_ACCELERATOR_CLASS.items()}
DEFAULT_MONTHLY_INTERRUPTION: dict[str, dict[str, float]] = {
    "aws": {family: AWS_BAND_UPPER[band] for family, band in AWS_FAMILY_BAND.items()},
    "azure": dict(_BY_CLASS),
    "gcp": dict(_BY_CLASS),
}
"""Monthly share interrupted, per provider, keyed by instance family, canonical accelerator name or
``"*"`` (looked up in that order); ``[prices.interruption]`` overrides any key."""


def interruption_table(overrides: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, dict[str, float]]:
    """The defaults with per-provider ``overrides`` (from ``[prices.interruption]``) laid over them."""
    over = overrides or {}
    return {p: {**DEFAULT_MONTHLY_INTERRUPTION.get(p, {}), **over.get(p, {})}
            for p in set(DEFAULT_MONTHLY_INTERRUPTION) | set(over)}


def with_interruption(df: pl.DataFrame, overrides: Mapping[str, Mapping[str, float]] | None = None) -> pl.DataFrame:
    """``df`` with ``interruption_rate`` set from the defaults and ``overrides`` (``[prices.interruption]``)."""
    table = interruption_table(overrides)
    accs = df["accelerator_name"] if "accelerator_name" in df.columns else pl.Series([None] * df.height)
    rates = [interruption_rate(p, i, m, table, accelerator=a)
             for p, i, m, a in zip(df["provider"], df["instance_type"], df["market"], accs, strict=True)]
    return df.with_columns(pl.Series("interruption_rate", rates, dtype=pl.Float64))


def instance_family(provider: str, instance_type: str) -> str:
    """The family a provider's interruption figures are keyed by: ``p4d.24xlarge`` → ``p4d``."""
    if provider == "aws":
        return instance_type.split(".", 1)[0]
    if provider == "gcp":
        return instance_type.split("-", 1)[0]
    # Standard_NC24ads_A100_v4 → NCads_A100_v4: the series, without the size
    return re.sub(r"^(?:Standard_)?([A-Za-z]+)\d+", r"\1", instance_type)


def interruption_rate(provider: str, instance_type: str, market: str,
                      monthly: Mapping[str, Mapping[str, float]] | None = None, *,
                      accelerator: str | None = None) -> float:
    """Interruption hazard per hour: 0 on demand; on spot, ``-ln(1 - f) / 730`` where ``f`` is the monthly
    share interrupted for the instance family, else the accelerator, else ``"*"`` (``monthly``,
    defaulting to :data:`DEFAULT_MONTHLY_INTERRUPTION`)."""
    if market != "spot":
        return 0.0
    table = (monthly or DEFAULT_MONTHLY_INTERRUPTION).get(provider, {})
    share = table.get(instance_family(provider, instance_type))
    if share is None and accelerator:
        share = table.get(accelerator)
    share = table.get("*", 0.15) if share is None else share
    return hazard(share)


def hazard(monthly_share: float) -> float:
    """Hourly hazard of a monthly share interrupted (constant over the month); a share of 1 or more is
    capped just below (certain interruption has no finite hazard)."""
    return -math.log1p(-min(max(monthly_share, 0.0), 0.999999)) / HOURS_PER_MONTH


# -- frames ----------------------------------------------------------------------------------------
def frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Offers as a frame of :data:`SCHEMA` (absent fields null; ``service`` ``compute`` unless given),
    checked by :func:`check`."""
    df = pl.DataFrame([{k: r.get(k) for k in SCHEMA} for r in rows], schema=SCHEMA)
    df = with_service(df.lazy()).collect()
    check(df)
    return df


def with_service(lf: pl.LazyFrame) -> pl.LazyFrame:
    """``lf`` with ``service`` present and never null: rows written before the column existed (or by a
    collector that does not set it) are VM prices, ``compute``."""
    if "service" not in lf.collect_schema().names():
        return lf.with_columns(pl.lit(COMPUTE).alias("service"))
    return lf.with_columns(pl.col("service").fill_null(COMPUTE))


def check(df: pl.DataFrame) -> None:
    """Raise :class:`OfferError` for rows no optimizer should see: a price of zero or less, a market
    other than on_demand/spot, a missing provider, region or instance type."""
    bad_price = df.filter(pl.col("price_per_hour").is_null() | (pl.col("price_per_hour") <= 0))
    bad_market = df.filter(~pl.col("market").is_in(MARKETS))
    if "service" in df.columns:
        unknown = sorted(set(df["service"].drop_nulls().unique().to_list()) - set(SERVICES))
        if unknown:
            raise OfferError(f"offer(s) priced by an unknown service {', '.join(map(repr, unknown))} "
                             f"(expected one of {', '.join(SERVICES)})")
    missing = df.filter(pl.any_horizontal(pl.col(c).is_null() for c in ("provider", "region", "instance_type")))
    for rows, what in ((bad_price, "price of zero or less"), (bad_market, "market not on_demand or spot"),
                       (missing, "missing provider, region or instance type")):
        if rows.height:
            ex = rows.head(3).select("provider", "region", "instance_type", "sku", "price_per_hour", "market")
            where = "; ".join(f"{r['provider']} {r['region']} {r['instance_type']} (sku {r['sku']}): "
                              f"{r['market']} {r['price_per_hour']}" for r in ex.iter_rows(named=True))
            raise OfferError(f"{rows.height} offer(s) with a {what}: {where}")


def to_usd(df: pl.LazyFrame, rates: Mapping[str, float]) -> pl.LazyFrame:
    """Prices converted to USD with ``rates`` (currency → USD per unit); a currency without a rate
    is an error rather than a silent 1:1."""
    currencies = set(df.select(pl.col("currency").unique()).collect().to_series().to_list())
    missing = sorted(c for c in currencies - {"USD"} if c not in rates)
    if missing:
        raise OfferError(f"no exchange rate for {', '.join(missing)}; add it under [prices.rates] in finops.toml")
    rate = pl.lit(1.0)
    for cur, r in rates.items():
        rate = pl.when(pl.col("currency") == cur).then(pl.lit(float(r))).otherwise(rate)
    return df.with_columns((pl.col("price_per_hour") * rate).alias("price_per_hour"), pl.lit("USD").alias("currency"))


def latest(history: pl.LazyFrame, *, now: datetime | None = None, max_age: timedelta | None = None,
           exclude_stale: bool = False) -> pl.LazyFrame:
    """The newest observation of each offer (:data:`KEY`) in a price history, with ``stale`` true
    where it is older than ``max_age`` (never, without one)."""
    now = now or datetime.now(UTC)
    newest = with_service(history).sort("observed_at").group_by(list(KEY), maintain_order=True).last()
    stale = (pl.col("observed_at") < pl.lit(now - max_age)) if max_age else pl.lit(False)
    out = newest.with_columns(stale.alias("stale"))
    return out.filter(~pl.col("stale")) if exclude_stale else out


def record(store: Any, observations: pl.DataFrame) -> int:
    """Append ``observations`` (offer rows) to the price history and refresh the latest view of the
    providers they cover; returns the number of offers now known for those providers."""
    check(observations)
    observations = with_service(observations.lazy()).collect()
    touched = observations["provider"].unique().to_list()
    days = observations["observed_at"].dt.strftime("%Y-%m-%d").unique().to_list()
    seen = with_service(store.scan("prices", {"provider": touched, "date": days}, schema=SCHEMA)).select(
        *KEY, "observed_at")
    # Recording the same observations again (a catalog imported twice) adds nothing.
    new = observations.lazy().join(seen, on=[*KEY, "observed_at"], how="anti", nulls_equal=True).collect()
    if new.is_empty():
        return store.scan("offers", {"provider": touched}, schema=SCHEMA).select(pl.len()).collect().item()
    store.write("prices", new)
    known = with_service(store.scan("offers", {"provider": touched}, schema=SCHEMA)).select(list(SCHEMA))
    fresh = latest(pl.concat([known, new.lazy().select(list(SCHEMA))])).drop("stale").collect()
    store.write("offers", fresh)
    return fresh.height


def latest_offers(store: Any, *, now: datetime | None = None, max_age: timedelta | None = None,
                  exclude_stale: bool = False, rates: Mapping[str, float] | None = None) -> pl.LazyFrame:
    """The newest price of every offer, with ``stale`` where older than ``max_age``; prices in USD
    (``rates``: currency → USD) when ``rates`` is given."""
    lf = store.scan("offers", schema=SCHEMA)
    lf = latest(lf, now=now, max_age=max_age, exclude_stale=exclude_stale)
    return to_usd(lf, rates) if rates is not None else lf


SPOT_WINDOW = timedelta(days=7)
"""How far back a spot price's recent level and volatility are read from the price history."""


def spot_risk(latest_view: pl.LazyFrame, history: pl.LazyFrame, *, now: datetime,
              window: timedelta = SPOT_WINDOW) -> pl.LazyFrame:
    """``latest_view`` with each spot price costed at no less than its mean over the last ``window`` of
    ``history`` (``quoted_price`` keeps the latest quote; ``price_volatility`` is the window's
    coefficient of variation, null with fewer than two observations). A job runs for hours across the
    price's moves, so a dip below the recent level is not banked; a quote above it is taken as is.
    Both frames in the same currency."""
    recent = (history.filter((pl.col("market") == "spot") & (pl.col("observed_at") >= pl.lit(now - window))
                             & (pl.col("observed_at") <= pl.lit(now)))
              .group_by(list(KEY)).agg(pl.col("price_per_hour").mean().alias("_mean"),
                                       pl.col("price_per_hour").std().alias("_std")))
    spot = pl.col("market") == "spot"
    return (latest_view.join(recent, on=list(KEY), how="left", nulls_equal=True)
            .with_columns(pl.col("price_per_hour").alias("quoted_price"),
                          pl.when(spot & (pl.col("_mean") > pl.col("price_per_hour"))).then(pl.col("_mean"))
                          .otherwise(pl.col("price_per_hour")).alias("price_per_hour"),
                          (pl.col("_std") / pl.col("_mean")).alias("price_volatility"))
            .drop("_mean", "_std"))


def spot_history(store: Any, *, now: datetime, window: timedelta = SPOT_WINDOW,
                 rates: Mapping[str, float] | None = None) -> pl.LazyFrame:
    """The spot observations of the last ``window`` (only the days it spans are read), in USD when
    ``rates`` is given."""
    days = [(now - window + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(window.days + 2)]
    lf = with_service(store.scan("prices", {"date": days}, schema=SCHEMA)).filter(pl.col("market") == "spot")
    return to_usd(lf, rates) if rates is not None else lf


@dataclass(frozen=True)
class Query:
    """What ``finops prices show`` asks for."""

    accelerator: str | None = None
    count: float | None = None
    market: Market | None = None
    regions: Sequence[str] = ()
    providers: Sequence[str] = ()


def select(offers: pl.LazyFrame, q: Query) -> pl.LazyFrame:
    """Offers matching ``q``, cheapest first."""
    lf = offers
    if q.accelerator:
        lf = lf.filter(pl.col("accelerator_name").is_in(accelerator_family(q.accelerator)))
    if q.count is not None:
        lf = lf.filter(pl.col("accelerator_count") == q.count)
    if q.market:
        lf = lf.filter(pl.col("market") == q.market)
    if q.regions:
        lf = lf.filter(pl.col("region").is_in(list(q.regions)))
    if q.providers:
        lf = lf.filter(pl.col("provider").is_in(list(q.providers)))
    return lf.sort("price_per_hour")
