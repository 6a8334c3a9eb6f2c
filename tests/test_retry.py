"""The one retry helper: Retry-After in seconds or as an HTTP date, bounded tries, backoff."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import ClassVar

import httpx
import pytest

from finops import config, delivery, reports
from finops.retry import RetryPolicy, get, retry_after_seconds, retrying
from tests.fakes.server import LocalServer, QuietHandler
from tests.test_reports import bill, billing_store, cb  # noqa: F401 (fixtures)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("0") == 0.0 and retry_after_seconds(" 12 ") == 12.0
    assert retry_after_seconds(format_datetime(NOW + timedelta(seconds=30), usegmt=True), now=NOW) == 30.0
    assert retry_after_seconds(format_datetime(NOW - timedelta(hours=1), usegmt=True), now=NOW) == 0.0
    for junk in (None, "", "soon", "Fri, 99 Foo 2026", "nan", "inf"):
        assert retry_after_seconds(junk) is None


def test_retrying_is_bounded_and_backs_off() -> None:
    waits: list[float] = []
    calls = []

    def flaky() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        retrying(RetryPolicy(attempts=4, backoff=0.5, max_wait=1.5), lambda e: True, waits.append)(flaky)
    assert len(calls) == 4 and waits == [0.5, 1.0, 1.5]
    with pytest.raises(ValueError, match="not retried"):
        retrying(RetryPolicy(attempts=4), lambda e: isinstance(e, ConnectionError), waits.append)(
            lambda: (_ for _ in ()).throw(ValueError("not retried")))


class Flaky(QuietHandler):
    answers: ClassVar[list[tuple[int, dict[str, str]]]] = []
    hits: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.body()
        type(self).hits.append(self.command)
        status, headers = type(self).answers.pop(0) if type(self).answers else (200, {})
        self.reply(status, json.dumps({"ok": status == 200}), headers=headers)

    do_GET = do_POST = _answer  # noqa: N815 (http.server's names)


@pytest.fixture
def flaky() -> Iterator[str]:
    Flaky.answers, Flaky.hits = [], []
    with LocalServer(Flaky) as srv:
        yield srv.url


def test_get_honours_an_http_date_and_returns_the_last_answer(flaky: str) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    Flaky.answers = [(429, {"Retry-After": later}), (503, {}), (200, {})]
    waits: list[float] = []
    with httpx.Client() as http:
        assert get(http, flaky, policy=RetryPolicy(attempts=3, backoff=2.0), sleep=waits.append).status_code == 200
        assert 15 <= waits[0] <= 20 and waits[1] == 4.0
        Flaky.answers = [(500, {})] * 3
        assert get(http, flaky, policy=RetryPolicy(attempts=2, backoff=0), sleep=waits.append).status_code == 500


def test_webhook_honours_retry_after_as_an_http_date(flaky: str, cb: reports.Chargeback,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # An HTTP date used to crash the delivery (float("Fri, …")).
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    Flaky.answers = [(429, {"Retry-After": later}), (503, {"Retry-After": "1"})]
    monkeypatch.setenv("T_HOOK_URL", f"{flaky}/hook")
    waits: list[float] = []
    delivery.post_webhook(cb, config.WebhookConfig(url_env="T_HOOK_URL"), sleep=waits.append)
    assert Flaky.hits == ["POST"] * 3 and 3 <= waits[0] <= 5 and waits[1] == 1.0
    Flaky.answers, Flaky.hits = [(503, {})] * 3, []
    with pytest.raises(delivery.DeliveryError, match=r"HTTP 503 after 3 attempt\(s\)"):
        delivery.post_webhook(cb, config.WebhookConfig(url_env="T_HOOK_URL"), sleep=waits.append)

