"""Helpers shared by the CUR tests: the real samples, their totals as the CUR states them, a legacy CUR
line built from a real row of the anonymised sample, and botocore's backoff shortened."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path

RAW = Path(__file__).resolve().parents[2] / "data" / "raw" / "aws"
ANON = RAW / "cur-legacy-csv_anon_2023-11_1281.csv"
KOKU = RAW / "cur-legacy-csv_koku-test_2018-06_19.csv"


def read_rows(path: Path = ANON) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def column_total(rows: Sequence[Mapping[str, str]], column: str) -> Decimal:
    """A cost column summed exactly, as the CUR's text states it."""
    return sum((Decimal(r[column]) for r in rows if r.get(column)), Decimal(0))


def to_csv(header: Sequence[str], rows: Sequence[Mapping[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(header), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in header})
    return buf.getvalue().encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def template() -> tuple[list[str], dict[str, str]]:
    """The header of the real anonymised CUR and one of its EC2-less usage rows, to vary."""
    header, rows = read_rows()
    row = next(r for r in rows if r["lineItem/LineItemType"] == "Usage" and r["product/sku"])
    return header, dict(row)
