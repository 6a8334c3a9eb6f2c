"""Dispatch: launch what was placed, and follow what was launched.

:func:`launch` submits each placed workload's legs to their targets and records them (placed →
submitted), looking first for a job that carries the placement's tag — so a dispatcher killed between a
provider's answer and the ledger write adopts that job on its next run instead of launching twice.
A capacity or quota answer blocks the offer for ``launch.block_minutes`` and puts the workload back in
the queue (placed → queued) for the next placement round; any other answer fails it with the
provider's message. No workload is left unaccounted: each ends submitted, queued (with the reason),
failed (with the reason) or untouched because another process moved it first.

:func:`sync` reads each live launch's state from its target and moves the workload: running, done,
failed, preempted (back to the queue, resuming from its checkpoint, the preemption counted and the hours
on spot added to what :mod:`finops.learning` learns from), and a job pending for capacity past
``launch.unschedulable_minutes`` is stopped and re-placed like a capacity answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from finops.config import Config, ConfigError, LaunchTarget
from finops.ledger import Block, Launch, Ledger, LedgerConflict, LedgerError, NewLaunch, QueuedWorkload, RunHours
from finops.placements import Leg, Placed, Recorded
from placement import launchers
from placement.launchers.base import (
    PLACEMENT_TAG,
    Job,
    LaunchError,
    SpecIncomplete,
    Submission,
    command_of,
    job_name,
    tags,
)

log = logging.getLogger(__name__)

Clients = Callable[[str], Any]
"""A target's name → its SDK client (made once per target and run)."""
Outcome = Literal["submitted", "adopted", "requeued", "failed", "skipped", "not launched", "would submit"]
"""``skipped``: another process moved the workload first; ``not launched``: the target could not be asked
(its SDK missing, unreachable): the workload stays placed."""
FINAL = {"done", "failed", "cancelled", "preempted"}
NEEDS_IMAGE = {"sagemaker", "vertex", "azureml", "kubernetes"}
"""Target kinds that run a container: a spec without an image cannot launch there."""


@dataclass(frozen=True)
class Launched:
    """What dispatch did with one placed workload."""

    workload_id: int
    name: str
    team: str
    outcome: Outcome
    target: str
    external_ids: tuple[str, ...] = ()
    message: str | None = None
    submissions: tuple[Submission, ...] = ()


@dataclass
class DispatchReport:
    launched: list[Launched] = field(default_factory=list)
    blocked: list[Block] = field(default_factory=list)
    rounds: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for x in self.launched if x.outcome == outcome)


# -- submissions -----------------------------------------------------------------------------------
def target_name(cfg: Config, leg: Leg) -> str:
    """The configured target a leg launches on (decisions made before targets existed: the default)."""
    return leg.target or cfg.launch.default[0]


def submissions(cfg: Config, w: QueuedWorkload, rec: Recorded) -> list[tuple[str, LaunchTarget, Submission]]:
    """The submissions of placement ``rec`` of workload ``w``: one per leg, with its target."""
    d = rec.decision
    assert isinstance(d, Placed)  # launchable() gives placed decisions only
    spec = w.spec
    slug = job_name(spec.name, w.id, 0).removesuffix("-p0")
    out = []
    for i, leg in enumerate(d.legs):
        name = target_name(cfg, leg)
        tcfg = cfg.launch.target(name)
        if tcfg.kind in NEEDS_IMAGE and not spec.launch.image:
            raise SpecIncomplete(f"workload {spec.name!r} has no launch.image: {name} ({tcfg.kind}) runs a container")
        if tcfg.kind in NEEDS_IMAGE and not spec.launch.command and spec.kind == "train":
            raise SpecIncomplete(f"workload {spec.name!r} has no launch.command: a training job on {name} needs one")
        out.append((name, tcfg, Submission(
            name=job_name(spec.name, w.id, rec.id, i), workload_id=w.id, placement_id=rec.id, leg=i,
            workload=spec.name, team=w.team, kind=spec.kind, provider=leg.provider, region=leg.region, zone=leg.zone,
            instance_type=leg.instance_type, market="spot" if leg.market == "spot" else "on_demand",
            replicas=leg.replicas, accelerator_name=leg.accelerator_name, accelerator_count=leg.accelerator_count,
            image=spec.launch.image, command=command_of(spec.launch.command), env=dict(spec.launch.env),
            tags=tags(w.team, spec.name, rec.id), runtime_hours=d.expected_hours,
            checkpoint_minutes=spec.checkpoint_minutes, checkpoint_key=slug, price_per_hour=leg.price_per_hour,
            interruption_rate=leg.interruption_rate or 0.0)))
    return out


# -- launch ----------------------------------------------------------------------------------------
Offered = Callable[[Leg], bool]
"""Whether a leg's offer is still in the price list (a placement made on an offer since withdrawn is
re-placed, not launched)."""


def launch(cfg: Config, ledger: Ledger, clients: Clients, *, now: datetime | None = None,
           offered: Offered | None = None) -> list[Launched]:
    """Launch every placed workload (one pass; :func:`dispatch` repeats it after re-placing)."""
    now = now or datetime.now(UTC)
    down: dict[str, str] = {}  # targets found unreachable in this pass: not asked again for each workload
    out = []
    for w, rec in ledger.launchable():
        names = {target_name(cfg, leg) for leg in rec.decision.legs} if isinstance(rec.decision, Placed) else set()
        gone = sorted(names & set(down))
        if gone:
            out.append(Launched(w.id, w.name, w.team, "not launched", gone[0], message=down[gone[0]]))
            continue
        gone_offer = next((leg for leg in rec.decision.legs if offered is not None and not offered(leg)), None) \
            if isinstance(rec.decision, Placed) else None
        if gone_offer is not None:
            out.append(_withdrawn(cfg, ledger, w, rec, gone_offer))
            continue
        got = _launch_one(cfg, ledger, clients, w, rec, now)
        if got.outcome == "not launched":
            down[got.target] = got.message or "unreachable"
        out.append(got)
    return out


def _launch_one(cfg: Config, ledger: Ledger, clients: Clients, w: QueuedWorkload, rec: Recorded,
                now: datetime) -> Launched:
    first = target_name(cfg, rec.decision.legs[0]) if isinstance(rec.decision, Placed) else "?"
    done: list[tuple[str, Any, LaunchTarget, Job, Submission]] = []
    try:
        subs = submissions(cfg, w, rec)
        adopted = False
        for name, tcfg, sub in subs:
            mod = launchers.module(tcfg.kind)
            client = clients(name)
            found = [j for j in mod.find(client, tcfg, {PLACEMENT_TAG: str(rec.id)}) if j.name == sub.name]
            adopted = adopted or bool(found)
            job = found[0] if found else mod.submit(client, tcfg, sub)
            done.append((name, client, tcfg, job, sub))
    except LaunchError as e:
        return _refused(cfg, ledger, w, rec, e, done, now)
    rows = [NewLaunch(placement_id=rec.id, leg=s.leg, target=n, kind=t.kind, external_id=j.external_id,
                      name=s.name, provider=s.provider, region=s.region, instance_type=s.instance_type,
                      market=s.market, replicas=s.replicas, state=j.state if j.state in ("pending", "running")
                      else "pending", message=j.message) for n, _, t, j, s in done]
    try:
        ledger.submit(w.id, rows)
    except LedgerConflict as e:  # cancelled or re-placed meanwhile: the job is ours but not wanted now
        _stop(done)
        return Launched(w.id, w.name, w.team, "skipped", first, message=str(e))
    return Launched(w.id, w.name, w.team, "adopted" if adopted else "submitted", first,
                    tuple(j.external_id for *_, j, _ in done), done[0][3].message)


def _refused(cfg: Config, ledger: Ledger, w: QueuedWorkload, rec: Recorded, e: LaunchError,
             done: list[tuple[str, Any, LaunchTarget, Job, Submission]], now: datetime) -> Launched:
    """A launch refused part way: stop what already started, then re-place (capacity, quota) or fail."""
    _stop(done)
    first = target_name(cfg, rec.decision.legs[0]) if isinstance(rec.decision, Placed) else "?"
    msg = str(e)
    if e.kind == "unreachable":  # nothing was decided: it stays placed for the next dispatch
        return Launched(w.id, w.name, w.team, "not launched", first, message=msg)
    try:
        if e.kind in ("capacity", "quota"):
            blocked = _leg_of(rec, len(done))
            ledger.block(_block(cfg, blocked, first, now, f"{e.kind}: {msg}"))
            ledger.transition(w.id, "placed", "queued", error=f"{e.kind}: {msg}")
            return Launched(w.id, w.name, w.team, "requeued", first, message=f"{e.kind}: {msg}")
        ledger.transition(w.id, "placed", "failed", error=msg)
        return Launched(w.id, w.name, w.team, "failed", first, message=msg)
    except LedgerConflict as c:
        return Launched(w.id, w.name, w.team, "skipped", first, message=str(c))


def _withdrawn(cfg: Config, ledger: Ledger, w: QueuedWorkload, rec: Recorded, leg: Leg) -> Launched:
    """A placement whose offer is no longer offered: back to the queue, to be placed on what is."""
    msg = (f"offer withdrawn: {leg.provider} {leg.region} {leg.instance_type} {leg.market} is no longer in "
           "the price list; placed again")
    try:
        ledger.transition(w.id, "placed", "queued", error=msg)
    except LedgerConflict as e:
        return Launched(w.id, w.name, w.team, "skipped", target_name(cfg, leg), message=str(e))
    return Launched(w.id, w.name, w.team, "requeued", target_name(cfg, leg), message=msg)


def _leg_of(rec: Recorded, i: int) -> Leg:
    d = rec.decision
    assert isinstance(d, Placed)
    return d.legs[min(i, len(d.legs) - 1)]


def _block(cfg: Config, leg: Leg, target: str, now: datetime, reason: str) -> Block:
    return Block(leg.provider, leg.region, leg.instance_type, leg.market, leg.target or target,
                 now + timedelta(minutes=cfg.launch.block_minutes), reason)


def _stop(done: Iterable[tuple[str, Any, LaunchTarget, Job, Submission]]) -> None:
    for _, client, tcfg, job, _ in done:
        try:
            launchers.module(tcfg.kind).cancel(client, tcfg, job.external_id)
        except LaunchError as e:  # reported; the job carries our tags, so `jobs sync` lists it as an orphan
            log.warning("could not stop %s (%s): %s", job.name, job.external_id, e)


def preview(cfg: Config, ledger: Ledger, decisions: Iterable[Any]) -> list[Launched]:
    """What dispatch would submit for ``decisions`` (a dry run's placement, unrecorded) and for the
    workloads already placed: nothing is recorded or launched."""
    out = []
    pending = [(w, rec) for w, rec in ledger.launchable()]
    now = datetime.now(UTC)
    for d in decisions:
        if isinstance(d, Placed):
            pending.append((ledger.get(d.workload_id), Recorded(id=0, run_id="dry-run", decided_at=now, decision=d)))
    for w, rec in pending:
        first = target_name(cfg, rec.decision.legs[0]) if isinstance(rec.decision, Placed) else "?"
        try:
            subs = tuple(s for _, _, s in submissions(cfg, w, rec))
        except LaunchError as e:
            out.append(Launched(w.id, w.name, w.team, "failed", first, message=str(e)))
            continue
        out.append(Launched(w.id, w.name, w.team, "would submit", first, submissions=subs))
    return out


def dispatch(cfg: Config, ledger: Ledger, clients: Clients, place: Callable[[], Any], *,
             now: datetime | None = None, offered: Callable[[], Offered | None] = lambda: None) -> DispatchReport:
    """Place, then launch; after capacity answers (or offers withdrawn), place the re-queued workloads again
    (the blocked offers left out) and launch them, up to ``launch.max_rounds`` rounds. ``offered`` gives,
    each round, the test of whether an offer is still listed (None: not checked)."""
    report = DispatchReport()
    for _ in range(cfg.launch.max_rounds):
        place()
        report.rounds += 1
        got = launch(cfg, ledger, clients, now=now, offered=offered())
        report.launched = [x for x in report.launched if x.workload_id not in {g.workload_id for g in got}] + got
        if not any(g.outcome == "requeued" for g in got):
            break
    report.blocked = ledger.blocks(now)
    return report


# -- sync ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Synced:
    launch: Launch
    state: str
    """The launch's state after the sync."""
    workload_state: str | None
    message: str | None = None


@dataclass
class SyncReport:
    synced: list[Synced] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Launches whose target could not be asked (named, with the provider's answer)."""
    orphans: list[tuple[str, Job]] = field(default_factory=list)
    """Jobs carrying our tags that the ledger does not know: reported, never deleted."""

    def count(self, state: str) -> int:
        return sum(1 for s in self.synced if s.state == state)


def sync(cfg: Config, ledger: Ledger, clients: Clients, *, now: datetime | None = None,
         orphans: bool = True) -> SyncReport:
    """Bring every live launch's state from its target into the ledger."""
    now = now or datetime.now(UTC)
    report = SyncReport()
    for lau in ledger.launches(["pending", "running"]):
        try:
            tcfg = cfg.launch.target(lau.target)
            job = launchers.module(tcfg.kind).status(clients(lau.target), tcfg, lau.external_id)
        except (LaunchError, LedgerError, ConfigError) as e:  # ConfigError: a target no longer configured
            report.errors.append(f"workload {lau.workload_id} ({lau.name} on {lau.target}): {e}")
            continue
        if job.nodes:  # pods' nodes change while the state does not (a replacement pod): kept every sync
            ledger.record_nodes(lau, [n.to_record() for n in job.nodes])
        try:
            report.synced.append(_apply(cfg, ledger, clients, lau, job, now))
        except LedgerConflict as e:
            report.errors.append(f"workload {lau.workload_id}: {e}")
    if orphans:
        report.orphans = _orphans(cfg, ledger, clients, report)
    return report


def _apply(cfg: Config, ledger: Ledger, clients: Clients, lau: Launch, job: Job, now: datetime) -> Synced:
    w = ledger.get(lau.workload_id)
    state = job.state
    if state == "pending" and job.error_kind in ("capacity", "quota"):
        waited = now - lau.submitted_at
        if waited > timedelta(minutes=cfg.launch.unschedulable_minutes):
            state, job = "failed", Job(external_id=job.external_id, name=job.name, state="failed", tags=job.tags,
                                       message=f"pending {waited.total_seconds() / 60:.0f} min: {job.message}",
                                       error_kind=job.error_kind)
            tcfg = cfg.launch.target(lau.target)
            try:
                launchers.module(tcfg.kind).cancel(clients(lau.target), tcfg, lau.external_id)
            except LaunchError as e:
                log.warning("could not stop %s: %s", lau.name, e)
    if state == lau.state:
        return Synced(lau, state, w.state)
    started = job.started_at or (now if state == "running" else lau.started_at)
    ended = job.ended_at or (now if state in FINAL else None)
    # The provider's count where it keeps one (a managed spot job that resumed), at least the one that ended it.
    preemptions = max(lau.preemptions, job.preemptions, 1 if state == "preempted" else 0)
    run = _run_hours(lau, started, ended, preemptions) if state in FINAL else None
    move = _move(w.state, state, job)
    if move and move[0] == "submitted" and state in ("done", "preempted"):
        ledger.transition(w.id, "submitted", "running")  # it ran between two syncs
        move = ("running", move[1])
    message = job.message if state in ("failed", "preempted", "cancelled") else None
    if state == "preempted":
        message = f"preempted (spot){': ' + job.message if job.message else ''}; back in the queue"
    elif state == "failed" and job.error_kind in ("capacity", "quota"):
        leg = Leg(provider=lau.provider, region=lau.region, instance_type=lau.instance_type, market=lau.market,
                  replicas=lau.replicas, accelerator_name=None, accelerator_count=None, price_per_hour=0.0,
                  target=lau.target)
        ledger.block(_block(cfg, leg, lau.target, now, f"{job.error_kind}: {job.message}"))
        message = f"{job.error_kind}: {job.message}"
    ledger.update_launch(lau, state, message=message, started_at=started, ended_at=ended,
                         preemptions=preemptions,
                         move=move, run=run)
    return Synced(lau, state, move[1] if move else w.state, message)


def _move(current: str, state: str, job: Job) -> tuple[str, str] | None:
    """The workload's move for a launch that entered ``state`` (None: it stays)."""
    if current not in ("submitted", "running"):
        return None  # cancelled or moved meanwhile: only the launch row is updated
    if state == "running":
        return ("submitted", "running") if current == "submitted" else None
    if state == "done":
        return (current, "done")
    if state == "preempted":
        return (current, "queued")
    if state == "failed":
        return (current, "queued") if job.error_kind in ("capacity", "quota") else (current, "failed")
    if state == "cancelled":
        return (current, "cancelled")
    return None


def _run_hours(lau: Launch, started: datetime | None, ended: datetime | None, preemptions: int) -> RunHours | None:
    """Hours a spot launch ran (all its machines) and the preemptions it met: what learning needs."""
    if lau.market != "spot" or started is None or ended is None:
        return None
    from finops.learning import family

    hours = max((ended - started).total_seconds(), 0.0) / 3600 * lau.replicas
    return RunHours(lau.provider, lau.region, family(lau.provider, lau.instance_type), hours, preemptions)


def _orphans(cfg: Config, ledger: Ledger, clients: Clients, report: SyncReport) -> list[tuple[str, Job]]:
    known = {(x.target, x.external_id) for x in ledger.launches()}
    out = []
    for name, tcfg in cfg.launch.all_targets().items():
        if tcfg.kind == "dry_run" and name not in cfg.launch.targets and name not in cfg.launch.default:
            continue
        try:
            jobs = launchers.module(tcfg.kind).find(clients(name), tcfg, {})
        except LaunchError as e:
            report.errors.append(f"target {name}: cannot list its jobs: {e}")
            continue
        ours = [j for j in jobs if re.fullmatch(r"\d+", j.tags.get(PLACEMENT_TAG, ""))]
        out += [(name, j) for j in ours if (name, j.external_id) not in known]
    return out
