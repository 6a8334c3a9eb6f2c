"""The engine contract: map a function over items, in this process or on a cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from finops.services.progress import QUIET, Progress

if TYPE_CHECKING:
    from finops.store import Store

R = TypeVar("R")

KINDS = ("local", "ray")


class EngineError(RuntimeError):
    """The engine cannot do the work (Ray missing, a cluster that does not answer, a worker lost for
    good, a store the workers cannot see, versions that differ): one sentence naming the fix. Nothing
    has been written when it is raised."""


class Engine(Protocol):
    """Runs ``fn`` over ``items``; results come back as ``(index, result)`` pairs as they finish.

    ``fn`` and the items must be picklable (module-level functions, ``functools.partial`` of them,
    plain data) and must not rely on the driver's memory: on Ray they run in other processes, on
    other machines. An exception ``fn`` raises is raised by ``map`` as it is (not retried); a lost
    worker is retried by the engine. ``sizes`` (bytes of input per item) lets a cluster reserve
    memory per task. ``rows_per_task`` says how finely store-wide work is cut (None: not at all)."""

    name: str
    rows_per_task: int | None

    def map(self, fn: Callable[[Any], R], items: Sequence[Any], *, what: str,
            sizes: Sequence[int] | None = None, progress: Progress = QUIET) -> Iterator[tuple[int, R]]: ...

    def check_store(self, store: Store) -> None:
        """Raise :class:`EngineError` unless everything that runs tasks can read and write ``store``."""

    def close(self) -> None: ...


class LocalEngine:
    """Polars in this process, one item after another (each item already uses every core).

    ``rows_per_task`` None (the default) treats a store snapshot as one piece, exactly the single
    query the commands always ran; a number cuts it into pieces as a cluster would (tests use this to
    check that the cut does not change any result)."""

    name = "local"

    def __init__(self, rows_per_task: int | None = None) -> None:
        self.rows_per_task = rows_per_task

    def map(self, fn: Callable[[Any], R], items: Sequence[Any], *, what: str,
            sizes: Sequence[int] | None = None, progress: Progress = QUIET) -> Iterator[tuple[int, R]]:
        step = progress.start(what, total=len(items)) if len(items) > 1 else None
        for i, item in enumerate(items):
            yield i, fn(item)
            if step is not None:
                step.advance()
        if step is not None:
            step.finish()

    def check_store(self, store: Store) -> None:
        pass

    def close(self) -> None:
        pass

