"""What the store holds, and its upkeep."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finops.config import Config
from finops.services.progress import QUIET, Progress
from finops.store import DATASETS, Manifest, OptimizeSummary, VacuumSummary, Version, summarise

if TYPE_CHECKING:
    from finops.store_migrate import MigrationResult


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


def history(cfg: Config, dataset: str = "billing") -> list[Version]:
    """The dataset's versions, oldest first (what ``--as-of`` can name)."""
    return cfg.open_store().history(dataset)


def optimize(cfg: Config, datasets: Sequence[str] = (), progress: Progress = QUIET) -> list[OptimizeSummary]:
    """Merge small files (e.g. many hourly price appends) partition by partition in ``datasets`` (default:
    all); no data changes, and readers of any version are unaffected."""
    store = cfg.open_store()
    datasets = list(datasets) or list(DATASETS)
    step = progress.start("optimize", total=len(datasets))
    done = []
    for name in datasets:
        step.update(f"optimize {name}")
        done.append(store.optimize(name))
        step.advance()
    step.finish()
    return done


def vacuum(cfg: Config, retain_hours: float, dataset: str | None = None, *, force: bool = False,
           dry_run: bool = False) -> VacuumSummary:
    """Delete files no version of the last ``retain_hours`` needs (and files a crashed writer left);
    time travel then reaches back that far at most."""
    return cfg.open_store().vacuum(retain_hours, dataset, force=force, dry_run=dry_run)


def migrate(cfg: Config, progress: Progress = QUIET) -> MigrationResult:
    """Convert a store of the old layout (per-partition ``_manifest.json``) to Delta Lake in place,
    checking rows and cost sums per partition before and after, to the cent."""
    from finops.store_migrate import migrate as run

    store = cfg.open_store()
    step = progress.start(f"migrating {store.url}")
    result = run(store.url, store.storage_options, lambda ds, msg: step.update(f"{ds}: {msg}"),
                 polars_options=store.polars_options)
    step.finish()
    return result
