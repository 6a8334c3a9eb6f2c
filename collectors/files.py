"""FOCUS export files from any provider (AWS Data Exports FOCUS, Azure Cost Management FOCUS export,
Google's FOCUS view; CSV, CSV.gz or Parquet; local or object-store URLs) into the ``billing`` dataset.

Each file is read, its provider's known quirks fixed, conformed to FOCUS 1.2 and validated on its own;
the store commits only when every file passed, so one bad file writes nothing.
"""

from __future__ import annotations

import csv
import errno
import gzip
import shutil
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import fsspec
import polars as pl

from collectors import billing, formats
from finops import focus, providers
from finops.store import Manifest, Source, Store, partition_id

Format = Literal["csv", "parquet"]
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"


class IngestError(ValueError):
    """A file that cannot be ingested: the message names the file, and the column and row where known."""


@dataclass
class FileResult:
    """One ingested file: where from, how many rows, its cost totals."""

    path: str
    rows: int
    sums: dict[str, Decimal]
    source: Source
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestResult:
    """What an ingest run read and what it wrote."""

    files: list[FileResult] = field(default_factory=list)
    manifests: list[Manifest] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def total(self, column: str = "BilledCost") -> Decimal:
        return sum((f.sums[column] for f in self.files), Decimal(0))


# -- reading -----------------------------------------------------------------------------------
def sniff_format(path: Path) -> tuple[Format, bool]:
    """(format, gzipped) of a local file, from its first bytes rather than its name."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise IngestError(f"{path}: empty file")
    if head == PARQUET_MAGIC:
        return "parquet", False
    return "csv", head[:2] == GZIP_MAGIC


@contextmanager
def local_copy(url: str, storage_options: Mapping[str, Any] | None = None) -> Iterator[tuple[Path, Future[Source]]]:
    """A local, uncompressed copy of ``url`` (the file itself when it is local and plain) and its
    :class:`Source` record (checksum of the file as delivered), computed in a background thread
    while the caller reads the file: hashing a 1 GB export takes most of a second."""
    fs, p = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if not fs.exists(p):
        raise IngestError(f"{url}: no such file")
    with ThreadPoolExecutor(max_workers=1) as pool, \
            tempfile.TemporaryDirectory(prefix="finops-ingest-") as tmp:
        local = Path(p) if _is_local(fs) else Path(tmp) / Path(p).name
        if not _is_local(fs):
            fs.get_file(p, str(local))
        source = pool.submit(Source.of, str(local), name=url)  # the bytes as delivered
        _, gz = sniff_format(local)
        if gz:
            plain = Path(tmp) / "plain.csv"
            _gunzip(local, plain, url)
            local = plain
        yield local, source


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    proto = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in proto or "local" in proto


def _gunzip(src: Path, dst: Path, name: str) -> None:
    # Streamed to disk: a large export never sits in memory whole.
    try:
        with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 22)
    except (EOFError, OSError, zlib.error) as e:
        if no_space(e):
            raise IngestError(f"no space left on {dst.parent} while unpacking {name}; nothing was written — "
                              f"free some space (or set TMPDIR to a larger disk) and run it again") from None
        raise IngestError(f"{name}: corrupt or truncated gzip file ({e})") from None


def no_space(e: BaseException) -> bool:
    """Whether ``e`` is a full disk (an OSError with ENOSPC, or polars' or delta-rs' text of one)."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return True
    text = str(e)
    return "No space left on device" in text or "os error 28" in text


EXPORT_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def expand(urls: Sequence[str | Path], storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """``urls`` with each folder replaced by the export files under it (CSV, CSV.gz, Parquet, at any
    depth, in name order; hidden and ``_``-prefixed entries skipped). A folder holding none is an error."""
    out: list[str] = []
    for url in map(str, urls):
        fs, p = fsspec.core.url_to_fs(url, **(storage_options or {}))
        try:
            is_dir = fs.isdir(p)
        except OSError:
            is_dir = False
        if not is_dir:
            out.append(url)
            continue
        base = p.rstrip("/")
        found = []
        for f in sorted(fs.find(base)):
            rel = f[len(base):].lstrip("/")
            if any(seg.startswith((".", "_")) for seg in rel.split("/")) or not f.lower().endswith(EXPORT_SUFFIXES):
                continue
            found.append(f"{url.rstrip('/')}/{rel}")
        if not found:
            raise IngestError(f"{url}: a folder with no export files in it ({', '.join(EXPORT_SUFFIXES)}, "
                              f"at any depth)")
        out += found
    return out


def read_raw(path: Path, name: str | None = None, typed: bool = False) -> pl.LazyFrame:
    """The file as read, before conforming: CSV as text columns (``typed``: FOCUS decimal columns parsed
    by the reader and ``NULL`` read as null, the fast path), Parquet with its own types."""
    name = name or str(path)
    fmt, _ = sniff_format(path)
    try:
        if fmt == "parquet":
            lf = pl.scan_parquet(path, hive_partitioning=False)
        else:
            _refuse_duplicate_columns(path, name)
            lf = pl.scan_csv(path, infer_schema=False, encoding="utf8", raise_if_empty=True)
            if typed:
                lf = pl.scan_csv(path, infer_schema=False, encoding="utf8", null_values=list(focus.NULL_STRINGS[:1]),
                                 schema_overrides=_decimal_overrides(lf.collect_schema().names()))
        lf.collect_schema()
    except pl.exceptions.NoDataError:
        raise IngestError(f"{name}: empty file (no header)") from None
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - corrupt Parquet/odd CSV raise many kinds; re-raised as IngestError
        raise IngestError(f"{name}: cannot read as {fmt.upper()} ({_first_line(e)})") from None
    return lf


def _refuse_duplicate_columns(path: Path, name: str) -> None:
    """A header naming a column twice is refused (a reader would keep one and rename the other)."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        header = next(csv.reader([f.readline()]), [])
    twice = [c for c, n in Counter(header).items() if n > 1]
    if twice:
        raise IngestError(f"{name}: column {twice[0]!r} appears more than once in the header; keep one of them")


def _decimal_overrides(header: list[str]) -> dict[str, pl.DataType]:
    renamed = focus.rename_map(header)
    out: dict[str, pl.DataType] = {}
    for h in header:
        col = focus.BY_NAME.get(renamed.get(h, h))
        if col is not None and col.kind is focus.Kind.DECIMAL:
            out[h] = focus.DECIMAL
    return out


# -- known defects of real exports -----------------------------------------------------------
@dataclass(frozen=True)
class Fix:
    """A known defect of some exports: how to spot it on a conformed row, and how to mend it.

    Mending is paid for only by files that need it: a file is first staged without fixes, checked
    with every ``spots`` in one cheap columnar pass, and staged again with all fixes if any row
    needs one (fixes leave rows that do not need them unchanged, so the result is the same)."""

    name: str
    spots: Callable[[], pl.Expr]
    mend: Callable[[pl.LazyFrame], pl.LazyFrame]


def _fill_contracted(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.with_columns(
        pl.col("ContractedCost").fill_null(pl.col("ListCost")),
        pl.when(pl.col("ChargeCategory") != "Tax")
        .then(pl.col("ContractedUnitPrice").fill_null(pl.col("ListUnitPrice")))
        .otherwise(pl.col("ContractedUnitPrice")).alias("ContractedUnitPrice"),
    )


NUMERIC = r"^[0-9.eE+-]+$"


def _drop_numeric_zones(lf: pl.LazyFrame) -> pl.LazyFrame:
    az = pl.col("AvailabilityZone")
    return lf.with_columns(pl.when(az.str.contains(NUMERIC)).then(None).otherwise(az).alias("AvailabilityZone"))


def _spec_nulls(lf: pl.LazyFrame) -> pl.LazyFrame:
    usage = pl.col("ChargeCategory") == "Usage"
    return lf.with_columns(
        pl.when(usage).then(pl.col("ConsumedQuantity")).alias("ConsumedQuantity"),
        pl.when(usage).then(pl.col("ConsumedUnit")).alias("ConsumedUnit"),
        pl.when(pl.col("ContractedUnitPrice") >= 0).then(pl.col("ContractedUnitPrice")).alias("ContractedUnitPrice"),
        pl.col("BillingAccountName").fill_null(pl.col("BillingAccountId")),
    )


def _nulls_where_derivable() -> pl.Expr:
    c = pl.col
    return (c("ServiceSubcategory").is_null() | c("PricingCurrency").is_null()
            | (c("BillingAccountType").is_null() & c("BillingAccountId").is_not_null())
            | (c("SubAccountType").is_null() & c("SubAccountId").is_not_null())
            | (c("SkuMeter").is_null() & c("SkuId").is_not_null()))


# In the order they are applied. They test values row by row, so a file mixing providers (the
# FinOps Foundation's sample does) is handled.
FIXES: tuple[Fix, ...] = (
    # Oracle leaves ContractedCost/ContractedUnitPrice empty when no negotiated rate applies;
    # FOCUS then has them equal the list figures.
    Fix("contracted-from-list", lambda: pl.col("ContractedCost").is_null()
        | (pl.col("ContractedUnitPrice").is_null() & pl.col("ListUnitPrice").is_not_null()
           & (pl.col("ChargeCategory") != "Tax")), _fill_contracted),
    # Microsoft rows of the FinOps Foundation's 1.0 sample carry the unit price in AvailabilityZone.
    Fix("numeric-zones", lambda: pl.col("AvailabilityZone").str.contains(NUMERIC), _drop_numeric_zones),
    # What FOCUS says must be null and exports fill: ConsumedQuantity/Unit outside Usage rows
    # (Oracle adjustments), a negative ContractedUnitPrice (an AWS credit in the sample); and an
    # unnamed billing account, named by its id.
    Fix("spec-nulls", lambda: ((pl.col("ChargeCategory") != "Usage")
                               & (pl.col("ConsumedQuantity").is_not_null() | pl.col("ConsumedUnit").is_not_null()))
        | (pl.col("ContractedUnitPrice") < 0) | pl.col("BillingAccountName").is_null(), _spec_nulls),
    # Older FOCUS versions lack columns 1.1 and 1.2 added that FOCUS defines from others.
    Fix("upgrade-to-1.2", _nulls_where_derivable, focus.upgrade),
)


def needs_repair(lf: pl.LazyFrame) -> list[str]:
    """Which repairs a frame conformed with ``repair=False`` needs (``conform`` for null strings and
    enumeration case, else the names of :data:`FIXES`), in one columnar pass."""
    return _tally(lf)[0]


def _tally(lf: pl.LazyFrame) -> tuple[list[str], dict[str, int]]:
    # One pass over the staged data counts both the repairs it needs and the FOCUS rules it breaks.
    repairs = {"conform": focus.repairs_needed(lf.collect_schema())} | {f.name: f.spots() for f in FIXES}
    rules = {k: e for k, (_, _, e) in focus.checks(lf.collect_schema().names()).items()}
    counts = focus.count(lf, repairs | rules)
    return [k for k in repairs if counts[k]], counts


def load(raw: pl.LazyFrame, name: str, fast: bool = False, repair: bool = True) -> pl.LazyFrame:
    """Conform a raw export to FOCUS 1.2 and, with ``repair``, mend it (null strings, enumeration
    case, :data:`FIXES`). Lazy: errors surface on collect. ``fast`` parses each date/time column with
    the one format a sample of the file shows."""
    try:
        formats = None
        if fast:
            sample = raw.rename(focus.rename_map(raw.collect_schema().names())).head(1000).collect()
            formats = focus.sniff_datetime_formats(sample)
        lf = focus.conform(raw, datetime_formats=formats, repair=repair)
    except focus.FocusError as e:
        present = set(raw.collect_schema().names()) & set(focus.BY_NAME)
        hint = "" if len(present) >= 5 else " — this does not look like a FOCUS export"
        raise IngestError(f"{name}: {e}{hint}") from None
    for fix in FIXES if repair else ():
        lf = fix.mend(lf)
    return lf


# -- ingesting ---------------------------------------------------------------------------------
def ingest(store: Store, urls: Sequence[str | Path], *, provider: str | None = None,
           storage_options: Mapping[str, Any] | None = None,
           progress: Callable[[str, str], None] | None = None, replace: bool = False) -> IngestResult:
    """Ingest FOCUS export files (or folders of them, see :func:`expand`) into the ``billing`` dataset,
    all or nothing, in one commit.

    Every partition (provider × billing period × billing account) the files touch is replaced by the
    rows of these files, so ingesting the same files again changes nothing. A partition whose rows came
    from other source files (by SHA-256, from the store's provenance) is not replaced unless
    ``replace``: the files of one delivery (a month in two halves, Azure's actual and amortized files)
    are to be given together, and they then replace the partition as a set. ``progress(path, state)``
    is called with states ``reading``, ``staged`` and ``committed``.
    """
    known = (*providers.clouds(), *providers.OTHER_NAMES)  # FOCUS files may hold clouds we do not collect from
    if provider is not None and provider not in known:
        raise IngestError(f"--provider {provider!r}: expected one of {', '.join(known)}")
    urls = expand(urls, storage_options)
    try:
        return _ingest(store, urls, provider, storage_options, progress, replace)
    except Exception as e:
        if no_space(e):
            raise IngestError(f"no space left on {store.root if store.local else store.url} while writing the "
                              f"store; nothing was written — free some space and run it again") from None
        raise


def _ingest(store: Store, urls: list[str], provider: str | None, storage_options: Mapping[str, Any] | None,
            progress: Callable[[str, str], None] | None, replace: bool) -> IngestResult:
    result = IngestResult()
    note = progress or (lambda _p, _s: None)
    with store.transaction("billing") as tx:
        try:
            _stage_all(tx, urls, provider, storage_options, note, result)
            if not replace:
                refuse_replacing_other_sources(store, tx)
            result.manifests = tx.commit()
        except IngestError:
            raise
        except Exception as e:
            if _out_of_space(e, tx):
                raise _space_error(tx) from None
            raise
    for f in result.files:
        note(f.path, "committed")
    return result


def _stage_all(tx: Any, urls: list[str], provider: str | None, storage_options: Mapping[str, Any] | None,
               note: Callable[[str, str], None], result: IngestResult) -> None:
    seen: set[str] = set()
    together: dict[str, tuple[formats.NativeFormat, list[str]]] = {}
    for url in urls:
        note(url, "reading")
        with local_copy(url, storage_options) as (local, pending):
            raw = read_raw(local, url)
            native = formats.detect(raw.collect_schema().names())
            if native is not None and native.together is not None:  # read as a set, below
                check_provider(native.provider, provider, url)
                together.setdefault(native.name, (native, []))[1].append(url)
                continue
            staged = stage_file(tx, local, raw, native, url, pending, provider)
            if staged.source.sha256 in seen:  # same bytes as an earlier file of this run
                tx.discard(-1)
                result.skipped.append(url)
                note(url, "duplicate")
                continue
            seen.add(staged.source.sha256)
            result.files.append(staged)
        note(url, "staged")
    for native, group in together.values():
        result.files += stage_together(tx, native, group, storage_options)
        for url in group:
            note(url, "staged")


# A write failing with less than this free where it stages is taken as a full disk: a sink that runs out
# of space can leave a truncated file that fails only when read back, with no ENOSPC to be seen.
FULL_BELOW_BYTES = 1 << 20


def _out_of_space(e: BaseException, tx: Any) -> bool:
    if no_space(e):
        return True
    try:
        d = Path(tx.dir)
        while not d.exists() and d != d.parent:
            d = d.parent
        return shutil.disk_usage(d).free < FULL_BELOW_BYTES
    except OSError:
        return False


def _space_error(tx: Any) -> IngestError:
    where = tx.store.root if tx.store.local else str(Path(tx.dir).parent)
    return IngestError(f"no space left on {where} while writing the store; nothing was written — free some "
                       f"space and run it again")


def refuse_replacing_other_sources(store: Store, tx: Any) -> None:
    """Refuse a write that would replace a partition built from files other than those given now."""
    ours = {s.sha256 for part in tx.parts for s in part.sources}
    touched = {pid for part in tx.parts for pid in part.files}
    if not touched:
        return
    keys = [part_keys for part in tx.parts for part_keys in part.partitions]
    wanted = {k: sorted({p[k] for p in keys}) for k in ("provider", "billing_period")}
    for m in store.manifests("billing", wanted):
        pid = partition_id(m.partition)
        if pid not in touched:
            continue
        others = [str(s.get("path", "?")) for s in m.sources if s.get("sha256") not in ours]
        if not others and m.sources:
            continue
        names = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        held = f"rows from {names}" if others else "rows of unrecorded origin"
        raise IngestError(f"{pid}: already holds {held}, not among the files given; give all files of the "
                          f"delivery together, or pass --replace to replace those rows with these")


def check_provider(found: str, wanted: str | None, name: str) -> None:
    """Refuse a file whose rows are not of the provider ``--provider`` names."""
    if wanted and found != wanted:
        raise IngestError(f"{name}: --provider {wanted} given, but the file holds rows of {found}")


def stage_together(tx: Any, native: formats.NativeFormat, urls: list[str],
                   storage_options: Mapping[str, Any] | None) -> list[FileResult]:
    """Files of a layout read as a set (one chunk per billing period), checked as collectors are."""
    out = []
    try:
        for chunk in native.together(urls, storage_options):  # type: ignore[misc]
            part = billing.stage(tx, chunk)
            where = urls[0] if len(urls) == 1 else f"{len(urls)} {native.name} files"
            out.append(FileResult(f"{where} [{chunk.period:%Y-%m}]", part.rows,
                                  {k: Decimal(v) for k, v in part.sums.items()}, chunk.sources[0]))
    except billing.CollectError as e:
        raise IngestError(str(e)) from None
    return out


def stage_file(tx: Any, local: Path, raw: pl.LazyFrame, native: formats.NativeFormat | None, name: str,
               pending: Future[Source], provider: str | None, rows: tuple[int, int] | None = None) -> FileResult:
    """Map, validate and stage one file (or its rows ``[offset, offset + length)``) in ``tx``."""
    # Native exports are mapped to FOCUS. FOCUS files: the fast plan first (types parsed by the
    # reader, one datetime format per column); if the file defeats it, the general plan; if that
    # fails too, find the offending values for the message. ``rows`` (offset, length): only those
    # rows of the file (a cluster's task over part of a large FOCUS Parquet file).
    def typed() -> pl.LazyFrame:
        lf = read_raw(local, name, typed=True)
        return lf.slice(*rows) if rows else lf

    if rows:
        raw = raw.slice(*rows)
    if native is not None:
        lf = _native(native, raw, name)
        try:
            part = tx.stage(lf)
        except (pl.exceptions.PolarsError, OSError) as e:
            if _out_of_space(e, tx):
                raise _space_error(tx) from None
            bad = native.bad_values(raw) if native.bad_values else []
            if bad:
                where = "; ".join(f"column {c}, row {r + 1}: {v!r}" for c, r, v in bad)
                raise IngestError(f"{name} ({native.name}): values that do not parse: {where}") from None
            raise IngestError(f"{name} ({native.name}): {_first_line(e)}") from None
        return _finish(part, lf, name, pending, provider, None)
    counts: dict[str, int] | None
    try:
        lf = load(typed(), name, fast=True, repair=False)
        part = tx.stage(lf)
        needed, counts = _tally(part.scan())
        if needed:
            tx.discard(-1)
            lf = load(typed(), name, fast=True)
            part = tx.stage(lf)
            counts = None
    except (pl.exceptions.PolarsError, OSError, IngestError) as e:
        if _out_of_space(e, tx):
            raise _space_error(tx) from None
        lf, counts = load(raw, name), None
        try:
            part = tx.stage(lf)
        except (pl.exceptions.PolarsError, OSError) as e2:
            if _out_of_space(e2, tx):
                raise _space_error(tx) from None
            raise _explain(e2, raw, name) from None
    return _finish(part, lf, name, pending, provider, counts)


def _native(fmt: formats.NativeFormat, raw: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """A native export (CUR, Azure cost details, BigQuery export) mapped to FOCUS and conformed."""
    try:
        return focus.conform(fmt.to_focus(raw, name))
    except (focus.FocusError, ValueError) as e:
        if isinstance(e, IngestError):
            raise
        raise IngestError(f"{name} ({fmt.name}): {_first_line(e)}") from None


def _finish(part: Any, lf: pl.LazyFrame, name: str, pending: Future[Source], provider: str | None,
            counts: dict[str, int] | None) -> FileResult:
    if part.rows == 0:
        raise IngestError(f"{name}: no rows (header only)")
    if provider:
        names = part.scan().select(pl.col("ProviderName").unique()).collect().to_series().to_list()
        found = {providers.slug(n) for n in names}
        if found != {provider}:
            raise IngestError(f"{name}: --provider {provider} given, but the file holds rows of "
                              f"{', '.join(sorted(found))}")
    problems = focus.validate(part.scan(), counts)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise IngestError(f"{name}: not valid FOCUS: {_locate(lf, errors)}")
    warnings = [str(p) for p in problems if p.severity == "warning"]
    source = pending.result()
    part.sources.append(source)
    return FileResult(name, part.rows, {k: Decimal(v) for k, v in part.sums.items()}, source, warnings)


def _explain(err: Exception, raw: pl.LazyFrame, name: str) -> IngestError:
    """Turn a failed strict conform into a message naming the column, row and value."""
    try:
        bad = focus.bad_values(raw)
    except Exception:  # noqa: BLE001 - diagnosis is best effort; the original error still gets reported
        bad = []
    if bad:
        where = "; ".join(f"column {b.column}, row {b.row + 1}: {b.value!r}" for b in bad)
        return IngestError(f"{name}: values that do not parse: {where}")
    try:
        huge = _out_of_range(raw)
    except Exception:  # noqa: BLE001 - as above
        huge = []
    if huge:
        where = "; ".join(f"column {c}, row {r + 1}: {v!r}" for c, r, v in huge)
        return IngestError(f"{name}: numbers too large for an amount (at most {MAX_AMOUNT:.0e} in magnitude): {where}")
    return IngestError(f"{name}: {_first_line(err)}")


MAX_AMOUNT = 10.0 ** (38 - focus.MONEY_SCALE)  # what the store's decimal type holds


def _out_of_range(raw: pl.LazyFrame, limit: int = 5) -> list[tuple[str, int, str]]:
    """Amounts that read as numbers but are infinite or beyond the store's decimal type (``1e400``)."""
    renamed = raw.rename(focus.rename_map(raw.collect_schema().names()))
    cols = [c.name for c in focus.COLUMNS if c.kind is focus.Kind.DECIMAL and c.name in renamed.collect_schema()]
    out: list[tuple[str, int, str]] = []
    indexed = renamed.with_row_index("__row")
    for c in cols:
        text = pl.col(c).cast(pl.String).str.strip_chars()
        num = text.cast(pl.Float64, strict=False)
        rows = (indexed.filter(num.is_infinite() | (num.abs() >= MAX_AMOUNT))
                .select("__row", text.alias("v")).limit(limit).collect())
        out += [(c, int(i), str(v)) for i, v in rows.iter_rows()]
    return sorted(out, key=lambda b: b[1])[:limit]


def _locate(lf: pl.LazyFrame, problems: list[focus.Problem]) -> str:
    """Problems with the first rows (1-based, in file order) where each occurs."""
    rules = focus.checks(lf.collect_schema().names())
    parts = []
    for p in problems:
        rows = (lf.select(rules[p.key][2].alias("bad")).with_row_index("row").filter(pl.col("bad"))
                .select("row").limit(3).collect().to_series().to_list())
        where = f" at row(s) {', '.join(str(r + 1) for r in rows)}" if rows else ""
        parts.append(f"{p}{where}")
    return "; ".join(parts)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
