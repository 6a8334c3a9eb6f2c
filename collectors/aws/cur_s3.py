"""AWS Cost and Usage Reports collected from S3, one billing period at a time, driven by the manifests.

Two delivery layouts, told apart by what sits under the report's prefix (``s3://bucket/<prefix>/<name>``):

- legacy CUR: ``<name>/<YYYYMMDD-YYYYMMDD>/<name>-Manifest.json`` (the period's latest assembly), whose
  ``reportKeys`` are bucket keys of CSV.gz (or Parquet) files and ``billingPeriod.start`` is
  ``YYYYMMDDT000000.000Z``;
- CUR 2.0 Data Exports: ``<name>/metadata/BILLING_PERIOD=YYYY-MM/<name>-Manifest.json``, whose
  ``dataFiles`` are ``s3://bucket/key`` URLs (bare keys are accepted too).

:func:`collect` yields one :class:`collectors.billing.Chunk` per billing period that
:func:`collectors.billing.periods` selects, oldest first: every file the manifest names, read, mapped
(:mod:`collectors.aws.cur`) and conformed, with the CUR's own unblended total as the chunk's
``source_totals`` (so :func:`collectors.billing.run` checks the written rows against it to the cent).
Before reading a period, every key its manifest names is checked to exist: a missing one raises
:class:`CollectError` naming the manifest and the key, before anything of that period is written.

The S3 client is passed in (build it with :func:`make_client`: standard retry mode, so botocore retries
throttling and 5xx itself). Any S3 error that remains — an expired token, access denied — raises
:class:`CollectError` naming the call, bucket and key.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import polars as pl
from botocore.exceptions import BotoCoreError, ClientError

from collectors import files
from collectors.aws import cur
from collectors.aws.prices import client_config
from collectors.billing import Chunk, CollectError, CollectSettings, periods, require_location
from finops import focus
from finops.config import BillingSource
from finops.store import Source

LEGACY_PERIOD = re.compile(r"^(\d{8})-(\d{8})/$")
CUR2_MANIFEST = re.compile(r"^metadata/BILLING_PERIOD=(\d{4})-(\d{2})/[^/]+-Manifest\.json$")


def make_client(source: BillingSource, *, session: Any | None = None, region: str | None = None) -> Any:
    """An S3 client for ``source`` (its ``endpoint_url``, if any) with
    :func:`collectors.aws.prices.client_config` (standard retries); credentials from ``session``
    (default: boto3's own chain)."""
    import boto3

    session = session or boto3.session.Session()
    return session.client("s3", config=client_config(), endpoint_url=source.endpoint_url, region_name=region)


def source_id(source: BillingSource, settings: CollectSettings | None = None) -> str:
    """The source (and cursor) name: ``source.name``, else ``aws-cur:s3://bucket/prefix/name``."""
    return source.name or f"aws-cur:{require_location(source).rstrip('/')}"


@dataclass(frozen=True)
class Manifest:
    """One billing period's manifest: where it is, the period, and the data files (bucket, key)."""

    url: str
    period: date
    files: tuple[tuple[str, str], ...]
    layout: str  # "legacy" | "cur2"


def _split(url: str) -> tuple[str, str]:
    u = urlparse(url)
    if u.scheme != "s3" or not u.netloc:
        raise CollectError(f"{url}: not an s3://bucket/prefix URL")
    return u.netloc, u.path.strip("/")


def _call(what: str, fn: Any, **kw: Any) -> Any:
    """An S3 call whose failure (after botocore's retries) becomes a CollectError naming it."""
    try:
        return fn(**kw)
    except ClientError as e:
        err = e.response.get("Error", {})
        where = " ".join(f"{k}={v}" for k, v in kw.items() if k in ("Bucket", "Key", "Prefix"))
        raise CollectError(f"s3.{what}({where}) failed: {err.get('Code', '?')}: {err.get('Message', e)}") from None
    except BotoCoreError as e:
        raise CollectError(f"s3.{what} failed: {e}") from None


def _list(s3: Any, bucket: str, prefix: str, delimiter: str | None = None) -> tuple[list[str], list[str]]:
    """(keys, common prefixes) under ``prefix``, through the ``list_objects_v2`` paginator."""
    kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter:
        kw["Delimiter"] = delimiter
    keys, prefixes = [], []
    pages = s3.get_paginator("list_objects_v2").paginate(**kw)
    try:
        for page in pages:
            keys += [o["Key"] for o in page.get("Contents", [])]
            prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    except ClientError as e:
        err = e.response.get("Error", {})
        raise CollectError(f"s3.list_objects_v2(Bucket={bucket} Prefix={prefix}) failed: "
                           f"{err.get('Code', '?')}: {err.get('Message', e)}") from None
    return keys, prefixes


def find_manifests(s3: Any, url: str, wanted: set[date] | None = None) -> list[Manifest]:
    """The billing periods' manifests under a CUR location (those in ``wanted``, or all), oldest first:
    read, their files not yet checked."""
    bucket, prefix = _split(url)
    base = f"{prefix}/" if prefix else ""
    name = prefix.rsplit("/", 1)[-1]
    _, subdirs = _list(s3, bucket, base, "/")
    found: list[tuple[date, str, str]] = []
    if f"{base}metadata/" in subdirs:
        keys, _ = _list(s3, bucket, f"{base}metadata/")
        for key in keys:
            m = CUR2_MANIFEST.match(key[len(base):])
            if m:
                found.append((date(int(m[1]), int(m[2]), 1), key, "cur2"))
    for sub in subdirs:
        m = LEGACY_PERIOD.match(sub[len(base):])
        if m:
            start = date(int(m[1][:4]), int(m[1][4:6]), int(m[1][6:]))
            found.append((start, f"{sub}{name}-Manifest.json", "legacy"))
    if not found:  # a wrong prefix would otherwise collect nothing, silently
        raise CollectError(f"{url}: no CUR here: neither <period>/{name}-Manifest.json (legacy CUR) nor "
                           f"metadata/BILLING_PERIOD=YYYY-MM/{name}-Manifest.json (CUR 2.0 Data Exports)")
    return [_read_manifest(s3, bucket, key, period, layout) for period, key, layout in sorted(found)
            if wanted is None or period in wanted]


def _read_manifest(s3: Any, bucket: str, key: str, period: date, layout: str) -> Manifest:
    url = f"s3://{bucket}/{key}"
    body = _call("get_object", s3.get_object, Bucket=bucket, Key=key)["Body"].read()
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise CollectError(f"{url}: manifest is not JSON ({e})") from None
    entries = doc.get("reportKeys") if layout == "legacy" else doc.get("dataFiles")
    if not isinstance(entries, list):
        field = "reportKeys" if layout == "legacy" else "dataFiles"
        raise CollectError(f"{url}: manifest has no {field} list")
    out = []
    for entry in entries:
        if str(entry).startswith("s3://"):
            b, k = _split(str(entry))
            out.append((b, k))
        else:
            out.append((doc.get("bucket") or bucket, str(entry).lstrip("/")))
    return Manifest(url, period, tuple(out), layout)


def _check_present(s3: Any, manifest: Manifest) -> None:
    for bucket, key in manifest.files:
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "?")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise CollectError(f"{manifest.url}: names s3://{bucket}/{key}, which does not exist") from None
            raise CollectError(f"s3.head_object(Bucket={bucket} Key={key}) failed: {code}: "
                               f"{e.response.get('Error', {}).get('Message', e)}") from None


def _download(s3: Any, bucket: str, key: str, dest: Path) -> Path:
    """The object as a plain local file (gzip undone), streamed."""
    raw = dest.with_suffix(dest.suffix + ".download")
    resp = _call("get_object", s3.get_object, Bucket=bucket, Key=key)
    with open(raw, "wb") as f:
        f.writelines(resp["Body"].iter_chunks(1 << 22))
    with open(raw, "rb") as f:
        gz = f.read(2) == files.GZIP_MAGIC
    if not gz:
        return raw.rename(dest)
    try:
        with gzip.open(raw, "rb") as fin, open(dest, "wb") as fout:
            while block := fin.read(1 << 22):
                fout.write(block)
    except (EOFError, OSError) as e:
        raise CollectError(f"s3://{bucket}/{key}: corrupt or truncated gzip file ({e})") from None
    return dest


def _check_csv_shape(path: Path, name: str) -> None:
    """A header whose field count differs from its rows' (fields fused or lost) is a broken file."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        for i, row in enumerate(rows, start=2):
            if header is not None and len(row) != len(header):
                raise CollectError(f"{name}: the header has {len(header)} fields but line {i} has {len(row)}: "
                                   "the columns changed or the file is malformed")
            if i > 3:
                break


def read_period(s3: Any, manifest: Manifest, workdir: Path) -> tuple[pl.LazyFrame, list[Source], Decimal]:
    """One period's files downloaded into ``workdir``, mapped, conformed and written there as one FOCUS
    Parquet file (so a value that does not parse fails here, named, before the store is touched);
    returns a scan of it (valid while ``workdir`` exists), the sources and the CUR's own unblended total."""
    _check_present(s3, manifest)
    sources, total, outs = [], Decimal(0), []
    for n, (bucket, key) in enumerate(manifest.files):
        name = f"s3://{bucket}/{key}"
        local = _download(s3, bucket, key, workdir / f"{n:05d}")
        sources.append(Source.of(str(local), name=name))
        fmt, _ = files.sniff_format(local)
        if fmt == "csv":
            _check_csv_shape(local, name)
        out = workdir / f"{n:05d}.focus.parquet"
        try:
            raw = files.read_raw(local, name)
            cur.normalise(raw, name).sink_parquet(out)
            total += Decimal(str(raw.select(cur.raw_total(raw)).collect().item() or 0))
        except files.IngestError as e:
            raise CollectError(str(e)) from None
        except (pl.exceptions.PolarsError, focus.FocusError) as e:
            bad = cur.bad_values(files.read_raw(local, name))
            where = "; ".join(f"column {c}, row {r + 1}: {v!r}" for c, r, v in bad) or str(e).splitlines()[0]
            raise CollectError(f"{name}: values that do not parse: {where}") from None
        outs.append(out)
    frame = pl.scan_parquet(outs) if outs else focus.empty_frame().lazy()
    return frame, sources, total


def collect(s3: Any, source: BillingSource, cursor: dict | None, since: date | None, *,
            settings: CollectSettings | None = None) -> Iterator[Chunk]:
    """The billing periods of the CUR at ``source.location`` (``s3://bucket/prefix/name``) to
    (re)collect, one :class:`Chunk` each, oldest first.

    ``cursor`` is the store's cursor for :func:`source_id`; ``since`` forces a start month;
    ``settings.today`` pins today. Feed the result to :func:`collectors.billing.run`.
    """
    url, sid = require_location(source), source_id(source)
    today = settings.today if settings else None
    for manifest in find_manifests(s3, url, set(periods(cursor, since, today))):
        with tempfile.TemporaryDirectory(prefix="finops-cur-") as tmp:
            frame, sources, total = read_period(s3, manifest, Path(tmp))
            yield Chunk(sid, manifest.period, frame, sources, {"BilledCost": total})
