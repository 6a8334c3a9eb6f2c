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
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import polars as pl

from collectors.azure.prices import VM_SHAPES
from finops import offers

TPU_PLACEHOLDER_PRICE = 700.0
SNAPSHOT_DATE = datetime(2026, 4, 2, tzinfo=UTC)
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
    **{f"g2-standard-{v}": ("L4", n)
       for v, n in ((4, 1), (8, 1), (12, 1), (16, 1), (24, 2), (32, 1), (48, 4), (96, 8))},
    # A3 Edge (H100 80 GB in edge zones) and the variants without local SSD: the same GPUs, priced alike.
    "a3-edgegpu-8g": ("H100", 8), "a3-edgegpu-8g-nolssd": ("H100", 8), "a3-ultragpu-8g-nolssd": ("H200", 8),
}
GCP_GPU_FAMILY = re.compile(r"^(a2|a3|a4|a4x|g2|g4)-")
"""Machine families that always come with GPUs: a VM row of one of these that is not in
:data:`GCP_GPU_HOSTS` is kept flagged (unknown instance type), never priced without its GPUs."""
# GPUs attached to general-purpose N1 hosts. collectors.gcp.prices composes n1-standard-8 only; the
# catalog has every N1 size, so each host that may carry the GPUs is offered (named like
# ``n1-highmem-4+T4x1``) and the spec's vCPU / memory floors choose among them.
GCP_N1_ATTACH: dict[int, str] = {1: "n1-standard-8", 2: "n1-standard-8", 4: "n1-standard-8", 8: "n1-standard-8"}
GCP_ATTACHABLE = ("T4", "V100", "P100", "P4")
GCP_N1_FAMILIES = ("n1-standard-", "n1-highmem-", "n1-highcpu-")
GCP_N1_LIMITS: dict[str, dict[int, tuple[int, int]]] = {
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
}
"""GCP's attach limits: GPUs → (most vCPUs, most GB of memory) of an N1 host carrying them
(cloud.google.com/compute/docs/gpus; the same table as SkyPilot 0.14.1's gcp_catalog)."""
GCP_N1_DEFAULT_VCPUS: dict[str, dict[int, int]] = {
    "T4": {1: 4, 2: 8, 4: 48}, "V100": {1: 8, 2: 16, 4: 32, 8: 64}, "P100": {1: 8, 2: 16, 4: 32},
    "P4": {1: 8, 2: 16, 4: 32},
}
GCP_N1_GB_PER_VCPU = 4
"""The smallest host for n GPUs: SkyPilot 0.14.1's default (``_NUM_ACC_TO_NUM_CPU`` vCPUs and 4 GB per
vCPU, ``_DEFAULT_GPU_MEMORY_CPU_RATIO``), so a bare request gets at least what SkyPilot would give it
and both are compared on the same machines."""


def n1_hosts(vms: pl.DataFrame) -> pl.DataFrame:
    """(InstanceType, gpu, count) of every N1 size in ``vms`` that may carry ``count`` of ``gpu``: at least
    the default host (:data:`GCP_N1_DEFAULT_VCPUS`, :data:`GCP_N1_GB_PER_VCPU`), at most GCP's limits."""
    sizes = (vms.filter(pl.col("InstanceType").str.starts_with(GCP_N1_FAMILIES[0])
                        | pl.col("InstanceType").str.starts_with(GCP_N1_FAMILIES[1])
                        | pl.col("InstanceType").str.starts_with(GCP_N1_FAMILIES[2]))
             .select("InstanceType", _num("vCPUs").alias("v"), _num("MemoryGiB").alias("m")).unique())
    rules = pl.DataFrame([(g, n, lo, lo * GCP_N1_GB_PER_VCPU, hi_v, hi_m)
                          for g, per in GCP_N1_LIMITS.items() for n, (hi_v, hi_m) in per.items()
                          for lo in [GCP_N1_DEFAULT_VCPUS[g][n]]],
                         schema={"gpu": pl.String, "count": pl.Int64, "lo_v": pl.Float64, "lo_m": pl.Float64,
                                 "hi_v": pl.Float64, "hi_m": pl.Float64}, orient="row")
    fits = ((pl.col("v") >= pl.col("lo_v")) & (pl.col("m") >= pl.col("lo_m"))
            & (pl.col("v") <= pl.col("hi_v")) & (pl.col("m") <= pl.col("hi_m")))
    return sizes.join(rules, how="cross").filter(fits).select("InstanceType", "gpu", "count")


def snapshot_dir() -> Path:
    """The trimmed catalog snapshot shipped in the package (accelerator rows of the three clouds)."""
    return Path(str(resources.files("collectors").joinpath("data/catalog")))


UNDATED = datetime(1970, 1, 1, tzinfo=UTC)
"""``observed_at`` of rows from a catalog file that gives no date (and none was passed): always stale,
always older than any dated observation of the same offer, and flagged :data:`FLAG_UNDATED`."""
FLAG_UNDATED = "undated catalog"
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2})(?::\d{2})?(?: ?([+-]\d{2}:?\d{2}|Z))?)?\b")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogRead:
    """A catalog as read: the offers, the date each cloud's prices were stamped with and where that date
    came from (``given``, the shipped snapshot, a SOURCES.md, or ``undated``), and every row dropped or
    flagged, as ``<file>:<line>: what`` sentences."""

    offers: pl.DataFrame
    dates: dict[str, tuple[datetime, str]]
    problems: list[str]


def read_catalog(directory: Path, *, observed_at: datetime | None = None,
                 providers: Sequence[str] | None = None,
                 interruption: Mapping[str, Mapping[str, float]] | None = None) -> pl.DataFrame:
    """The offers of :func:`load_catalog` (its problems logged as warnings)."""
    read = load_catalog(directory, observed_at=observed_at, providers=providers, interruption=interruption)
    for problem in read.problems:
        log.warning("%s", problem)
    return read.offers


def load_catalog(directory: Path, *, observed_at: datetime | None = None,
                 providers: Sequence[str] | None = None,
                 interruption: Mapping[str, Mapping[str, float]] | None = None) -> CatalogRead:
    """Offers from ``directory/<cloud>/vms.csv`` for each cloud present (of ``providers``; default every
    cloud with a reader in :data:`READERS`); ``interruption`` overrides the monthly spot interruption
    defaults. Prices are stamped ``observed_at`` if given, else the catalog's own date
    (:func:`catalog_date`); a file without one is kept with every row flagged :data:`FLAG_UNDATED` and
    dated :data:`UNDATED` — never the file's modification time, which says when it was copied."""
    providers = tuple(READERS) if providers is None else tuple(providers)
    unknown = [p for p in providers if p not in READERS]
    if unknown:
        raise offers.OfferError(f"no catalog reader for {', '.join(unknown)}: expected {', '.join(READERS)}")
    frames, dates, problems = [], {}, []
    for provider in providers:
        path = Path(directory) / provider / "vms.csv"
        if not path.exists():
            continue
        dated = (observed_at, "given") if observed_at else catalog_date(Path(directory), provider)
        when, said = dated or (UNDATED, "undated")
        dates[provider] = (when, said)
        raw = pl.read_csv(path, infer_schema=False).with_row_index("_line", offset=2)  # line 1 is the header
        frame = READERS[provider](raw, when).with_columns(pl.lit(str(path)).alias("_file"))
        if dated is None:
            frame = frame.with_columns(pl.coalesce(pl.col("flag"), pl.lit(FLAG_UNDATED)).alias("flag"))
            problems.append(f"{path}: the catalog gives no date for its prices: kept, flagged {FLAG_UNDATED!r} "
                            "and left out of placement; import it with --observed-at to date it")
        frames.append(frame)
    if not frames:
        raise offers.OfferError(f"{directory}: no <cloud>/vms.csv catalog for {', '.join(providers)}")
    df, found = _finish(pl.concat(frames, how="diagonal_relaxed"), interruption)
    return CatalogRead(df, dates, problems + found)


def catalog_date(directory: Path, provider: str) -> tuple[datetime, str] | None:
    """When ``directory/<provider>/vms.csv``'s prices were taken, by the catalog's own word: the shipped
    snapshot's :data:`SNAPSHOT_DATE`; else the row of a ``SOURCES.md`` table in ``directory`` naming
    ``<provider>/vms.csv`` with a date; else the one date a ``SOURCES.md`` / ``README.md`` in
    ``directory/<provider>`` gives (several distinct dates are ambiguous: none). ``None`` if undated."""
    if directory.resolve() == snapshot_dir().resolve():
        return SNAPSHOT_DATE, "the shipped snapshot's date"
    index = directory / "SOURCES.md"
    if index.exists():
        for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lstrip().startswith("|") and f"{provider}/vms.csv" in line and (m := _DATE.search(line)):
                return _parse_date(m), f"{index}"
    for name in ("SOURCES.md", "README.md"):
        note = directory / provider / name
        if note.exists():
            found = {m.group(1): m for m in _DATE.finditer(note.read_text(encoding="utf-8", errors="replace"))}
            if len(found) == 1:
                return _parse_date(next(iter(found.values()))), f"{note}"
    return None


def _parse_date(m: re.Match[str]) -> datetime:
    """A date (and time and offset, where given) from :data:`_DATE`, in UTC."""
    day, clock, offset = m.groups()
    zone = (offset or "+0000").replace("Z", "+0000").replace(":", "")
    return datetime.strptime(f"{day}T{clock or '00:00'}{zone}", "%Y-%m-%dT%H:%M%z").astimezone(UTC)


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
    """One row per market from a frame with ``Price`` and ``SpotPrice``; empty prices dropped. A spot
    price above the row's on-demand price, or exactly a tenth of it (a catalog's stand-in where no spot
    price was found: real spot prices are not round fractions), flags the spot row."""
    if "flag" not in df.columns:
        df = df.with_columns(pl.lit(None, pl.String).alias("flag"))
    od = df.with_columns(pl.lit("on_demand").alias("market"), _num("Price").alias("price_per_hour"),
                         on_demand_zone.alias("zone"))
    p, s = _num("Price"), _num("SpotPrice")
    doubt = (pl.when(s > p).then(pl.lit(offers.FLAG_SPOT_ABOVE_ON_DEMAND))
             .when((p > 0) & ((s * 10 - p).abs() <= 1e-6 * p)).then(pl.lit(offers.FLAG_SPOT_PLACEHOLDER))
             .otherwise(None))
    spot = df.with_columns(pl.lit("spot").alias("market"), s.alias("price_per_hour"),
                           pl.coalesce(pl.col("flag"), doubt).alias("flag"))
    return pl.concat([od, spot], how="diagonal_relaxed").filter(pl.col("price_per_hour").is_not_null())


def _aws(raw: pl.DataFrame, when: datetime) -> pl.DataFrame:
    df = raw.with_columns(pl.col("AvailabilityZone").alias("zone"), _gpu_memory_gb().alias("gpu_mem"))
    out = _markets(df, pl.lit(None, pl.String))
    # On-demand is regional: one row per region, not per zone.
    out = out.unique(subset=["InstanceType", "Region", "zone", "market"], keep="first", maintain_order=True)
    return _offer_columns(out, "aws", when, "catalog:skypilot-aws")


def _azure(raw: pl.DataFrame, when: datetime) -> pl.DataFrame:
    # Where Microsoft's size pages say more than the catalog (H100 NVL, not H100; NV4as_v4 is 1/8 of an
    # MI25, which the catalog calls 1; NV6ads_A10_v5 is 1/6 of an A10, which it rounds to 0.167), they
    # win, so the catalog and the Retail Prices collector describe the same size the same way.
    def shape(field: str, column: str, dtype: type[pl.DataType]) -> pl.Expr:
        known = {size: getattr(s, field) if dtype is pl.String else float(getattr(s, field))
                 for size, s in VM_SHAPES.items()}
        fallback = pl.col(column) if dtype is pl.String else _num(column)
        return pl.col("InstanceType").replace_strict(known, default=fallback, return_dtype=dtype).alias(column)

    df = raw.with_columns(
        shape("accelerator", "AcceleratorName", pl.String), shape("accelerator_count", "AcceleratorCount", pl.Float64),
        shape("vcpus", "vCPUs", pl.Float64), shape("memory_gb", "MemoryGiB", pl.Float64),
        pl.lit(None, pl.String).alias("zone"), _gpu_memory_gb().alias("gpu_mem"))
    # A share of a GPU we have no size entry for: its memory share is unknown, so it must not pass
    # for whole GPUs (or any share we could name).
    count = pl.col("AcceleratorCount")
    fraction = ~pl.col("InstanceType").is_in(list(VM_SHAPES)) & (count != count.round(0))
    df = df.with_columns(pl.when(fraction).then(pl.lit(offers.FLAG_FRACTION)).otherwise(None).alias("flag"))
    return _offer_columns(_markets(df, pl.lit(None, pl.String)), "azure", when, "catalog:skypilot-azure")


def _gcp(raw: pl.DataFrame, when: datetime) -> pl.DataFrame:
    vms = raw.filter(pl.col("InstanceType").is_not_null() & pl.col("AcceleratorName").is_null())
    accel = raw.filter(pl.col("InstanceType").is_null())  # priced alone: GPUs to attach, TPU slices
    tpus = accel.filter(pl.col("AcceleratorName").str.starts_with("tpu-"))
    gpus = accel.filter(~pl.col("AcceleratorName").str.starts_with("tpu-"))
    hosts = _gcp_hosts(vms, gpus)
    known = pl.col("InstanceType").is_in(list(GCP_GPU_HOSTS))
    gpu_family = pl.col("InstanceType").str.contains(GCP_GPU_FAMILY.pattern)
    # A GPU machine we cannot compose would be priced as its VM alone: kept, flagged, never placed.
    plain = vms.filter(~known).with_columns(
        pl.when(gpu_family).then(pl.lit(offers.FLAG_UNKNOWN_INSTANCE_TYPE)).otherwise(None).alias("flag"))
    tpu = (tpus.with_columns(
        pl.col("AcceleratorName").alias("InstanceType"),
        pl.col("AcceleratorName").map_elements(offers.tpu_chips, return_dtype=pl.Int64).cast(pl.String)
        .alias("AcceleratorCount"))
        .with_columns(pl.when(_num("Price") == TPU_PLACEHOLDER_PRICE).then(None).otherwise(pl.col("Price"))
                      .alias("Price"),
                      pl.when(_num("SpotPrice") == TPU_PLACEHOLDER_PRICE).then(None).otherwise(pl.col("SpotPrice"))
                      .alias("SpotPrice")))
    df = pl.concat([plain, hosts, tpu], how="diagonal_relaxed").with_columns(
        pl.col("AvailabilityZone").alias("zone"), pl.lit(None, pl.Float64).alias("gpu_mem"))
    return _offer_columns(_markets(df, pl.col("AvailabilityZone")), "gcp", when, "catalog:skypilot-gcp")


def _gcp_hosts(vms: pl.DataFrame, gpus: pl.DataFrame) -> pl.DataFrame:
    """GPU machines priced as GCP bills them: the VM plus its GPUs, zone by zone. A GPU row prices
    ``AcceleratorCount`` GPUs together (SkyPilot's layout: the ``A100,8`` row is eight A100s), so a
    machine with n GPUs takes the row for n where there is one, else n × the per-GPU price of the
    smallest row. A machine whose GPUs have no price in its zone is kept flagged, never priced bare."""
    shapes = pl.concat([pl.DataFrame([(h, g, n) for h, (g, n) in GCP_GPU_HOSTS.items()],
                                     schema={"InstanceType": pl.String, "gpu": pl.String, "count": pl.Int64},
                                     orient="row"), n1_hosts(vms)])
    rows = gpus.select(pl.col("AcceleratorName").alias("gpu"), "AvailabilityZone",
                       _num("AcceleratorCount").alias("n"), _num("Price").alias("p"), _num("SpotPrice").alias("s")
                       ).filter(pl.col("n") > 0)
    exact = (rows.select("gpu", "AvailabilityZone", pl.col("n").cast(pl.Int64).alias("count"),
                         pl.col("p").alias("exact_price"), pl.col("s").alias("exact_spot"))
             .unique(subset=["gpu", "AvailabilityZone", "count"], keep="first", maintain_order=True))
    unit = (rows.sort("n").group_by("gpu", "AvailabilityZone", maintain_order=True)
            .agg((pl.col("p") / pl.col("n")).first().alias("unit_price"),
                 (pl.col("s") / pl.col("n")).first().alias("unit_spot")))
    joined = (vms.join(shapes, on="InstanceType")
              .join(exact, on=["gpu", "AvailabilityZone", "count"], how="left")
              .join(unit, on=["gpu", "AvailabilityZone"], how="left")
              .with_columns(pl.coalesce("exact_price", pl.col("count") * pl.col("unit_price")).alias("gpu_price"),
                            pl.coalesce("exact_spot", pl.col("count") * pl.col("unit_spot")).alias("gpu_spot")))
    bare = pl.col("gpu_price").is_null() & pl.col("gpu_spot").is_null()
    # An N1 host in a zone without that GPU is simply no offer; a dedicated GPU machine there is a gap.
    joined = joined.filter(~(bare & pl.col("InstanceType").str.starts_with("n1-")))
    return joined.with_columns(
        pl.when(bare).then(pl.col("Price")).otherwise((_num("Price") + pl.col("gpu_price")).cast(pl.String))
        .alias("Price"),
        pl.when(bare).then(pl.col("SpotPrice")).otherwise((_num("SpotPrice") + pl.col("gpu_spot")).cast(pl.String))
        .alias("SpotPrice"),
        pl.when(bare).then(pl.lit(offers.FLAG_NO_GPU_PRICE)).otherwise(None).alias("flag"),
        pl.col("gpu").alias("AcceleratorName"), pl.col("count").cast(pl.String).alias("AcceleratorCount"),
        # an N1 host with GPUs attached is named for both, as it is launched
        pl.when(pl.col("InstanceType").str.starts_with("n1-"))
        .then(pl.concat_str(pl.col("InstanceType"), pl.lit("+"), pl.col("gpu"), pl.lit("x"),
                            pl.col("count").cast(pl.String)))
        .otherwise(pl.col("InstanceType")).alias("InstanceType"),
    ).drop("gpu", "count", "gpu_price", "gpu_spot", "exact_price", "exact_spot", "unit_price", "unit_spot")


def _offer_columns(df: pl.DataFrame, provider: str, when: datetime, source: str) -> pl.DataFrame:
    names = df["AcceleratorName"].to_list()
    mems = df["gpu_mem"].to_list()
    canon = [offers.canonical_accelerator(n, m) for n, m in zip(names, mems, strict=True)]
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
        pl.col("flag").cast(pl.String),
        pl.col("_line").cast(pl.Int64),
    )
    return out


def _finish(df: pl.DataFrame, interruption: Mapping[str, Mapping[str, float]] | None
            ) -> tuple[pl.DataFrame, list[str]]:
    """Fill the derived columns (per-chip memory, interruption rate, flags), check the contract, and
    say what was dropped (a price of zero or less: no offer to keep) or flagged, by file and line."""
    mem = pl.col("accelerator_name").replace_strict(offers.ACCELERATORS, default=None, return_dtype=pl.Float64)
    unknown = pl.col("accelerator_name").is_not_null() & ~pl.col("accelerator_name").is_in(list(offers.ACCELERATORS))
    df = offers.with_interruption(df, interruption).with_columns(
        mem.alias("accelerator_memory_gb"),
        pl.coalesce(pl.col("flag"), pl.when(unknown).then(pl.lit(offers.FLAG_UNKNOWN_ACCELERATOR))).alias("flag"),
        pl.lit(None, pl.String).alias("sku"),
        pl.lit(offers.COMPUTE).alias("service"),  # catalogs list VM prices
    )
    zero = df.filter(pl.col("price_per_hour") <= 0)
    problems = _tell(zero, "{market} price of {price:g} for {instance_type} in {region}: no such offer, dropped")
    df = df.filter(pl.col("price_per_hour") > 0)
    # The GCP file repeats some TPU rows word for word: one observation per offer.
    df = df.unique(subset=list(offers.KEY), keep="first", maintain_order=True)
    for (flag,), rows in df.filter(pl.col("flag").is_not_null() & (pl.col("flag") != FLAG_UNDATED)).group_by(
            "flag", maintain_order=True):
        problems += _tell(rows, f"{flag}: kept, flagged and left out of placement ({{instance_type}}, {{market}})")
    df = df.select(list(offers.SCHEMA))
    offers.check(df)
    return df, problems


def _tell(rows: pl.DataFrame, what: str, most: int = 5) -> list[str]:
    """``<file>:<line>: what`` for the first ``most`` rows and a count of the rest, per file."""
    out = []
    for (path,), per in rows.sort("_line").group_by("_file", maintain_order=True):
        lines = [f"{path}:{r['_line']}: " + what.format(price=r["price_per_hour"], **r)
                 for r in per.head(most).iter_rows(named=True)]
        more = per.height - most
        out += lines + ([f"{path}: … and {more:,} more row(s) like these"] if more > 0 else [])
    return out


READERS = {"aws": _aws, "gcp": _gcp, "azure": _azure}
"""The SkyPilot catalog layout of each cloud we read (the catalog's own model, one reader per cloud)."""
