"""The ``simulator`` target: a local simulated cloud that runs submissions in accelerated time and bills
them in each cloud's native export format, so ``make demo`` shows place → launch → run → bill →
reconcile without credentials.

State lives in ``<target.state>/jobs.json`` (one JSON document, rewritten atomically under an ``flock``,
so the dispatcher and ``finops jobs sync`` — separate processes — share it safely).

**Time.** A job's simulated age is ``real seconds since submit × speed / 3600`` hours plus whatever
:func:`advance` added since it was submitted (``advance`` moves the clock of every job, so the demo and
tests need not sleep). Simulated timestamps start at the submission's real time.

**Outcome**, drawn once at submit from ``seed`` and the job's name (so the same name always runs the
same way): the job waits :data:`PENDING_HOURS` for capacity, then runs ``runtime_hours × F`` with ``F``
lognormal (median 1, sigma = :data:`RUNTIME_SIGMA` = 0.15: about two runs in three within ±15 % of the
estimate); on spot, preemptions arrive as a Poisson process at ``sub.interruption_rate`` per hour and
the first one ends the run as ``preempted``. Serving jobs run until cancelled (or preempted). Instance
types listed in ``target.capacity_errors`` are refused with a ``capacity`` :class:`LaunchError`.

**Billing.** :func:`export_billing` writes, for every job that ran, hourly usage rows per machine
(``replicas`` of them) as the native export of the job's cloud — AWS CUR 2.0 Parquet, the Google Cloud
BigQuery export (flattened CSV), Azure cost details (actual and amortized CSV) — through the writers in
:mod:`finops.generate`, carrying the launch tags in the provider's syntax. The billed price is the
offer's price × a factor per (provider, instance family) drawn from ``seed`` — lognormal around 1.03
(sigma 0.06): the extras a price list leaves out (storage, egress, sustained-use discounts) — so
reconciliation has a variance to learn. :func:`billed_factor` gives it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from finops import focus, providers
from finops.config import SimulatorTarget
from placement.launchers.base import PLACEMENT_TAG, Job, JobState, LaunchError, Submission, fit_tags

KIND = "simulator"
PENDING_HOURS = 0.1
"""Simulated hours a job waits before it runs (capacity being found)."""
RUNTIME_SIGMA = 0.15
"""sigma of the lognormal factor on the run-time estimate."""
BILLED_MEDIAN, BILLED_SIGMA = 1.03, 0.06
"""The billed-price factor per (provider, family): lognormal with this median and sigma."""
ACCOUNTS = {"aws": ("111122223333", "finops-sim"), "gcp": ("01SIM0-000000-FINOPS", "finops-sim"),
            "azure": ("00000000-0000-0000-0000-5151aa000001", "finops-sim")}
"""(billing account, sub-account) the simulated cloud bills under, per provider."""
FOLDERS = {"aws": "aws-cur2", "gcp": "gcp-bigquery-export", "azure": "azure-cost-details"}
_SERVICE = {"aws": ("Amazon Elastic Compute Cloud", "AWS"), "gcp": ("Compute Engine", "Google Cloud"),
            "azure": ("Virtual Machines", "Microsoft")}


class Client:
    """The simulated cloud's state folder."""

    def __init__(self, folder: str | Path, speed: float = 3600.0, seed: int = 0) -> None:
        self.folder, self.speed, self.seed = Path(folder), speed, seed

    @property
    def file(self) -> Path:
        return self.folder / "jobs.json"

    @property
    def exports(self) -> Path:
        return self.folder / "exports"

    @contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """The state, locked against other processes; written back (atomically) when the block ends."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with (self.folder / ".lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                state = self.read()
                yield state
                tmp = self.file.with_suffix(".tmp")
                tmp.write_text(json.dumps(state, sort_keys=True))
                os.replace(tmp, self.file)
        except OSError as e:
            raise LaunchError("permanent", f"cannot use the simulator's state in {self.folder}: {e.strerror or e}",
                              call="simulator") from None

    def read(self) -> dict[str, Any]:
        if not self.file.exists():
            return {"advanced_hours": 0.0, "jobs": {}}
        try:
            state: dict[str, Any] = json.loads(self.file.read_text())
        except (OSError, ValueError) as e:
            raise LaunchError("permanent", f"the simulator's state {self.file} cannot be read ({e}): remove it "
                              "to start the simulated cloud afresh", call="simulator") from None
        return state


@dataclass(frozen=True)
class Outcome:
    """How a job will run, drawn at submit."""

    runtime_hours: float
    """Hours it runs to completion (``inf`` for serving)."""
    preempt_after: float
    """Hours of running after which the first spot preemption comes (``inf``: none)."""


def make_client(target: SimulatorTarget) -> Client:
    return Client(target.state, target.speed, target.seed)


def draw(seed: int, name: str, sub_kind: str, runtime_hours: float, spot: bool, rate: float) -> Outcome:
    """The outcome of job ``name`` (deterministic in ``seed`` and ``name``)."""
    rng = np.random.default_rng(_seed(seed, "job", name))
    factor = float(rng.lognormal(0.0, RUNTIME_SIGMA))
    first = float(rng.exponential(1.0 / rate)) if spot and rate > 0 else math.inf
    run = math.inf if sub_kind == "serve" else max(runtime_hours, 0.0) * factor
    return Outcome(run, first)


def billed_factor(seed: int, provider: str, family: str) -> float:
    """Billed price ÷ offer price for ``family`` machines on ``provider`` (deterministic in ``seed``)."""
    rng = np.random.default_rng(_seed(seed, "bill", provider, family))
    return round(float(BILLED_MEDIAN * math.exp(rng.normal(0.0, BILLED_SIGMA))), 4)


def submit(client: Client, target: SimulatorTarget, sub: Submission) -> Job:
    if sub.instance_type in target.capacity_errors:
        raise LaunchError("capacity", f"no {sub.instance_type} capacity in {sub.region} now",
                          call="simulator.submit", code="InsufficientCapacity")
    with client.locked() as state:
        rec = state["jobs"].get(sub.name)
        if rec is None:
            out = draw(client.seed, sub.name, sub.kind, sub.runtime_hours, sub.spot, sub.interruption_rate)
            rec = {"sub": _plain(sub), "submitted_at": datetime.now(UTC).isoformat(),
                   "advanced_at_submit": state["advanced_hours"], "runtime_hours": _num(out.runtime_hours),
                   "preempt_after": _num(out.preempt_after), "cancelled_after": None}
            state["jobs"][sub.name] = rec
        return _job(client, state, rec)


def find(client: Client, target: SimulatorTarget, tags: Mapping[str, str]) -> list[Job]:
    state = client.read()
    hits = [r for r in state["jobs"].values()
            if PLACEMENT_TAG in r["sub"]["tags"] and all(r["sub"]["tags"].get(k) == v for k, v in tags.items())]
    hits.sort(key=lambda r: r["submitted_at"], reverse=True)
    return [_job(client, state, r) for r in hits]


def status(client: Client, target: SimulatorTarget, external_id: str) -> Job:
    state = client.read()
    return _job(client, state, _record(client, state, external_id, "simulator.status"))


def cancel(client: Client, target: SimulatorTarget, external_id: str) -> None:
    """Stop the job now (a no-op once it has ended)."""
    with client.locked() as state:
        rec = _record(client, state, external_id, "simulator.cancel")
        if rec["cancelled_after"] is None and _timeline(client, state, rec)[0] in ("pending", "running"):
            rec["cancelled_after"] = _age(client, state, rec)


def advance(target: SimulatorTarget, hours: float) -> None:
    """Move the simulated clock of every job forward by ``hours``."""
    if not (hours >= 0 and math.isfinite(hours)):
        raise ValueError(f"advance by {hours!r} hours: give a finite number ≥ 0")
    with make_client(target).locked() as state:
        state["advanced_hours"] = float(state["advanced_hours"]) + hours


# -- time --------------------------------------------------------------------------------------------
def _age(client: Client, state: Mapping[str, Any], rec: Mapping[str, Any]) -> float:
    real = (datetime.now(UTC) - datetime.fromisoformat(rec["submitted_at"])).total_seconds()
    return max(real, 0.0) * client.speed / 3600 + float(state["advanced_hours"]) - float(rec["advanced_at_submit"])


def _timeline(client: Client, state: Mapping[str, Any], rec: Mapping[str, Any]) -> tuple[JobState, float, int]:
    """(state now, hours run so far, preemptions) of ``rec``."""
    age = _age(client, state, rec)
    cancelled = rec["cancelled_after"]
    if cancelled is not None:
        age = min(age, float(cancelled))
    runtime, preempt = _val(rec["runtime_hours"]), _val(rec["preempt_after"])
    ran = max(age - PENDING_HOURS, 0.0)
    end = min(runtime, preempt)
    if ran >= end:
        return ("preempted", preempt, 1) if preempt < runtime else ("done", runtime, 0)
    if cancelled is not None:
        return "cancelled", ran, 0
    return ("running" if age >= PENDING_HOURS else "pending"), ran, 0


def _job(client: Client, state: Mapping[str, Any], rec: Mapping[str, Any]) -> Job:
    st, ran, preemptions = _timeline(client, state, rec)
    t0 = datetime.fromisoformat(rec["submitted_at"])
    started = t0 + timedelta(hours=PENDING_HOURS) if st != "pending" and (st != "cancelled" or ran > 0) else None
    ended = started + timedelta(hours=ran) if started and st in ("done", "preempted", "cancelled") else None
    msg = {"pending": "waiting for capacity", "preempted": f"spot capacity reclaimed after {ran:.2f} h"}.get(st)
    name = rec["sub"]["name"]
    return Job(external_id=_external_id(name), name=name, state=st, tags=dict(rec["sub"]["tags"]), message=msg,
               started_at=started, ended_at=ended, preemptions=preemptions)


def _record(client: Client, state: Mapping[str, Any], external_id: str, call: str) -> dict[str, Any]:
    name = external_id.removeprefix("sim:")
    rec: dict[str, Any] | None = state["jobs"].get(name)
    if rec is None:
        raise LaunchError("permanent", f"no simulated job {external_id} in {client.file}", call=call)
    return rec


def _external_id(name: str) -> str:
    return f"sim:{name}"


# -- billing ------------------------------------------------------------------------------------------
def export_billing(target: SimulatorTarget, until: datetime | None = None) -> list[Path]:
    """Write the native billing exports of every job that ran (up to ``until``, a simulated time; default:
    each job's clock now) under ``<state>/exports/<aws-cur2|gcp-bigquery-export|azure-cost-details>``,
    replacing what an earlier call wrote; return the files written. Ingest them with ``replace`` (each
    export restates its billing periods, as the clouds' own exports do)."""
    from finops.generate.native_aws import write_cur2
    from finops.generate.native_azure import write_cost_details
    from finops.generate.native_gcp import write_bigquery_export

    client = make_client(target)
    with client.locked() as state:
        frame = billing_frame(client, state, until)
        if client.exports.exists():
            shutil.rmtree(client.exports)
        if frame.height == 0:
            return []
        out = client.exports
        return [*write_cur2(frame, out / FOLDERS["aws"], export="finops-sim-cur2"),
                *write_bigquery_export(frame, out / FOLDERS["gcp"]),
                *write_cost_details(frame, out / FOLDERS["azure"])]


def billing_frame(client: Client, state: Mapping[str, Any], until: datetime | None = None) -> pl.DataFrame:
    """FOCUS usage rows of every job in ``state`` that ran: one per machine and hour run."""
    rows: list[dict[str, Any]] = []
    for rec in state["jobs"].values():
        job = _job(client, state, rec)
        if job.started_at is None:
            continue
        _, ran, _ = _timeline(client, state, rec)
        end = job.started_at + timedelta(hours=ran)
        if until is not None:
            end = min(end, until)
        rows += _usage_rows(client.seed, rec["sub"], job.started_at, end)
    schema = {c.name: c.dtype for c in focus.COLUMNS}
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema_overrides={k: schema[k] for k in rows[0]}, infer_schema_length=None).select(
        [pl.col(k) if k in rows[0] else pl.lit(None, dtype=t).alias(k) for k, t in schema.items()])


def _usage_rows(seed: int, sub: Mapping[str, Any], start: datetime, end: datetime) -> list[dict[str, Any]]:
    provider = sub["provider"]
    # Whole seconds, as the clouds' exports write them: a sub-second run would be a zero-length charge period.
    start, end = start.replace(microsecond=0), end.replace(microsecond=0)
    if provider not in ACCOUNTS or end <= start:
        return []
    family = _family(provider, sub["instance_type"])
    price = Decimal(str(sub["price_per_hour"])).quantize(Decimal("0.000001"))
    billed_price = (price * Decimal(str(billed_factor(seed, provider, family)))).quantize(Decimal("0.000001"))
    tags = focus.dumps_tags(dict(fit_tags(sub["tags"], providers.get(provider).labels)))
    rows = []
    t = start
    while t < end:
        nxt = min(t + timedelta(hours=1), end)
        qty = Decimal(round((nxt - t).total_seconds() / 3600, 6)).quantize(Decimal("0.000001"))
        for replica in range(int(sub["replicas"])):
            rows.append(_row(provider, sub, replica, t, nxt, qty, price, billed_price, tags))
        t = nxt
    return rows


def _row(provider: str, sub: Mapping[str, Any], replica: int, t0: datetime, t1: datetime, qty: Decimal,
         price: Decimal, billed_price: Decimal, tags: str | None) -> dict[str, Any]:
    account, sub_account = ACCOUNTS[provider]
    service, provider_name = _SERVICE[provider]
    period_start = t0.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    period_end = (period_start + timedelta(days=32)).replace(day=1)
    cost = (qty * billed_price).quantize(Decimal("0.000001"))
    spot = sub["market"] == "spot"
    return {
        "BilledCost": cost, "EffectiveCost": cost, "ContractedCost": cost, "ListCost": (qty * price).quantize(
            Decimal("0.000001")), "ContractedUnitPrice": billed_price, "ListUnitPrice": price,
        "BillingAccountId": account, "BillingAccountName": "finops simulated cloud", "BillingCurrency": "USD",
        "BillingPeriodStart": period_start, "BillingPeriodEnd": period_end,
        "ChargePeriodStart": t0, "ChargePeriodEnd": t1, "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based", "ChargeDescription": f"{sub['instance_type']} usage",
        "InvoiceIssuerName": provider_name, "ProviderName": provider_name, "PublisherName": provider_name,
        "PricingCategory": "Dynamic" if spot else "Standard", "PricingQuantity": qty, "PricingUnit": "Hours",
        "ConsumedQuantity": qty, "ConsumedUnit": "Hours", "PricingCurrency": "USD",
        "RegionId": sub["region"], "RegionName": sub["region"], "AvailabilityZone": sub.get("zone"),
        "ResourceId": _resource_id(provider, sub, replica), "ResourceName": f"{sub['name']}-{replica}",
        "ResourceType": "Virtual machine", "ServiceCategory": "Compute", "ServiceName": service,
        "SkuId": sub["instance_type"], "SkuMeter": sub["instance_type"], "SkuPriceId": sub["instance_type"],
        "SubAccountId": sub_account, "SubAccountName": sub_account, "Tags": tags,
    }


def _resource_id(provider: str, sub: Mapping[str, Any], replica: int) -> str:
    name = f"{sub['name']}-{replica}"
    if provider == "aws":
        return f"arn:aws:ec2:{sub['region']}:{ACCOUNTS['aws'][0]}:instance/i-{_hex(name)}"
    if provider == "gcp":
        zone = sub.get("zone") or sub["region"]
        return f"//compute.googleapis.com/projects/{ACCOUNTS['gcp'][1]}/zones/{zone}/instances/{name}"
    return (f"/subscriptions/{ACCOUNTS['azure'][0]}/resourceGroups/finops-sim/providers/"
            f"Microsoft.Compute/virtualMachines/{name}")


def _family(provider: str, instance_type: str) -> str:
    from finops.learning import family

    return family(provider, instance_type)


# -- helpers ------------------------------------------------------------------------------------------
def _plain(sub: Submission) -> dict[str, Any]:
    d = asdict(sub)
    d["command"], d["env"], d["tags"] = list(sub.command), dict(sub.env), dict(sub.tags)
    return d


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


def _hex(s: str) -> str:
    return hashlib.sha1(s.encode()).hexdigest()[:17]


def _num(v: float) -> float | None:
    """JSON has no infinity: None stands for it."""
    return None if math.isinf(v) else v


def _val(v: float | None) -> float:
    return math.inf if v is None else float(v)

