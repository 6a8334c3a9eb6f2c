"""Native (pre-FOCUS) billing export formats, recognised by their columns.

Each provider module defines one :class:`NativeFormat` per export layout it reads, in a ``FORMATS``
list that the provider's entry in :mod:`finops.providers` names (``native_formats``); ``finops ingest``
tries them in order on a file's header and, on a match, maps the file to FOCUS before conforming it.

This module imports none of the modules that define formats (they import it): it finds their lists
through the registry, when first asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from collectors.billing import Chunk
from finops import providers


@dataclass(frozen=True)
class NativeFormat:
    """One native export layout.

    ``matches(columns)`` says whether a header (column names as read, BOM stripped) is this layout.
    ``to_focus(raw, name)`` maps the raw frame (CSV: every column text; Parquet: its own types) to a
    frame of FOCUS-named columns ready for :func:`finops.focus.conform`; ``name`` (the file) goes into
    any error. It raises ``collectors.files.IngestError``/``ValueError`` naming file and column when a
    column it needs is missing or malformed.

    ``together``, for layouts whose files only make sense as a set (Azure's actual and amortized
    files of a month): ``together(urls, storage_options)`` reads them all and yields one chunk per
    billing period; ``finops ingest`` then hands it every file of the layout instead of mapping each.

    ``bad_values(raw)``, where the mapping's casts can fail on a value: (column, 0-based row, text) of
    the first values that do not parse, so the error names them.
    """

    name: str
    provider: str
    matches: Callable[[Sequence[str]], bool]
    to_focus: Callable[[pl.LazyFrame, str], pl.LazyFrame]
    together: Callable[[Sequence[str], Mapping[str, Any] | None], Iterator[Chunk]] | None = None
    bad_values: Callable[[pl.LazyFrame], list[tuple[str, int, str]]] | None = None


def registry() -> list[NativeFormat]:
    """Every native format we read: each cloud's, in registry order (within a cloud, most specific first)."""
    return [f for key in providers.clouds() for f in providers.resolve(providers.get(key).native_formats)]


def detect(columns: Sequence[str]) -> NativeFormat | None:
    """The native format a header belongs to, or None (FOCUS or unknown)."""
    cols = [c.lstrip("\ufeff") for c in columns]
    return next((f for f in registry() if f.matches(cols)), None)
