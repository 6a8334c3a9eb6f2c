"""Static catalogue: providers, regions, services and SKUs (roughly public list prices), prices per region."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PROVIDER_KEYS = ("aws", "gcp", "azure")
KINDS = ("gpu", "cpu", "tpu", "ml", "object", "block", "egress", "k8s")
HOURLY_KINDS = ("gpu", "cpu", "tpu", "ml", "k8s")
CURRENCY = "USD"
_MICRO = 1_000_000


@dataclass(frozen=True)
class _Provider:
    key: str
    name: str
    publisher: str
    issuer: str
    billing_account_type: str
    sub_account_type: str
    regions: tuple[tuple[str, str, float], ...]  # (RegionId, RegionName, price multiplier)
    zoned: bool  # whether instances report an AvailabilityZone
    negotiated: float  # enterprise discount on list prices (EDP / PPA / MACC)
    tax_rate: str
    share: float  # default share of resources


_PROVIDERS: tuple[_Provider, ...] = (
    # InvoiceIssuerName equals ProviderName: focus-validator (BilledCost-C-005-C) reads a different
    # issuer as a third-party (marketplace) charge whose BilledCost must be 0.
    _Provider("aws", "AWS", "Amazon Web Services, Inc.", "AWS", "Billing Account",
              "Linked Account",
              (("us-east-1", "US East (N. Virginia)", 1.0), ("us-west-2", "US West (Oregon)", 1.0),
               ("eu-west-1", "Europe (Ireland)", 1.1), ("eu-central-1", "Europe (Frankfurt)", 1.15),
               ("ap-northeast-1", "Asia Pacific (Tokyo)", 1.25)), True, 0.05, "0.0625", 0.45),
    _Provider("gcp", "Google Cloud", "Google Cloud", "Google Cloud", "Billing Account", "Project",
              (("us-central1", "Iowa", 1.0), ("us-east4", "Northern Virginia", 1.12),
               ("us-west4", "Las Vegas", 1.06), ("europe-west4", "Netherlands", 1.1),
               ("asia-southeast1", "Singapore", 1.23)), True, 0.04, "0.0725", 0.32),
    _Provider("azure", "Microsoft", "Microsoft", "Microsoft", "Billing Profile", "Subscription",
              (("eastus", "East US", 1.0), ("westus3", "West US 3", 1.0),
               ("southcentralus", "South Central US", 1.02), ("westeurope", "West Europe", 1.12),
               ("swedencentral", "Sweden Central", 1.08)), False, 0.06, "0.06", 0.23),
)
_NREG = 5
_PIDX = {p.key: i for i, p in enumerate(_PROVIDERS)}

# ServiceName -> (ServiceCategory, ServiceSubcategory); each name has one category (FOCUS 1.2 pairs).
_SERVICES: dict[str, tuple[str, str]] = {
    "Amazon Elastic Compute Cloud": ("Compute", "Virtual Machines"),
    "Amazon SageMaker": ("AI and Machine Learning", "Machine Learning"),
    "Amazon Simple Storage Service": ("Storage", "Object Storage"),
    "Amazon Elastic Block Store": ("Storage", "Block Storage"),
    "AWS Data Transfer": ("Networking", "Network Connectivity"),
    "Amazon Elastic Kubernetes Service": ("Compute", "Containers"),
    "Savings Plans for AWS Compute usage": ("Compute", "Virtual Machines"),
    "Savings Plans for Amazon SageMaker": ("AI and Machine Learning", "Machine Learning"),
    "Compute Engine": ("Compute", "Virtual Machines"),
    "Cloud TPU": ("Compute", "Virtual Machines"),
    "Vertex AI": ("AI and Machine Learning", "Machine Learning"),
    "Cloud Storage": ("Storage", "Object Storage"),
    "Networking": ("Networking", "Network Connectivity"),
    "Kubernetes Engine": ("Compute", "Containers"),
    "Virtual Machines": ("Compute", "Virtual Machines"),
    "Azure Machine Learning": ("AI and Machine Learning", "Machine Learning"),
    "Storage": ("Storage", "Object Storage"),
    "Bandwidth": ("Networking", "Network Connectivity"),
    "Azure Kubernetes Service": ("Compute", "Containers"),
    "Tax": ("Other", "Other (Other)"),
}


@dataclass(frozen=True)
class _Sku:
    provider: str
    kind: str
    service: str
    name: str  # instance type or storage class
    price: float  # list price per unit in the base region
    unit: str
    weight: float
    desc: str  # ChargeDescription template: {price} {name} {region}
    spot_desc: str = ""  # empty: no spot market
    word: str = ""  # resource-name word
    rtype: str = "Instance"
    path: str = ""  # resource id path element for managed services
    meter: str = "Instance Hours"
    details: tuple[tuple[str, Any], ...] = ()


def _vm(provider: str, kind: str, service: str, name: str, price: float, weight: float, cores: int,
        mem: int, gpus: int = 0, series: str = "", desc: str = "", spot_desc: str = "", word: str = "",
        rtype: str = "Instance", path: str = "", meter: str = "Instance Hours") -> _Sku:
    details: list[tuple[str, Any]] = [("CoreCount", cores),
                                      ("InstanceSeries", series or name.split(".", maxsplit=1)[0]),
                                      ("InstanceType", name), ("MemorySize", mem), ("OperatingSystem", "Linux")]
    if gpus:
        details.append(("GpuCount", gpus))
    return _Sku(provider, kind, service, name, price, "Hours", weight, desc, spot_desc,
                word or ("gpu" if gpus else "cpu"), rtype, path, meter, tuple(sorted(details)))


_EC2, _SM = "Amazon Elastic Compute Cloud", "Amazon SageMaker"
_AWS_OD = "${price} per On Demand Linux {name} Instance Hour"
_AWS_SPOT = "Linux/UNIX Spot Instance-hour for {name} in {region}"
_GCE_OD = "{name} instance running in {region}"
_GCE_SPOT = "Spot Preemptible {name} instance running in {region}"
_AZ_OD = "{name} - {region}"
_AZ_SPOT = "{name} Spot - {region}"

_SKUS: tuple[_Sku, ...] = (
    # --- AWS -----------------------------------------------------------------------------------------
    _vm("aws", "gpu", _EC2, "p4d.24xlarge", 21.957642, 2, 96, 1152, 8, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "gpu", _EC2, "p5.48xlarge", 55.04, 1, 192, 2048, 8, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "gpu", _EC2, "g5.xlarge", 1.006, 4, 4, 16, 1, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "gpu", _EC2, "g5.12xlarge", 5.672, 3, 48, 192, 4, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "gpu", _EC2, "g6e.xlarge", 1.861, 2, 4, 32, 1, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "gpu", _EC2, "trn1.32xlarge", 21.5, 0.5, 128, 512, 0, "", _AWS_OD, _AWS_SPOT, "trn"),
    _vm("aws", "cpu", _EC2, "m7i.2xlarge", 0.4032, 4, 8, 32, 0, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "cpu", _EC2, "c7i.4xlarge", 0.714, 3, 16, 32, 0, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "cpu", _EC2, "r7i.2xlarge", 0.5292, 2, 8, 64, 0, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "cpu", _EC2, "m6i.xlarge", 0.192, 3, 4, 16, 0, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "cpu", _EC2, "t3.large", 0.0832, 2, 2, 8, 0, "", _AWS_OD, _AWS_SPOT),
    _vm("aws", "ml", _SM, "ml.p4d.24xlarge", 37.688, 1, 96, 1152, 8, "ml.p4d",
        "${price} per Training ml.p4d.24xlarge hour in {region}",
        "Managed Spot Training ml.p4d.24xlarge hour in {region}", "train", "Training Job", "training-job",
        "Training Hours"),
    _vm("aws", "ml", _SM, "ml.g5.2xlarge", 1.515, 3, 8, 32, 1, "ml.g5",
        "${price} per Training ml.g5.2xlarge hour in {region}",
        "Managed Spot Training ml.g5.2xlarge hour in {region}", "train", "Training Job", "training-job",
        "Training Hours"),
    _vm("aws", "ml", _SM, "ml.g5.12xlarge", 7.09, 2, 48, 192, 4, "ml.g5",
        "${price} per Hosting ml.g5.12xlarge hour in {region}", "", "endpoint", "Endpoint", "endpoint",
        "Hosting Hours"),
    _vm("aws", "ml", _SM, "ml.m5.xlarge", 0.23, 3, 4, 16, 0, "ml.m5",
        "${price} per Notebook ml.m5.xlarge hour in {region}", "", "notebook", "Notebook Instance",
        "notebook-instance", "Notebook Hours"),
    _Sku("aws", "object", "Amazon Simple Storage Service", "Standard", 0.023, "GB-Months", 3,
         "${price} per GB - first 50 TB / month of storage used", "", "data", "Bucket", "", "TimedStorage-ByteHrs",
         (("Redundancy", "Regional"), ("StorageClass", "Standard"))),
    _Sku("aws", "object", "Amazon Simple Storage Service", "Standard-IA", 0.0125, "GB-Months", 1,
         "${price} per GB-Month of storage used in Standard-Infrequent Access", "", "archive", "Bucket", "",
         "TimedStorage-SIA-ByteHrs", (("Redundancy", "Regional"), ("StorageClass", "Standard-IA"))),
    _Sku("aws", "block", "Amazon Elastic Block Store", "gp3", 0.08, "GB-Months", 3,
         "${price} per GB-month of General Purpose (gp3) provisioned storage - {region}", "", "vol", "Volume", "",
         "VolumeUsage.gp3", (("DiskType", "SSD"), ("StorageClass", "gp3"))),
    _Sku("aws", "block", "Amazon Elastic Block Store", "io2", 0.125, "GB-Months", 1,
         "${price} per GB-month of Provisioned IOPS SSD (io2) provisioned storage - {region}", "", "vol", "Volume",
         "", "VolumeUsage.io2", (("DiskType", "SSD"), ("StorageClass", "io2"))),
    _Sku("aws", "egress", "AWS Data Transfer", "Internet egress", 0.09, "GB", 3,
         "${price} per GB - first 10 TB / month data transfer out beyond the global free tier", "", "egress",
         "Instance", "", "DataTransfer-Out-Bytes",
         (("x_TransferDirection", "Outbound"), ("x_TransferType", "Internet"))),
    _Sku("aws", "egress", "AWS Data Transfer", "Inter-region transfer", 0.02, "GB", 1,
         "${price} per GB - {region} data transfer to other AWS regions", "", "egress", "Instance", "",
         "DataTransfer-Regional-Bytes", (("x_TransferDirection", "Outbound"), ("x_TransferType", "InterRegion"))),
    _Sku("aws", "k8s", "Amazon Elastic Kubernetes Service", "EKS cluster", 0.10, "Hours", 1,
         "${price} per hour per Amazon EKS cluster", "", "eks", "Cluster", "", "AmazonEKS-Hours:perCluster",
         (("x_SupportTier", "Standard"),)),
    # --- GCP -----------------------------------------------------------------------------------------
    _vm("gcp", "gpu", "Compute Engine", "a2-highgpu-8g", 29.387894, 2, 96, 680, 8, "a2", _GCE_OD, _GCE_SPOT),
    _vm("gcp", "gpu", "Compute Engine", "a2-highgpu-1g", 3.673488, 3, 12, 85, 1, "a2", _GCE_OD, _GCE_SPOT),
    _vm("gcp", "gpu", "Compute Engine", "a2-ultragpu-1g", 5.069156, 1, 12, 170, 1, "a2", _GCE_OD, _GCE_SPOT),
    _vm("gcp", "gpu", "Compute Engine", "a3-highgpu-8g", 88.253983, 1, 208, 1872, 8, "a3", _GCE_OD, _GCE_SPOT),
    _vm("gcp", "gpu", "Compute Engine", "g2-standard-8", 0.853624, 4, 8, 32, 1, "g2", _GCE_OD, _GCE_SPOT),
    _vm("gcp", "cpu", "Compute Engine", "n2-standard-8", 0.388472, 4, 8, 32, 0, "n2", _GCE_OD, _GCE_SPOT),
    _vm("gcp", "cpu", "Compute Engine", "n2-highmem-16", 1.048432, 2, 16, 128, 0, "n2", _GCE_OD, _GCE_SPOT),
    _vm("gcp", "cpu", "Compute Engine", "e2-standard-4", 0.134012, 3, 4, 16, 0, "e2", _GCE_OD, _GCE_SPOT),
    _vm("gcp", "cpu", "Compute Engine", "c3-standard-22", 1.10176, 1, 22, 88, 0, "c3", _GCE_OD, _GCE_SPOT),
    _vm("gcp", "tpu", "Cloud TPU", "v5litepod-8", 9.6, 3, 224, 384, 0, "TPU v5e",
        "TPU v5e {name} (8 chips) running in {region}", "Spot TPU v5e {name} (8 chips) running in {region}",
        "tpu", "TPU Node", "", "TPU Chip Hours"),
    _vm("gcp", "tpu", "Cloud TPU", "v5litepod-1", 1.2, 2, 24, 48, 0, "TPU v5e",
        "TPU v5e {name} (1 chip) running in {region}", "Spot TPU v5e {name} (1 chip) running in {region}",
        "tpu", "TPU Node", "", "TPU Chip Hours"),
    _vm("gcp", "tpu", "Cloud TPU", "v5p-8", 16.8, 1, 208, 448, 0, "TPU v5p",
        "TPU v5p {name} (4 chips) running in {region}", "Spot TPU v5p {name} (4 chips) running in {region}",
        "tpu", "TPU Node", "", "TPU Chip Hours"),
    _vm("gcp", "tpu", "Cloud TPU", "v4-8", 12.88, 1, 240, 407, 0, "TPU v4",
        "TPU v4 {name} (4 chips) running in {region}", "Spot TPU v4 {name} (4 chips) running in {region}",
        "tpu", "TPU Node", "", "TPU Chip Hours"),
    _vm("gcp", "ml", "Vertex AI", "a2-highgpu-8g", 33.795979, 1, 96, 680, 8, "a2",
        "Vertex AI: Training on {name} running in {region}", "Vertex AI: Spot training on {name} in {region}",
        "train", "Custom Job", "customJobs", "Training Hours"),
    _vm("gcp", "ml", "Vertex AI", "n1-standard-8 + 1x T4", 0.829, 2, 8, 30, 1, "n1",
        "Vertex AI: Training on {name} running in {region}", "Vertex AI: Spot training on {name} in {region}",
        "train", "Custom Job", "customJobs", "Training Hours"),
    _vm("gcp", "ml", "Vertex AI", "n1-standard-4", 0.218499, 2, 4, 15, 0, "n1",
        "Vertex AI: Online prediction on {name} in {region}", "", "endpoint", "Endpoint", "endpoints",
        "Prediction Hours"),
    _vm("gcp", "ml", "Vertex AI", "e2-standard-4", 0.159124, 3, 4, 16, 0, "e2",
        "Vertex AI Workbench: {name} instance in {region}", "", "notebook", "Workbench Instance", "instances",
        "Notebook Hours"),
    _Sku("gcp", "object", "Cloud Storage", "Standard", 0.02, "GB-Months", 3, "Standard Storage {region}", "", "data",
         "Bucket", "", "Standard Storage", (("Redundancy", "Regional"), ("StorageClass", "Standard"))),
    _Sku("gcp", "object", "Cloud Storage", "Nearline", 0.01, "GB-Months", 1, "Nearline Storage {region}", "",
         "archive", "Bucket", "", "Nearline Storage", (("Redundancy", "Regional"), ("StorageClass", "Nearline"))),
    _Sku("gcp", "egress", "Networking", "Internet egress", 0.12, "GB", 3,
         "Network Internet Data Transfer Out from {region} to Americas", "", "egress", "Compute Instance", "",
         "Internet Egress", (("x_TransferDirection", "Outbound"), ("x_TransferType", "Internet"))),
    _Sku("gcp", "egress", "Networking", "Inter-region transfer", 0.02, "GB", 1,
         "Network Inter Region Data Transfer Out from {region}", "", "egress", "Compute Instance", "",
         "Inter Region Egress", (("x_TransferDirection", "Outbound"), ("x_TransferType", "InterRegion"))),
    _Sku("gcp", "k8s", "Kubernetes Engine", "GKE cluster management fee", 0.10, "Hours", 1,
         "Regional Kubernetes Clusters", "", "gke", "Cluster", "", "Cluster Management Fee",
         (("x_SupportTier", "Standard"),)),
    # --- Azure ---------------------------------------------------------------------------------------
    _vm("azure", "gpu", "Virtual Machines", "Standard_ND96asr_v4", 27.197, 2, 96, 900, 8, "NDasrA100v4",
        _AZ_OD, _AZ_SPOT),
    _vm("azure", "gpu", "Virtual Machines", "Standard_ND96isr_H100_v5", 98.32, 1, 96, 1900, 8, "NDH100v5",
        _AZ_OD, _AZ_SPOT),
    _vm("azure", "gpu", "Virtual Machines", "Standard_NC24ads_A100_v4", 3.673, 3, 24, 220, 1, "NCadsA100v4",
        _AZ_OD, _AZ_SPOT),
    _vm("azure", "gpu", "Virtual Machines", "Standard_NC4as_T4_v3", 0.526, 3, 4, 28, 1, "NCasT4v3",
        _AZ_OD, _AZ_SPOT),
    _vm("azure", "gpu", "Virtual Machines", "Standard_NV36ads_A10_v5", 3.2, 1, 36, 440, 1, "NVadsA10v5",
        _AZ_OD, _AZ_SPOT),
    _vm("azure", "cpu", "Virtual Machines", "Standard_D8s_v5", 0.384, 4, 8, 32, 0, "Dsv5", _AZ_OD, _AZ_SPOT),
    _vm("azure", "cpu", "Virtual Machines", "Standard_E16s_v5", 1.008, 2, 16, 128, 0, "Esv5", _AZ_OD, _AZ_SPOT),
    _vm("azure", "cpu", "Virtual Machines", "Standard_F16s_v2", 0.677, 2, 16, 32, 0, "Fsv2", _AZ_OD, _AZ_SPOT),
    _vm("azure", "cpu", "Virtual Machines", "Standard_B4ms", 0.166, 2, 4, 16, 0, "BS", _AZ_OD, _AZ_SPOT),
    _vm("azure", "ml", "Azure Machine Learning", "Standard_NC24ads_A100_v4", 3.673, 2, 24, 220, 1, "NCadsA100v4",
        "Azure Machine Learning compute cluster {name} - {region}",
        "Azure Machine Learning low-priority {name} - {region}", "train", "Compute Cluster", "computes",
        "Compute Hours"),
    _vm("azure", "ml", "Azure Machine Learning", "Standard_NC6s_v3", 3.06, 1, 6, 112, 1, "NCv3",
        "Azure Machine Learning compute cluster {name} - {region}",
        "Azure Machine Learning low-priority {name} - {region}", "train", "Compute Cluster", "computes",
        "Compute Hours"),
    _vm("azure", "ml", "Azure Machine Learning", "Standard_DS3_v2", 0.293, 3, 4, 14, 0, "DSv2",
        "Azure Machine Learning compute instance {name} - {region}", "", "notebook", "Compute Instance",
        "computes", "Compute Hours"),
    _Sku("azure", "object", "Storage", "Hot LRS", 0.0184, "GB-Months", 3, "Hot LRS Data Stored - {region}", "",
         "data", "Storage Account", "", "Hot LRS Data Stored", (("Redundancy", "Local"), ("StorageClass", "Hot"))),
    _Sku("azure", "object", "Storage", "Cool LRS", 0.01, "GB-Months", 1, "Cool LRS Data Stored - {region}", "",
         "archive", "Storage Account", "", "Cool LRS Data Stored", (("Redundancy", "Local"), ("StorageClass", "Cool"))),
    _Sku("azure", "egress", "Bandwidth", "Internet egress", 0.087, "GB", 3, "Standard Data Transfer Out - {region}",
         "", "egress", "Virtual machine", "", "Standard Data Transfer Out",
         (("x_TransferDirection", "Outbound"), ("x_TransferType", "Internet"))),
    _Sku("azure", "egress", "Bandwidth", "Inter-region transfer", 0.02, "GB", 1,
         "Inter-Region Data Transfer Out - {region}", "", "egress", "Virtual machine", "",
         "Inter-Region Data Transfer Out", (("x_TransferDirection", "Outbound"), ("x_TransferType", "InterRegion"))),
    _Sku("azure", "k8s", "Azure Kubernetes Service", "Standard tier", 0.10, "Hours", 1, "Standard Uptime SLA Hours",
         "", "aks", "Kubernetes service", "", "Standard Uptime SLA", (("x_SupportTier", "Standard"),)),
)
_NSKU = len(_SKUS)
_SKU_BY_NAME = {(s.provider, s.kind, s.name): i for i, s in enumerate(_SKUS)}

# Per-kind behaviour: share of resources that run on spot, that run steadily, and default kind weights.
_SPOT_P = {"gpu": 0.30, "cpu": 0.25, "tpu": 0.25, "ml": 0.15}
_SPOT_DISCOUNT = {"gpu": (0.55, 0.75), "cpu": (0.60, 0.80), "tpu": (0.60, 0.70), "ml": (0.60, 0.70)}
_STEADY_P = {"gpu": 0.45, "cpu": 0.70, "tpu": 0.40, "ml": 0.25, "k8s": 1.0}
_KIND_W = {"gpu": 0.20, "cpu": 0.22, "tpu": 0.06, "ml": 0.14, "object": 0.12, "block": 0.08, "egress": 0.12,
           "k8s": 0.03}


def _sku_region_prices() -> tuple[np.ndarray, np.ndarray]:
    """List and contracted (negotiated) unit prices per (SKU, region), in micro-dollars."""
    lst = np.zeros((_NSKU, _NREG), dtype=np.int64)
    con = np.zeros((_NSKU, _NREG), dtype=np.int64)
    for i, s in enumerate(_SKUS):
        p = _PROVIDERS[_PIDX[s.provider]]
        for j, (_, _, mult) in enumerate(p.regions):
            lst[i, j] = round(s.price * mult * _MICRO)
            con[i, j] = round(lst[i, j] * (1 - p.negotiated))
    return lst, con


_LIST_MICRO, _CONTRACTED_MICRO = _sku_region_prices()
_SKU_PROV = np.array([_PIDX[s.provider] for s in _SKUS])
_SKU_KIND = np.array([KINDS.index(s.kind) for s in _SKUS])
_SKU_SPOT = np.array([bool(s.spot_desc) for s in _SKUS])
_UNITS = ("Hours", "GB-Months", "GB", "USD")
_SKU_UNIT = np.array([_UNITS.index(s.unit) for s in _SKUS])
