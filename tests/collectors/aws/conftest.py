"""Fixtures shared by the AWS collector tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.retries import standard


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """botocore's own backoff, recorded, and shortened 100× so the tests stay fast (botocore's retry
    logic is what is tested; only its sleeping is cut short)."""
    delays: list[float] = []
    original = standard.ExponentialBackoff.delay_amount

    def shortened(self: standard.ExponentialBackoff, context: object) -> float:
        delay = original(self, context)
        delays.append(delay)
        return delay / 100

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", shortened)
    yield delays
