"""Configuration: one TOML file, validated with pydantic.

Found at ``--config``, else ``$FINOPS_CONFIG``, else ``./finops.toml``; with none of them, the
embedded defaults (a local store in ``./finops-data``). Secrets never go here: each cloud SDK finds
its credentials through its own standard chain (AWS profiles and roles, Google ADC,
DefaultAzureCredential).
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_VAR = "FINOPS_CONFIG"
DEFAULT_FILE = "finops.toml"
DEFAULT_STORE = "./finops-data"
SECRET_WORDS = ("secret", "password", "token", "access_key", "private_key", "client_secret")


class ConfigError(ValueError):
    """A configuration file that cannot be used: names the file, the key and what was expected."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Model):
    url: str = DEFAULT_STORE
    """Local folder or object-store URL (``s3://bucket/prefix``, ``gs://…``, ``az://…``)."""
    endpoint_url: str | None = None
    """For S3-compatible object stores other than AWS (MinIO, Ceph, a local test server)."""
    region: str | None = None


class LedgerConfig(_Model):
    url: str | None = None
    """SQLAlchemy URL; default: a SQLite file beside the store."""


class Account(_Model):
    id: str
    name: str | None = None
    team: str | None = None
    """Team that owns everything billed to this account, if any (used by allocation)."""


class ProviderConfig(_Model):
    enabled: bool = True
    accounts: list[Account] = Field(default_factory=list)
    """AWS accounts, GCP projects or Azure subscriptions."""
    billing_accounts: list[str] = Field(default_factory=list)
    """AWS payer accounts, GCP billing accounts or Azure billing scopes."""
    regions: list[str] = Field(default_factory=list)


class Team(_Model):
    name: str
    monthly_budget: Decimal | None = None
    currency: str = "USD"
    home_provider: Literal["aws", "gcp", "azure"] | None = None
    aliases: list[str] = Field(default_factory=list)

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
    interruption: dict[Literal["aws", "gcp", "azure"], dict[str, float]] = Field(default_factory=dict)
    """Monthly spot interruption frequency by instance family (``"*"``: any other), overriding the
    documented defaults in ``finops.offers.DEFAULT_MONTHLY_INTERRUPTION``."""
    endpoints: dict[Literal["aws", "gcp", "azure"], str] = Field(default_factory=dict)
    """Price API endpoints other than the providers' own (a proxy, a mirror, a local emulator)."""

    @field_validator("rates")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, r in v.items() if r <= 0)
        if bad:
            raise ValueError(f"exchange rates must be > 0: {', '.join(bad)}")
        return v


class Config(_Model):
    store: StoreConfig = StoreConfig()
    ledger: LedgerConfig = LedgerConfig()
    prices: PricesConfig = PricesConfig()
    providers: dict[Literal["aws", "gcp", "azure"], ProviderConfig] = Field(default_factory=dict)
    teams: list[Team] = Field(default_factory=list)
    source: str | None = Field(default=None, exclude=True)
    """The file this came from (None for the embedded defaults)."""

    @field_validator("teams")
    @classmethod
    def _unique_teams(cls, v: list[Team]) -> list[Team]:
        names = [t.name for t in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"team names must be unique; repeated: {', '.join(dup)}")
        return v

    def ledger_url(self) -> str:
        """The ledger's SQLAlchemy URL: as configured, else a SQLite file beside a local store."""
        if self.ledger.url:
            return self.ledger.url
        if "://" not in self.store.url or self.store.url.startswith("file://"):
            base = Path(self.store.url.removeprefix("file://")).resolve()
            return f"sqlite:///{base / 'ledger.db'}"
        return f"sqlite:///{Path('finops-ledger.db').resolve()}"

    def open_store(self) -> Any:
        """The store this configuration names."""
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
        return Store(self.store.url, fs_opts, pl_opts)


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
    try:
        data = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    return parse(data, str(file))


def parse(data: dict[str, Any], name: str = "<config>") -> Config:
    """Validate a configuration mapping; errors name the file, each bad key and what was expected."""
    _refuse_secrets(data, name)
    try:
        return Config.model_validate({**data, "source": name})
    except ValidationError as e:
        lines = [f"{name}: {_key(err['loc'])}: {_expected(err)}" for err in e.errors()]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(lines)) from None


def _key(loc: tuple[Any, ...]) -> str:
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
    return f"{err['msg']} (got {got!r})" if not isinstance(got, dict | list) else err["msg"]


def _refuse_secrets(data: Any, name: str, path: str = "") -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{path}.{k}" if path else str(k)
            if any(w in str(k).lower() for w in SECRET_WORDS):
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

[providers.gcp]
accounts = [{ id = "ml-research-prod-1234", team = "ml-research" }]   # projects
billing_accounts = ["01A2B3-C4D5E6-F70819"]

[providers.azure]
accounts = [{ id = "00000000-0000-0000-0000-000000000000", name = "vision-prod", team = "vision" }]  # subscriptions

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
'''
