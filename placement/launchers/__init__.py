"""Launchers: one module per kind of launch target, all of the shape :mod:`placement.launchers.base`
describes. :func:`module` finds a kind's module through the registry (``finops.providers``)."""

from __future__ import annotations

from types import ModuleType

from finops import providers
from placement.launchers.base import ExtraMissing


def module(kind: str) -> ModuleType:
    """The launcher module of target kind ``kind``, imported now. A module whose SDK is missing raises
    :class:`ExtraMissing` from its ``make_client``, so importing it here never needs the SDK."""
    entry = providers.target(kind)
    mod: ModuleType = providers.resolve(entry.launcher)
    return mod


__all__ = ["ExtraMissing", "module"]
