"""Polars expressions that keep a query streaming.

``Expr.replace``/``replace_strict`` with a mapping are whole-column functions: in a streaming query
they wait for the entire input, and every other column of the select waits with them, so a 2M-row CUR
held 2.5 GB instead of 0.5 GB. :func:`recode` does the same lookup batch by batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl


def recode(e: pl.Expr, mapping: Mapping[Any, Any], default: pl.Expr | Any = None,
           dtype: pl.DataType | type[pl.DataType] = pl.String) -> pl.Expr:
    """``e`` looked up in ``mapping``; values not in it (and nulls) give ``default`` (an expression,
    e.g. ``e`` itself to keep them, or a value). Mapping values must not be None."""
    keys, values = list(mapping), list(mapping.values())

    def lookup(s: pl.Series) -> pl.Series:
        return s.replace_strict(keys, values, default=None, return_dtype=dtype)

    found = e.map_batches(lookup, return_dtype=dtype, is_elementwise=True)
    if default is None:
        return found
    return pl.coalesce(found, default if isinstance(default, pl.Expr) else pl.lit(default, dtype=dtype))
