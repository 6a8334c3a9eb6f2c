"""Choosing and connecting the engine a command runs on."""

from __future__ import annotations

from finops.config import EngineConfig
from finops.engine.base import KINDS, Engine, EngineError, LocalEngine


def open_engine(cfg: EngineConfig, kind: str | None = None) -> Engine:
    """The engine ``cfg`` names (``kind``, e.g. from ``--engine``, overrides it); a Ray engine is
    connected and checked before it is returned."""
    kind = kind or cfg.kind
    if kind not in KINDS:
        raise EngineError(f"--engine {kind!r}: expected one of {', '.join(KINDS)}")
    if kind == "local":
        return LocalEngine()
    from finops.engine.ray import RayEngine

    return RayEngine(cfg)
