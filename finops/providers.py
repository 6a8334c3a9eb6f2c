"""Provider names: the short keys the store and config use (aws, gcp, azure, …)."""

from __future__ import annotations

import re

import polars as pl

# FOCUS ProviderName values as the clouds write them, lower-cased, onto our short keys.
SLUGS: dict[str, str] = {
    "aws": "aws",
    "amazon web services": "aws",
    "amazon web services, inc.": "aws",
    "google cloud": "gcp",
    "google cloud platform": "gcp",
    "google": "gcp",
    "gcp": "gcp",
    "microsoft": "azure",
    "microsoft azure": "azure",
    "azure": "azure",
    "oracle": "oci",
    "oracle cloud infrastructure": "oci",
    "oci": "oci",
}
KNOWN = ("aws", "gcp", "azure")


def slug(name: str) -> str:
    """Short key for a provider name: ``"Google Cloud"`` → ``"gcp"``; unknown names slugified."""
    low = name.strip().lower()
    return SLUGS.get(low) or re.sub(r"[^a-z0-9]+", "-", low).strip("-") or "unknown"


def slug_expr(col: str = "ProviderName") -> pl.Expr:
    """:func:`slug` as a polars expression over a column of provider names."""
    # A when/then chain rather than `replace_strict`: a mapping lookup stops polars from streaming.
    low = pl.col(col).str.strip_chars().str.to_lowercase()
    out = low.str.replace_all(r"[^a-z0-9]+", "-").str.strip_chars("-")
    for name, key in SLUGS.items():
        out = pl.when(low == name).then(pl.lit(key)).otherwise(out)
    return out.fill_null("unknown")
