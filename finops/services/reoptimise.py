"""Re-optimisation as prices move: placed, not yet submitted workloads are re-placed when the latest prices
make their plan cheaper by more than ``[scheduler] reoptimise_margin``. (A preempted spot job is already
back in the queue — sync moves it running → queued — and is placed like a new one.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from finops.config import Config
from finops.ledger import Ledger, LedgerConflict, LedgerMissing
from finops.placements import placed as only_placed


@dataclass(frozen=True)
class Reoptimised:
    checked: int = 0
    requeued: list[int] = field(default_factory=list)
    """Workloads moved placed → queued, to be placed again on the cheaper offer."""
    run_id: str | None = None
    """The placement run that placed them again (None when none moved)."""


def reoptimise(cfg: Config) -> Reoptimised:
    """Plan every placed workload again on the latest prices (a dry run on a scratch queue, so nothing is
    recorded); those whose new expected cost is lower by more than the margin go back to the queue with
    the ledger's compare-and-swap (one launched meanwhile is left alone) and the queue is placed again."""
    from finops.services import queue
    from placement import run

    try:
        led = queue.ledger(cfg, read_only=True)
    except LedgerMissing:
        return Reoptimised()
    current = led.launchable()
    if not current:
        return Reoptimised()
    scratch = Ledger("sqlite://")
    ids = scratch.add([(w.spec, None) for w, _ in current])
    _, plan = run.place(cfg, cfg.open_store(), scratch, dry_run=True)
    fresh = {d.workload_id: d.expected_cost for d in only_placed(plan.decisions)}
    margin = cfg.scheduler.reoptimise_margin
    led = queue.ledger(cfg)
    moved = []
    for sid, (w, rec) in zip(ids, current, strict=True):
        old = getattr(rec.decision, "expected_cost", None)
        new = fresh.get(sid)
        if old is None or new is None or new >= old * (1 - margin):
            continue
        try:
            led.transition(w.id, "placed", "queued",
                           error=f"re-placed: the latest prices cost it {new:,.2f} instead of {old:,.2f}")
        except LedgerConflict:  # launched (or moved) meanwhile: keep it where it is
            continue
        moved.append(w.id)
    run_id = queue.place(cfg).run_id if moved else None
    return Reoptimised(len(current), moved, run_id)
