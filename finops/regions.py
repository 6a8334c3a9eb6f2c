"""Where each cloud region is, legally: region → jurisdiction for AWS, GCP and Azure.

Used for data residency (``residency: [EU]`` in a workload spec). Jurisdictions are ISO country codes,
except ``EU`` for the member states of the European Union; :data:`GROUPS` adds wider areas (``EEA``).
A region missing here has no known jurisdiction, so no residency rule can be met by it.
"""

from __future__ import annotations

import re

# Regions whose name alone does not say the jurisdiction; the rest follow the prefixes below.
_EXACT: dict[str, dict[str, str]] = {
    "aws": {"eu-west-2": "UK", "eu-central-2": "CH", "ap-northeast-1": "JP", "ap-northeast-3": "JP",
            "ap-northeast-2": "KR", "ap-south-1": "IN", "ap-south-2": "IN", "ap-southeast-1": "SG",
            "ap-southeast-2": "AU", "ap-southeast-4": "AU", "ap-southeast-3": "ID", "ap-southeast-5": "MY",
            "ap-east-1": "HK", "sa-east-1": "BR", "me-south-1": "BH", "me-central-1": "AE", "af-south-1": "ZA",
            "il-central-1": "IL", "mx-central-1": "MX"},
    "gcp": {"europe-west2": "UK", "europe-west6": "CH", "northamerica-northeast1": "CA",
            "northamerica-northeast2": "CA", "northamerica-south1": "MX", "southamerica-east1": "BR",
            "southamerica-west1": "CL", "asia-east1": "TW", "asia-east2": "HK", "asia-northeast1": "JP",
            "asia-northeast2": "JP", "asia-northeast3": "KR", "asia-south1": "IN", "asia-south2": "IN",
            "asia-southeast1": "SG", "asia-southeast2": "ID", "asia-southeast3": "TH", "me-central1": "QA",
            "me-central2": "SA", "me-west1": "IL", "africa-south1": "ZA"},
    "azure": {
        **dict.fromkeys(("eastus", "eastus2", "centralus", "northcentralus", "southcentralus", "southcentralus2",
                         "westcentralus", "westus", "westus2", "westus3", "southwestus", "usgovarizona",
                         "usgoviowa", "usgovtexas", "usgovvirginia", "attatlanta1", "attdallas1",
                         "attdetroit1", "attnewyork1", "portland"), "US"),
        **dict.fromkeys(("northeurope", "westeurope", "francecentral", "francesouth", "germanynorth",
                         "germanywestcentral", "deloscloudgermanycentral", "deloscloudgermanynorth",
                         "swedencentral", "swedensouth", "polandcentral", "italynorth", "spaincentral",
                         "austriaeast", "belgiumcentral", "denmarkeast"), "EU"),
        "uksouth": "UK", "ukwest": "UK", "switzerlandnorth": "CH", "switzerlandwest": "CH", "norwayeast": "NO",
        "norwaywest": "NO", "canadacentral": "CA", "canadaeast": "CA", "brazilsouth": "BR",
        "brazilsoutheast": "BR", "chilecentral": "CL", "mexicocentral": "MX", "eastasia": "HK",
        "southeastasia": "SG", "sgxsingapore1": "SG", "japaneast": "JP", "japanwest": "JP", "koreacentral": "KR",
        "koreasouth": "KR", "centralindia": "IN", "southindia": "IN", "westindia": "IN", "jioindiacentral": "IN",
        "jioindiawest": "IN", "australiaeast": "AU", "australiasoutheast": "AU", "australiacentral": "AU",
        "australiacentral2": "AU", "newzealandnorth": "NZ", "indonesiacentral": "ID", "malaysiawest": "MY",
        "uaecentral": "AE", "uaenorth": "AE", "qatarcentral": "QA", "israelcentral": "IL",
        "israelnorthwest": "IL", "southafricanorth": "ZA", "southafricawest": "ZA"},
}
_PREFIX: dict[str, list[tuple[str, str]]] = {
    "aws": [(r"^us-", "US"), (r"^ca-", "CA"), (r"^eu-", "EU")],
    "gcp": [(r"^us-", "US"), (r"^europe-", "EU"), (r"^australia-", "AU")],
    "azure": [],
}
GROUPS: dict[str, frozenset[str]] = {
    "EEA": frozenset({"EU", "NO", "IS", "LI"}),
    "EUROPE": frozenset({"EU", "NO", "IS", "LI", "UK", "CH"}),
}
JURISDICTIONS = frozenset(v for t in _EXACT.values() for v in t.values()) | {"US", "CA", "EU", "AU"}


def jurisdiction(provider: str, region: str) -> str | None:
    """The jurisdiction of ``region`` on ``provider`` (``EU``, ``UK``, ``US``, …); None if unknown."""
    exact = _EXACT.get(provider, {}).get(region)
    if exact:
        return exact
    for pattern, code in _PREFIX.get(provider, []):
        if re.match(pattern, region):
            return code
    return None


def expand(residency: list[str]) -> set[str]:
    """Jurisdiction codes a residency list allows: ``["EEA"]`` → EU, NO, IS, LI."""
    out: set[str] = set()
    for r in residency:
        out |= GROUPS.get(r.upper(), frozenset({r.upper()}))
    return out


def known_region(region: str) -> bool:
    """True if some provider has ``region`` (by the tables above)."""
    return any(jurisdiction(p, region) for p in _EXACT)
