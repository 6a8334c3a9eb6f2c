"""The organisation: teams and projects, billing and sub-accounts per cloud, commitments (make_org)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from finops.generate.catalog import _EC2, _NREG, _PROVIDERS, KINDS
from finops.generate.hashing import _Rand
from finops.generate.names import _code, _title

ENVS = ("prod", "staging", "dev")

_TEAM_NAMES = ("ml-research", "ml-platform", "recsys", "nlp", "vision", "data-eng", "speech", "robotics",
               "ads-ranking", "search", "fraud", "forecasting", "genai-apps", "safety", "bio-ml", "mlops")
_TEAM_PROJECTS = {
    "ml-research": ("foundation-models", "rl-agents", "multimodal", "scaling-laws"),
    "ml-platform": ("training-infra", "serving-infra", "notebooks", "feature-store"),
    "recsys": ("ranking", "candidate-gen", "embeddings", "ab-testing"),
    "nlp": ("llm-pretrain", "llm-finetune", "translation", "embeddings"),
    "vision": ("detection", "segmentation", "image-gen", "video"),
    "data-eng": ("etl", "lakehouse", "labeling", "streaming"),
}
_GENERIC_PROJECTS = ("training", "serving", "research", "pipelines")
# (weight, provider preference aws/gcp/azure, kind multipliers)
_TEAM_PROFILE: dict[str, tuple[float, tuple[float, float, float], dict[str, float]]] = {
    "ml-research": (1.3, (1.0, 1.2, 0.8), {"gpu": 1.6, "tpu": 2.0, "cpu": 0.6, "egress": 0.6}),
    "ml-platform": (1.0, (1.0, 1.0, 1.0), {"k8s": 4.0, "cpu": 1.3, "ml": 1.2, "gpu": 0.7}),
    "recsys": (1.0, (1.4, 0.6, 0.8), {"cpu": 1.3, "ml": 1.3, "object": 1.2, "tpu": 0.5}),
    "nlp": (1.2, (0.8, 1.6, 0.9), {"tpu": 1.8, "gpu": 1.3, "ml": 1.2}),
    "vision": (1.0, (1.3, 0.8, 1.1), {"gpu": 1.4, "object": 1.3}),
    "data-eng": (0.9, (1.2, 1.2, 0.8), {"cpu": 2.0, "object": 2.0, "egress": 1.5, "gpu": 0.3, "ml": 0.5, "tpu": 0.2}),
}
_ORG_NAMES = ("Acme AI", "Northwind Labs", "Globex ML", "Initech Research", "Umbrella Analytics")


@dataclass(frozen=True)
class Team:
    """A team: name, projects, share of resources, cloud preference (aws, gcp, azure), kind multipliers."""

    name: str
    projects: tuple[str, ...]
    weight: float
    provider_pref: tuple[float, float, float]
    kind_mult: tuple[float, ...]  # aligned with KINDS
    home_region: tuple[int, int, int]  # index into each provider's regions


@dataclass(frozen=True)
class Account:
    """A sub-account (AWS linked account, GCP project, Azure subscription) and its billing account."""

    provider: str
    billing_account_id: str
    billing_account_name: str
    sub_account_id: str
    sub_account_name: str
    team: str | None  # None for the shared platform account
    project: str | None = None
    env: str | None = None  # "prod" / "nonprod" where accounts are split by environment


@dataclass(frozen=True)
class Commitment:
    """A commitment discount: savings plan, reservation or committed use discount.

    ``kinds`` / ``sku`` / ``region`` say what it covers; ``coverage`` is the share of eligible
    on-demand resources it covers and ``spare`` how much it is over-bought (so there is always an
    unused part). ``starts_in_window`` commitments are purchased 30% into the generated window
    (their purchase rows appear); the others started ``days_before`` days before it.
    """

    key: str
    provider: str
    id: str
    name: str
    type: str
    category: Literal["Spend", "Usage"]
    payment: Literal["upfront", "recurring"]
    term_days: int
    discount: float
    kinds: tuple[str, ...]
    sku: str | None
    region: str | None
    coverage: float
    spare: float
    starts_in_window: bool
    days_before: int
    service: str
    sku_id: str
    account: int  # index into Org.accounts (the shared account that bought it)


# key, provider, id, name, type, category, payment, term days, discount, kinds, sku, region, coverage, service
_CommitmentSpec = tuple[str, str, str, str, str, Literal["Spend", "Usage"], Literal["upfront", "recurring"], int, float,
                        tuple[str, ...], str | None, str | None, float, str]


@dataclass(frozen=True)
class Org:
    """The organisation the data describes: teams, accounts per cloud, commitments."""

    seed: int
    name: str
    teams: tuple[Team, ...]
    accounts: tuple[Account, ...]
    commitments: tuple[Commitment, ...]
    billing_accounts: tuple[tuple[str, str], ...]  # per provider (aws, gcp, azure): (id, name)

    def accounts_of(self, provider: str) -> tuple[Account, ...]:
        """Sub-accounts of one provider ("aws", "gcp" or "azure")."""
        return tuple(a for a in self.accounts if a.provider == provider)


def _team_names(n: int) -> list[str]:
    return [_TEAM_NAMES[i] if i < len(_TEAM_NAMES) else f"team-{i + 1:02d}" for i in range(n)]


def _make_team(name: str, rnd: _Rand) -> Team:
    pool = _TEAM_PROJECTS.get(name, _GENERIC_PROJECTS)
    n_proj = 2 + int(rnd.random() * 3)  # 2..4
    weight, pref, mult = _TEAM_PROFILE.get(
        name, (0.5 + rnd.random() * 0.7, (0.6 + rnd.random(), 0.6 + rnd.random(), 0.6 + rnd.random()), {}))
    aws, gcp, azure = (min(int(rnd.random() ** 2 * _NREG), _NREG - 1) for _ in _PROVIDERS)
    home = (aws, gcp, azure)
    return Team(name, tuple(pool[:n_proj]), weight, pref, tuple(mult.get(k, 1.0) for k in KINDS), home)


def _gcp_project_id(team: str, project: str, rnd: _Rand) -> str:
    base = f"{team}-{project}"[:25].rstrip("-")
    return f"{base}-{rnd.hex(4)}"


def _accounts(teams: Sequence[Team], billing: Sequence[tuple[str, str]], rnd: _Rand) -> list[Account]:
    out: list[Account] = []
    (aws_id, aws_name), (gcp_id, gcp_name), (az_id, az_name) = billing
    for t in teams:
        for env in ("prod", "nonprod"):
            out.append(Account("aws", aws_id, aws_name, rnd.digits(12), f"{t.name}-{env}", t.name, None, env))
    out.append(Account("aws", aws_id, aws_name, rnd.digits(12), "ml-shared-services", None))
    for t in teams:
        for pj in t.projects:
            out.append(Account("gcp", gcp_id, gcp_name, _gcp_project_id(t.name, pj, rnd), f"{t.name} / {pj}",
                               t.name, pj))
    out.append(Account("gcp", gcp_id, gcp_name, f"ml-shared-platform-{rnd.hex(4)}", "ML shared platform", None))
    for t in teams:
        title = _title(t.name)
        for env, label in (("prod", "Production"), ("nonprod", "Dev/Test")):
            out.append(Account("azure", az_id, az_name, rnd.guid(), f"{title} - {label}", t.name, None, env))
    out.append(Account("azure", az_id, az_name, rnd.guid(), "Shared Platform - Production", None))
    return out


def _commitments(accounts: Sequence[Account], billing: Sequence[tuple[str, str]], rnd: _Rand) -> list[Commitment]:
    shared = {a.provider: i for i, a in enumerate(accounts) if a.team is None}
    aws_payer = billing[0][0]
    gcp_shared = accounts[shared["gcp"]].sub_account_id
    aws_shared = accounts[shared["aws"]].sub_account_id

    def spare() -> float:
        return round(0.04 + rnd.random() * 0.2, 3)

    def before() -> int:
        return 40 + int(rnd.random() * 200)

    specs: list[_CommitmentSpec] = [
        ("aws-csp", "aws", f"arn:aws:savingsplans::{aws_payer}:savingsplan/{rnd.guid()}",
         "Compute Savings Plan 1yr No Upfront", "Savings Plan", "Spend", "recurring", 365, 0.28, ("gpu", "cpu"),
         None, None, 0.35, "Savings Plans for AWS Compute usage"),
        ("aws-smsp", "aws", f"arn:aws:savingsplans::{aws_payer}:savingsplan/{rnd.guid()}",
         "SageMaker Savings Plan 1yr All Upfront", "Savings Plan", "Spend", "upfront", 365, 0.36, ("ml",),
         None, None, 0.5, "Savings Plans for Amazon SageMaker"),
        ("aws-ri-g5", "aws", f"arn:aws:ec2:us-east-1:{aws_shared}:reserved-instances/{rnd.guid()}",
         "g5.12xlarge Reserved Instance us-east-1 1yr No Upfront", "Reserved Instance", "Usage", "recurring", 365,
         0.37, ("gpu",), "g5.12xlarge", "us-east-1", 0.7, _EC2),
        ("gcp-cud-a2", "gcp",
         f"projects/{gcp_shared}/regions/us-central1/commitments/cud-a2-highgpu-8g-1y-{rnd.hex(6)}",
         "A2 GPU resource-based CUD us-central1 1yr", "Committed Use Discount", "Usage", "recurring", 365, 0.37,
         ("gpu",), "a2-highgpu-8g", "us-central1", 0.7, "Compute Engine"),
        ("gcp-flex-cud", "gcp", f"billingAccounts/{billing[1][0]}/commitments/flex-cud-compute-3y-{rnd.hex(6)}",
         "Compute flexible CUD 3yr", "Committed Use Discount", "Spend", "recurring", 1095, 0.46, ("cpu",),
         None, None, 0.4, "Compute Engine"),
        ("azure-ri-nd96", "azure",
         f"/providers/Microsoft.Capacity/reservationOrders/{rnd.guid()}/reservations/{rnd.guid()}",
         "Standard_ND96asr_v4 Reservation eastus 1yr Monthly", "Reservation", "Usage", "recurring", 365, 0.38,
         ("gpu",), "Standard_ND96asr_v4", "eastus", 0.7, "Virtual Machines"),
        ("azure-sp", "azure",
         f"/providers/Microsoft.BillingBenefits/savingsPlanOrders/{rnd.guid()}/savingsPlans/{rnd.guid()}",
         "Azure compute savings plan 1yr Upfront", "Savings Plan", "Spend", "upfront", 365, 0.2, ("gpu", "cpu"),
         None, None, 0.3, "Virtual Machines"),
    ]
    out: list[Commitment] = []
    for key, prov, cid, name, ctype, cat, pay, term, disc, kinds, sku, region, cov, svc in specs:
        in_window = key == "aws-smsp"
        out.append(Commitment(key, prov, cid, name, ctype, cat, pay, term, disc, kinds, sku, region, cov,
                              spare(), in_window, 0 if in_window else before(), svc,
                              _code(f"commitment:{key}", prov), shared[prov]))
    return out


def make_org(teams: int = 6, seed: int = 0) -> Org:
    """Build the organisation: ``teams`` teams with 2–4 projects each, one billing account per cloud,
    linked accounts / projects / subscriptions per team (plus a shared one per cloud) and seven
    commitments (AWS compute and SageMaker savings plans and a g5 RI, GCP A2 and flexible CUDs, an Azure
    ND96asr_v4 reservation and an Azure savings plan). Deterministic from ``seed``."""
    if teams < 1:
        raise ValueError(f"teams must be at least 1, got {teams}")
    rnd = _Rand(seed, "org")
    team_objs = tuple(_make_team(n, rnd) for n in _team_names(teams))
    org_name = _ORG_NAMES[int(rnd.random() * len(_ORG_NAMES))]
    aws = (rnd.digits(12), f"{org_name} AWS Organization")
    gcp = (f"{rnd.hex(6, True)}-{rnd.hex(6, True)}-{rnd.hex(6, True)}", f"{org_name} Cloud Billing")
    ba = f"{rnd.guid()}:{rnd.guid()}_2019-05-31"
    bp = f"{rnd.hex(4, True)}-{rnd.hex(4, True)}-{rnd.hex(3, True)}-{rnd.hex(3, True)}"
    azure = (f"/providers/Microsoft.Billing/billingAccounts/{ba}/billingProfiles/{bp}", f"{org_name} Billing Profile")
    billing = (aws, gcp, azure)
    accounts = tuple(_accounts(team_objs, billing, rnd))
    commitments = tuple(_commitments(accounts, billing, rnd))
    return Org(seed, org_name, team_objs, accounts, commitments, billing)
