"""Shared fixtures: sample data paths, a store in a temp folder, an S3 server on loopback (moto)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from finops.store import Store

DATA = Path(__file__).parent / "data"
FOCUS_DATA = DATA / "focus"
SAMPLE_10 = FOCUS_DATA / "finops-sample_focus1.0_2024-09_aws-azure-oci_1000.csv"
SAMPLE_12 = FOCUS_DATA / "synthetic_focus1.2_gcp_2026-05_100.csv"
SAMPLE_13 = FOCUS_DATA / "synthetic_focus1.3_aws_2026-05_100.csv"
SAMPLES = (SAMPLE_10, SAMPLE_12, SAMPLE_13)


@pytest.fixture(scope="session")
def validator_venv() -> Path:
    """The focus-validator venv; skip (or, under CI, fail) when no Python >= 3.12 exists."""
    from tests import focus_validator as fv

    venv = fv.ensure_validator_venv()
    if venv is None:
        msg = ("focus-validator needs Python >= 3.12 and none was found (.ci/focus-validator.sh exited 3); "
               "the FOCUS output is NOT being validated")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return venv


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server on loopback; skip (or, under CI, fail) where PostgreSQL is not installed."""
    from tests import postgres

    if postgres.binaries() is None:
        msg = "PostgreSQL is not installed (apt-get install -y postgresql); the ledger is NOT tested on it"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    with postgres.server() as url:
        yield url


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 on 127.0.0.1 (an ephemeral port); yields its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    yield f"http://{host}:{port}"
    srv.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[str]:
    """A fresh bucket on the local S3 server; yields its name."""
    import uuid

    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    name = f"finops-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    yield name
