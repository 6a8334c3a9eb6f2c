"""Synthetic FOCUS 1.2 billing data for a multi-cloud ML organisation.

Used by ``make demo`` (90 days, 6 teams, three clouds) and by the benchmarks (tens of millions of rows,
streamed in bounded memory). Every value is a pure function of the seed and of the row's identity
(period, slot), computed with a counter-based hash over numpy arrays, so output is identical for the
same arguments and never depends on a Python loop per row.

The model:

* An :class:`Org` (built by :func:`make_org`) holds the teams and their projects, one billing account
  per cloud (AWS payer, GCP billing account, Azure billing profile), the sub-accounts (AWS linked
  accounts per team and environment, one GCP project per team project, Azure subscriptions per team
  and environment, plus one shared account per cloud) and the commitments (savings plans,
  reservations, committed use discounts).
* Each charge period (day or hour) holds a number of *usage slots*; slot ``r`` is resource ``r``
  (GPU/TPU/CPU instances, managed ML jobs, object and block storage, egress, Kubernetes control
  planes), whose team, account, SKU, region, market (spot / on-demand / covered by a commitment) and
  tags are fixed functions of ``r``. Slots fill from 0 upwards, so low-numbered resources run every
  period and the tail comes and goes with the weekly and daily load. A few slots are credits or
  adjustments against the resource in the slot before.
* After the usage of a period, its *structural* rows follow: commitment purchases (one-time for
  all-upfront, recurring per period otherwise), the unused part of each commitment (so purchase fees
  equal used plus unused amortised cost in every period), and at the end of each month the tax rows
  per sub-account, computed from that month's charges.

Costs are exact decimals: unit prices and quantities have six decimals, so
``ListCost == ListUnitPrice * PricingQuantity`` and ``ContractedCost == ContractedUnitPrice *
PricingQuantity`` hold exactly in ``Decimal(38, 15)``.

Choices made so the output passes focus-validator 2.2.1 (FOCUS 1.2 rules): ``InvoiceIssuerName``
equals ``ProviderName`` (a different issuer is read as a marketplace charge whose BilledCost must be
0), every row carries an ``InvoiceId`` (the open month's is provisional), units are in FOCUS unit
format (``GB-Months``). Not modelled: corrections of earlier billing periods (``ChargeClass``),
capacity reservations, marketplace charges, currencies other than USD.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from finops import focus

__all__ = ["Team", "Account", "Commitment", "Org", "make_org", "generate", "write_exports", "PROVIDER_KEYS"]

Grain = Literal["daily", "hourly"]
ExportFormat = Literal["parquet", "csv", "csv.gz"]

PROVIDER_KEYS = ("aws", "gcp", "azure")
KINDS = ("gpu", "cpu", "tpu", "ml", "object", "block", "egress", "k8s")
HOURLY_KINDS = ("gpu", "cpu", "tpu", "ml", "k8s")
ENVS = ("prod", "staging", "dev")
CURRENCY = "USD"
_US_PER_HOUR = 3_600_000_000
_MICRO = 1_000_000
_EXACT = Context(prec=60)  # Decimal arithmetic on sums of Decimal(38, 15) values, without rounding
_CHUNK_CELLS = 1 << 17  # usage rows generated at a time (fixed, so output never depends on batch_rows)
_SCHEMA = {c.name: c.dtype for c in focus.COLUMNS}

# ---------------------------------------------------------------------------------------------------
# Static catalogue: providers, regions, services, SKUs (roughly public list prices per hour / GB).
# ---------------------------------------------------------------------------------------------------


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
    details: list[tuple[str, Any]] = [("CoreCount", cores), ("InstanceSeries", series or name.split(".")[0]),
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

# ---------------------------------------------------------------------------------------------------
# The organisation.
# ---------------------------------------------------------------------------------------------------

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
_UPPER_WORDS = {"ml", "nlp", "llm", "rl", "etl", "ab", "gpu", "genai", "bio"}


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


_MASK = (1 << 64) - 1


def _mix_int(x: int) -> int:
    """splitmix64 finaliser on a Python int."""
    x &= _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class _Rand:
    """Scalar deterministic randomness for building the org (not per row)."""

    def __init__(self, seed: int, salt: str) -> None:
        self.state = _mix_int(int.from_bytes(hashlib.blake2b(f"{seed}:{salt}".encode(), digest_size=8).digest(),
                                             "little"))

    def bits(self) -> int:
        self.state = _mix_int(self.state + 0x9E3779B97F4A7C15)
        return self.state

    def random(self) -> float:
        return (self.bits() >> 11) / float(1 << 53)

    def digits(self, n: int) -> str:
        return "".join(str(self.bits() % 10) for _ in range(n))

    def hex(self, n: int, upper: bool = False) -> str:
        s = "".join(f"{self.bits():016x}" for _ in range((n + 15) // 16))[:n]
        return s.upper() if upper else s

    def guid(self) -> str:
        h = self.hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"


def _team_names(n: int) -> list[str]:
    return [_TEAM_NAMES[i] if i < len(_TEAM_NAMES) else f"team-{i + 1:02d}" for i in range(n)]


def _make_team(name: str, rnd: _Rand) -> Team:
    pool = _TEAM_PROJECTS.get(name, _GENERIC_PROJECTS)
    n_proj = 2 + int(rnd.random() * 3)  # 2..4
    weight, pref, mult = _TEAM_PROFILE.get(
        name, (0.5 + rnd.random() * 0.7, (0.6 + rnd.random(), 0.6 + rnd.random(), 0.6 + rnd.random()), {}))
    home = tuple(min(int(rnd.random() ** 2 * _NREG), _NREG - 1) for _ in _PROVIDERS)
    return Team(name, tuple(pool[:n_proj]), weight, pref, tuple(mult.get(k, 1.0) for k in KINDS), home)  # type: ignore[arg-type]


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

    specs = [
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
        out.append(Commitment(key, prov, cid, name, ctype, cat, pay, term, disc, kinds, sku, region, cov,  # type: ignore[arg-type]
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


# ---------------------------------------------------------------------------------------------------
# Small helpers: codes, names, tag sets.
# ---------------------------------------------------------------------------------------------------


def _code(text: str, provider: str) -> str:
    """A SKU-like identifier in the provider's style, stable for ``text`` (independent of the seed)."""
    d = hashlib.blake2b(text.encode(), digest_size=16).digest()
    if provider == "aws":
        alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
        return "".join(alphabet[b % len(alphabet)] for b in d)
    if provider == "gcp":
        h = d.hex().upper()
        return f"{h[:4]}-{h[4:8]}-{h[8:12]}"
    h = d.hex().upper()
    return f"DZH{h[:9]}/{h[9:13]}"


def _title(name: str) -> str:
    return "-".join(w.upper() if w in _UPPER_WORDS else w.capitalize() for w in name.split("-"))


def _typo(name: str) -> str:
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    i = letters[len(letters) // 2]
    return name[:i] + name[i + 1:]


def _tags(provider: str, team: str, project: str, env: str, style: int, workload: int) -> str:
    """One tag set. Styles: 0 clean, 1 clean + launcher tags, 2 key/value case drift, 3 underscores,
    4 unknown team, 5 no team key. GCP labels are lowercase only, so case drift becomes underscores."""
    if provider == "gcp" and style == 2:
        style = 3
    tags: dict[str, object]
    if style in (0, 1):
        tags = {"team": team, "project": project, "env": env}
        if style == 1:
            tags["finops-team"] = team
            tags["finops-workload"] = f"{project}-{workload:03d}"
    elif style == 2:
        tags = {"Team": _title(team), "Project": project, "Environment": env.capitalize()}
    elif style == 3:
        tags = {"team": team.replace("-", "_"), "project": project.replace("-", "_"), "env": env}
    elif style == 4:
        unknown = (_typo(team), "shared", "tbd", "growth")[workload % 4]
        tags = {"team": unknown, "project": project, "env": env}
    else:
        tags = {"project": project, "env": env}
    return json.dumps(tags, separators=(",", ":"), sort_keys=True)


# ---------------------------------------------------------------------------------------------------
# Vectorised counter-based randomness.
# ---------------------------------------------------------------------------------------------------

_G = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (a bijection on uint64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(seed: int, stream: int, a: np.ndarray, b: np.ndarray | int | None = None) -> np.ndarray:
    base = np.uint64(_mix_int(seed * 0x9E3779B97F4A7C15 + stream * 0xD1B54A32D192ED03 + 1))
    x = _mix(np.asarray(a).astype(np.uint64) * _G + base)
    if b is not None:
        x = _mix(x ^ (np.asarray(b).astype(np.uint64) * _K2))
    return x


def _unif(seed: int, stream: int, a: np.ndarray, b: np.ndarray | int | None = None) -> np.ndarray:
    return (_hash(seed, stream, a, b) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _pick(u: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Categorical draw: ``cum`` holds cumulative probabilities, one row per draw (or one shared row)."""
    if cum.ndim == 1:
        return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
    return (u[:, None] >= cum[:, :-1]).sum(axis=1)


def _cum(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    s = w.sum(axis=-1, keepdims=True)
    c = np.cumsum(np.where(s > 0, w / np.where(s > 0, s, 1), 0), axis=-1)
    c[..., -1] = 1.0
    return c


_HEX2 = np.array([[ord(c) for c in f"{i:02x}"] for i in range(256)], dtype=np.uint8)
_MASK40 = np.uint64((1 << 40) - 1)


def _hex_series(values: np.ndarray, nbytes: int) -> pl.Series:
    """Lower-case hex of the last ``nbytes`` bytes of each uint64, built without a Python loop."""
    n = len(values)
    b = values.astype(">u8").view(np.uint8).reshape(n, 8)[:, 8 - nbytes:]
    buf = np.ascontiguousarray(_HEX2[b]).reshape(-1)
    offsets = np.arange(n + 1, dtype=np.int32) * (2 * nbytes)
    return pl.from_arrow(pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf)))  # type: ignore[return-value]


def _bij40(seed: int, r: np.ndarray) -> np.ndarray:
    """A seed-keyed bijection on 40-bit integers: unique, random-looking short ids for resources."""
    x = (r.astype(np.uint64) + np.uint64(_mix_int(seed + 77) & ((1 << 40) - 1))) & _MASK40
    for mul, shift in ((0x9E3779B97, 20), (0xC2B2AE3D5, 17), (0x165667B19, 21)):
        x = (x * np.uint64(mul)) & _MASK40
        x = x ^ (x >> np.uint64(shift))
    return x


# ---------------------------------------------------------------------------------------------------
# Columns from numpy.
# ---------------------------------------------------------------------------------------------------


def _dec(values: np.ndarray, valid: np.ndarray | None = None, scale: int = 6) -> pl.Series:
    """Exact ``Decimal(38, 15)`` from integers counted in units of ``10**-scale``."""
    v = np.ascontiguousarray(values, dtype=np.int64)
    words = np.empty((len(v), 2), dtype=np.int64)
    words[:, 0] = v
    words[:, 1] = v >> 63
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))
    arr = pa.Array.from_buffers(pa.decimal128(38, scale), len(v), [bitmap, pa.py_buffer(words)])
    return pl.Series(arr).cast(focus.DECIMAL)  # type: ignore[arg-type]


def _dt(us: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(us, dtype=np.int64)).cast(focus.DATETIME)


def _table(values: Sequence[str | None]) -> pl.Series:
    """A lookup table with a trailing null: index ``len(values)`` reads as null."""
    return pl.Series(list(values) + [None], dtype=pl.String)


def _const(value: str | None, n: int) -> pl.Series:
    return pl.repeat(value, n, dtype=pl.String, eager=True)


# ---------------------------------------------------------------------------------------------------
# The plan: periods, row counts, commitments and lookup tables for one call of generate().
# ---------------------------------------------------------------------------------------------------

_S = {name: i + 1 for i, name in enumerate(
    ("team", "prov", "kind", "sku", "project", "env", "region_home", "region", "zone", "spot", "cover", "tag",
     "tagstyle", "workload", "steady", "size", "growth", "egress", "shared", "credit", "adjust", "use", "use2",
     "spotprice", "noise", "creditpct", "credittype", "adjpct", "adjtype", "id"))}
_CREDIT_P = 0.015
_ADJUST_P = 0.002
_N_STYLES = 6
_STYLE_CUM = _cum(np.array([0.70, 0.12, 0.05, 0.04, 0.04, 0.05]))
_UNTAGGED_P = 0.08


@dataclass
class _Active:
    """A commitment placed in the window, with its capacity per period."""

    c: Commitment
    index: int
    start_p: int  # first covered period (may be negative)
    end_p: int  # first period no longer covered
    purchase_p: int | None  # period of the one-time purchase row, if inside the window
    start_us: int
    hourly: Decimal  # Spend: commitment per hour; Usage: commitment price per instance-hour
    instances: int  # Usage: instances reserved
    sku: int | None  # Usage: the reserved SKU
    region: int | None
    list_micro: int = 0
    contracted_micro: int = 0


@dataclass
class _Plan:
    org: Org
    seed: int
    provs: np.ndarray  # selected provider indices
    grain_hours: int
    bounds_us: np.ndarray  # period boundaries, n_periods + 1
    day_of: np.ndarray  # day index of each period
    month_of: np.ndarray  # month index of each period
    months: list[tuple[dt.datetime, dt.datetime]]
    month_hours: np.ndarray
    window_end_us: int
    invoice_ids: dict[tuple[int, int], str | None]
    usage: np.ndarray  # usage rows per period
    cum_end: np.ndarray
    structural: list[list[tuple[Any, ...]]]
    actives: list[_Active]
    anchors: dict[str, np.ndarray]
    tables: dict[str, Any] = field(default_factory=dict)
    cover_limit: int = 0  # resources below this index run in every period and may be covered

    @property
    def n_periods(self) -> int:
        return len(self.bounds_us) - 1


def _window(days: int, end: dt.date | None, grain: Grain) -> tuple[np.ndarray, int]:
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if grain not in ("daily", "hourly"):
        raise ValueError(f"grain must be 'daily' or 'hourly', got {grain!r}")
    end = end or dt.datetime.now(dt.timezone.utc).date()
    end_us = int(dt.datetime(end.year, end.month, end.day, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
    step = 24 if grain == "daily" else 1
    n = days * 24 // step
    bounds = end_us - days * 24 * _US_PER_HOUR + np.arange(n + 1, dtype=np.int64) * step * _US_PER_HOUR
    return bounds, step


def _months(bounds: np.ndarray) -> tuple[np.ndarray, list[tuple[dt.datetime, dt.datetime]]]:
    starts = bounds[:-1].astype("datetime64[us]")
    month_num = starts.astype("datetime64[M]").astype(np.int64)
    uniq = np.unique(month_num)
    months = []
    for m in uniq:
        y, mo = divmod(int(m), 12)
        first = dt.datetime(1970 + y, mo + 1, 1, tzinfo=dt.timezone.utc)
        nxt = dt.datetime(first.year + (first.month == 12), first.month % 12 + 1, 1, tzinfo=dt.timezone.utc)
        months.append((first, nxt))
    return np.searchsorted(uniq, month_num), months


def _weights(bounds: np.ndarray, grain_hours: int) -> np.ndarray:
    starts = bounds[:-1]
    days = starts // (24 * _US_PER_HOUR)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    w = np.where(weekday == 5, 0.82, np.where(weekday == 6, 0.80, 1.0))
    n = len(starts)
    w = w * (1.0 + 0.25 * np.arange(n) / max(n - 1, 1))
    if grain_hours == 1:
        hour = (starts // _US_PER_HOUR) % 24
        w = w * (0.9 + 0.2 * np.sin((hour - 9) / 24 * 2 * np.pi) ** 2)
    return w / w.mean()


def _apportion(total: int, w: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer parts proportional to ``w`` (largest remainder, ties by index)."""
    raw = total * w / w.sum()
    base = np.floor(raw).astype(np.int64)
    rest = total - int(base.sum())
    if rest:
        order = np.lexsort((np.arange(len(w)), -(raw - base)))
        base[order[:rest]] += 1
    return base


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


def _kind_tables(org: Org, provs: np.ndarray) -> dict[str, np.ndarray]:
    """Cumulative weights: team, provider per team, kind per (team, provider), SKU per (provider, kind)."""
    T = len(org.teams)
    team_cum = _cum(np.array([t.weight for t in org.teams]))
    pref = np.array([[t.provider_pref[p] * _PROVIDERS[p].share for p in provs] for t in org.teams])
    prov_cum = _cum(pref)
    kind_w = np.zeros((T, len(_PROVIDERS), len(KINDS)))
    for ti, t in enumerate(org.teams):
        for pi in range(len(_PROVIDERS)):
            for ki, k in enumerate(KINDS):
                if ((_SKU_PROV == pi) & (_SKU_KIND == ki)).any():
                    kind_w[ti, pi, ki] = _KIND_W[k] * t.kind_mult[ki]
    kind_cum = _cum(kind_w)
    width = max(int(((_SKU_PROV == p) & (_SKU_KIND == k)).sum()) for p in range(3) for k in range(len(KINDS)))
    sku_idx = np.zeros((len(_PROVIDERS), len(KINDS), width), dtype=np.int64)
    sku_w = np.zeros((len(_PROVIDERS), len(KINDS), width))
    for p in range(len(_PROVIDERS)):
        for k in range(len(KINDS)):
            ids = np.flatnonzero((_SKU_PROV == p) & (_SKU_KIND == k))
            sku_idx[p, k, :len(ids)] = ids
            sku_w[p, k, :len(ids)] = [_SKUS[i].weight for i in ids]
    return {"team_cum": team_cum, "prov_cum": prov_cum, "kind_cum": kind_cum, "sku_idx": sku_idx,
            "sku_cum": _cum(sku_w), "n_projects": np.array([len(t.projects) for t in org.teams]),
            "home": np.array([t.home_region for t in org.teams])}


def _account_tables(org: Org) -> dict[str, np.ndarray]:
    """Account index lookups: AWS/Azure by (team, prod|nonprod), GCP by (team, project), shared per cloud."""
    T = len(org.teams)
    maxp = max(len(t.projects) for t in org.teams)
    env_acct = np.full((len(_PROVIDERS), T, 2), -1, dtype=np.int64)
    proj_acct = np.full((T, maxp), -1, dtype=np.int64)
    shared = np.full(len(_PROVIDERS), -1, dtype=np.int64)
    team_i = {t.name: i for i, t in enumerate(org.teams)}
    for ai, a in enumerate(org.accounts):
        p = _PIDX[a.provider]
        if a.team is None:
            shared[p] = ai
        elif a.provider == "gcp":
            ti = team_i[a.team]
            proj_acct[ti, org.teams[ti].projects.index(a.project)] = ai  # type: ignore[arg-type]
        else:
            env_acct[p, team_i[a.team], 0 if a.env == "prod" else 1] = ai
    return {"env_acct": env_acct, "proj_acct": proj_acct, "shared": shared}


def _anchors(org: Org, provs: np.ndarray, actives: list[_Active]) -> dict[str, np.ndarray]:
    """Fixed resources in the first slots, so small runs still show every cloud, kind, market and
    commitment: one on-demand resource per (cloud, kind), one spot GPU and CPU per cloud, two covered
    resources per commitment."""
    rows: list[tuple[int, int, int, int, bool, int]] = []  # prov, kind, sku, region(-1 home), spot, cover
    for p in provs:
        for k in range(len(KINDS)):
            ids = np.flatnonzero((_SKU_PROV == p) & (_SKU_KIND == k))
            if len(ids):
                rows.append((int(p), k, int(ids[0]), -1, False, -1))
        for k in (KINDS.index("gpu"), KINDS.index("cpu")):
            ids = np.flatnonzero((_SKU_PROV == p) & (_SKU_KIND == k) & _SKU_SPOT)
            rows.append((int(p), k, int(ids[-1]), -1, True, -1))
    for a in actives:
        p = _PIDX[a.c.provider]
        k = KINDS.index(a.c.kinds[0])
        sku = a.sku if a.sku is not None else int(np.flatnonzero((_SKU_PROV == p) & (_SKU_KIND == k))[0])
        for _ in range(2):
            rows.append((p, k, sku, -1 if a.region is None else a.region, False, a.index))
    arr = np.array(rows, dtype=np.int64).reshape(-1, 6)
    n = len(arr)
    return {"n": np.array(n), "team": np.arange(n) % len(org.teams), "prov": arr[:, 0], "kind": arr[:, 1],
            "sku": arr[:, 2], "region": arr[:, 3], "spot": arr[:, 4].astype(bool), "cover": arr[:, 5]}


def _active_commitments(org: Org, provs: np.ndarray, bounds: np.ndarray, grain_hours: int) -> list[_Active]:
    out: list[_Active] = []
    start_us = int(bounds[0])
    n = len(bounds) - 1
    step_us = grain_hours * _US_PER_HOUR
    days = (int(bounds[-1]) - start_us) // (24 * _US_PER_HOUR)
    for c in org.commitments:
        p = _PIDX[c.provider]
        if p not in provs:
            continue
        if c.starts_in_window:
            c_start = start_us + int(days * 0.3) * 24 * _US_PER_HOUR
        else:
            c_start = start_us - c.days_before * 24 * _US_PER_HOUR
        c_end = c_start + c.term_days * 24 * _US_PER_HOUR
        start_p = (c_start - start_us) // step_us
        end_p = (c_end - start_us) // step_us
        if end_p <= 0 or start_p >= n:
            continue
        sku = _SKU_BY_NAME[(c.provider, c.kinds[0], c.sku)] if c.sku else None
        region = [r[0] for r in _PROVIDERS[p].regions].index(c.region) if c.region else None
        out.append(_Active(c, len(out), int(start_p), int(end_p), int(start_p) if 0 <= start_p < n else None,
                           c_start, Decimal(0), 0, sku, region))
    return out


def _commit_micro(actives: list[_Active], cover: np.ndarray, sku: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Amortised commitment price per unit (micro-dollars) for resources covered by a commitment."""
    disc = np.array([a.c.discount for a in actives] + [0.0])
    lst = _LIST_MICRO[sku, region]
    return np.rint(lst * (1.0 - disc[np.where(cover >= 0, cover, len(actives))])).astype(np.int64)


def _size_commitments(plan: _Plan, pool: int) -> None:
    """Set each commitment's size from the resources it covers in the pool, plus its spare share."""
    sums = np.zeros(len(plan.actives), dtype=np.float64)
    counts = np.zeros(len(plan.actives), dtype=np.int64)
    block = 1 << 20
    for lo in range(0, pool, block):
        a = _attrs(plan, np.arange(lo, min(pool, lo + block)))
        m = a["cover"] >= 0
        cm = _commit_micro(plan.actives, a["cover"][m], a["sku"][m], a["region"][m])
        sums += np.bincount(a["cover"][m], weights=cm, minlength=len(plan.actives))
        counts += np.bincount(a["cover"][m], minlength=len(plan.actives))
    with localcontext(_EXACT):
        _set_sizes(plan.actives, sums, counts)


def _set_sizes(actives: list[_Active], sums: np.ndarray, counts: np.ndarray) -> None:
    for a in actives:
        if a.c.category == "Spend":
            hourly = Decimal(float(sums[a.index]) * (1 + a.c.spare) / _MICRO)
            a.hourly = max(hourly.quantize(Decimal("0.01"), rounding=ROUND_CEILING), Decimal("0.01"))
        else:
            assert a.sku is not None and a.region is not None
            a.instances = max(1, math.ceil(int(counts[a.index]) * (1 + a.c.spare)))
            a.list_micro = int(_LIST_MICRO[a.sku, a.region])
            a.contracted_micro = int(_CONTRACTED_MICRO[a.sku, a.region])
            a.hourly = Decimal(int(round(a.list_micro * (1.0 - a.c.discount)))) / _MICRO


def _structural_specs(plan: _Plan) -> list[list[tuple[Any, ...]]]:
    """Per period, the non-usage rows in priority order: one-time purchases, taxes, recurring fees,
    unused commitment."""
    n = plan.n_periods
    specs: list[list[tuple[Any, ...]]] = [[] for _ in range(n)]
    for a in plan.actives:
        if a.c.payment == "upfront" and a.purchase_p is not None:
            specs[a.purchase_p].append(("purchase", a.index))
    last_of_month = np.flatnonzero(np.r_[plan.month_of[1:] != plan.month_of[:-1], True])
    tax_accounts = [i for i, acc in enumerate(plan.org.accounts) if _PIDX[acc.provider] in plan.provs]
    for p in last_of_month:
        specs[p].extend(("tax", ai, int(plan.month_of[p])) for ai in tax_accounts)
    for a in plan.actives:
        lo, hi = max(a.start_p, 0), min(a.end_p, n)
        if a.c.payment == "recurring":
            for p in range(lo, hi):
                specs[p].append(("fee", a.index))
    for a in plan.actives:
        for p in range(max(a.start_p, 0), min(a.end_p, n)):
            specs[p].append(("unused", a.index))
    return specs


def _plan(org: Org, rows: int | None, days: int, end: dt.date | None, grain: Grain,
          providers: Sequence[str], seed: int) -> _Plan:
    provs = np.array(sorted({_PIDX[p] for p in _check_providers(providers)}), dtype=np.int64)
    bounds, grain_hours = _window(days, end, grain)
    month_of, months = _months(bounds)
    actives = _active_commitments(org, provs, bounds, grain_hours)
    window_end = int(bounds[-1])
    # One invoice per provider and month. The month still open gets its provisional invoice id
    # (FOCUS allows ids generated before the invoice is issued); a mix of null and set ids in one
    # file fails focus-validator, whose InvoiceId null rules have no condition.
    invoice_ids: dict[tuple[int, int], str | None] = {}
    for mi, (m_start, _) in enumerate(months):
        for p in provs:
            rnd = _Rand(seed, f"invoice:{p}:{m_start:%Y-%m}")
            invoice_ids[(int(p), mi)] = f"G0{rnd.digits(8)}" if p == _PIDX["azure"] else rnd.digits(10)
    plan = _Plan(org, seed, provs, grain_hours, bounds, (bounds[:-1] - bounds[0]) // (24 * _US_PER_HOUR),
                 month_of, months, np.array([(e - s).total_seconds() / 3600 for s, e in months]), window_end,
                 invoice_ids, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [], actives, {})
    plan.tables.update(_kind_tables(org, provs))
    plan.tables.update(_account_tables(org))
    plan.anchors = _anchors(org, provs, actives)
    specs = _structural_specs(plan)
    n_struct = np.array([len(s) for s in specs], dtype=np.int64)
    w = _weights(bounds, grain_hours)
    if rows is None:
        share = sum(_PROVIDERS[p].share for p in provs)
        base = max(len(org.teams) * 60 * share, int(plan.anchors["n"]) + 10)
        usage = np.maximum(np.rint(base * w).astype(np.int64), 1)
        keep = n_struct
    else:
        if rows < 0:
            raise ValueError(f"rows must be non-negative, got {rows}")
        total = _apportion(rows, w)
        keep = np.where(total >= 2 * n_struct, n_struct, total // 2)
        usage = total - keep
    plan.structural = [s[:k] for s, k in zip(specs, keep, strict=True)]
    plan.usage = usage
    plan.cum_end = np.cumsum(usage)
    plan.cover_limit = int(usage.min(initial=0))
    _build_tables(plan)
    _size_commitments(plan, int(usage.max(initial=0)))
    return plan


def _check_providers(providers: Sequence[str]) -> Sequence[str]:
    if isinstance(providers, str):
        providers = (providers,)
    if not providers:
        raise ValueError("providers must name at least one of aws, gcp, azure")
    bad = [p for p in providers if p not in _PIDX]
    if bad:
        raise ValueError(f"unknown provider(s) {bad}; expected some of {list(PROVIDER_KEYS)}")
    return providers


# ---------------------------------------------------------------------------------------------------
# Lookup tables (strings) for one plan.
# ---------------------------------------------------------------------------------------------------


def _fmt_price(micro: int) -> str:
    s = f"{micro / _MICRO:.6f}".rstrip("0")
    return s + "00" if s.endswith(".") else s


def _build_tables(plan: _Plan) -> None:
    org, t = plan.org, plan.tables
    accts = org.accounts
    # Per account.
    t["acct_prov"] = np.array([_PIDX[a.provider] for a in accts])
    t["billing_id"] = _table([a.billing_account_id for a in accts])
    t["billing_name"] = _table([a.billing_account_name for a in accts])
    t["billing_type"] = _table([_PROVIDERS[_PIDX[a.provider]].billing_account_type for a in accts])
    t["sub_id"] = _table([a.sub_account_id for a in accts])
    t["sub_name"] = _table([a.sub_account_name for a in accts])
    t["sub_type"] = _table([_PROVIDERS[_PIDX[a.provider]].sub_account_type for a in accts])
    # Per provider.
    t["provider_name"] = _table([p.name for p in _PROVIDERS])
    t["publisher"] = _table([p.publisher for p in _PROVIDERS])
    t["issuer"] = _table([p.issuer for p in _PROVIDERS])
    # Per (provider, region) and (provider, region, zone).
    t["region_id"] = _table([r[0] for p in _PROVIDERS for r in p.regions])
    t["region_name"] = _table([r[1] for p in _PROVIDERS for r in p.regions])
    zones = []
    for p in _PROVIDERS:
        for r in p.regions:
            for z in "abc":
                zones.append(f"{r[0]}{z}" if p.key == "aws" else f"{r[0]}-{z}")
    t["zone"] = _table(zones)
    # Per month and (provider, month).
    t["bp_start"] = _dt(np.array([int(s.timestamp()) * 1_000_000 for s, _ in plan.months]))
    t["bp_end"] = _dt(np.array([int(e.timestamp()) * 1_000_000 for _, e in plan.months]))
    t["invoice"] = _table([plan.invoice_ids.get((p, m)) for p in range(len(_PROVIDERS))
                           for m in range(len(plan.months))])
    # Per SKU / (SKU, region) / (SKU, region, spot).
    t["service"] = _table([s.service for s in _SKUS])
    t["category"] = _table([_SERVICES[s.service][0] for s in _SKUS])
    t["subcategory"] = _table([_SERVICES[s.service][1] for s in _SKUS])
    t["sku_meter"] = _table([s.meter for s in _SKUS])
    t["sku_details"] = _table([json.dumps(dict(s.details), separators=(",", ":"), sort_keys=True) for s in _SKUS])
    t["rtype"] = _table([s.rtype for s in _SKUS])
    t["unit"] = _table(list(_UNITS))
    sku_ids, price_ids, descs = [], [], []
    for i, s in enumerate(_SKUS):
        p = _PROVIDERS[_PIDX[s.provider]]
        for j, (rid, rname, _) in enumerate(p.regions):
            sid = _code(f"{s.provider}:{s.service}:{s.name}:{rid}", s.provider)
            sku_ids.append(sid)
            price = _fmt_price(int(_LIST_MICRO[i, j]))
            for spot in (False, True):
                if s.provider == "aws":
                    price_ids.append(f"{sid}.{'SPOT000001' if spot else 'JRTCKXETXF'}.6YS6EN2CT7")
                elif s.provider == "gcp":
                    price_ids.append(f"{sid}/{'spot' if spot else 'on-demand'}")
                else:
                    price_ids.append(_Rand(0, f"meter:{sid}:{spot}").guid())
                tmpl = s.spot_desc if spot and s.spot_desc else s.desc
                descs.append(tmpl.format(price=price, name=s.name, region=rname))
    n_usage_desc = len(descs)
    credit_desc = [("AWS Promotional Credit", "AWS Activate Credits"),
                   ("Sustained use discount", "Google for Startups Cloud Program credit"),
                   ("Azure sponsorship credit", "Microsoft for Startups credit")]
    adjust_desc = [("Refund: service credit for an availability SLA breach", "Billing adjustment: rounding"),
                   ("Refund: Compute Engine SLA financial credit", "Billing adjustment: rounding"),
                   ("Refund: Azure SLA service credit", "Billing adjustment: rounding")]
    for pair in credit_desc:
        descs.extend(pair)
    for pair in adjust_desc:
        descs.extend(pair)
    t["desc"] = _table(descs)
    t["desc_credit"] = n_usage_desc
    t["desc_adjust"] = n_usage_desc + 2 * len(credit_desc)
    t["sku_id"] = _table(sku_ids)
    t["sku_price_id"] = _table(price_ids)
    # Commitments.
    acts = plan.actives
    t["c_id"] = _table([a.c.id for a in acts])
    t["c_name"] = _table([a.c.name for a in acts])
    t["c_type"] = _table([a.c.type for a in acts])
    t["c_category"] = _table([a.c.category for a in acts])
    t["c_unit"] = _table(["USD" if a.c.category == "Spend" else "Hours" for a in acts])
    t["c_spend"] = np.array([a.c.category == "Spend" for a in acts] + [False])
    t["c_start"] = np.array([a.start_p for a in acts] + [0], dtype=np.int64)
    t["c_end"] = np.array([a.end_p for a in acts] + [0], dtype=np.int64)
    # Names and ids.
    teams = org.teams
    maxp = max(len(x.projects) for x in teams)
    tp = [f"{x.name}-{x.projects[j % len(x.projects)]}" for x in teams for j in range(maxp)]
    t["team_project"] = _table(tp)
    t["team_project_alnum"] = _table(["st" + s.replace("-", "")[:12] for s in tp])
    t["word"] = _table([s.word for s in _SKUS])
    rg = [f"rg-{x.name}-{x.projects[j % len(x.projects)]}-{e}" for x in teams for j in range(maxp) for e in ENVS]
    ws = [f"mlw-{x.name}-{x.projects[j % len(x.projects)]}" for x in teams for j in range(maxp)]
    _resource_id_tables(plan, rg, ws)
    # Tags: (provider, team, project, env, style, workload).
    tags = []
    for p in _PROVIDERS:
        for x in teams:
            for j in range(maxp):
                pj = x.projects[j % len(x.projects)]
                for e in ENVS:
                    for style in range(_N_STYLES):
                        for w in range(4):
                            tags.append(_tags(p.key, x.name, pj, e, style, w))
    t["tags"] = _table(tags)
    t["maxp"] = maxp


# ResourceId formats: (literal, variable) pairs, a final literal, and the tail ("hex" or "name").
_VAR_NONE, _VAR_REGION, _VAR_ACCT, _VAR_ZONE, _VAR_RG, _VAR_WS = range(6)
_RID_FORMATS: dict[tuple[str, str, str], tuple[tuple[tuple[str, int], ...], str, str]] = {
    ("aws", "instance", ""): ((("arn:aws:ec2:", _VAR_REGION), (":", _VAR_ACCT)), ":instance/i-0", "hex"),
    ("aws", "block", ""): ((("arn:aws:ec2:", _VAR_REGION), (":", _VAR_ACCT)), ":volume/vol-0", "hex"),
    ("aws", "object", ""): ((), "arn:aws:s3:::", "name"),
    ("aws", "ml", "training-job"): ((("arn:aws:sagemaker:", _VAR_REGION), (":", _VAR_ACCT)), ":training-job/", "name"),
    ("aws", "ml", "endpoint"): ((("arn:aws:sagemaker:", _VAR_REGION), (":", _VAR_ACCT)), ":endpoint/", "name"),
    ("aws", "ml", "notebook-instance"): ((("arn:aws:sagemaker:", _VAR_REGION), (":", _VAR_ACCT)),
                                         ":notebook-instance/", "name"),
    ("aws", "k8s", ""): ((("arn:aws:eks:", _VAR_REGION), (":", _VAR_ACCT)), ":cluster/", "name"),
    ("gcp", "instance", ""): ((("//compute.googleapis.com/projects/", _VAR_ACCT), ("/zones/", _VAR_ZONE)),
                              "/instances/", "name"),
    ("gcp", "tpu", ""): ((("//tpu.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_ZONE)), "/nodes/",
                         "name"),
    ("gcp", "ml", "customJobs"): ((("//aiplatform.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_REGION)),
                                  "/customJobs/", "name"),
    ("gcp", "ml", "endpoints"): ((("//aiplatform.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_REGION)),
                                 "/endpoints/", "name"),
    ("gcp", "ml", "instances"): ((("//notebooks.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_ZONE)),
                                 "/instances/", "name"),
    ("gcp", "object", ""): ((), "//storage.googleapis.com/projects/_/buckets/", "name"),
    ("gcp", "k8s", ""): ((("//container.googleapis.com/projects/", _VAR_ACCT), ("/locations/", _VAR_REGION)),
                         "/clusters/", "name"),
    ("azure", "instance", ""): ((("/subscriptions/", _VAR_ACCT), ("/resourcegroups/", _VAR_RG)),
                                "/providers/microsoft.compute/virtualmachines/", "name"),
    ("azure", "ml", "computes"): ((("/subscriptions/", _VAR_ACCT), ("/resourcegroups/", _VAR_RG),
                                   ("/providers/microsoft.machinelearningservices/workspaces/", _VAR_WS)),
                                  "/computes/", "name"),
    ("azure", "object", ""): ((("/subscriptions/", _VAR_ACCT), ("/resourcegroups/", _VAR_RG)),
                              "/providers/microsoft.storage/storageaccounts/", "name"),
    ("azure", "k8s", ""): ((("/subscriptions/", _VAR_ACCT), ("/resourcegroups/", _VAR_RG)),
                           "/providers/microsoft.containerservice/managedclusters/", "name"),
}
_RID_KEYS = list(_RID_FORMATS)


def _rid_format(s: _Sku) -> int:
    kind = "instance" if s.kind in ("gpu", "cpu", "egress") else s.kind
    if s.provider != "aws" and kind == "block":
        kind = "instance"
    return _RID_KEYS.index((s.provider, kind, s.path if s.kind == "ml" else ""))


_SKU_RID_FMT = np.array([_rid_format(s) for s in _SKUS])


def _resource_id_tables(plan: _Plan, rg: list[str], ws: list[str]) -> None:
    t = plan.tables
    lits: list[list[str]] = [[], [], [], []]
    var_types = np.zeros((len(_RID_KEYS), 3), dtype=np.int64)
    tails = np.zeros(len(_RID_KEYS), dtype=bool)  # True: hex tail
    for fi, key in enumerate(_RID_KEYS):
        pairs, last, tail = _RID_FORMATS[key]
        for j in range(3):
            lit, var = pairs[j] if j < len(pairs) else ("", _VAR_NONE)
            lits[j].append(lit)
            var_types[fi, j] = var
        lits[3].append(last)
        tails[fi] = tail == "hex"
    t["rid_lits"] = [_table(x) for x in lits]
    t["rid_vars"] = var_types
    t["rid_hex"] = tails
    # Variable pieces: one table, with offsets per variable type.
    pieces: list[str] = [""]
    offsets = {_VAR_NONE: 0}
    offsets[_VAR_REGION] = len(pieces)
    pieces += [r[0] for p in _PROVIDERS for r in p.regions]
    offsets[_VAR_ACCT] = len(pieces)
    pieces += [a.sub_account_id.lower() if a.provider == "azure" else a.sub_account_id for a in plan.org.accounts]
    offsets[_VAR_ZONE] = len(pieces)
    pieces += t["zone"].to_list()[:-1]
    offsets[_VAR_RG] = len(pieces)
    pieces += rg
    offsets[_VAR_WS] = len(pieces)
    pieces += ws
    t["rid_pieces"] = _table(pieces)
    t["rid_offsets"] = offsets


# ---------------------------------------------------------------------------------------------------
# Resources: attributes of slot indices [lo, hi).
# ---------------------------------------------------------------------------------------------------


def _attrs(plan: _Plan, r: np.ndarray) -> dict[str, np.ndarray]:
    """Numeric attributes of resources ``r``: pure functions of (seed, resource index)."""
    seed, t = plan.seed, plan.tables
    r = np.asarray(r, dtype=np.int64)

    def u(name: str) -> np.ndarray:
        return _unif(seed, _S[name], r)

    team = _pick(u("team"), t["team_cum"])
    prov = plan.provs[_pick(u("prov"), t["prov_cum"][team])]
    kind = _pick(u("kind"), t["kind_cum"][team, prov])
    sku = t["sku_idx"][prov, kind, _pick(u("sku"), t["sku_cum"][prov, kind])]
    region = np.where(u("region_home") < 0.65, t["home"][team, prov],
                      _pick(u("region"), _cum(np.array([0.4, 0.25, 0.15, 0.12, 0.08]))))
    spot = _SKU_SPOT[sku] & (u("spot") < np.select([kind == KINDS.index(k) for k in _SPOT_P],
                                                   list(_SPOT_P.values()), 0.0))
    # Anchors.
    an = plan.anchors
    na = int(an["n"])
    cover = np.full(len(r), -1, dtype=np.int64)
    m = r < na
    if m.any():
        ai = r[m]
        team[m], prov[m], kind[m], sku[m], spot[m], cover[m] = (an["team"][ai], an["prov"][ai], an["kind"][ai],
                                                               an["sku"][ai], an["spot"][ai], an["cover"][ai])
        region[m] = np.where(an["region"][ai] >= 0, an["region"][ai], t["home"][team[m], prov[m]])
    # Commitment coverage (non-anchors).
    ucov = u("cover")
    baseload = r < plan.cover_limit  # commitments cover resources that run every period
    for a in plan.actives:
        elig = (~m) & baseload & (cover < 0) & (prov == _PIDX[a.c.provider]) & ~spot & (ucov < a.c.coverage)
        elig &= np.isin(kind, [KINDS.index(k) for k in a.c.kinds])
        if a.sku is not None:
            elig &= (sku == a.sku) & (region == a.region)
        cover[elig] = a.index
    project = np.minimum((u("project") * t["n_projects"][team]).astype(np.int64), t["n_projects"][team] - 1)
    env = _pick(u("env"), np.array([0.55, 0.75, 1.0]))
    envgroup = (env > 0).astype(np.int64)
    acct = np.where(prov == _PIDX["gcp"], t["proj_acct"][team, project], t["env_acct"][prov, team, envgroup])
    acct = np.where((kind == KINDS.index("k8s")) & (u("shared") < 0.5), t["shared"][prov], acct)
    tagstyle = _pick(u("tagstyle"), _STYLE_CUM)
    tagstyle = np.where((tagstyle == 1) & ~np.isin(kind, [0, 2, 3]), 0, tagstyle)  # launcher tags: gpu/tpu/ml
    untagged = u("tag") < _UNTAGGED_P
    workload = (u("workload") * 4).astype(np.int64)
    maxp = t["maxp"]
    tag_idx = ((((prov * len(plan.org.teams) + team) * maxp + project) * 3 + env) * _N_STYLES + tagstyle) * 4 + workload
    tag_idx = np.where(untagged, len(t["tags"]) - 1, tag_idx)
    steady = u("steady") < np.select([kind == KINDS.index(k) for k in _STEADY_P], list(_STEADY_P.values()), 1.0)
    steady |= cover >= 0
    size_gb = np.exp(np.log(200.0) + u("size") * np.log(2500.0))  # 200 GB .. 500 TB, log-uniform
    size_gb = np.where(kind == KINDS.index("block"), np.minimum(size_gb / 50, 16384.0), size_gb)
    return {"r": r, "team": team, "prov": prov, "kind": kind, "sku": sku, "region": region, "spot": spot,
            "cover": cover, "project": project, "env": env, "acct": acct, "tag": tag_idx, "steady": steady,
            "size_gb": size_gb, "growth": u("growth") * 0.8,
            "egress_gb": np.exp(np.log(5.0) + u("egress") * np.log(400.0)),  # 5 GB .. 2 TB a day
            "zone": (u("zone") * 3).astype(np.int64)}


def _resource_strings(plan: _Plan, a: dict[str, np.ndarray]) -> tuple[pl.Series, pl.Series]:
    """ResourceId and ResourceName of a block of resources."""
    t = plan.tables
    maxp = t["maxp"]
    tp = a["team"] * maxp + a["project"]
    h16 = _hex_series(_mix(a["r"].astype(np.uint64) + np.uint64(_mix_int(plan.seed + 991))), 8)
    h10 = _hex_series(_bij40(plan.seed, a["r"]), 5)
    azure_sa = (a["prov"] == _PIDX["azure"]) & (a["kind"] == KINDS.index("object"))
    base = pl.DataFrame({
        "tp": t["team_project"].gather(tp), "alnum": t["team_project_alnum"].gather(tp),
        "word": t["word"].gather(a["sku"]), "h10": h10, "h16": h16, "sa": azure_sa})
    names = base.select(
        pl.when(pl.col("sa")).then(pl.concat_str([pl.col("alnum"), pl.col("h10")]))
        .otherwise(pl.concat_str([pl.col("tp"), pl.col("word"), pl.col("h10")], separator="-")).alias("name"),
        pl.col("h16"))
    fmt = _SKU_RID_FMT[a["sku"]]
    var_t = t["rid_vars"][fmt]
    off = t["rid_offsets"]
    region_i = a["prov"] * _NREG + a["region"]
    local = {_VAR_NONE: np.zeros(len(fmt), dtype=np.int64), _VAR_REGION: region_i, _VAR_ACCT: a["acct"],
             _VAR_ZONE: region_i * 3 + a["zone"], _VAR_RG: (a["team"] * maxp + a["project"]) * 3 + a["env"],
             _VAR_WS: a["team"] * maxp + a["project"]}
    cols: list[pl.Series] = []
    for j in range(3):
        cols.append(t["rid_lits"][j].gather(fmt))
        idx = np.zeros(len(fmt), dtype=np.int64)
        for vt, loc in local.items():
            sel = var_t[:, j] == vt
            idx[sel] = off[vt] + loc[sel] if vt != _VAR_NONE else 0
        cols.append(t["rid_pieces"].gather(idx))
    cols.append(t["rid_lits"][3].gather(fmt))
    tail = pl.select(pl.when(pl.Series(t["rid_hex"][fmt])).then(names["h16"]).otherwise(names["name"])).to_series()
    frame = pl.DataFrame({f"c{i}": c for i, c in enumerate(cols + [tail])})
    rid = frame.select(pl.concat_str(pl.all()).alias("rid")).to_series()
    return rid, names["name"]


# ---------------------------------------------------------------------------------------------------
# Usage rows.
# ---------------------------------------------------------------------------------------------------


def _needed(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Sorted resource indices a chunk refers to: its slots and the slot before each (credits and
    adjustments are about the previous slot). Slots of one period are a contiguous run, so this is
    a union of intervals, not a sort."""
    cut = np.flatnonzero(np.diff(p)) + 1
    starts = np.maximum(r[np.r_[0, cut]] - 1, 0)
    ends = r[np.r_[cut - 1, len(r) - 1]] + 1
    order = np.argsort(starts, kind="stable")
    merged: list[list[int]] = []
    for a, b in zip(starts[order].tolist(), ends[order].tolist(), strict=True):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in merged])


def _usage_chunk(plan: _Plan, c0: int, c1: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Usage, credit and adjustment rows for usage cells ``c0 .. c1-1`` (period-major), and a small
    frame of helper columns (account, month, commitment, period) for the running totals."""
    seed, t = plan.seed, plan.tables
    cells = np.arange(c0, c1, dtype=np.int64)
    p = np.searchsorted(plan.cum_end, cells, side="right")
    r = cells - (plan.cum_end[p] - plan.usage[p])
    need = _needed(p, r)
    A = _attrs(plan, need)
    na = int(plan.anchors["n"])
    raw_credit = (_unif(seed, _S["credit"], A["r"]) < _CREDIT_P) & (A["r"] >= na)
    ix = np.searchsorted(need, r)
    ip = np.searchsorted(need, np.maximum(r - 1, 0))
    parent_ok = (r >= na) & (r >= 1) & ~raw_credit[ip] & (A["cover"][ip] < 0)
    credit = raw_credit[ix] & parent_ok
    adjust = ~raw_credit[ix] & parent_ok & (_unif(seed, _S["adjust"], r, p) < _ADJUST_P)
    derived = credit | adjust
    bi = np.where(derived, ip, ix)  # block index of the resource the row is about
    br = A["r"][bi]
    g = {k: v[bi] for k, v in A.items()}
    kind, sku, region, prov = g["kind"], g["sku"], g["region"], g["prov"]
    n = len(cells)

    # Market.
    cover = g["cover"]
    cc = np.where(cover >= 0, cover, len(plan.actives))
    committed = (cover >= 0) & (p >= t["c_start"][cc]) & (p < t["c_end"][cc])
    spot = g["spot"]

    # Quantity (micro-units of the pricing unit).
    hours = plan.grain_hours
    use = _unif(seed, _S["use"], br, p)
    use2 = _unif(seed, _S["use2"], br, p)
    frac = np.where(g["steady"], np.where(use < 0.93, 1.0, 0.4 + 0.6 * use2), 0.05 + 0.95 * use2 ** 0.8)
    day = plan.day_of[p]
    month_h = plan.month_hours[plan.month_of[p]]
    size = g["size_gb"] * np.where(kind == KINDS.index("block"), 1.0, 1.0 + g["growth"] * day / 365.0)
    noise = _unif(seed, _S["noise"], br, p)
    qty = np.select(
        [np.isin(kind, [KINDS.index(k) for k in HOURLY_KINDS]), kind == KINDS.index("egress")],
        [frac * hours, g["egress_gb"] * (0.3 + 1.4 * noise) * hours / 24.0],
        size * hours / month_h)
    q_micro = np.maximum(np.rint(qty * _MICRO).astype(np.int64), 1)

    # Unit prices (micro-dollars).
    lst = _LIST_MICRO[sku, region]
    con = _CONTRACTED_MICRO[sku, region]
    lo_d = np.select([kind == KINDS.index(k) for k in _SPOT_DISCOUNT], [v[0] for v in _SPOT_DISCOUNT.values()], 0.6)
    hi_d = np.select([kind == KINDS.index(k) for k in _SPOT_DISCOUNT], [v[1] for v in _SPOT_DISCOUNT.values()], 0.7)
    spot_u = _unif(seed, _S["spotprice"], sku * _NREG + region, day)
    spot_price = np.rint(lst * (1.0 - (lo_d + (hi_d - lo_d) * spot_u))).astype(np.int64)
    cup = np.where(spot, spot_price, con)
    eup = np.where(committed, _commit_micro(plan.actives, cover, sku, region), cup)

    # Credits and adjustments: amounts from the resource's contracted cost this period.
    base_cost = cup.astype(np.float64) * q_micro / _MICRO  # micro-dollars
    pct = 0.1 + 0.9 * _unif(seed, _S["creditpct"], br, p)
    adj_type = (_unif(seed, _S["adjtype"], br, p) < 0.15).astype(np.int64)  # 1: small positive rounding
    amount = np.where(credit, -np.maximum(np.rint(base_cost * pct), 1),
                      np.where(adj_type == 1, np.maximum(np.rint(base_cost * 0.002), 1),
                               -np.maximum(np.rint(base_cost * pct), 1))).astype(np.int64)
    usage = ~derived
    bill_zero = committed & usage

    pq_ = _dec(q_micro, usage)
    lup = _dec(lst, usage)
    cup_s = _dec(cup, usage)
    amount_s = _dec(amount, derived)
    list_cost = pl.select(pl.coalesce(lup * pq_, amount_s)).to_series()
    contracted = pl.select(pl.coalesce(cup_s * pq_, amount_s)).to_series()
    effective = pl.select(pl.coalesce(_dec(eup, usage) * pq_, amount_s)).to_series()
    billed = pl.select(pl.when(pl.Series(bill_zero)).then(pl.lit(0, focus.DECIMAL)).otherwise(contracted)).to_series()

    # Strings.
    rid_block, name_block = _resource_strings(plan, A)
    null_sku = _NSKU
    sku_u = np.where(usage, sku, null_sku)
    sr = np.where(usage, sku * _NREG + region, len(t["sku_id"]) - 1)
    spot_i = (spot & usage).astype(np.int64)
    desc_idx = np.where(usage, (sku * _NREG + region) * 2 + spot_i,
                        np.where(credit, t["desc_credit"] + prov * 2 + (_unif(seed, _S["credittype"], br) < 0.5),
                                 t["desc_adjust"] + prov * 2 + adj_type))
    region_i = prov * _NREG + region
    zoned = np.isin(kind, [KINDS.index(k) for k in ("gpu", "cpu", "tpu", "block")]) & np.array(
        [q.zoned for q in _PROVIDERS])[prov]
    zone_idx = np.where(zoned, region_i * 3 + g["zone"], len(t["zone"]) - 1)
    nc = len(plan.actives)
    c_idx = np.where(committed & usage, cover, nc)
    cat_idx = np.select([credit, adjust], [1, 2], 0)
    pricing_cat = np.where(derived, 3, np.where(committed, 2, np.where(spot, 1, 0)))
    month = plan.month_of[p]
    unit_i = np.where(usage, _SKU_UNIT[sku], len(_UNITS))
    c_spend = t["c_spend"][c_idx]
    cdq = pl.select(pl.when(pl.Series(c_spend)).then(effective)
                    .when(pl.Series(c_idx < nc)).then(pq_).otherwise(None)).to_series()
    acct = g["acct"]

    cols: dict[str, pl.Series] = {
        "AvailabilityZone": t["zone"].gather(zone_idx),
        "BilledCost": billed,
        "BillingAccountId": t["billing_id"].gather(acct),
        "BillingAccountName": t["billing_name"].gather(acct),
        "BillingAccountType": t["billing_type"].gather(acct),
        "BillingCurrency": _const(CURRENCY, n),
        "BillingPeriodEnd": t["bp_end"].gather(month),
        "BillingPeriodStart": t["bp_start"].gather(month),
        "CapacityReservationId": _const(None, n),
        "CapacityReservationStatus": _const(None, n),
        "ChargeCategory": _table(["Usage", "Credit", "Adjustment"]).gather(cat_idx),
        "ChargeClass": _const(None, n),
        "ChargeDescription": t["desc"].gather(desc_idx),
        "ChargeFrequency": _table(["Usage-Based", "One-Time"]).gather(adjust.astype(np.int64)),
        "ChargePeriodEnd": _dt(plan.bounds_us[p + 1]),
        "ChargePeriodStart": _dt(plan.bounds_us[p]),
        "CommitmentDiscountCategory": t["c_category"].gather(c_idx),
        "CommitmentDiscountId": t["c_id"].gather(c_idx),
        "CommitmentDiscountName": t["c_name"].gather(c_idx),
        "CommitmentDiscountQuantity": cdq,
        "CommitmentDiscountStatus": _table(["Used"]).gather(np.where(c_idx < nc, 0, 1)),
        "CommitmentDiscountType": t["c_type"].gather(c_idx),
        "CommitmentDiscountUnit": t["c_unit"].gather(c_idx),
        "ConsumedQuantity": pq_,
        "ConsumedUnit": t["unit"].gather(unit_i),
        "ContractedCost": contracted,
        "ContractedUnitPrice": cup_s,
        "EffectiveCost": effective,
        "InvoiceId": t["invoice"].gather(prov * len(plan.months) + month),
        "InvoiceIssuerName": t["issuer"].gather(prov),
        "ListCost": list_cost,
        "ListUnitPrice": lup,
        "PricingCategory": _table(["Standard", "Dynamic", "Committed"]).gather(pricing_cat),
        "PricingCurrency": _const(CURRENCY, n),
        "PricingCurrencyContractedUnitPrice": cup_s,
        "PricingCurrencyEffectiveCost": effective,
        "PricingCurrencyListUnitPrice": lup,
        "PricingQuantity": pq_,
        "PricingUnit": t["unit"].gather(unit_i),
        "ProviderName": t["provider_name"].gather(prov),
        "PublisherName": t["publisher"].gather(prov),
        "RegionId": t["region_id"].gather(region_i),
        "RegionName": t["region_name"].gather(region_i),
        "ResourceId": rid_block.gather(bi),
        "ResourceName": name_block.gather(bi),
        "ResourceType": t["rtype"].gather(sku),
        "ServiceCategory": t["category"].gather(sku),
        "ServiceName": t["service"].gather(sku),
        "ServiceSubcategory": t["subcategory"].gather(sku),
        "SkuId": t["sku_id"].gather(sr),
        "SkuMeter": t["sku_meter"].gather(sku_u),
        "SkuPriceDetails": t["sku_details"].gather(sku_u),
        "SkuPriceId": t["sku_price_id"].gather(np.where(usage, sr * 2 + spot_i, len(t["sku_price_id"]) - 1)),
        "SubAccountId": t["sub_id"].gather(acct),
        "SubAccountName": t["sub_name"].gather(acct),
        "SubAccountType": t["sub_type"].gather(acct),
        "Tags": t["tags"].gather(g["tag"]),
    }
    frame = pl.DataFrame([s.alias(k) for k, s in cols.items()])
    helper = pl.DataFrame({"acct": acct, "month": month, "commit": np.where(committed & usage, cover, -1),
                           "period": p})
    return frame, helper


# ---------------------------------------------------------------------------------------------------
# Structural rows: purchases, unused commitment, tax.
# ---------------------------------------------------------------------------------------------------


def _us_to_dt(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.timezone.utc)


def _dmicro(micro: int) -> Decimal:
    return Decimal(micro) / _MICRO


class _Ledger:
    """Running exact totals the structural rows need: commitment use per period, charges per
    (account, month) for tax."""

    def __init__(self) -> None:
        self.used: dict[tuple[int, int], tuple[Decimal, Decimal]] = {}
        self.month: dict[tuple[int, int], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)

    def add_usage(self, frame: pl.DataFrame, helper: pl.DataFrame) -> None:
        with localcontext(_EXACT):
            self._add_usage(frame, helper)

    def _add_usage(self, frame: pl.DataFrame, helper: pl.DataFrame) -> None:
        h = pl.concat([helper, frame.select("BilledCost", "EffectiveCost", "ListCost", "ContractedCost",
                                            "PricingQuantity")], how="horizontal")
        for row in h.group_by("acct", "month").agg(
                pl.col("BilledCost", "EffectiveCost", "ListCost", "ContractedCost").sum()).iter_rows():
            acc = self.month[(row[0], row[1])]
            for i in range(4):
                acc[i] += row[2 + i]
        used = h.filter(pl.col("commit") >= 0).group_by("commit", "period").agg(
            pl.col("EffectiveCost").sum(), pl.col("PricingQuantity").sum())
        for c, p, eff, q in used.iter_rows():
            prev = self.used.get((c, p), (Decimal(0), Decimal(0)))
            self.used[(c, p)] = (prev[0] + eff, prev[1] + q)

    def add_rows(self, rows: list[dict[str, Any]], accounts: list[int], month: int) -> None:
        """Count structural rows towards the month's totals (call inside the exact context)."""
        for row, ai in zip(rows, accounts, strict=True):
            acc = self.month[(ai, month)]
            for i, k in enumerate(("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")):
                acc[i] += row[k]


def _base_row(plan: _Plan, acct: int, start_us: int, end_us: int, month: int) -> dict[str, Any]:
    a = plan.org.accounts[acct]
    prov = _PROVIDERS[_PIDX[a.provider]]
    m_start, m_end = plan.months[month]
    row: dict[str, Any] = {c.name: None for c in focus.COLUMNS}
    row.update({
        "BillingAccountId": a.billing_account_id, "BillingAccountName": a.billing_account_name,
        "BillingAccountType": prov.billing_account_type, "BillingCurrency": CURRENCY,
        "BillingPeriodStart": m_start, "BillingPeriodEnd": m_end,
        "ChargePeriodStart": _us_to_dt(start_us), "ChargePeriodEnd": _us_to_dt(end_us),
        "InvoiceId": plan.invoice_ids.get((_PIDX[a.provider], month)), "InvoiceIssuerName": prov.issuer,
        "PricingCurrency": CURRENCY, "ProviderName": prov.name, "PublisherName": prov.publisher,
        "SubAccountId": a.sub_account_id, "SubAccountName": a.sub_account_name,
        "SubAccountType": prov.sub_account_type,
    })
    return row


def _commitment_row(plan: _Plan, a: _Active, start_us: int, end_us: int, month: int) -> dict[str, Any]:
    row = _base_row(plan, a.c.account, start_us, end_us, month)
    prov = _PROVIDERS[_PIDX[a.c.provider]]
    cat, sub = _SERVICES[a.c.service]
    row.update({
        "CommitmentDiscountCategory": a.c.category, "CommitmentDiscountId": a.c.id,
        "CommitmentDiscountName": a.c.name, "CommitmentDiscountType": a.c.type,
        "CommitmentDiscountUnit": "USD" if a.c.category == "Spend" else "Hours",
        "ResourceId": a.c.id, "ResourceName": a.c.name, "ResourceType": a.c.type,
        "ServiceName": a.c.service, "ServiceCategory": cat, "ServiceSubcategory": sub,
        "SkuId": a.c.sku_id, "SkuMeter": f"{a.c.type} fee", "SkuPriceId": f"{a.c.sku_id}.{a.c.term_days}d",
    })
    if a.region is not None:
        row["RegionId"], row["RegionName"] = prov.regions[a.region][0], prov.regions[a.region][1]
    return row


def _set_costs(row: dict[str, Any], *, billed: Decimal, effective: Decimal, list_cost: Decimal,
               contracted: Decimal) -> None:
    row.update(BilledCost=billed, EffectiveCost=effective, ListCost=list_cost, ContractedCost=contracted,
               PricingCurrencyEffectiveCost=effective)


def _purchase_row(plan: _Plan, a: _Active, p: int, one_time: bool) -> dict[str, Any]:
    step_h = plan.grain_hours
    if one_time:
        start_us, end_us = a.start_us, a.start_us + a.c.term_days * 24 * _US_PER_HOUR
        hours = Decimal(a.c.term_days * 24)
    else:
        start_us, end_us = int(plan.bounds_us[p]), int(plan.bounds_us[p + 1])
        hours = Decimal(step_h)
    row = _commitment_row(plan, a, start_us, end_us, int(plan.month_of[p]))
    if a.c.category == "Spend":
        qty, price = hours, a.hourly
        cdq = price * qty
    else:
        qty, price = hours * a.instances, a.hourly
        cdq = qty
    amount = price * qty
    pay = "All Upfront" if one_time else "recurring fee"
    row.update({
        "ChargeCategory": "Purchase", "ChargeFrequency": "One-Time" if one_time else "Recurring",
        "ChargeDescription": f"{a.c.name} ({pay})", "PricingCategory": "Standard",
        "PricingQuantity": qty, "PricingUnit": "Hours", "ListUnitPrice": price, "ContractedUnitPrice": price,
        "PricingCurrencyListUnitPrice": price, "PricingCurrencyContractedUnitPrice": price,
        "CommitmentDiscountQuantity": cdq,
    })
    _set_costs(row, billed=amount, effective=Decimal(0), list_cost=amount, contracted=amount)
    return row


def _unused_row(plan: _Plan, a: _Active, p: int, ledger: _Ledger) -> dict[str, Any]:
    start_us, end_us = int(plan.bounds_us[p]), int(plan.bounds_us[p + 1])
    row = _commitment_row(plan, a, start_us, end_us, int(plan.month_of[p]))
    used_eff, used_q = ledger.used.pop((a.index, p), (Decimal(0), Decimal(0)))
    if a.c.category == "Spend":
        qty = a.hourly * plan.grain_hours - used_eff
        lup = cup = Decimal(1)
        unit = "USD"
        list_cost = contracted = effective = qty
    else:
        qty = Decimal(a.instances * plan.grain_hours) - used_q
        lup, cup, unit = _dmicro(a.list_micro), _dmicro(a.contracted_micro), "Hours"
        list_cost, contracted, effective = lup * qty, cup * qty, a.hourly * qty
        assert a.sku is not None
        row.update(SkuId=plan.tables["sku_id"][a.sku * _NREG + a.region],
                   SkuPriceId=plan.tables["sku_price_id"][(a.sku * _NREG + a.region) * 2],
                   SkuMeter=_SKUS[a.sku].meter)
    row.update({
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "CommitmentDiscountStatus": "Unused",
        "ChargeDescription": f"Unused {a.c.type.lower()} commitment: {a.c.name}", "PricingCategory": "Committed",
        "PricingQuantity": qty, "PricingUnit": unit, "ListUnitPrice": lup, "ContractedUnitPrice": cup,
        "PricingCurrencyListUnitPrice": lup, "PricingCurrencyContractedUnitPrice": cup,
        "CommitmentDiscountQuantity": qty,
    })
    _set_costs(row, billed=Decimal(0), effective=effective, list_cost=list_cost, contracted=contracted)
    return row


def _tax_row(plan: _Plan, acct: int, month: int, ledger: _Ledger) -> dict[str, Any]:
    m_start, m_end = plan.months[month]
    start_us = max(int(m_start.timestamp()) * 1_000_000, int(plan.bounds_us[0]))
    end_us = min(int(m_end.timestamp()) * 1_000_000, plan.window_end_us)
    row = _base_row(plan, acct, start_us, end_us, month)
    a = plan.org.accounts[acct]
    prov = _PROVIDERS[_PIDX[a.provider]]
    rate = Decimal(prov.tax_rate)
    sums = ledger.month.pop((acct, month), [Decimal(0)] * 4)
    cent = Decimal("0.01")
    b, e, li, c = ((rate * s).quantize(cent, rounding=ROUND_HALF_EVEN) for s in sums)
    row.update({"ChargeCategory": "Tax", "ChargeFrequency": "Recurring", "ServiceName": "Tax",
                "ServiceCategory": _SERVICES["Tax"][0], "ServiceSubcategory": _SERVICES["Tax"][1],
                "ChargeDescription": f"Sales tax {rate * 100:.3f}% for {m_start:%B %Y}"})
    _set_costs(row, billed=b, effective=e, list_cost=li, contracted=c)
    return row


def _structural_rows(plan: _Plan, p: int, ledger: _Ledger) -> list[dict[str, Any]]:
    """Rows that follow period ``p``'s usage: purchases and unused commitment first (they count towards
    tax), then the month's tax rows."""
    with localcontext(_EXACT):
        return _structural_rows_exact(plan, p, ledger)


def _structural_rows_exact(plan: _Plan, p: int, ledger: _Ledger) -> list[dict[str, Any]]:
    specs = plan.structural[p]
    month = int(plan.month_of[p])
    rows: list[dict[str, Any]] = []
    accounts: list[int] = []
    for spec in specs:
        if spec[0] in ("purchase", "fee"):
            a = plan.actives[spec[1]]
            rows.append(_purchase_row(plan, a, p, spec[0] == "purchase"))
            accounts.append(a.c.account)
    for spec in specs:
        if spec[0] == "unused":
            a = plan.actives[spec[1]]
            rows.append(_unused_row(plan, a, p, ledger))
            accounts.append(a.c.account)
    ledger.add_rows(rows, accounts, month)
    for spec in specs:
        if spec[0] == "tax":
            rows.append(_tax_row(plan, spec[1], spec[2], ledger))
    # Forget use of commitments whose unused row was cut (rows=N smaller than the structure).
    for c in range(len(plan.actives)):
        ledger.used.pop((c, p), None)
    return rows


# ---------------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------------


def _rebatch(frames: Iterator[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """Re-cut a stream of frames into frames of exactly ``size`` rows (the last may be shorter)."""
    buf: list[pl.DataFrame] = []
    held = 0
    for f in frames:
        if f.height == 0:
            continue
        buf.append(f)
        held += f.height
        if held >= size:
            whole = pl.concat(buf, rechunk=False)
            start = 0
            while held - start >= size:
                yield whole.slice(start, size)  # zero-copy: a batch may hold several chunks
                start += size
            rest = whole.slice(start)
            buf, held = ([rest], rest.height) if rest.height else ([], 0)
    if held:
        yield pl.concat(buf, rechunk=False)


def _stream(plan: _Plan) -> Iterator[pl.DataFrame]:
    ledger = _Ledger()
    total = int(plan.cum_end[-1]) if plan.n_periods else 0
    done = 0
    for c0 in range(0, total, _CHUNK_CELLS):
        c1 = min(total, c0 + _CHUNK_CELLS)
        frame, helper = _usage_chunk(plan, c0, c1)
        ledger.add_usage(frame, helper)
        yield frame
        upto = int(np.searchsorted(plan.cum_end, c1, side="right"))
        if c1 == total:
            upto = plan.n_periods
        rows = [row for q in range(done, upto) for row in _structural_rows(plan, q, ledger)]
        done = upto
        if rows:
            yield pl.DataFrame(rows, schema=_SCHEMA)
    if done < plan.n_periods:
        rows = [row for q in range(done, plan.n_periods) for row in _structural_rows(plan, q, ledger)]
        if rows:
            yield pl.DataFrame(rows, schema=_SCHEMA)


def generate(*, rows: int | None = None, days: int = 90, end: dt.date | None = None, teams: int = 6,
             seed: int = 0, grain: Grain = "daily", providers: Sequence[str] = PROVIDER_KEYS,
             batch_rows: int = 250_000) -> Iterator[pl.DataFrame]:
    """Yield conformed FOCUS 1.2 frames of synthetic billing data, ``batch_rows`` rows each (the last
    may be shorter).

    ``days`` days ending at ``end`` (exclusive; default today, UTC), at daily or hourly grain, for
    ``teams`` teams on the chosen ``providers``. With ``rows=None`` the row count follows from the
    number of resources (about 60 per team, more on busy days); with ``rows=N`` exactly N rows are
    spread over the window. Same arguments, same output; the concatenated output does not depend on
    ``batch_rows``. Memory stays bounded by the batch size, whatever ``rows`` is.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    org = make_org(teams, seed)
    plan = _plan(org, rows, days, end, grain, providers, seed)  # bad arguments raise here, not on next()
    return _rebatch(_stream(plan), batch_rows)


_PROVIDER_DIRS = {p.name: p.key for p in _PROVIDERS}
_ROW_GROUP = 32_768  # rows buffered per export file before writing (small slivers are merged)
_GZIP_LEVEL = 3  # gzip is the bottleneck of csv.gz exports; 3 is ~2x faster than 6 for ~10% more bytes


class _Sink:
    """One export file, written batch by batch."""

    def __init__(self, path: Path, fmt: ExportFormat) -> None:
        self.path, self.fmt = path, fmt
        path.parent.mkdir(parents=True, exist_ok=True)
        self.pending: list[pl.DataFrame] = []
        self.held = 0
        self.writer: pq.ParquetWriter | None = None
        self.handle: IO[bytes] | None = None

    def write(self, frame: pl.DataFrame) -> None:
        self.pending.append(frame)
        self.held += frame.height
        if self.held >= _ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        frame = pl.concat(self.pending)
        self.pending, self.held = [], 0
        if self.fmt == "parquet":
            for start in range(0, frame.height, _ROW_GROUP):  # bounded Arrow copies
                table = frame.slice(start, _ROW_GROUP).to_arrow(compat_level=pl.CompatLevel.oldest())
                if self.writer is None:
                    self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
                self.writer.write_table(table)
            return
        first = self.handle is None
        if self.handle is None:
            self.handle = (gzip.open(self.path, "wb", compresslevel=_GZIP_LEVEL) if self.fmt == "csv.gz"
                           else open(self.path, "wb"))
        _csv_view(frame).write_csv(self.handle, include_header=first, null_value="",
                                   datetime_format="%Y-%m-%dT%H:%M:%SZ")

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        if self.handle is not None:
            self.handle.close()


def _csv_view(frame: pl.DataFrame) -> pl.DataFrame:
    """Decimals as plain numbers without trailing zeros, as cloud exports write them."""
    decs = [n for n, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    return frame.with_columns(
        pl.col(n).cast(pl.String).str.replace(r"0+$", "").str.replace(r"\.$", "") for n in decs)


def write_exports(out_dir: Path, *, fmt: ExportFormat = "parquet", **generate_kwargs: Any) -> list[Path]:
    """Write generated data like the clouds' native FOCUS exports: one file per provider and billing
    month (``aws/focus-2026-09.parquet``, ``gcp/focus-2026-09.csv.gz`` ...), streaming batch by batch.

    ``fmt`` is ``parquet`` (zstd), ``csv`` or ``csv.gz``; CSV datetimes are ``YYYY-MM-DDTHH:MM:SSZ``
    and nulls are empty fields. Keyword arguments go to :func:`generate`. Returns the paths written,
    sorted. Reading the files back and conforming them gives exactly the generated rows.
    """
    if fmt not in ("parquet", "csv", "csv.gz"):
        raise ValueError(f"fmt must be parquet, csv or csv.gz, got {fmt!r}")
    out_dir = Path(out_dir)
    generate_kwargs.setdefault("batch_rows", 65_536)  # smaller batches: each is split by provider and month
    sinks: dict[tuple[str, dt.datetime], _Sink] = {}
    try:
        for batch in generate(**generate_kwargs):
            touched = set()
            for (prov, start), part in batch.partition_by(
                    "ProviderName", "BillingPeriodStart", as_dict=True, maintain_order=True).items():
                key = (str(prov), start)
                if key not in sinks:
                    path = out_dir / _PROVIDER_DIRS[str(prov)] / f"focus-{start:%Y-%m}.{fmt}"
                    sinks[key] = _Sink(path, fmt)
                sinks[key].write(part)
                touched.add(key)
            for key, sink in sinks.items():
                if key not in touched:
                    sink.flush()
    finally:
        for sink in sinks.values():
            sink.close()
    return sorted(s.path for s in sinks.values())
