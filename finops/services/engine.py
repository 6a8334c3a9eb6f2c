"""The engine a command runs its heavy work on, opened for the command and closed after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from finops.config import Config
from finops.engine import Engine, open_engine


@contextmanager
def engine_for(cfg: Config, kind: str | None = None) -> Iterator[Engine]:
    """The configured engine (``[engine]``; ``kind`` from ``--engine`` overrides it), connected and
    checked; closed (disconnected from the cluster) when the block ends."""
    engine = open_engine(cfg.engine, kind)
    try:
        yield engine
    finally:
        engine.close()
