"""Provider names: the short keys the store and config use (aws, gcp, azure, …)."""

from __future__ import annotations

import re

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


def spellings(key: str) -> list[str]:
    """The ProviderName values that :func:`slug` maps to ``key``, in the usual letter cases, for a
    cheap ``is_in`` test per row."""
    names = [n for n, k in SLUGS.items() if k == key]
    return sorted({v for n in names for v in (n, n.upper(), n.title(), n.capitalize())})
