"""How a long use case reports progress without knowing who watches: the CLI draws bars, the scheduler
logs, tests pass nothing."""

from __future__ import annotations

from typing import Protocol


class Step(Protocol):
    """One piece of work under way."""

    def update(self, description: str) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def finish(self, description: str | None = None) -> None:
        """The step is done; ``description`` is what to remember of it."""


class Progress(Protocol):
    """Starts steps; ``total`` is the number of units when known (else the step just runs)."""

    def start(self, description: str, total: int | None = None) -> Step: ...


class _Quiet:
    def update(self, description: str) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self, description: str | None = None) -> None:
        pass

    def start(self, description: str, total: int | None = None) -> Step:
        return self


QUIET: Progress = _Quiet()
"""Progress that goes nowhere: the default of every use case."""
