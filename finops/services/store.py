"""What the store holds, and its upkeep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finops.config import Config
from finops.store import Manifest, summarise


@dataclass(frozen=True)
class StoreInfo:
    store: str
    dataset: str
    partitions: list[Manifest]

    def totals(self, by: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Rows and exact sums over the partitions, grouped by partition keys ``by``."""
        return summarise(self.partitions, by)


def info(cfg: Config, dataset: str = "billing") -> StoreInfo:
    """Partitions, rows and cost totals of ``dataset``, from the store's own records (no data scan)."""
    store = cfg.open_store()
    return StoreInfo(store.url, dataset, store.manifests(dataset))
