"""The registry of providers and launch targets: one entry per cloud, looked up by its short key (``aws``,
``gcp``, ``azure``), and one per kind of launch target (``sagemaker``, ``vertex``, ``azureml``,
``kubernetes``, ``simulator``, ``dry_run``) naming its launcher module.

A lookup, not a plugin framework: the entries are written here, once, in :data:`REGISTRY`. Everything
that used to list the clouds — config validation, the CLI, the billing and price collectors, the
format detector — asks this module instead.

Entries name their collectors by dotted path (``"collectors.aws.cur_s3"``, ``"collectors.aws.cur:FORMATS"``)
and :func:`resolve` imports them only when asked: the import direction is ``collectors → finops``, so
finops never imports a collector at import time.

The collector contracts an entry points at (each module of a role has the same names and signatures):

- **billing** (``billing_kinds[kind]``, a module): ``make_client(source)``, ``source_id(source,
  settings=None)`` and ``collect(client, source, cursor, since, *, settings=None) -> Iterator[Chunk]``
  (see ``collectors/billing.py``);
- **prices** (``prices``, a module): ``make_client(endpoint=None)`` and ``collect(client, regions, *,
  observed_at, progress) -> pl.DataFrame`` (an offer frame, ``finops/offers.py``);
- **native formats** (``native_formats``, a list attribute): the ``NativeFormat`` entries of the
  provider's export layouts (``collectors/formats.py``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from finops import regions


class UnknownProvider(KeyError):
    """A key that names no registered provider or launch target."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else "unknown provider"


@dataclass(frozen=True)
class LabelRules:
    """What a cloud accepts as a tag (label) key and value, so launchers can stamp finops-team /
    finops-workload / finops-placement tags the cloud will take.

    ``chars``: a regular-expression character class every character of a key and a value must match
    (None: any); ``key_start``: the class of a key's first character; ``forbidden``: characters a key
    may not contain; ``reserved_prefixes``: key prefixes the cloud keeps for itself (any case).
    """

    key_max: int
    value_max: int
    chars: str | None = None
    key_start: str | None = None
    forbidden: str = ""
    reserved_prefixes: tuple[str, ...] = ()
    lowercase: bool = False
    """Keys and values must be lower case (GCP labels)."""
    alnum_edges: bool = False
    """Values begin and end with a letter or digit (Kubernetes labels)."""

    def problems(self, key: str, value: str) -> list[str]:
        """Why the tag ``key = value`` would be refused, one phrase each ([] when it is fine)."""
        out = []
        if not key:
            out.append("the key is empty")
        for what, text, limit in (("key", key, self.key_max), ("value", value, self.value_max)):
            if len(text) > limit:
                out.append(f"{what} {text!r} is longer than {limit} characters")
            bad = sorted({c for c in text if not self._allowed(c)})
            if bad:
                out.append(f"{what} {text!r} has characters the cloud refuses: {' '.join(bad)}")
        bad = sorted({c for c in key if c in self.forbidden})
        if bad:
            out.append(f"key {key!r} contains {' '.join(bad)}")
        if key and self.key_start and not re.fullmatch(self.key_start, key[0]):
            out.append(f"key {key!r} must start with {self.key_start}")
        reserved = [p for p in self.reserved_prefixes if key.lower().startswith(p.lower())]
        if reserved:
            out.append(f"key {key!r} starts with the reserved prefix {reserved[0]!r}")
        return out

    def fit(self, value: str) -> str:
        """``value`` made acceptable as a tag value: lower-cased where required, refused characters
        replaced by ``-``, cut to the length limit (team and workload names mostly pass unchanged)."""
        v = value.lower() if self.lowercase else value
        out = "".join(c if self._allowed(c) else "-" for c in v)[: self.value_max]
        return re.sub(r"^[\W_]+|[\W_]+$", "", out) if self.alnum_edges else out

    def _allowed(self, c: str) -> bool:
        if self.lowercase and c != c.lower():
            return False
        return self.chars is None or re.fullmatch(self.chars, c) is not None


@dataclass(frozen=True)
class Provider:
    """A cloud: where its bill and prices come from, how it names itself, what tags it accepts."""

    key: str
    """Short key used by the store (partition ``provider=``), config and CLI."""
    name: str
    """How people write it (``AWS``, ``Google Cloud``, ``Microsoft Azure``)."""
    focus_names: tuple[str, ...]
    """FOCUS ``ProviderName`` values the cloud and other tools write for it (any letter case)."""
    billing_kinds: Mapping[str, str]
    """``[[providers.<key>.billing]] kind`` → the collector module of that kind."""
    prices: str
    """The price collector module."""
    native_formats: str
    """``module:ATTRIBUTE`` of the list of native export formats (``NativeFormat``) of this cloud."""
    default_regions: tuple[str, ...]
    """Regions to price when finops.toml names none (GPU-rich regions)."""
    labels: LabelRules
    kind: str = "cloud"

    def jurisdiction(self, region: str) -> str | None:
        """The jurisdiction of one of this cloud's regions (``finops.regions`` holds the table)."""
        return regions.jurisdiction(self.key, region)

    def billing_module(self, kind: str) -> Any:
        """The collector module of a billing kind (imported now)."""
        if kind not in self.billing_kinds:
            raise UnknownProvider(f"a {self.key} billing source cannot be of kind {kind!r} "
                                  f"(expected {', '.join(self.billing_kinds)})")
        return resolve(self.billing_kinds[kind])


@dataclass(frozen=True)
class Target:
    """A kind of launch target (``[launch.targets.<name>] kind``): the launcher module that submits to
    it, the pip extra its SDK comes in, the cloud it bills on (None: the offer's own cloud, as for
    Kubernetes clusters on any cloud, the simulator and dry runs), the price list its machines are
    billed at (``service``: ``compute`` is the VM price; SageMaker and Vertex AI bill their own) and the
    labels it can carry."""

    key: str
    name: str
    launcher: str
    """The launcher module (``placement/launchers/<key>.py``)."""
    labels: LabelRules
    extra: str | None = None
    """``pip install 'finops[<extra>]'`` brings its SDK (None: nothing to install)."""
    provider: str | None = None
    service: str = "compute"
    kind: str = "target"


# -- the entries -----------------------------------------------------------------------------------
# AWS: tag keys ≤ 128 and values ≤ 256 Unicode characters of letters, digits, spaces and _.:/=+-@;
# the aws: prefix is reserved (AWS "Tag naming limits and requirements").
AWS_TAGS = LabelRules(128, 256, r"[\w\s.:/=+\-@]", reserved_prefixes=("aws:",))
# GCP: label keys 1–63 characters starting with a lower-case letter, keys and values of lower-case
# letters, digits, _ and - only; values may be empty ("Labels overview", Resource Manager).
GCP_LABELS = LabelRules(63, 63, r"[a-z0-9_-]", key_start=r"[a-z]", lowercase=True)
# Azure: tag names ≤ 512 and values ≤ 256 characters; names may not contain < > % & \ ? / and may
# not start with azure, microsoft or windows ("Use tags to organize your Azure resources").
AZURE_TAGS = LabelRules(512, 256, forbidden="<>%&\\?/", reserved_prefixes=("azure", "microsoft", "windows"))
_ENTRIES: tuple[Provider | Target, ...] = (
    Provider("aws", "AWS", ("AWS", "Amazon Web Services", "Amazon Web Services, Inc."),
             MappingProxyType({"cur": "collectors.aws.cur_s3", "cost-explorer": "collectors.aws.cost_explorer"}),
             "collectors.aws.prices", "collectors.aws.cur:FORMATS",
             ("us-east-1", "us-west-2", "eu-west-1"), AWS_TAGS),
    Provider("gcp", "Google Cloud", ("GCP", "Google Cloud", "Google Cloud Platform", "Google"),
             MappingProxyType({"bigquery-export": "collectors.gcp.bigquery"}),
             "collectors.gcp.prices", "collectors.gcp.bigquery_export:FORMATS",
             ("us-central1", "us-east1", "europe-west4"), GCP_LABELS),
    Provider("azure", "Microsoft Azure", ("Azure", "Microsoft", "Microsoft Azure"),
             MappingProxyType({"cost-management": "collectors.azure.cost_query",
                               "cost-details": "collectors.azure.cost_details"}),
             "collectors.azure.prices", "collectors.azure.cost_details:FORMATS",
             ("eastus", "westus2", "westeurope"), AZURE_TAGS),
)
# Kubernetes label values: ≤ 63 characters of letters, digits, - _ . beginning and ending with an
# alphanumeric; keys ≤ 63 (name part), "kubernetes.io/" and "k8s.io/" prefixes reserved ("Labels and Selectors").
K8S_LABELS = LabelRules(63, 63, r"[A-Za-z0-9._-]", key_start=r"[A-Za-z0-9]",
                        reserved_prefixes=("kubernetes.io/", "k8s.io/"), alnum_edges=True)
# Labels a local target keeps as given (the simulator bills with the launch's cloud's rules).
ANY_LABELS = LabelRules(256, 256)
_ENTRIES += (
    Target("sagemaker", "Amazon SageMaker", "placement.launchers.sagemaker", AWS_TAGS, "sagemaker", "aws",
           "sagemaker"),
    Target("vertex", "Vertex AI", "placement.launchers.vertex", GCP_LABELS, "vertex", "gcp", "vertex"),
    # Azure ML compute clusters are billed as the VMs they run on: the VM price is its price.
    Target("azureml", "Azure Machine Learning", "placement.launchers.azureml", AZURE_TAGS, "azureml", "azure"),
    Target("kubernetes", "Kubernetes", "placement.launchers.kubernetes", K8S_LABELS, "kubernetes"),
    Target("simulator", "simulated cloud", "placement.launchers.simulator", ANY_LABELS),
    Target("dry_run", "dry run", "placement.launchers.dry_run", ANY_LABELS),
)
REGISTRY: dict[str, Provider | Target] = {e.key: e for e in _ENTRIES}
"""Every provider and launch target by key, in the order they are listed and tried."""

# Providers we read in FOCUS files but do not collect from (the FinOps Foundation's sample has Oracle).
OTHER_NAMES: dict[str, tuple[str, ...]] = {"oci": ("OCI", "Oracle", "Oracle Cloud Infrastructure")}

# FOCUS ProviderName values, lower-cased, onto our short keys.
SLUGS: dict[str, str] = {
    n.lower(): key
    for key, names in [*((p.key, (p.key, *p.focus_names)) for p in _ENTRIES if isinstance(p, Provider)),
                       *((k, (k, *v)) for k, v in OTHER_NAMES.items())]
    for n in names
}


# -- lookups ---------------------------------------------------------------------------------------
def get(key: str) -> Provider:
    """The cloud registered as ``key``; :class:`UnknownProvider` (naming the known ones) otherwise."""
    entry = REGISTRY.get(key)
    if not isinstance(entry, Provider):
        raise UnknownProvider(f"unknown provider {key!r}: expected {expected()}")
    return entry


def target(kind: str) -> Target:
    """The launch target kind ``kind`` (``sagemaker``, ``vertex``, ``azureml``, ``kubernetes``, ``simulator``,
    ``dry_run``)."""
    entry = REGISTRY.get(kind)
    if not isinstance(entry, Target):
        raise UnknownProvider(f"unknown launch target kind {kind!r}: expected one of {', '.join(target_kinds())}")
    return entry


def target_kinds() -> tuple[str, ...]:
    return tuple(k for k, e in REGISTRY.items() if isinstance(e, Target))


def clouds() -> tuple[str, ...]:
    """The cloud keys, in registry order: ``("aws", "gcp", "azure")``."""
    return tuple(k for k, e in REGISTRY.items() if isinstance(e, Provider))


def expected() -> str:
    """The cloud keys as a phrase for error messages: ``aws, gcp or azure``."""
    keys = clouds()
    return keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} or {keys[-1]}"


def billing_kinds() -> dict[str, tuple[str, ...]]:
    """Cloud key → its billing source kinds."""
    return {k: tuple(get(k).billing_kinds) for k in clouds()}


def slug(name: str) -> str:
    """Short key for a provider name: ``"Google Cloud"`` → ``"gcp"``; unknown names slugified."""
    low = name.strip().lower()
    return SLUGS.get(low) or re.sub(r"[^a-z0-9]+", "-", low).strip("-") or "unknown"


def spellings(key: str) -> list[str]:
    """The ProviderName values that :func:`slug` maps to ``key``, in the usual letter cases, for a
    cheap ``is_in`` test per row."""
    names = [n for n, k in SLUGS.items() if k == key]
    return sorted({v for n in names for v in (n, n.upper(), n.title(), n.capitalize())})


def resolve(dotted: str) -> Any:
    """The object a dotted path names: ``"pkg.module"`` (the module) or ``"pkg.module:attr"``; imported
    on first use, so registering a collector costs nothing until it is asked for."""
    module, _, attr = dotted.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj
