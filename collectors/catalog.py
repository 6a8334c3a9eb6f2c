"""Price catalogs in SkyPilot's CSV layout (``<cloud>/vms.csv``) as offer frames.

The same files feed SkyPilot and finops, so the two can be compared on equal prices. Layouts, per
cloud (see the catalog's own SOURCES.md):

- AWS: one row per instance type and availability-zone id; ``Price`` is on demand (the same in every
  zone of a region), ``SpotPrice`` per zone.
- GCP: VM rows (``InstanceType`` set; GPU hosts such as ``a2-highgpu-8g`` carry no accelerator), GPU
  rows (``InstanceType`` empty: the price of the GPU alone, added to a host VM's) and TPU rows
  (``tpu-…`` slices, no VM). ``700.0`` is SkyPilot's placeholder for an unavailable TPU slice.
- Azure: one row per instance type and region.

An empty price means no such offer. GCP GPU hosts are composed as GCP bills them: the VM's price plus
its GPUs' (``a2-highgpu-8g`` = the VM row + 8 × the A100 row of the same zone).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import polars as pl

from finops import offers

TPU_PLACEHOLDER_PRICE = 700.0
SNAPSHOT_DATE = datetime(2026, 4, 2, tzinfo=timezone.utc)
"""When the catalog snapshot shipped with finops was taken (the GCP and Azure files' commit date)."""

# GCP machine families that come with their GPUs: name pattern → (GPU row name, GPUs per machine).
GCP_GPU_HOSTS: dict[str, tuple[str, int]] = {
    **{f"a2-highgpu-{n}g": ("A100", n) for n in (1, 2, 4, 8)},
    "a2-megagpu-16g": ("A100", 16),
    **{f"a2-ultragpu-{n}g": ("A100-80GB", n) for n in (1, 2, 4, 8)},
    **{f"a3-highgpu-{n}g": ("H100", n) for n in (1, 2, 4, 8)},
    "a3-megagpu-8g": ("H100-MEGA", 8),
    "a3-ultragpu-8g": ("H200", 8),
    "a4-highgpu-8g": ("B200", 8),
    **{f"g2-standard-{v}": ("L4", n) for v, n in ((4, 1), (8, 1), (12, 1), (16, 1), (24, 2), (32, 1), (48, 4), (96, 8))},
}
# GPUs attached to general-purpose N1 hosts: n1-standard-8 fits every count (GCP's attach limits),
# the same host collectors.gcp.prices composes, so both sources key these offers alike.
GCP_N1_ATTACH: dict[int, str] = {1: "n1-standard-8", 2: "n1-standard-8", 4: "n1-standard-8", 8: "n1-standard-8"}
GCP_ATTACHABLE = ("T4", "V100", "P100", "P4")


def snapshot_dir() -> Path:
    """The trimmed catalog snapshot shipped in the package (accelerator rows of the three clouds)."""
    return Path(str(resources.files("collectors").joinpath("data/catalog")))


def read_catalog(directory: Path, *, observed_at: datetime | None = None,
                 providers: Sequence[str] = ("aws", "gcp", "azure"),
                 interruption: Mapping[str, Mapping[str, float]] | None = None) -> pl.DataFrame:
    """Offers from ``directory/<cloud>/vms.csv`` for each cloud present. ``observed_at`` defaults to
    each file's modification time; ``interruption`` overrides the monthly spot interruption defaults."""
    frames = []
    for provider in providers:
        path = Path(directory) / provider / "vms.csv"
        if not path.exists():
            continue
        when = observed_at or datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        raw = pl.read_csv(path, infer_schema=False)
        frames.append(READERS[provider](raw, when))
    if not frames:
        raise offers.OfferError(f"{directory}: no <cloud>/vms.csv catalog for {', '.join(providers)}")
    return _finish(pl.concat(frames, how="diagonal_relaxed"), interruption)


def _num(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Float64, strict=False)


def _gpu_memory_gb(col: str = "GpuInfo") -> pl.Expr:
    # GpuInfo is a Python-dict string; the per-GPU size sits in Gpus[0].MemoryInfo.SizeInMiB.
    def size(text: str | None) -> float | None:
        if not text:
            return None
        try:
            info = ast.literal_eval(text)
            return info["Gpus"][0]["MemoryInfo"]["SizeInMiB"] / 1024
        except (ValueError, SyntaxError, KeyError, IndexError, TypeError):
            return None
    return pl.col(col).map_elements(size, return_dtype=pl.Float64, skip_nulls=True)


def _markets(df: pl.DataFrame, on_demand_zone: pl.Expr) -> pl.DataFrame:
    """One row per market from a frame with ``Price`` and ``SpotPrice``; empty prices dropped."""
    od = df.with_columns(pl.lit("on_demand").alias("market"), _num("Price").alias("price_per_hour"),
                         on_demand_zone.alias("zone"))
    spot = df.with_columns(pl.lit("spot").alias("market"), _num("SpotPrice").alias("price_per_hour"))
    return pl.concat([od, spot], how="diagonal_relaxed").filter(pl.col("price_per_hour").is_not_null())


def _aws(raw: pl.DataFrame, when: datetime) -> pl.DataFrame:
    df = raw.with_columns(pl.col("AvailabilityZone").alias("zone"), _gpu_memory_gb().alias("gpu_mem"))
    out = _markets(df, pl.lit(None, pl.String))
    # On-demand is regional: one row per region, not per zone.
    out = out.unique(subset=["InstanceType", "Region", "zone", "market"], keep="first", maintain_order=True)
    return _offer_columns(out, "aws", when, "catalog:skypilot-aws")


def _azure(raw: pl.DataFrame, when: datetime) -> pl.DataFrame:
    from collectors.azure.prices import VM_SHAPES

    # Where Microsoft's size pages say more than the catalog (H100 NVL, not H100), they win, so the
    # catalog and the Retail Prices collector name the same size the same way.
    known = {size: shape.accelerator for size, shape in VM_SHAPES.items()}
    df = raw.with_columns(
        pl.col("InstanceType").replace_strict(known, default=pl.col("AcceleratorName"), return_dtype=pl.String)
        .alias("AcceleratorName"),
        pl.lit(None, pl.String).alias("zone"), _gpu_memory_gb().alias("gpu_mem"))
    return _offer_columns(_markets(df, pl.lit(None, pl.String)), "azure", when, "catalog:skypilot-azure")


def _gcp(raw: pl.DataFrame, when: datetime) -> pl.DataFrame:
    vms = raw.filter(pl.col("InstanceType").is_not_null() & pl.col("AcceleratorName").is_null())
    accel = raw.filter(pl.col("InstanceType").is_null())  # priced alone: GPUs to attach, TPU slices
    tpus = accel.filter(pl.col("AcceleratorName").str.starts_with("tpu-"))
    gpus = accel.filter(~pl.col("AcceleratorName").str.starts_with("tpu-"))
    hosts = _gcp_hosts(vms, gpus)
    plain = vms.filter(~pl.col("InstanceType").is_in(list(GCP_GPU_HOSTS)))
    tpu = (tpus.with_columns(
        pl.col("AcceleratorName").alias("InstanceType"),
        pl.col("AcceleratorName").map_elements(offers.tpu_chips, return_dtype=pl.Int64).cast(pl.String)
        .alias("AcceleratorCount"))
        .with_columns(pl.when(_num("Price") == TPU_PLACEHOLDER_PRICE).then(None).otherwise(pl.col("Price")).alias("Price"),
                      pl.when(_num("SpotPrice") == TPU_PLACEHOLDER_PRICE).then(None).otherwise(pl.col("SpotPrice"))
                      .alias("SpotPrice")))
    df = pl.concat([plain, hosts, tpu], how="diagonal_relaxed").with_columns(
        pl.col("AvailabilityZone").alias("zone"), pl.lit(None, pl.Float64).alias("gpu_mem"))
    return _offer_columns(_markets(df, pl.col("AvailabilityZone")), "gcp", when, "catalog:skypilot-gcp")


def _gcp_hosts(vms: pl.DataFrame, gpus: pl.DataFrame) -> pl.DataFrame:
    """GPU machines priced as GCP bills them: the VM plus count × the GPU, zone by zone."""
    shapes = pl.DataFrame(
        [(h, g, n) for h, (g, n) in GCP_GPU_HOSTS.items()]
        + [(GCP_N1_ATTACH[n], g, n) for g in GCP_ATTACHABLE for n in GCP_N1_ATTACH if not (g != "V100" and n == 8)],
        schema={"InstanceType": pl.String, "gpu": pl.String, "count": pl.Int64}, orient="row")
    gpu_prices = gpus.select(pl.col("AcceleratorName").alias("gpu"), "AvailabilityZone",
                             _num("Price").alias("gpu_price"), _num("SpotPrice").alias("gpu_spot")).unique(
        subset=["gpu", "AvailabilityZone"], keep="first")
    joined = (vms.join(shapes, on="InstanceType").join(gpu_prices, on=["gpu", "AvailabilityZone"]))
    return joined.with_columns(
        (_num("Price") + pl.col("count") * pl.col("gpu_price")).cast(pl.String).alias("Price"),
        (_num("SpotPrice") + pl.col("count") * pl.col("gpu_spot")).cast(pl.String).alias("SpotPrice"),
        pl.col("gpu").alias("AcceleratorName"), pl.col("count").cast(pl.String).alias("AcceleratorCount"),
        # an N1 host with GPUs attached is named for both, as it is launched
        pl.when(pl.col("InstanceType").str.starts_with("n1-"))
        .then(pl.concat_str(pl.col("InstanceType"), pl.lit("+"), pl.col("gpu"), pl.lit("x"), pl.col("count").cast(pl.String)))
        .otherwise(pl.col("InstanceType")).alias("InstanceType"),
    ).drop("gpu", "count", "gpu_price", "gpu_spot")


def _offer_columns(df: pl.DataFrame, provider: str, when: datetime, source: str) -> pl.DataFrame:
    names = df["AcceleratorName"].to_list()
    mems = df["gpu_mem"].to_list()
    canon = [offers.canonical_accelerator(n, m) for n, m in zip(names, mems)]
    out = df.select(
        pl.lit(provider).alias("provider"),
        pl.col("Region").alias("region"),
        pl.col("zone").cast(pl.String),
        pl.col("InstanceType").alias("instance_type"),
        pl.Series("accelerator_name", canon, dtype=pl.String),
        _num("AcceleratorCount").alias("accelerator_count"),
        _num("vCPUs").alias("vcpus"),
        _num("MemoryGiB").alias("memory_gb"),
        pl.col("market"),
        pl.col("price_per_hour"),
        pl.lit("USD").alias("currency"),
        pl.lit(when).cast(pl.Datetime("us", "UTC")).alias("observed_at"),
        pl.lit(source).alias("source"),
    )
    return out


def _finish(df: pl.DataFrame, interruption: Mapping[str, Mapping[str, float]] | None) -> pl.DataFrame:
    """Fill the derived columns (per-chip memory, interruption rate, flags) and check the contract."""
    mem = pl.col("accelerator_name").replace_strict(offers.ACCELERATORS, default=None, return_dtype=pl.Float64)
    unknown = pl.col("accelerator_name").is_not_null() & ~pl.col("accelerator_name").is_in(list(offers.ACCELERATORS))
    df = offers.with_interruption(df, interruption).with_columns(
        mem.alias("accelerator_memory_gb"),
        pl.when(unknown).then(pl.lit(offers.FLAG_UNKNOWN_ACCELERATOR)).otherwise(None).alias("flag"),
        pl.lit(None, pl.String).alias("sku"),
    ).filter(pl.col("price_per_hour") > 0)
    # The GCP file repeats some TPU rows word for word: one observation per offer.
    df = df.select(list(offers.SCHEMA)).unique(subset=list(offers.KEY), keep="first", maintain_order=True)
    offers.check(df)
    return df


READERS = {"aws": _aws, "gcp": _gcp, "azure": _azure}
