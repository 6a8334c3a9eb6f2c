"""Retries for our own HTTP calls (the clouds' SDKs retry through their own settings): bounded tries,
exponential backoff, and ``Retry-After`` honoured whether the server sends seconds or an HTTP date.
Built on tenacity; the one place that decides how finops waits and when it gives up.

Use :func:`retrying` around any call whose failures are exceptions, or :func:`get` for an httpx GET
whose retryable answers are statuses (the last response is returned, for the caller to check).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` counts every try, the first included. Without a ``Retry-After`` hint the wait
    before try n+1 is ``backoff`` × 2ⁿ; any wait is capped at ``max_wait``."""

    attempts: int = 5
    backoff: float = 1.0
    max_wait: float = 60.0
    statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_wait < 0:
            raise ValueError(f"RetryPolicy needs attempts >= 1 and non-negative waits, not {self}")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date (RFC 9110). None if absent or
    unreadable; a date in the past is 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def hint_of(exc: BaseException | None) -> str | None:
    """The ``Retry-After`` header an exception carries (urllib's ``HTTPError``, httpx's status errors,
    :class:`RetryableStatus`), if any."""
    if exc is None:
        return None
    headers: Any = getattr(exc, "headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers.get("Retry-After") if headers is not None else None


def retrying(policy: RetryPolicy, retryable: Callable[[BaseException], bool],
             sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """A tenacity ``Retrying`` that retries exceptions for which ``retryable`` is true, waiting as the
    policy says (``Retry-After`` first), and re-raises the last exception when the tries run out.

    ``for attempt in retrying(...): with attempt: ...`` or ``retrying(...)(fn, *args)``."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        hinted = retry_after_seconds(hint_of(exc))
        backoff = policy.backoff * 2 ** (state.attempt_number - 1)
        return min(hinted if hinted is not None else backoff, policy.max_wait)

    return Retrying(stop=stop_after_attempt(policy.attempts), wait=wait, retry=retry_if_exception(retryable),
                    sleep=sleep, reraise=True)


class RetryableStatus(Exception):
    """An HTTP answer whose status says "try again" (429, 5xx)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def get(http: httpx.Client, url: str, *, params: Mapping[str, str] | None = None,
        policy: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep) -> httpx.Response:
    """GET ``url`` with ``http``, retrying statuses in ``policy.statuses`` and transport errors.
    Returns the last response, which may still be an error (the caller checks it); raises the last
    transport error if no try got a response."""
    import httpx

    def once() -> httpx.Response:
        resp = http.get(url, params=params)
        if resp.status_code in policy.statuses:
            resp.read()
            raise RetryableStatus(resp)
        return resp

    try:
        return retrying(policy, lambda e: isinstance(e, RetryableStatus | httpx.TransportError), sleep)(once)
    except RetryableStatus as e:
        return e.response
