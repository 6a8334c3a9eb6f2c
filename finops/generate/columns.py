"""Polars columns from numpy arrays: exact decimals, datetimes, lookup tables, hex strings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from finops import focus

_HEX2 = np.array([[ord(c) for c in f"{i:02x}"] for i in range(256)], dtype=np.uint8)


def _hex_series(values: np.ndarray, nbytes: int) -> pl.Series:
    """Lower-case hex of the last ``nbytes`` bytes of each uint64, built without a Python loop."""
    n = len(values)
    b = values.astype(">u8").view(np.uint8).reshape(n, 8)[:, 8 - nbytes:]
    buf = np.ascontiguousarray(_HEX2[b]).reshape(-1)
    offsets = np.arange(n + 1, dtype=np.int32) * (2 * nbytes)
    return pl.from_arrow(pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf)))  # type: ignore[return-value]


def _dec(values: np.ndarray, valid: np.ndarray | None = None, scale: int = 6) -> pl.Series:
    """Exact ``Decimal(38, 15)`` from integers counted in units of ``10**-scale``."""
    v = np.ascontiguousarray(values, dtype=np.int64)
    words = np.empty((len(v), 2), dtype=np.int64)
    words[:, 0] = v
    words[:, 1] = v >> 63
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))
    arr = pa.Array.from_buffers(pa.decimal128(38, scale), len(v), [bitmap, pa.py_buffer(words)])
    return pl.Series(arr).cast(focus.DECIMAL)


def _dt(us: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(us, dtype=np.int64)).cast(focus.DATETIME)


def _table(values: Sequence[str | None]) -> pl.Series:
    """A lookup table with a trailing null: index ``len(values)`` reads as null."""
    return pl.Series([*values, None], dtype=pl.String)


def _const(value: str | None, n: int) -> pl.Series:
    return pl.repeat(value, n, dtype=pl.String, eager=True)
