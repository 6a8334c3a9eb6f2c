"""What we write passes the FinOps Foundation's own focus-validator (2.2.1, FOCUS 1.2 rules).

Each run is a subprocess in the validator's Python >= 3.12 venv (tests/focus_validator.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.files import ingest
from finops.store import Store
from tests import focus_validator as fv
from tests.conftest import SAMPLE_10, SAMPLE_12, SAMPLE_13

# Defects of the FinOps Foundation's real FOCUS 1.0 sample itself that no faithful ingest can fix:
SAMPLE_10_SOURCE_DEFECTS = {
    # AWS rows name the provider "AWS" and the invoice issuer "Amazon Web Services, Inc."; the
    # validator reads the difference as a marketplace charge and wants BilledCost 0 on 615 rows.
    "BilledCost-C-005-C",
    # Units "GiB/Second-Months" and "Lambda-GB-Seconds" are not in FOCUS unit format.
    "ConsumedUnit-C-003-O", "PricingUnit-C-003-O",
    # RegionId without RegionName (and the reverse), ResourceId without ResourceType (and the reverse).
    "RegionName-C-004-C", "RegionName-C-005-C", "ResourceType-C-004-C", "ResourceType-C-005-C",
    # "Amazon Elastic Compute Cloud" billed under both Compute and Storage.
    "ServiceName-C-005-C", "ServiceName-C-008-C",
}


def store_output(store: Store, tmp_path: Path) -> Path:
    """The billing dataset as one Parquet file, as the validator reads one file."""
    out = tmp_path / "billing.parquet"
    store.scan("billing").sink_parquet(out)
    return out


@pytest.mark.parametrize("sample", [SAMPLE_12, SAMPLE_13], ids=["focus-1.2-gcp", "focus-1.3-aws"])
def test_ingested_samples_pass_the_validator(validator_venv: Path, store: Store, tmp_path: Path,
                                             sample: Path) -> None:
    ingest(store, [str(sample)])
    result = fv.run_focus_validator(store_output(store, tmp_path))
    assert result.passed, result.blocking
    assert result.counts["pass"] > 300


def test_the_real_1_0_sample_fails_only_on_its_own_defects(validator_venv: Path, store: Store,
                                                            tmp_path: Path) -> None:
    """Upgraded from FOCUS 1.0, the real sample no longer fails on anything 1.1/1.2 added
    (ServiceSubcategory, account types, pricing currency, SkuMeter) nor on the quirks we fix."""
    ingest(store, [str(SAMPLE_10)])
    result = fv.run_focus_validator(store_output(store, tmp_path))
    assert set(result.blocking) == SAMPLE_10_SOURCE_DEFECTS


def test_generated_exports_pass_after_ingest(validator_venv: Path, store: Store, tmp_path: Path) -> None:
    """The demo's own path: generated native exports → ingest → the store's output passes."""
    import datetime as dt

    from finops.generate import write_exports

    paths = write_exports(tmp_path / "exports", fmt="parquet", days=20, teams=3, seed=7, end=dt.date(2026, 10, 10))
    ingest(store, [str(p) for p in paths])
    result = fv.run_focus_validator(store_output(store, tmp_path))
    assert result.passed, result.blocking
