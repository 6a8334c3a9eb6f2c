"""Daily rollups of the store for the dashboard: computed once, cached, invalidated per partition.

A billing partition's rollup is one line per day and distinct key (provider, currency, account, service,
charge and pricing category, commitment status, tag set, SKU details; the instance description for usage
hours without SKU details, as :mod:`finops.reports` reads it), with exact sums of BilledCost,
EffectiveCost and ListCost, usage hours and the row count. It depends only on the partition's live files,
so it is cached on disk under a key made of the partition's files and rows (from :meth:`Store.manifests`:
no data is read to check it): a new ingest replaces some partitions' files and exactly those are rolled
up again. Nothing here allocates: owners and pools come from :func:`finops.allocation.resolve` and team
cents per day from :func:`finops.allocation.apportion`, the functions the chargeback uses; accelerators
from :func:`finops.reports.accelerator_of` / :func:`finops.reports.accelerator_from_text`. The weekly
chargeback itself is :func:`finops.reports.chargeback`, cached under the manifests of the billing periods
it reads.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from finops import allocation as alloc
from finops import reports
from finops.config import Config
from finops.engine.base import Engine
from finops.engine.pieces import Piece, run_pieces
from finops.periods import Week
from finops.store import Manifest, Store

VERSION = 1  # bump when the rollup's columns or meaning change: old cache files are then ignored
KEYS = ("ProviderName", "BillingCurrency", "SubAccountId", "SubAccountName", "ServiceName", "ServiceCategory",
        "ChargeCategory", "PricingCategory", "CommitmentDiscountStatus", "Tags", "SkuPriceDetails")
SUMS = ("billed", "effective", "list_cost")
MARKETS = {"Dynamic": "spot", "Standard": "on_demand", "Committed": "commitment"}
BASES = {"EffectiveCost": "effective", "BilledCost": "billed"}
_ROLLUP_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(), "_purchase": pl.Boolean(), "_desc": pl.String(), **{k: pl.String() for k in KEYS},
    **{s: pl.Decimal(38, 15) for s in SUMS}, "hours": pl.Float64(), "rows": pl.UInt32()}


_BYTES_PER_ROW = 120  # about a FOCUS row in memory: sizes a cluster task's memory request


def _label(m: Manifest) -> str:
    return "/".join(str(v) for v in m.partition.values())


def _rolled(lf: pl.LazyFrame, keys: Sequence[str]) -> pl.DataFrame:
    return roll(lf, keys).collect()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/finops/dashboard`` (``~/.cache/finops/dashboard``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "finops" / "dashboard"


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:24]


def fingerprint(m: Manifest, keys: Sequence[str]) -> str:
    """What a partition's rollup depends on: its live files and rows, and the rollup's own columns."""
    return _hash({"v": VERSION, "partition": m.partition, "files": sorted(m.files), "rows": m.rows, "keys": list(keys)})


def roll(lf: pl.LazyFrame, keys: Sequence[str] = KEYS) -> pl.LazyFrame:
    """One line per day and distinct ``keys`` of FOCUS rows ``lf`` (pure)."""
    names = lf.collect_schema().names()
    hours = ((pl.col("ConsumedUnit") == "Hours") & (pl.col("ChargeCategory") == "Usage")
             & (pl.col("CommitmentDiscountStatus").fill_null("") != "Unused"))
    bare = (pl.col("SkuPriceDetails").is_null() & hours).fill_null(False)
    purchase = ((pl.col("ChargeCategory") == "Purchase")
                & pl.col("CommitmentDiscountId").is_not_null()).fill_null(False)
    missing = [pl.lit(None, pl.String).alias(k) for k in keys if k not in names]
    return (lf.with_columns(*missing)
            .with_columns(pl.col("ChargePeriodStart").dt.date().alias("day"), purchase.alias("_purchase"),
                          pl.when(bare).then(pl.col("ChargeDescription")).otherwise(None).alias("_desc"))
            .group_by("day", "_purchase", "_desc", *keys)
            .agg(pl.col("BilledCost").sum().cast(pl.Decimal(38, 15)).alias("billed"),
                 pl.col("EffectiveCost").sum().cast(pl.Decimal(38, 15)).alias("effective"),
                 pl.col("ListCost").sum().cast(pl.Decimal(38, 15)).alias("list_cost"),
                 pl.col("ConsumedQuantity").filter(hours).sum().cast(pl.Float64).alias("hours"),
                 pl.len().cast(pl.UInt32).alias("rows")))


@dataclass
class RollupStats:
    """How the last :meth:`Rollups.billing` was served: partitions rolled up now and read from the cache."""

    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Daily:
    """The bill by day with owners and pools resolved, accelerators named, markets labelled: one line per
    day and distinct key. ``cost`` columns are exact decimals; ``fingerprint`` names the data it holds."""

    frame: pl.DataFrame
    fingerprint: str

    @property
    def empty(self) -> bool:
        return self.frame.is_empty()

    def cost(self, basis: str) -> pl.Expr:
        """The cost column for ``basis`` (EffectiveCost: amortised, commitment purchases left out, as the
        chargeback does; BilledCost: as invoiced)."""
        if basis == "EffectiveCost":
            return pl.when(pl.col("_purchase")).then(pl.lit(0, pl.Decimal(38, 15))).otherwise(pl.col("effective"))
        return pl.col("billed")


class Rollups:
    """The dashboard's cached views of one store under one configuration. Thread-safe; one per process."""

    def __init__(self, store: Store, cfg: Config, cache_dir: Path | None = None, engine: Engine | None = None) -> None:
        """``engine``: where partitions are rolled up (default: in this process, partition by partition)."""
        self.store, self.cfg, self.engine = store, cfg, engine
        root = cache_dir or default_cache_dir()
        self.dir = root / _hash({"store": str(store.url)})
        self.stats = RollupStats()
        self._lock = threading.Lock()
        self._memo: dict[tuple[str, ...], Any] = {}

    # -- billing ---------------------------------------------------------------------------------
    def keys(self) -> list[str]:
        """The rollup's key columns: :data:`KEYS` and whatever the allocation rules read besides."""
        extra = set(alloc.rules_from_config(self.cfg, "team").columns) | set(
            alloc.rules_from_config(self.cfg, "project").columns)
        return [*KEYS, *sorted(extra - set(KEYS))]

    def manifests(self) -> list[Manifest]:
        return self.store.manifests("billing")

    def billing(self) -> Daily:
        """The raw daily rollup of every billing partition (cached per partition on disk); its
        fingerprint names the partitions' files it was made from."""
        ms = self.manifests()
        keys = self.keys()
        fps = [fingerprint(m, keys) for m in ms]
        memo_key = ("billing", _hash(sorted(fps)))
        with self._lock:
            if memo_key in self._memo:
                return self._memo[memo_key]
            self.stats = RollupStats()
            parts = self._partitions(ms, fps, keys)
            self._prune(set(fps))
            out = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame(
                schema={**_ROLLUP_SCHEMA, **{k: pl.String() for k in keys}})
            self._memo = {k: v for k, v in self._memo.items() if k[0] != "billing"}
            self._memo[memo_key] = Daily(out, memo_key[1])
            return self._memo[memo_key]

    def _partitions(self, ms: Sequence[Manifest], fps: Sequence[str], keys: Sequence[str]) -> list[pl.DataFrame]:
        """Each partition's rollup: from the disk cache, else rolled up (on the engine) and cached."""
        out: dict[int, pl.DataFrame] = {}
        todo = []
        for i, (m, fp) in enumerate(zip(ms, fps, strict=True)):
            df = self._cached(self.dir / "billing" / f"{fp}.parquet")
            if df is None:
                todo.append(i)
            else:
                out[i] = df
                self.stats.reused.append(_label(m))
        for i, df in zip(todo, self._roll([ms[i] for i in todo], keys), strict=True):
            self._save(self.dir / "billing" / f"{fps[i]}.parquet", df)
            self.stats.computed.append(_label(ms[i]))
            out[i] = df
        return [out[i] for i in range(len(ms))]

    def _roll(self, ms: Sequence[Manifest], keys: Sequence[str]) -> list[pl.DataFrame]:
        if not ms:
            return []
        if self.engine is None or self.engine.rows_per_task is None:
            return [roll(self.store.scan("billing", dict(m.partition)), keys).collect() for m in ms]
        schema = self.store.live("billing")[1]
        assert schema is not None  # there are partitions
        pieces = [Piece(tuple(m.files), m.rows, m.rows * _BYTES_PER_ROW) for m in ms]
        return run_pieces(self.engine, self.store, "billing", functools.partial(_rolled, keys=tuple(keys)),
                          pieces, schema, what="rollups")

    @staticmethod
    def _cached(path: Path) -> pl.DataFrame | None:
        if not path.exists():
            return None
        try:
            return pl.read_parquet(path)
        except Exception:  # noqa: BLE001 (a torn or foreign cache file: roll the partition up again)
            path.unlink(missing_ok=True)
            return None

    @staticmethod
    def _save(path: Path, df: pl.DataFrame) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        df.write_parquet(tmp)
        tmp.replace(path)  # atomic: a reader sees the whole file or none

    def _prune(self, live: set[str]) -> None:
        """Remove cached rollups of partitions that have been replaced since."""
        folder = self.dir / "billing"
        for p in folder.glob("*.parquet") if folder.exists() else ():
            if p.stem not in live:
                p.unlink(missing_ok=True)

    def daily(self, dimension: alloc.Dimension = "team") -> Daily:
        """The daily rollup with ``owner``/``pool`` resolved by the configured rules, ``accelerator``,
        ``accel_hours`` (instance hours × accelerators per instance) and ``market``."""
        billing = self.billing()
        raw = billing.frame
        key = ("daily", billing.fingerprint, dimension)
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        rules = alloc.rules_from_config(self.cfg, dimension)
        offers = sorted(fingerprint(m, ()) for m in self.store.manifests("offers"))  # they name accelerators
        fp = _hash([billing.fingerprint, dimension, self._rules_key(), offers])
        frame = self._disk("daily", fp, lambda: self._resolve(raw, rules))
        out = Daily(frame, fp)
        with self._lock:
            self._memo[key] = out
        return out

    def _rules_key(self) -> dict[str, Any]:
        return self.cfg.model_dump(mode="json", include={"teams", "allocation", "reports", "providers"})

    def _disk(self, name: str, fp: str, build: Callable[[], pl.DataFrame], keep: int = 6) -> pl.DataFrame:
        """``build()``'s frame, cached on disk as ``<name>/<fp>.parquet`` (the ``keep`` newest files stay)."""
        path = self.dir / name / f"{fp}.parquet"
        cached = self._cached(path)
        if cached is not None:
            return cached
        df = build()
        self._save(path, df)
        old = sorted(path.parent.glob("*.parquet"), key=lambda p: p.stat().st_mtime, reverse=True)[keep:]
        for p in old:
            p.unlink(missing_ok=True)
        return df

    def _resolve(self, raw: pl.DataFrame, rules: alloc.Rules) -> pl.DataFrame:
        if raw.is_empty():
            return raw.with_columns(pl.lit(None, pl.String).alias("owner"), pl.lit(None, pl.String).alias("pool"),
                                     pl.lit(None, pl.String).alias("accelerator"),
                                     pl.lit(None, pl.Float64).alias("accel_hours"),
                                     pl.lit(None, pl.String).alias("market"))
        resolved = alloc.resolve(raw.lazy(), rules).collect()
        frame = _with_accelerators(resolved, reports.instance_specs(self.store))
        return frame.with_columns(pl.col("PricingCategory").replace_strict(MARKETS, default="other").alias("market"))

    def allocated(self, basis: str, dimension: alloc.Dimension = "team") -> pl.DataFrame:
        """Integer cents per day, provider, component (``direct`` or a pool) and recipient:
        :func:`finops.allocation.apportion` applied to each day, so every day sums to its bill to the cent."""
        d = self.daily(dimension)
        key = ("allocated", d.fingerprint, basis)
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        rules = alloc.rules_from_config(self.cfg, dimension)
        out = self._disk("allocated", _hash([d.fingerprint, basis]), lambda: _apportion_days(d, basis, rules))
        with self._lock:
            self._memo[key] = out
        return out

    # -- the weekly chargeback -----------------------------------------------------------------------
    def weeks(self) -> list[Week]:
        """The ISO weeks holding billing data, newest first."""
        raw = self.billing().frame
        if raw.is_empty():
            return []
        days = raw.select(pl.col("day").min().alias("a"), pl.col("day").max().alias("b")).row(0)
        first, last = Week.containing(days[0]), Week.containing(days[1])
        out, w = [], last
        while w.start >= first.start:
            out.append(w)
            w = w.previous()
        return out

    def chargeback(self, week: Week, dimension: alloc.Dimension = "team") -> reports.Chargeback:
        """:func:`finops.reports.chargeback` of ``week``, cached in memory and on disk under the manifests of
        the billing periods it reads and the rules it applies."""
        start = min(week.previous().start, week.month_start)
        periods = reports.billing_periods(start, week.end)
        ms = self.store.manifests("billing", {"billing_period": periods})
        key_data = {"v": VERSION, "week": week.label, "dim": dimension,
                    "parts": sorted(fingerprint(m, ()) for m in ms),
                    "rules": self._rules_key()}
        complete = week.complete()
        key = ("chargeback", _hash(key_data), str(complete))
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        folder = self.dir / "chargeback" / key[1]
        cb = _read_chargeback(folder) if complete else None
        if cb is None:
            cb = reports.chargeback(self.store, self.cfg, week, dimension)
            if complete:
                _write_chargeback(cb, folder)
        with self._lock:
            self._memo[key] = cb
        return cb

    # -- prices --------------------------------------------------------------------------------------
    def prices_daily(self) -> pl.DataFrame:
        """Price observations by day, provider, region, accelerator and market: min and mean per hour
        (in the observation's currency), the number of observations."""
        ms = self.store.manifests("prices")
        key = ("prices", _hash(sorted(fingerprint(m, ()) for m in ms)))
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        path = self.dir / "prices" / f"{key[1]}.parquet"
        if path.exists():
            df = pl.read_parquet(path)
        else:
            from finops.offers import SCHEMA

            lf = self.store.scan("prices", schema=SCHEMA)
            df = (lf.filter(pl.col("accelerator_name").is_not_null())
                  .group_by(pl.col("observed_at").dt.date().alias("day"), "provider", "region", "accelerator_name",
                            "accelerator_count", "market", "currency")
                  .agg(pl.col("price_per_hour").min().alias("min_price"),
                       pl.col("price_per_hour").mean().alias("mean_price"), pl.len().alias("observations"))
                  .sort("day").collect())
            shutil.rmtree(path.parent, ignore_errors=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            df.write_parquet(path)
        with self._lock:
            self._memo[key] = df
        return df


def _apportion_days(d: Daily, basis: str, rules: alloc.Rules) -> pl.DataFrame:
    schema: dict[str, Any] = {"day": pl.Date(), **alloc.APPORTIONED}
    frames = []
    src = d.frame.with_columns(d.cost(basis).alias("cost"))
    for (day,), part in src.partition_by("day", as_dict=True).items() if not src.is_empty() else ():
        frames.append(alloc.apportion(part.lazy(), rules).collect().with_columns(pl.lit(day).alias("day")))
    return pl.concat(frames, how="vertical_relaxed").select(list(schema)) if frames else pl.DataFrame(schema=schema)


def _with_accelerators(resolved: pl.DataFrame, specs: Mapping[str, tuple[str, float]]) -> pl.DataFrame:
    """Name each line's accelerator once per distinct SKU details / description (as the chargeback does)."""
    skus = resolved.select("SkuPriceDetails", "_desc").unique()
    acc = [reports.accelerator_of(s) if s else reports.accelerator_from_text(d, specs) for s, d in skus.iter_rows()]
    table = skus.with_columns(pl.Series("accelerator", [a for a, _ in acc], dtype=pl.String),
                              pl.Series("per_instance", [c for _, c in acc], dtype=pl.Float64))
    return (resolved.join(table, on=["SkuPriceDetails", "_desc"], how="left", nulls_equal=True)
            .with_columns((pl.col("hours") * pl.col("per_instance")).alias("accel_hours"))
            .drop("per_instance"))


def _write_chargeback(cb: reports.Chargeback, folder: Path) -> None:
    tmp = folder.with_name(folder.name + f".{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    frames = {"summary": cb.summary, "shared": cb.shared, "providers": cb.providers, "services": cb.services,
              "gpus": cb.gpus, "reconciliation": cb.reconciliation}
    for name, df in frames.items():
        df.write_parquet(tmp / f"{name}.parquet")
    meta = {"year": cb.week.year, "week": cb.week.week, "dimension": cb.dimension, "currency": cb.currency,
            "basis": cb.basis, "warnings": cb.warnings,
            "part_week_until": cb.part_week_until.isoformat() if cb.part_week_until else None}
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    try:
        tmp.rename(folder)
    except OSError:  # another process cached the same report meanwhile: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)


def _read_chargeback(folder: Path) -> reports.Chargeback | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        f = {n: pl.read_parquet(folder / f"{n}.parquet")
             for n in ("summary", "shared", "providers", "services", "gpus", "reconciliation")}
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    until = datetime.fromisoformat(meta["part_week_until"]) if meta["part_week_until"] else None
    return reports.Chargeback(Week(meta["year"], meta["week"]), meta["dimension"], meta["currency"], meta["basis"],
                              f["summary"], f["shared"], f["providers"], f["services"], f["gpus"],
                              f["reconciliation"], list(meta["warnings"]), until)


def day_range(df: pl.DataFrame) -> tuple[date, date] | None:
    """The first and last day of a rollup, or None when it is empty."""
    if df.is_empty():
        return None
    a, b = df.select(pl.col("day").min(), pl.col("day").max().alias("b")).row(0)
    return a, b


def today() -> date:
    return datetime.now(UTC).date()
