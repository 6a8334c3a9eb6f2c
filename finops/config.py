"""Configuration: one TOML file, validated with pydantic.

Found at ``--config``, else ``$FINOPS_CONFIG``, else ``./finops.toml``; with none of them, the
embedded defaults (a local store in ``./finops-data``). Secrets never go here: each cloud SDK finds
its credentials through its own standard chain (AWS profiles and roles, Google ADC,
DefaultAzureCredential).
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finops import providers

ENV_VAR = "FINOPS_CONFIG"
DEFAULT_FILE = "finops.toml"
DEFAULT_STORE = "./finops-data"
SECRET_WORDS = ("secret", "password", "token", "access_key", "private_key", "client_secret")


class ConfigError(ValueError):
    """A configuration file that cannot be used: names the file, the key and what was expected."""


def _unique(names: list[str], what: str) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(dup)}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _cloud(key: str) -> str:
    if key not in providers.clouds():
        raise ValueError(f"unknown provider {key!r}: expected {providers.expected()}")
    return key


Cloud = Annotated[str, AfterValidator(_cloud)]
"""A cloud's key as registered in :mod:`finops.providers` (``aws``, ``gcp``, ``azure``)."""


def _billing_kind(kind: str) -> str:
    kinds = list(dict.fromkeys(k for ks in providers.billing_kinds().values() for k in ks))
    if kind not in kinds:
        raise ValueError(f"unknown billing source kind {kind!r}: expected one of {', '.join(kinds)}")
    return kind


class StoreConfig(_Model):
    url: str = DEFAULT_STORE
    """Local folder or object-store URL (``s3://bucket/prefix``, ``gs://…``, ``az://…``)."""

    @field_validator("url")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the store URL is empty: give a folder (e.g. \"./finops-data\") or an object-store "
                             "URL such as \"s3://bucket/prefix\"")
        return v
    endpoint_url: str | None = None
    """For S3-compatible object stores other than AWS (MinIO, Ceph, a local test server)."""
    region: str | None = None
    options: dict[str, str] = {}
    """object_store options passed to delta-rs and polars as they are (e.g. ``azure_storage_account_name``,
    ``google_service_account``); not secrets — each SDK's credential chain supplies those."""


class LedgerConfig(_Model):
    url: str | None = None
    """SQLAlchemy URL; default: a SQLite file beside the store."""


class Account(_Model):
    id: str
    name: str | None = None
    team: str | None = None
    """Team that owns everything billed to this account, if any (used by allocation)."""
    project: str | None = None
    """Project that owns everything billed to this account (e.g. a GCP project), if any."""


class BillingSource(_Model):
    """One place a provider's bill is read from (``finops collect billing``)."""

    kind: Annotated[str, AfterValidator(_billing_kind)]
    """One of the provider's ``billing_kinds`` (``finops.providers``): ``cur`` or ``cost-explorer``
    (AWS), ``bigquery-export`` (GCP), ``cost-management`` or ``cost-details`` (Azure)."""
    location: str | None = None
    """``cur``: ``s3://bucket/prefix`` of the report or data export; ``bigquery-export``: the table,
    ``project.dataset.table``; ``cost-management``: the scope, e.g. ``/subscriptions/<id>``;
    ``cost-details``: a folder, file or blob URL of exported CSVs; ``cost-explorer``: the payer account
    (default: the provider's ``billing_accounts``; the linked accounts are its ``accounts``)."""
    name: str | None = None
    """A label for progress and errors, and the name of the source's cursor in the store (default
    label ``<kind>:<location>``; default cursor the collector's own, e.g. ``aws-cur:s3://…``)."""
    endpoint_url: str | None = None
    """An API endpoint other than the provider's own (a proxy, a mirror, a local emulator)."""

    @property
    def label(self) -> str:
        return self.name or f"{self.kind}:{self.location or ''}"


class ProviderConfig(_Model):
    enabled: bool = True
    billing: list[BillingSource] = Field(default_factory=list)
    """Where this provider's bill is collected from; see ``BillingSource``."""
    accounts: list[Account] = Field(default_factory=list)
    """AWS accounts, GCP projects or Azure subscriptions."""
    billing_accounts: list[str] = Field(default_factory=list)
    """AWS payer accounts, GCP billing accounts or Azure billing scopes."""
    regions: list[str] = Field(default_factory=list)


class Team(_Model):
    name: str
    monthly_budget: Decimal | None = None
    currency: str = "USD"
    home_provider: Cloud | None = None
    aliases: list[str] = Field(default_factory=list)
    launch_targets: list[str] = Field(default_factory=list)
    """Launch targets this team's workloads may use (empty: ``launch.default``)."""

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not v or v != v.strip():
            raise ValueError("a team name must be non-empty, without surrounding spaces")
        return v


class PricesConfig(_Model):
    max_age_hours: float = Field(default=24.0, gt=0)
    """Offers observed longer ago than this are flagged stale (and can be excluded by the optimizer)."""
    rates: dict[str, float] = Field(default_factory=dict)
    """USD per unit of each other currency prices come in, e.g. ``{ EUR = 1.08 }``."""
    interruption: dict[Cloud, dict[str, float]] = Field(default_factory=dict)
    """Monthly spot interruption frequency by instance family (``"*"``: any other), overriding the
    documented defaults in ``finops.offers.DEFAULT_MONTHLY_INTERRUPTION``."""
    endpoints: dict[Cloud, str] = Field(default_factory=dict)
    """Price API endpoints other than the providers' own (a proxy, a mirror, a local emulator)."""

    @field_validator("rates")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, r in v.items() if r <= 0)
        if bad:
            raise ValueError(f"exchange rates must be > 0: {', '.join(bad)}")
        return v


class PatternRule(_Model):
    """A regular expression on a column of the bill that names the owner: ``team``/``project`` given, or
    captured by the named groups ``(?P<team>…)`` / ``(?P<project>…)``."""

    pattern: str
    column: Literal["ResourceName", "ResourceId", "SubAccountName", "SubAccountId", "ServiceName"] = "ResourceName"
    team: str | None = None
    project: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        import re

        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return v


class SharedPool(_Model):
    """Costs that belong to no team alone (support, a shared platform account, networking, …), matched by
    any of the lists, then split ``even``-ly, ``proportional``-ly to direct spend, or by ``fixed``
    ``percentages`` (which must sum to 100)."""

    name: str
    accounts: list[str] = Field(default_factory=list)
    """SubAccountId or SubAccountName values."""
    services: list[str] = Field(default_factory=list)
    """ServiceName values."""
    service_categories: list[str] = Field(default_factory=list)
    """ServiceCategory values, e.g. ``Networking``."""
    charge_categories: list[str] = Field(default_factory=list)
    """ChargeCategory values, e.g. ``Tax``."""
    split: Literal["even", "proportional", "fixed"] = "proportional"
    percentages: dict[str, Decimal] = Field(default_factory=dict)
    """``fixed``: team → percent; must sum to 100."""
    project_percentages: dict[str, Decimal] = Field(default_factory=dict)
    """``fixed``, for reports by project: project → percent (without them: proportional by project)."""
    recipients: list[str] = Field(default_factory=list)
    """``even``/``proportional``: only these teams; default every team with direct spend."""

    @field_validator("percentages", "project_percentages")
    @classmethod
    def _hundred(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        if v and sum(v.values()) != 100:
            raise ValueError(f"percentages must sum to 100 (got {sum(v.values())})")
        if any(p < 0 for p in v.values()):
            raise ValueError("percentages must not be negative")
        return v

    @model_validator(mode="after")
    def _fixed_needs_percentages(self) -> SharedPool:
        if self.split == "fixed" and not self.percentages:
            raise ValueError("split = \"fixed\" needs percentages (recipient → percent, summing to 100)")
        return self


RuleKind = Literal["tags", "accounts", "patterns"]
ReportFormat = Literal["csv", "xlsx", "html"]
_DEFAULT_PRECEDENCE: tuple[RuleKind, ...] = ("tags", "accounts", "patterns")
_DEFAULT_FORMATS: tuple[ReportFormat, ...] = ("csv", "xlsx", "html")


class AllocationConfig(_Model):
    """How billing rows become team (and project) costs; see ``finops.allocation``."""

    team_tags: list[str] = Field(default_factory=lambda: ["finops-team", "team", "Team"])
    """Tag keys naming the team, in precedence order (the first present with a known value wins)."""
    project_tags: list[str] = Field(default_factory=lambda: ["project", "Project"])
    precedence: list[RuleKind] = Field(default_factory=lambda: list(_DEFAULT_PRECEDENCE))
    """Which kind of rule decides first when several apply."""
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    """Team → other spellings (besides ``teams[].aliases``); values are also case-folded, ``_`` → ``-``."""
    project_aliases: dict[str, list[str]] = Field(default_factory=dict)
    patterns: list[PatternRule] = Field(default_factory=list)
    shared: list[SharedPool] = Field(default_factory=list)
    untagged: Literal["unallocated", "even", "proportional"] = "unallocated"
    """Spend no rule assigns: kept as ``unallocated`` or redistributed."""
    credits: Literal["proportional", "unallocated"] = "proportional"
    """Credits and refunds (ChargeCategory Credit/Adjustment) no rule assigns."""
    basis: Literal["EffectiveCost", "BilledCost"] = "EffectiveCost"
    """EffectiveCost (amortised; commitment purchases left out) or BilledCost (as invoiced)."""

    @field_validator("shared")
    @classmethod
    def _unique_pools(cls, v: list[SharedPool]) -> list[SharedPool]:
        _unique([p.name for p in v], "shared pool")
        return v


class EmailConfig(_Model):
    host: str
    port: int = 587
    sender: str
    to: list[str]
    starttls: bool = True
    ssl: bool = False
    ca_file: str | None = None
    """A CA bundle to verify the server's certificate with (an internal relay's private CA)."""
    username_env: str | None = None
    """Name of the environment variable holding the SMTP user (never the value itself)."""
    password_env: str | None = None
    """Name of the environment variable holding the SMTP password (never the value itself)."""


class WebhookConfig(_Model):
    url: str | None = None
    """A Slack-compatible incoming-webhook URL without a secret in it (else use ``url_env``)."""
    url_env: str | None = None
    """Name of the environment variable holding the webhook URL (Slack's carry a token)."""

    @model_validator(mode="after")
    def _one_url(self) -> WebhookConfig:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give exactly one of url or url_env")
        return self


class ReportsConfig(_Model):
    out: str = "./reports"
    formats: list[ReportFormat] = Field(default_factory=lambda: list(_DEFAULT_FORMATS))
    currency: str = "USD"
    rates: dict[str, Decimal] = Field(default_factory=dict)
    """Report-currency units per unit of each other billing currency, e.g. ``{ EUR = 1.08 }``."""
    top_services: int = Field(default=5, ge=1)
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None


class CapacityLimit(_Model):
    """Accelerators (chips) at most in use at once for matching offers; ``"*"`` matches any."""

    provider: str = "*"
    region: str = "*"
    accelerator: str = "*"
    limit: float = Field(ge=0)


class EgressRate(_Model):
    """USD per GB moved from ``source`` to ``destination`` (``provider`` or ``provider:region``)."""

    source: str
    destination: str
    per_gb: float = Field(ge=0)


class PlacementConfig(_Model):
    """The optimizer's limits and cost assumptions (``finops place``)."""

    capacity: list[CapacityLimit] = Field(default_factory=list)
    """Quota or capacity per (provider, region, accelerator), in accelerators."""
    egress_internet: dict[str, float] = Field(default_factory=lambda: {"aws": 0.09, "gcp": 0.12, "azure": 0.087})
    """USD per GB out of each provider to another cloud (list prices, first tier)."""
    egress_inter_region: dict[str, float] = Field(default_factory=lambda: {"aws": 0.02, "gcp": 0.02, "azure": 0.02})
    """USD per GB between two regions of the same provider."""
    egress: list[EgressRate] = Field(default_factory=list)
    """Rates for particular pairs, overriding the two defaults above."""
    restart_overhead_minutes: float = Field(default=10.0, ge=0)
    """Time lost to each spot interruption beyond the work since the last checkpoint."""
    time_limit_seconds: float = Field(default=10.0, gt=0)
    mip_rel_gap: float = Field(default=0.001, ge=0)
    stale: Literal["exclude", "allow", "error"] = "exclude"
    """Offers older than ``prices.max_age_hours``: left out, used, or refused with an error."""
    blocked: list[str] = Field(default_factory=list)
    """Offers never to use, as ``provider:region:instance_type`` with ``*`` wildcards."""


# -- launch targets (``[launch.targets.<name>]``) ---------------------------------------------------
class _TargetBase(_Model):
    regions: list[str] = Field(default_factory=list)
    """Regions this target may launch in (empty: any region of its provider)."""
    endpoint_url: str | None = None
    """The API endpoint, where not the provider's public one (private endpoints, tests)."""


class DryRunTarget(_TargetBase):
    """Records what would be submitted; launches nothing. Priced at the VM (compute) price."""

    kind: Literal["dry_run"] = "dry_run"
    providers: list[Cloud] = Field(default_factory=list)
    """Clouds whose offers it may take (empty: all)."""
    folder: str | None = None
    """Where submissions are recorded (``submissions.jsonl``); default: ``dry-run/`` beside a local store."""


class SimulatorTarget(_TargetBase):
    """A local simulated cloud: runs submissions in accelerated time, with spot preemptions at the offer's
    interruption rate, and writes native billing exports carrying the launch tags (``make demo``)."""

    kind: Literal["simulator"] = "simulator"
    providers: list[Cloud] = Field(default_factory=list)
    state: str = "./finops-data/simulator"
    """Folder holding the simulated jobs and the billing exports it writes (``exports/``)."""
    speed: float = Field(default=3600.0, gt=0)
    """Simulated seconds per real second."""
    seed: int = 0
    capacity_errors: list[str] = Field(default_factory=list)
    """Instance types the simulated cloud answers with a capacity error (to show re-placement)."""


class SageMakerTarget(_TargetBase):
    """Amazon SageMaker training jobs (managed spot training on spot) and real-time endpoints."""

    kind: Literal["sagemaker"] = "sagemaker"
    role_arn: str
    """The execution role SageMaker assumes (an ARN, not a credential)."""
    output_uri: str
    """``s3://bucket/prefix`` for model artefacts."""
    checkpoint_uri: str | None = None
    """``s3://bucket/prefix`` for checkpoints (spot training resumes from here)."""
    volume_gb: int = Field(default=100, ge=1)
    """The EBS volume attached to each training instance (``ResourceConfig.VolumeSizeInGB``), in GB."""


class VertexTarget(_TargetBase):
    """Vertex AI custom jobs (``Scheduling.strategy = SPOT`` on spot) and endpoints."""

    kind: Literal["vertex"] = "vertex"
    project: str
    staging_uri: str | None = None
    """``gs://bucket/prefix`` for outputs and checkpoints."""


class AzureMLTarget(_TargetBase):
    """Azure Machine Learning command jobs on a compute cluster of the chosen size (low priority on
    spot) and managed online endpoints. Azure ML compute is billed at the VM price."""

    kind: Literal["azureml"] = "azureml"
    subscription_id: str
    resource_group: str
    workspace: str


class NodePool(_Model):
    instance_type: str
    spot: bool = False
    max_nodes: int | None = Field(default=None, ge=0)


class KubernetesTarget(_TargetBase):
    """A Kubernetes cluster (EKS, GKE, AKS): a Job or a Deployment + Service on its node pools."""

    kind: Literal["kubernetes"] = "kubernetes"
    provider: Cloud
    region: str
    context: str | None = None
    """The kubeconfig context (default: the current one)."""
    kubeconfig: str | None = None
    namespace: str = "default"
    queue: str | None = None
    """A Kueue LocalQueue: set as the ``kueue.x-k8s.io/queue-name`` label."""
    node_pools: list[NodePool] = Field(min_length=1)
    serve_port: int = Field(default=8080, ge=1, le=65535)
    """The container port a serving Deployment listens on, exposed by its Service."""


LaunchTarget = Annotated[DryRunTarget | SimulatorTarget | SageMakerTarget | VertexTarget | AzureMLTarget
                         | KubernetesTarget, Field(discriminator="kind")]
DRY_RUN = "dry_run"
"""The target every configuration has: records what would be submitted."""


class LaunchConfig(_Model):
    """Where placed workloads are launched (``finops dispatch``)."""

    targets: dict[str, LaunchTarget] = Field(default_factory=dict)
    """Named targets; ``dry_run`` always exists (a configured one of that name overrides it)."""
    default: list[str] = Field(default_factory=lambda: [DRY_RUN])
    """Targets a workload may use when neither its spec (``launch.targets``) nor its team names any."""
    block_minutes: float = Field(default=60.0, gt=0)
    """How long a capacity or quota answer keeps that offer out of placement."""
    unschedulable_minutes: float = Field(default=10.0, gt=0)
    """A job pending (pods unschedulable) longer than this counts as a capacity answer."""
    max_rounds: int = Field(default=3, ge=1)
    """Re-place and launch rounds per dispatch after capacity answers."""
    interruption_prior_hours: float = Field(default=200.0, gt=0)
    """Weight of the configured interruption rate against observed hours (see ``finops.learning``)."""
    correction_bounds: tuple[float, float] = (0.5, 2.0)
    """Learnt cost corrections are clamped to this range."""

    @model_validator(mode="after")
    def _known_defaults(self) -> LaunchConfig:
        unknown = [t for t in self.default if t not in self.all_targets()]
        if unknown:
            raise ValueError(f"default names unknown target(s) {', '.join(map(repr, unknown))} "
                             f"(configured: {', '.join(self.all_targets())})")
        return self

    def all_targets(self) -> dict[str, LaunchTarget]:
        """The configured targets and the built-in ``dry_run``."""
        return {DRY_RUN: DryRunTarget(), **self.targets}

    def target(self, name: str) -> LaunchTarget:
        known = self.all_targets()
        if name not in known:
            raise ConfigError(f"unknown launch target {name!r}: configured targets are {', '.join(known)}")
        return known[name]


class DashboardConfig(_Model):
    """``[dashboard]``: where its cache lives and who sees what. With ``login``, visitors sign in through
    Streamlit's ``st.login`` (the OIDC provider and its client secret go in ``.streamlit/secrets.toml``
    under ``[auth]``, never here) and the claim ``team_claim`` names their team (through ``claim_teams``
    when the claim's values are not team names); ``admins`` (claim values) see every team."""

    cache_dir: str | None = None
    """Where the daily rollups are cached (default: ``$XDG_CACHE_HOME/finops/dashboard``)."""
    login: bool = False
    team_claim: str = "groups"
    claim_teams: dict[str, str] = Field(default_factory=dict)
    """Claim value → team name."""
    admins: list[str] = Field(default_factory=list)


SCHEDULER_DEFAULTS: dict[str, dict[str, Any]] = {
    "prices": {"cron": "0 * * * *"},            # hourly
    "billing": {"cron": "15 */6 * * *"},        # every 6 hours
    "place": {"seconds": 300},                  # re-optimise and place the queue every 5 minutes
    "dispatch": {"seconds": 300},               # launch what is placed, every 5 minutes
    "sync": {"seconds": 300},                   # job states from the targets, every 5 minutes
    "reconcile": {"cron": "30 3 * * *"},        # daily
    "budget": {"cron": "0 7 * * *"},            # daily budget and anomaly check
    "chargeback": {"cron": "0 6 * * mon"},      # weekly, Monday 06:00 UTC, delivered
    "maintenance": {"cron": "0 2 * * *"},       # nightly: compaction and the dashboard's rollups
}
"""The scheduler's jobs and their default triggers (cron in UTC, or an interval in seconds); the
steps are ``finops.scheduler.JOBS``, with the same names."""


def _cron(expr: str) -> str:
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

    try:
        CronTrigger.from_crontab(expr, timezone="UTC")
    except ValueError as e:
        raise ValueError(f"{expr!r} is not a cron expression (minute hour day month weekday, UTC): {e}") from None
    return expr


class JobTrigger(_Model):
    """``[scheduler.jobs.<name>]``: when a job runs — ``cron`` (five fields, UTC) or every ``seconds``."""

    cron: Annotated[str, AfterValidator(_cron)] | None = None
    seconds: float | None = Field(default=None, gt=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _one(self) -> JobTrigger:
        if self.cron is not None and self.seconds is not None:
            raise ValueError("give cron or seconds, not both")
        return self


class SchedulerConfig(_Model):
    """``[scheduler]``: the service that runs every step on a timetable (``finops scheduler run``)."""

    jobs: dict[str, JobTrigger] = Field(default_factory=dict)
    """Overrides of :data:`SCHEDULER_DEFAULTS`, by job name."""
    host: str = "127.0.0.1"
    """Where the Prometheus metrics and ``/healthz`` listen."""
    port: int = Field(default=9464, ge=0, le=65535)
    """0: any free port."""
    lease_seconds: float = Field(default=30.0, gt=0)
    """How long a leader's lease lasts without renewal: a standby takes over within it."""
    misfire_grace_seconds: float = Field(default=300.0, gt=0)
    alert_thresholds: list[float] = Field(default_factory=lambda: [0.8, 1.0])
    """Shares of the monthly budget (month-to-date spent + placed + queued) that raise an alert."""
    alert_forecast: bool = True
    """Also alert when the month-end forecast is over budget."""
    anomaly_threshold: float = Field(default=3.5, gt=0)
    anomaly_min_amount: float = Field(default=10.0, ge=0)
    reoptimise_margin: float = Field(default=0.1, ge=0)
    """A placed, not yet submitted workload is re-placed when another offer is cheaper by more than this
    share of its expected cost."""

    @field_validator("jobs")
    @classmethod
    def _known_jobs(cls, v: dict[str, JobTrigger]) -> dict[str, JobTrigger]:
        unknown = [n for n in v if n not in SCHEDULER_DEFAULTS]
        if unknown:
            raise ValueError(f"unknown job(s) {', '.join(map(repr, unknown))} (known: {', '.join(SCHEDULER_DEFAULTS)})")
        return v

    def triggers(self) -> dict[str, JobTrigger]:
        """Every job's trigger: the configured one, else the default."""
        return {n: self.jobs.get(n) or JobTrigger(**d) for n, d in SCHEDULER_DEFAULTS.items()}


class EngineConfig(_Model):
    """``[engine]``: where the heavy, partition-shaped work runs (ingest, chargeback, rollups,
    reconciliation, validation): ``local`` (polars in this process, the default) or ``ray`` (the same
    polars functions as tasks on a Ray cluster; needs the ``finops[ray]`` extra)."""

    kind: Literal["local", "ray"] = "local"
    address: str = "auto"
    """The Ray cluster: ``auto`` (the one started on this machine, or ``$RAY_ADDRESS``), ``host:6379``
    (a node of the cluster) or ``ray://host:10001`` (Ray Client, e.g. a KubeRay head service)."""
    retries: int = Field(default=3, ge=0, le=20)
    """Times a task is re-run after its worker or node dies (Ray task retries); errors in the data are
    never retried."""
    rows_per_task: int = Field(default=4_000_000, ge=1_000)
    """Work is cut into tasks of about this many rows (whole files, or a Parquet file's row groups)."""
    connect_timeout: float = Field(default=15.0, gt=0, le=600)
    """Seconds to wait for the cluster to answer before giving up."""
    connect_tries: int = Field(default=3, ge=1, le=10)
    """Times to ask a Ray Client server (``ray://``) for a session when it answers but fails to start
    one: its per-driver session server sometimes misses its deadline on a busy head."""


class Config(_Model):
    store: StoreConfig = StoreConfig()
    ledger: LedgerConfig = LedgerConfig()
    prices: PricesConfig = PricesConfig()
    providers: dict[Cloud, ProviderConfig] = Field(default_factory=dict)
    teams: list[Team] = Field(default_factory=list)
    allocation: AllocationConfig = AllocationConfig()
    reports: ReportsConfig = ReportsConfig()
    placement: PlacementConfig = PlacementConfig()
    launch: LaunchConfig = LaunchConfig()
    dashboard: DashboardConfig = DashboardConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    engine: EngineConfig = EngineConfig()
    source: str | None = Field(default=None, exclude=True)
    """The file this came from (None for the embedded defaults)."""

    @field_validator("teams")
    @classmethod
    def _unique_teams(cls, v: list[Team]) -> list[Team]:
        _unique([t.name for t in v], "team")
        return v

    @field_validator("providers")
    @classmethod
    def _kinds_of_each_provider(cls, v: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        # A kind is known (checked on the source) but may belong to another cloud: only here is the
        # cloud known.
        for key, pcfg in v.items():
            kinds = providers.get(key).billing_kinds
            for i, src in enumerate(pcfg.billing):
                if src.kind not in kinds:
                    raise ValueError(f"{key}.billing[{i}].kind: a {key} billing source cannot be of kind "
                                     f"{src.kind!r} (expected {', '.join(kinds)})")
        return v

    @model_validator(mode="after")
    def _team_targets_known(self) -> Config:
        known = self.launch.all_targets()
        for i, t in enumerate(self.teams):
            unknown = [n for n in t.launch_targets if n not in known]
            if unknown:
                raise ValueError(f"teams[{i}].launch_targets: unknown target(s) {', '.join(map(repr, unknown))} "
                                 f"(configured: {', '.join(known)})")
        return self

    def ledger_url(self) -> str:
        """The ledger's SQLAlchemy URL: as configured, else a SQLite file beside a local store."""
        if self.ledger.url:
            return self.ledger.url
        if "://" not in self.store.url or self.store.url.startswith("file://"):
            base = Path(self.store.url.removeprefix("file://")).resolve()
            return f"sqlite:///{base / 'ledger.db'}"
        return f"sqlite:///{Path('finops-ledger.db').resolve()}"

    def open_store(self) -> Any:
        """The store this configuration names: a Delta Lake table per dataset. On S3, delta-rs commits
        with a conditional PUT (see :func:`finops.store._delta_options`), so concurrent writers are safe."""
        from finops.store import Store

        fs_opts: dict[str, Any] = {}
        pl_opts: dict[str, str] = {}
        if self.store.endpoint_url:
            fs_opts["client_kwargs"] = {"endpoint_url": self.store.endpoint_url}
            pl_opts["aws_endpoint_url"] = self.store.endpoint_url
            if self.store.endpoint_url.startswith("http://"):
                pl_opts["aws_allow_http"] = "true"
        if self.store.region:
            fs_opts.setdefault("client_kwargs", {})["region_name"] = self.store.region
            pl_opts["aws_region"] = self.store.region
        pl_opts.update(self.store.options)
        self.check_store()
        return Store(self.store.url, fs_opts, pl_opts)

    def check_store(self, create: bool = True) -> None:
        """A local store's folder is a folder and exists or (``create``) can be made; else
        :class:`ConfigError` naming it."""
        url = self.store.url
        if "://" in url and not url.startswith("file://"):
            return
        where = f"{self.source}: store.url" if self.source else "store.url"
        folder = Path(url.removeprefix("file://")).expanduser()
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{where}: {url!r} is a file, not a folder: point the store at a folder")
        if not create:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{where}: cannot create the store folder {url!r}: {e.strerror or e}") from None


def find(path: str | Path | None = None) -> Path | None:
    """The config file to use: ``path``, else ``$FINOPS_CONFIG``, else ``./finops.toml`` if present."""
    if path:
        return Path(path)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    local = Path(DEFAULT_FILE)
    return local if local.exists() else None


def load(path: str | Path | None = None) -> Config:
    """Load and validate the configuration (see :func:`find`); the embedded defaults if none."""
    file = find(path)
    if file is None:
        return Config()
    if not file.exists():
        raise ConfigError(f"{file}: no such configuration file")
    text = read_user_file(file, ConfigError, "a TOML configuration", "is a folder, not a configuration file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    return parse(data, str(file))


def read_user_file(path: Path, error: type[ValueError], kind: str, folder: str) -> str:
    """The UTF-8 text of a file a user named; each way that fails is ``error`` with one sentence naming
    the file (``kind``: what it should be; ``folder``: what to say when it is a folder)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not {kind} (not UTF-8 text)") from None
    except IsADirectoryError:
        raise error(f"{path}: {folder}") from None
    except OSError as e:
        raise error(f"{path}: cannot be read: {e.strerror or e}") from None


def parse(data: dict[str, Any], name: str = "<config>") -> Config:
    """Validate a configuration mapping; errors name the file, each bad key and what was expected."""
    _refuse_secrets(data, name)
    try:
        return Config.model_validate({**data, "source": name})
    except ValidationError as e:
        lines = [f"{name}: {field_path(err['loc'])}: {_expected(err)}" for err in e.errors()]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(lines)) from None


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the path a user writes: ``providers.aws.accounts[0].id``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _expected(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling; `finops init` writes an example)"
    if err["type"] == "missing":
        return "required key is missing"
    got = err.get("input")
    msg = str(err["msg"]).removeprefix("Value error, ")  # our validators' sentences stand alone
    return f"{msg} (got {got!r})" if not isinstance(got, dict | list) else msg


_URL_CREDENTIALS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s]*:[^/?#@\s]*@")
"""A URL with ``user:password@`` (``s3://KEY:SECRET@bucket``, ``postgresql://u:p@host/db``)."""


def _refuse_secrets(data: Any, name: str, path: str = "") -> None:
    """Refuse keys that name credentials and URLs that carry them, naming the key, never the value."""
    if isinstance(data, str):
        if _URL_CREDENTIALS.match(data.strip()):
            raise ConfigError(f"{name}: {path}: the URL has credentials in it (user:secret@); credentials do not "
                              "belong in finops.toml: remove them and use the SDK's own credential chain "
                              "(profiles, ADC, managed identity; PGPASSWORD or ~/.pgpass for PostgreSQL)")
        return
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{path}.{k}" if path else str(k)
            # ``*_env`` keys name an environment variable holding the secret, never the secret itself.
            if any(w in str(k).lower() for w in SECRET_WORDS) and not str(k).endswith("_env"):
                raise ConfigError(f"{name}: {key}: credentials do not belong in finops.toml; "
                                  "use the cloud SDK's own credential chain (profiles, ADC, managed identity)")
            _refuse_secrets(v, name, key)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _refuse_secrets(v, name, f"{path}[{i}]")


EXAMPLE = '''\
# finops configuration. Every key is optional; these are the defaults or examples.
# Credentials never go here: finops uses each cloud SDK's standard chain
# (AWS profiles/roles, Google Application Default Credentials, DefaultAzureCredential).

[store]
# Where billing (FOCUS) and price history are kept: a local folder, or object storage
# for a shared deployment, e.g. "s3://my-bucket/finops" (gs:// and az:// work through fsspec).
url = "./finops-data"
# endpoint_url = "https://minio.internal:9000"   # only for S3-compatible stores other than AWS

[ledger]
# Queue and ledger database (SQLAlchemy URL). Default: a SQLite file beside a local store.
# url = "postgresql+psycopg://finops@db.internal/finops"

[prices]
max_age_hours = 24             # older offers are flagged stale
rates = { EUR = 1.08 }         # USD per unit, for prices quoted in other currencies
# Monthly spot interruption frequency by instance family, overriding the built-in defaults:
interruption = { aws = { p5 = 0.25, g5 = 0.075 }, gcp = { "*" = 0.2 } }

[providers.aws]
# Linked accounts, with the team that owns each where one does.
accounts = [
  { id = "111111111111", name = "ml-research-prod", team = "ml-research" },
  { id = "222222222222", name = "shared-platform" },
]
billing_accounts = ["999999999999"]          # payer account(s)
regions = ["us-east-1", "us-west-2", "eu-west-1"]

# Where the bill comes from (`finops collect billing`): a CUR 2.0 / legacy CUR delivery in S3,
# read through its manifests; or Cost Explorer for the payer accounts above (no CUR needed).
[[providers.aws.billing]]
kind = "cur"
location = "s3://my-billing-bucket/cur/my-export"
# [[providers.aws.billing]]
# kind = "cost-explorer"

[providers.gcp]
accounts = [{ id = "ml-research-prod-1234", team = "ml-research" }]   # projects
billing_accounts = ["01A2B3-C4D5E6-F70819"]

[[providers.gcp.billing]]      # the Cloud Billing export to BigQuery (standard or detailed)
kind = "bigquery-export"
location = "my-billing-project.billing_export.gcp_billing_export_resource_v1_01A2B3_C4D5E6_F70819"

[providers.azure]
accounts = [{ id = "00000000-0000-0000-0000-000000000000", name = "vision-prod", team = "vision" }]  # subscriptions

[[providers.azure.billing]]    # the Cost Management Query API (ActualCost and AmortizedCost)
kind = "cost-management"
location = "/subscriptions/00000000-0000-0000-0000-000000000000"
# [[providers.azure.billing]]  # or cost-details exports (actual and amortized CSV): folder or blob URL
# kind = "cost-details"
# location = "az://cost-exports/finops"

[[teams]]
name = "ml-research"
monthly_budget = 120000        # in the team's currency
currency = "USD"
home_provider = "aws"          # baseline for savings reports
aliases = ["ML-Research", "ml_research", "research"]

[[teams]]
name = "vision"
monthly_budget = 60000
home_provider = "azure"

[placement]
# Quota or capacity in accelerators per (provider, region, accelerator); "*" matches any.
capacity = [{ provider = "aws", region = "us-east-1", accelerator = "H100", limit = 64 },
            { provider = "gcp", accelerator = "TPU-v5e", limit = 256 }]
restart_overhead_minutes = 10  # lost at each spot interruption, beyond the work since the last checkpoint
time_limit_seconds = 10        # for the whole queue; the optimality gap is reported when reached
# Offers older than prices.max_age_hours: "exclude" (the default), "allow" or "error". "allow" here so
# that the shipped price snapshot (`finops prices import-catalog`, months old) can be placed on: every
# plan says how old its prices were. Once `finops collect prices` runs on a schedule, use "exclude".
stale = "allow"
blocked = ["azure:*:Standard_NC6s_v3"]   # provider:region:instance_type, with * wildcards
egress = [{ source = "aws:us-east-1", destination = "gcp", per_gb = 0.09 }]   # USD/GB, over the defaults

[allocation]
# Who owns a row: the first tag key present with a known team (values case-folded, _ → -, aliases
# applied), else the account's team (providers.*.accounts), else a pattern on a column.
team_tags = ["finops-team", "team", "Team"]
project_tags = ["project", "Project"]
precedence = ["tags", "accounts", "patterns"]
untagged = "unallocated"       # or "proportional" / "even": redistribute what no rule assigns
credits = "proportional"       # credits and refunds without an owner are split like direct spend
basis = "EffectiveCost"        # amortised (commitment purchases left out), or "BilledCost"
patterns = [{ column = "SubAccountName", pattern = "^(?P<team>[a-z-]+)-(prod|nonprod)$" }]

[[allocation.shared]]          # costs that belong to no team alone
name = "platform"
accounts = ["222222222222"]
split = "proportional"         # to direct spend; or "even", or "fixed" with percentages

[[allocation.shared]]
name = "network"
service_categories = ["Networking"]
split = "fixed"
percentages = { ml-research = 70, vision = 30 }   # must sum to 100

[reports]
out = "./reports"
formats = ["csv", "xlsx", "html"]
currency = "USD"
# rates = { EUR = 1.08 }       # report-currency units per unit of another billing currency

# [reports.email]              # `finops report chargeback --send`
# host = "smtp.example.com"
# port = 587
# sender = "finops@example.com"
# to = ["ml-leads@example.com"]
# ca_file = "/etc/ssl/certs/internal-ca.pem"   # only for a relay with a private CA
# username_env = "FINOPS_SMTP_USER"       # names of environment variables, never the values
# password_env = "FINOPS_SMTP_PASSWORD"

# [reports.webhook]            # Slack-compatible incoming webhook
# url_env = "FINOPS_WEBHOOK_URL"

[engine]                       # where ingest, chargeback, rollups, reconcile and validate run
kind = "local"                 # or "ray": the same work as tasks on a Ray cluster (pip install 'finops[ray]');
                               # the store must then be on object storage (or mounted alike on every node)
# address = "ray://ray-head.ml.svc:10001"   # "auto": $RAY_ADDRESS or the cluster on this machine
# rows_per_task = 4000000
# retries = 3
'''
