"""Google API clients pointed at another endpoint (a proxy, a mirror, a local emulator): the keyword
arguments every Google client of ours is built with, written once."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlparse


def is_loopback(url: str | None) -> bool:
    """Whether ``url`` names this machine (``localhost``, 127.0.0.0/8, ::1)."""
    host = urlparse(url or "").hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_kwargs(endpoint: str | None, *, rest: bool = False) -> dict[str, Any]:
    """Keyword arguments for a Google client: none for Google's own endpoint (Application Default
    Credentials); else ``client_options`` naming ``endpoint`` (and the REST transport with ``rest``,
    for the GAPIC clients), called anonymously when it is on loopback — as Google's own emulators
    are — so tests and local emulators need no credentials."""
    if not endpoint:
        return {}
    from google.api_core.client_options import ClientOptions

    kwargs: dict[str, Any] = {"client_options": ClientOptions(api_endpoint=endpoint)}
    if rest:
        kwargs["transport"] = "rest"
    if is_loopback(endpoint):
        from google.auth.credentials import AnonymousCredentials

        kwargs["credentials"] = AnonymousCredentials()
    return kwargs
