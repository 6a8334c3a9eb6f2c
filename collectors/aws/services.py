"""AWS services onto FOCUS ServiceCategory / ServiceSubcategory.

Keyed by the CUR product code (``lineItem/ProductCode``); Cost Explorer names services by their
display name instead, so :func:`category` also looks names up, then falls back to keywords, then to
``Other``. One service code always gets one category (a FOCUS rule).
"""

from __future__ import annotations

import polars as pl

from finops.exprs import recode

# product code → (ServiceCategory, ServiceSubcategory)
BY_CODE: dict[str, tuple[str, str]] = {
    "AmazonEC2": ("Compute", "Virtual Machines"),
    "AmazonECS": ("Compute", "Containers"),
    "AmazonEKS": ("Compute", "Containers"),
    "AmazonECR": ("Compute", "Containers"),
    "AWSLambda": ("Compute", "Serverless Compute"),
    "AWSBatch": ("Compute", "Other (Compute)"),
    "AWSFargate": ("Compute", "Containers"),
    "AmazonLightsail": ("Compute", "Virtual Machines"),
    "ComputeSavingsPlans": ("Compute", "Virtual Machines"),
    "AmazonSageMaker": ("AI and Machine Learning", "Machine Learning"),
    "MachineLearningSavingsPlans": ("AI and Machine Learning", "Machine Learning"),
    "AmazonBedrock": ("AI and Machine Learning", "Generative AI"),
    "AmazonRekognition": ("AI and Machine Learning", "Other (AI and Machine Learning)"),
    "comprehend": ("AI and Machine Learning", "Natural Language Processing"),
    "AmazonS3": ("Storage", "Object Storage"),
    "AmazonS3GlacierDeepArchive": ("Storage", "Backup Storage"),
    "AmazonGlacier": ("Storage", "Backup Storage"),
    "AmazonEFS": ("Storage", "File Storage"),
    "AmazonFSx": ("Storage", "File Storage"),
    "AWSBackup": ("Storage", "Backup Storage"),
    "AmazonEBS": ("Storage", "Block Storage"),
    "AmazonRDS": ("Databases", "Relational Databases"),
    "AmazonDynamoDB": ("Databases", "NoSQL Databases"),
    "AmazonElastiCache": ("Databases", "Caching"),
    "AmazonRedshift": ("Databases", "Data Warehouses"),
    "AmazonDocDB": ("Databases", "NoSQL Databases"),
    "AmazonTimestream": ("Databases", "Time Series Databases"),
    "AWSGlue": ("Analytics", "Data Processing"),
    "AmazonAthena": ("Analytics", "Data Processing"),
    "ElasticMapReduce": ("Analytics", "Data Processing"),
    "AmazonKinesis": ("Analytics", "Streaming Analytics"),
    "AmazonMSK": ("Analytics", "Streaming Analytics"),
    "AmazonES": ("Analytics", "Search"),
    "AmazonQuickSight": ("Analytics", "Business Intelligence"),
    "AmazonVPC": ("Networking", "Network Connectivity"),
    "AWSDataTransfer": ("Networking", "Network Connectivity"),
    "AmazonCloudFront": ("Networking", "Content Delivery"),
    "AmazonRoute53": ("Networking", "Network Routing"),
    "AWSELB": ("Networking", "Application Networking"),
    "AWSDirectConnect": ("Networking", "Network Connectivity"),
    "AmazonApiGateway": ("Integration", "API Management"),
    "AWSQueueService": ("Integration", "Messaging"),
    "AmazonSNS": ("Integration", "Messaging"),
    "AmazonMQ": ("Integration", "Messaging"),
    "AmazonStates": ("Integration", "Workflow Orchestration"),
    "AWSEvents": ("Integration", "Messaging"),
    "AmazonCloudWatch": ("Management and Governance", "Observability"),
    "AWSCloudTrail": ("Management and Governance", "Compliance"),
    "AWSConfig": ("Management and Governance", "Compliance"),
    "AWSCostExplorer": ("Management and Governance", "Cost Management"),
    "AWSSupportBusiness": ("Management and Governance", "Support"),
    "AWSSupportEnterprise": ("Management and Governance", "Support"),
    "AWSSupportDeveloper": ("Management and Governance", "Support"),
    "AWSCloudShell": ("Developer Tools", "Development Environments"),
    "AWSCodeBuild": ("Developer Tools", "Continuous Integration and Deployment"),
    "AWSCodePipeline": ("Developer Tools", "Continuous Integration and Deployment"),
    "AWSCodeCommit": ("Developer Tools", "Source Code Management"),
    "AWSMigrationHubRefactorSpaces": ("Migration", "Resource Migration"),
    "AWSDatabaseMigrationSvc": ("Migration", "Data Migration"),
    "awskms": ("Security", "Secret Management"),
    "AWSSecretsManager": ("Security", "Secret Management"),
    "AmazonGuardDuty": ("Security", "Threat Detection and Response"),
    "AWSSecurityHub": ("Security", "Security Posture Management"),
    "AWSWAF": ("Networking", "Network Security"),
    "AmazonCognito": ("Identity", "Identity and Access Management"),
    "AWSIoT": ("Internet of Things", "IoT Platforms"),
}

# Display names (CUR product name, Cost Explorer SERVICE dimension) → product code.
BY_NAME: dict[str, str] = {
    "Amazon Elastic Compute Cloud": "AmazonEC2",
    "Amazon Elastic Compute Cloud - Compute": "AmazonEC2",
    "EC2 - Other": "AmazonEC2",
    "Amazon Elastic Container Service": "AmazonECS",
    "Amazon Elastic Kubernetes Service": "AmazonEKS",
    "Amazon Elastic Container Registry": "AmazonECR",
    "AWS Lambda": "AWSLambda",
    "Amazon SageMaker": "AmazonSageMaker",
    "Savings Plans for AWS Compute usage": "ComputeSavingsPlans",
    "Savings Plans for Amazon SageMaker": "MachineLearningSavingsPlans",
    "Amazon Bedrock": "AmazonBedrock",
    "Amazon Simple Storage Service": "AmazonS3",
    "Amazon Elastic File System": "AmazonEFS",
    "Amazon Elastic Block Store": "AmazonEBS",
    "Amazon Relational Database Service": "AmazonRDS",
    "Amazon DynamoDB": "AmazonDynamoDB",
    "Amazon ElastiCache": "AmazonElastiCache",
    "Amazon Redshift": "AmazonRedshift",
    "AWS Glue": "AWSGlue",
    "Amazon Athena": "AmazonAthena",
    "Amazon Virtual Private Cloud": "AmazonVPC",
    "AWS Data Transfer": "AWSDataTransfer",
    "Amazon CloudFront": "AmazonCloudFront",
    "Amazon Route 53": "AmazonRoute53",
    "Elastic Load Balancing": "AWSELB",
    "Amazon Simple Queue Service": "AWSQueueService",
    "Amazon Simple Notification Service": "AmazonSNS",
    "AmazonCloudWatch": "AmazonCloudWatch",
    "Amazon CloudWatch": "AmazonCloudWatch",
    "AWS CloudTrail": "AWSCloudTrail",
    "AWS Config": "AWSConfig",
    "AWS Cost Explorer": "AWSCostExplorer",
    "AWS CloudShell": "AWSCloudShell",
    "AWS Migration Hub Refactor Spaces": "AWSMigrationHubRefactorSpaces",
    "AWS Key Management Service": "awskms",
    "AWS Secrets Manager": "AWSSecretsManager",
    "AWS Step Functions": "AmazonStates",
    "AWS IoT": "AWSIoT",
}

# Keyword fallbacks for names neither table knows (checked in order).
KEYWORDS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("SageMaker", ("AI and Machine Learning", "Machine Learning")),
    ("Compute", ("Compute", "Virtual Machines")),
    ("Storage", ("Storage", "Other (Storage)")),
    ("Database", ("Databases", "Other (Databases)")),
    ("Support", ("Management and Governance", "Support")),
)
OTHER = ("Other", "Other (Other)")


def category(code: str | None, name: str | None = None) -> tuple[str, str]:
    """(ServiceCategory, ServiceSubcategory) of a service by product code, else display name."""
    if code and code in BY_CODE:
        return BY_CODE[code]
    if name and BY_NAME.get(name) in BY_CODE:
        return BY_CODE[BY_NAME[name]]
    for word, cat in KEYWORDS:
        if name and word in name:
            return cat
    return OTHER


def category_exprs(code: pl.Expr, name: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Vectorised :func:`category` (dictionary replaces and keyword tests; no Python per row)."""
    out = []
    for i in (0, 1):
        by_code = recode(code, {k: v[i] for k, v in BY_CODE.items()})
        by_name = recode(name, {k: BY_CODE[c][i] for k, c in BY_NAME.items() if c in BY_CODE})
        kw: pl.Expr = pl.lit(OTHER[i])
        for word, cat in reversed(KEYWORDS):
            kw = pl.when(name.str.contains(word, literal=True).fill_null(False)).then(pl.lit(cat[i])).otherwise(kw)
        out.append(pl.coalesce(by_code, by_name, kw))
    return out[0], out[1]
