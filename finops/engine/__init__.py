"""Where partition-shaped work runs: in this process (``local``, the default) or as tasks on a Ray
cluster (``ray``). Both run the same polars functions; only the map over the pieces differs.

- :mod:`finops.engine.base`: the contract (:class:`Engine`), :class:`EngineError`, :class:`LocalEngine`.
- :mod:`finops.engine.connect`: :func:`open_engine`, the engine a command is configured to use.
- :mod:`finops.engine.ray`: :class:`RayEngine` (imported only when configured; needs ``finops[ray]``).
- :mod:`finops.engine.pieces`: cutting a store snapshot into pieces of work and merging partial aggregates.
"""

from __future__ import annotations

from finops.engine.base import Engine, EngineError, LocalEngine
from finops.engine.connect import open_engine

__all__ = ["Engine", "EngineError", "LocalEngine", "open_engine"]
