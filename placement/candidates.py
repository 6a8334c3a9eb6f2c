"""Candidates: every (workload, offer) pair that meets the workload's needs, as polars joins.

Specs become a frame of requirements (:func:`spec_frame`); offers are reduced to the cheapest zone per
(provider, region, instance type, market) — capacity and residency are regional, so a dearer zone of
the same offer can never be the better choice — and joined on (accelerator, count, market), once per
distinct set of needs (:data:`NEEDS`), then fanned out to the workloads that share it. The remaining
needs (vCPUs, memory, providers, regions, residency, launch targets) are filters; blocked and flagged
offers never enter.

**Launch targets.** Each offer is expanded to one row per configured launch target that can use it
(:func:`target_offers`) before the join — targets are few, so this multiplies the offers by a small number
and keeps the join a plain equi-join. A row carries its ``target`` (the configured name) and
``target_kind``; its ``oid`` names the (offer, target) row. A target can use an offer when its kind's
price list (``finops.providers`` ``Target.service``) is the offer's (``finops.offers.SERVICES``), its
cloud (if it bills on one) is the offer's, its ``regions`` (if any) include the offer's region, a dry
run's or simulator's ``providers`` (if any) include the offer's cloud, and for a Kubernetes cluster: the
cluster's cloud and region, an instance type of its node pools, spot offers only on spot pools and
on-demand ones only on the others. A workload may use the targets its spec frame lists (``targets``;
empty: any), and an offer priced for one kind of workload (SageMaker training vs hosting) only by that kind.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache

import polars as pl

from finops import providers, regions
from finops.config import DRY_RUN, DryRunTarget, KubernetesTarget, LaunchTarget
from finops.offers import COMPUTE, SERVICES
from finops.workloads import Accelerators, WorkloadSpec

CPU = "cpu"  # accelerator key of CPU-only offers and requests
OFFER_COLUMNS = ("provider", "region", "zone", "instance_type", "accelerator_name", "accelerator_count",
                 "accelerator_memory_gb", "vcpus", "memory_gb", "market", "price_per_hour", "observed_at",
                 "interruption_rate", "stale", "service")


class PlacementError(ValueError):
    """Inputs the optimizer cannot work with (no prices at all, stale prices refused by config, …)."""


def spec_frame(specs: Sequence[tuple[int, WorkloadSpec]], now: datetime | None = None,
               targets: Mapping[int, Sequence[str]] | None = None) -> pl.DataFrame:
    """One row per workload with what it needs, ready to join with offers; ``targets``: the launch
    targets each workload id may use (absent: any the offers carry)."""
    now = now or datetime.now(UTC)
    targets = targets or {}
    rows = []
    locations: dict[tuple[str, str], int] = {}
    for wid, s in specs:
        acc = s.accelerators
        rows.append({
            "wid": wid, "name": s.name, "team": s.team, "kind": s.kind, "priority": s.priority,
            "acc_names": ",".join(_accepted(acc)) if acc else CPU, "acc_count": float(acc.count) if acc else 0.0,
            "min_acc_memory_gb": acc.min_memory_gb if acc and acc.min_memory_gb is not None else 0.0,
            "markets": ",".join(s.markets()), "min_vcpus": s.min_vcpus, "min_memory_gb": s.min_memory_gb,
            "providers": ",".join(s.providers), "regions": ",".join(s.regions),
            "residency": _residency(tuple(s.residency)),
            "base_hours": s.base_hours, "checkpoint_hours": (s.checkpoint_minutes / 60 if s.checkpoint_minutes
                                                             else (s.base_hours if s.kind == "train" else 0.0)),
            "replicas": s.replicas, "spread": s.spread,
            "ds_provider": s.dataset.provider if s.dataset else None,
            "ds_region": s.dataset.region if s.dataset else None,
            "ds_id": (locations.setdefault((s.dataset.provider, s.dataset.region), len(locations))
                      if s.dataset else None),
            "ds_gb": s.dataset.size_gb if s.dataset else 0.0,
            "deadline_hours": ((s.deadline - now).total_seconds() / 3600 if s.deadline else None),
            "targets": ",".join(targets.get(wid, ())),
        })
    cols = {k: [r[k] for r in rows] for k in SPEC_SCHEMA}
    return pl.DataFrame(cols, schema=SPEC_SCHEMA)


def _accepted(acc: Accelerators) -> list[str]:
    """The accelerator names a request accepts. A GPU-memory request (``min_memory_gb``) means GPUs:
    TPUs are a different programming model (JAX/XLA, slices), so they match only when the spec names
    them (``name`` or ``any_of``)."""
    names = acc.names()
    return [n for n in names if not n.startswith("TPU-")] if acc.min_memory_gb is not None else names


@lru_cache(maxsize=256)
def _residency(codes: tuple[str, ...]) -> str:
    return ",".join(sorted(regions.expand(list(codes))))


SPEC_SCHEMA = pl.Schema({
    "wid": pl.Int64(), "name": pl.String(), "team": pl.String(), "kind": pl.String(), "priority": pl.Int64(),
    "acc_names": pl.String(), "acc_count": pl.Float64(), "min_acc_memory_gb": pl.Float64(), "markets": pl.String(),
    "min_vcpus": pl.Float64(), "min_memory_gb": pl.Float64(), "providers": pl.String(),
    "regions": pl.String(), "residency": pl.String(), "base_hours": pl.Float64(),
    "checkpoint_hours": pl.Float64(), "replicas": pl.Int64(), "spread": pl.Int64(), "ds_provider": pl.String(),
    "ds_region": pl.String(), "ds_id": pl.Int64(), "ds_gb": pl.Float64(), "deadline_hours": pl.Float64(),
    "targets": pl.String(),
})


def prepare_offers(offers: pl.LazyFrame | pl.DataFrame, *, blocked: Sequence[str] = (),
                   stale: str = "exclude", targets: Mapping[str, LaunchTarget] | None = None,
                   blocks: Sequence[tuple[str, str, str, str, str]] = ()) -> pl.DataFrame:
    """Offers ready for the join: usable rows only (no flag, not blocked, stale per policy), the
    cheapest zone of each offer, one row per launch target of ``targets`` that can use it (default: the
    built-in dry run; see :func:`target_offers`) less the (provider, region, instance_type, market,
    target) ``blocks`` (capacity answers), with the join keys and the region's jurisdiction."""
    lf = offers.lazy()
    names = lf.collect_schema().names()
    if "stale" not in names:
        lf = lf.with_columns(pl.lit(False).alias("stale"))
    if "service" not in names:
        lf = lf.with_columns(pl.lit(COMPUTE).alias("service"))
    lf = lf.with_columns(pl.col("service").fill_null(COMPUTE))
    df = lf.filter(pl.col("flag").is_null()).select(OFFER_COLUMNS).collect()
    if df.is_empty():
        raise PlacementError("the price table is empty: import prices first "
                             "(`finops prices import-catalog` or `finops collect prices`)")
    if stale == "error" and df["stale"].any():
        n = int(df["stale"].sum())
        raise PlacementError(f"{n} offer(s) have stale prices (older than prices.max_age_hours); "
                             "collect prices again or set placement.stale = \"exclude\"")
    if stale == "exclude":
        df = df.filter(~pl.col("stale"))
    if blocked:
        df = df.filter(~_blocked(df, blocked))
    df = (df.sort("price_per_hour")
          .group_by("provider", "region", "instance_type", "market", "service", maintain_order=True).first())
    df = target_offers(df, targets if targets is not None else {DRY_RUN: DryRunTarget()})
    if blocks:
        out = pl.DataFrame(list(blocks), schema=["provider", "region", "instance_type", "market", "target"],
                           orient="row")
        df = df.join(out, on=["provider", "region", "instance_type", "market", "target"], how="anti",
                     maintain_order="left")
    places = df.select("provider", "region").unique(maintain_order=True).with_row_index("place")
    jurisdictions = [regions.jurisdiction(p, r) for _, p, r in places.iter_rows()]
    places = places.with_columns(pl.Series("jurisdiction", jurisdictions, dtype=pl.String))
    return (df.with_row_index("oid").join(places, on=["provider", "region"], how="left")
            .with_columns(pl.col("accelerator_name").fill_null(CPU).alias("acc_key"),
                          pl.col("accelerator_count").fill_null(0.0).alias("count_key"),
                          pl.lit(1.0).alias("cost_factor"), pl.lit(None, pl.String).alias("cost_note")))


NO_SPOT_SERVING = ["sagemaker", "azureml"]
"""Target kinds whose serving endpoints run on demand only (their launchers refuse spot serving)."""


def target_offers(df: pl.DataFrame, targets: Mapping[str, LaunchTarget]) -> pl.DataFrame:
    """``df`` (offers with ``service``) with one row per (offer, target that can use it), carrying
    ``target``, ``target_kind`` and ``use`` (the workload kind the offer's price is for; null: any)."""
    lists = pl.col("service").replace_strict({k: v[0] for k, v in SERVICES.items()}, default=None)
    use = pl.col("service").replace_strict({k: v[1] for k, v in SERVICES.items()}, default=None,
                                           return_dtype=pl.String)
    base = df.with_columns(lists.alias("_list"), use.alias("use"))
    parts = [base.filter(_can_use(t)).with_columns(pl.lit(name).alias("target"), pl.lit(t.kind).alias("target_kind"))
             for name, t in targets.items()]
    return pl.concat(parts).drop("_list") if parts else base.clear().with_columns(
        pl.lit(None, pl.String).alias("target"), pl.lit(None, pl.String).alias("target_kind")).drop("_list")


def _can_use(t: LaunchTarget) -> pl.Expr:
    """Whether target ``t`` can launch an offer (a row of ``target_offers``' frame)."""
    entry = providers.target(t.kind)
    ok = pl.col("_list") == entry.service
    if entry.provider:
        ok &= pl.col("provider") == entry.provider
    if t.regions:
        ok &= pl.col("region").is_in(list(t.regions))
    clouds = getattr(t, "providers", None)
    if clouds:
        ok &= pl.col("provider").is_in(list(clouds))
    if isinstance(t, KubernetesTarget):
        spot = [p.instance_type for p in t.node_pools if p.spot]
        steady = [p.instance_type for p in t.node_pools if not p.spot]
        ok &= ((pl.col("provider") == t.provider) & (pl.col("region") == t.region)
               & (((pl.col("market") == "spot") & pl.col("instance_type").is_in(spot))
                  | ((pl.col("market") == "on_demand") & pl.col("instance_type").is_in(steady))))
    return ok


def _blocked(df: pl.DataFrame, patterns: Sequence[str]) -> pl.Series:
    keys = df.select(pl.concat_str("provider", "region", "instance_type", separator=":").alias("k"))["k"]
    distinct = keys.unique().to_list()
    hit = {k for k in distinct if any(fnmatch.fnmatchcase(k, p) for p in patterns)}
    return keys.is_in(list(hit))


COST_INPUTS = ("base_hours", "checkpoint_hours", "ds_id", "ds_gb", "deadline_hours")
CANDIDATE_COLUMNS = ("wid", "oid", "place", "provider", "region", "market", "accelerator_name", "accelerator_count",
                     "price_per_hour", "interruption_rate", "target", "cost_factor", *COST_INPUTS)
"""What a candidate row carries; the rest of the offer is looked up by ``oid`` for the chosen few."""


NEEDS = ("acc_names", "acc_count", "min_acc_memory_gb", "markets", "min_vcpus", "min_memory_gb", "providers",
         "regions", "residency", "targets", "kind")
"""The spec columns that decide which offers fit; workloads alike in all of them share their offers."""


def gpu_memory_per_accelerator() -> pl.Expr:
    """GPU memory an offer gives per accelerator requested: the accelerator's memory, but only its share
    for a share of one GPU (NV4as_v4 = 1/8 of a 16 GB MI25: 2 GB). A memory floor is met only by what
    the VM actually has."""
    share = pl.min_horizontal(pl.col("accelerator_count").fill_null(0.0), pl.lit(1.0))
    return pl.col("accelerator_memory_gb").fill_null(0.0) * share


def candidates(specs: pl.DataFrame, offers: pl.DataFrame, keep: Sequence[int] = ()) -> pl.LazyFrame:
    """Every (workload, offer) pair meeting the workload's needs (``offers`` from :func:`prepare_offers`),
    carrying the spec columns costing needs (:data:`COST_INPUTS`). The offers are matched once per
    distinct set of needs (a queue has far fewer than workloads) and then fanned out to the workloads.

    Of offers alike in everything costing and the shared limits look at — provider, region, market,
    accelerator, interruption rate — only the cheapest is kept (a dearer twin can never be chosen: it
    costs more, uses the same limits and has the same risk); offers in ``keep`` (those with commitment
    pools) are always kept."""
    classes = specs.select(NEEDS).unique(maintain_order=True).with_row_index("cls")
    members = (specs.join(classes, on=list(NEEDS), how="inner", nulls_equal=True, maintain_order="left")
               .select("wid", "cls", *COST_INPUTS))
    req = (classes.select("cls", pl.col("acc_names").str.split(",").alias("acc_key"),
                          pl.col("acc_count").alias("count_key"), pl.col("markets").str.split(",").alias("market"),
                          "min_vcpus", "min_memory_gb", "min_acc_memory_gb", "kind")
           .explode("acc_key").explode("market"))
    offers = _with_defaults(offers)
    fits = ((pl.col("min_vcpus") <= pl.col("vcpus").fill_null(0.0))
            & (pl.col("min_memory_gb") <= pl.col("memory_gb").fill_null(0.0))
            & (pl.col("min_acc_memory_gb") <= gpu_memory_per_accelerator())
            & (pl.col("use").is_null() | (pl.col("use") == pl.col("kind")))
            # SageMaker real-time endpoints and Azure ML managed online endpoints have no spot capacity.
            & ~((pl.col("kind") == "serve") & (pl.col("market") == "spot")
                & pl.col("target_kind").is_in(NO_SPOT_SERVING)))
    # Joins keep their inputs' order, so the same queue and offers give the same rows (and tie-breaks).
    lf = (req.lazy().join(offers.lazy(), on=["acc_key", "count_key", "market"], how="inner",
                          maintain_order="left_right").filter(fits))
    # Allowed providers / regions / jurisdictions: (class, value) pairs for the few classes that set them.
    for list_col, col in (("providers", "provider"), ("regions", "region"), ("residency", "jurisdiction"),
                          ("targets", "target")):
        allowed = (classes.filter(pl.col(list_col) != "").select("cls", pl.col(list_col).str.split(",").alias(col))
                   .explode(col).with_columns(pl.lit(True).alias("_ok")))
        if allowed.is_empty():
            continue
        limited = allowed["cls"].unique().to_list()
        lf = (lf.join(allowed.lazy(), on=["cls", col], how="left", maintain_order="left")
              .filter(pl.col("_ok").fill_null(False) | ~pl.col("cls").is_in(limited)).drop("_ok"))
    twin = pl.when(pl.col("oid").is_in(list(keep))).then(pl.col("oid")).otherwise(-1).alias("_own")
    per_class = (lf.select("cls", *(c for c in CANDIDATE_COLUMNS if c not in ("wid", *COST_INPUTS)))
                 .with_columns(twin, (pl.col("price_per_hour") * pl.col("cost_factor")).alias("_eff"))
                 .sort("_eff", "oid")
                 .group_by("cls", "provider", "region", "market", "accelerator_name", "interruption_rate", "target",
                           "_own", maintain_order=True).first()
                 .drop("_own", "_eff").sort("cls", "oid").collect())
    return (members.lazy().join(per_class.lazy(), on="cls", how="inner", maintain_order="left_right")
            .select(CANDIDATE_COLUMNS))


def _with_defaults(offers: pl.DataFrame) -> pl.DataFrame:
    """Offers prepared before launch targets or learning: the built-in dry run, no correction."""
    cols = offers.columns
    add = [e for c, e in (("target", pl.lit(DRY_RUN)), ("target_kind", pl.lit(DRY_RUN)),
                          ("use", pl.lit(None, pl.String)), ("cost_factor", pl.lit(1.0))) if c not in cols]
    return offers.with_columns(add) if add else offers


def diagnose(spec: pl.DataFrame, offers: pl.DataFrame) -> str:
    """Why one workload (a one-row :func:`spec_frame`) has no candidate: the first need no offer meets."""
    s = spec.row(0, named=True)
    for k in ("acc_names", "markets", "providers", "regions", "residency", "targets"):
        s[k] = [v for v in s[k].split(",") if v]
    offers = _with_defaults(offers)
    steps: list[tuple[str, pl.Expr]] = [
        ("no CPU-only offer" if s["acc_names"] == [CPU] else f"no {_names(s['acc_names'])} x{s['acc_count']:g} offer",
         pl.col("acc_key").is_in(s["acc_names"]) & (pl.col("count_key") == s["acc_count"])),
        (f"none in market {' / '.join(s['markets'])}", pl.col("market").is_in(s["markets"])),
        (f"none with {s['min_vcpus']:g} vCPUs and {s['min_memory_gb']:g} GB memory",
         (pl.col("vcpus").fill_null(0) >= s["min_vcpus"]) & (pl.col("memory_gb").fill_null(0) >= s["min_memory_gb"])),
        (f"none on providers {s['providers']}", pl.lit(not s["providers"]) | pl.col("provider").is_in(s["providers"])),
        (f"none in regions {s['regions']}", pl.lit(not s["regions"]) | pl.col("region").is_in(s["regions"])),
        (f"none with residency {s['residency']}",
         pl.lit(not s["residency"]) | pl.col("jurisdiction").is_in(s["residency"])),
        (f"none that launch targets {s['targets']} can use",
         pl.lit(not s["targets"]) | pl.col("target").is_in(s["targets"])),
        (f"none priced for {s['kind']} workloads on launch targets {s['targets']}",
         pl.col("use").is_null() | (pl.col("use") == s["kind"])),
    ]
    df = offers
    for why, expr in steps:
        df = df.filter(expr)
        if df.is_empty():
            return f"no offer fits: {why} (among usable, fresh prices)"
    return "no offer fits"


def _names(names: list[str]) -> str:
    return " / ".join(names) if len(names) <= 4 else f"{' / '.join(names[:3])} … ({len(names)} types)"
