"""Generated billing data written as the clouds' native exports: AWS CUR 2.0 (Data Exports Parquet with
its manifest), Azure cost-details CSV (actual and amortized) and Google's BigQuery billing export
(flattened CSV)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from finops.generate.native_aws import write_cur2
from finops.generate.native_azure import write_cost_details
from finops.generate.native_gcp import write_bigquery_export
from finops.generate.rows import generate

FOLDERS = {"aws": "aws-cur2", "azure": "azure-cost-details", "gcp": "gcp-bigquery-export"}


def write_native_exports(out_dir: Path, **generate_kwargs: Any) -> dict[str, list[Path]]:
    """Generate FOCUS rows (keyword arguments go to :func:`generate`) and write each provider's share
    in its native export format under ``out_dir/<aws-cur2|azure-cost-details|gcp-bigquery-export>``.

    Returns the files written by provider. The frames are held in memory: meant for demo-sized data
    (a few million rows at most)."""
    frame = pl.concat(list(generate(**generate_kwargs)), how="vertical_relaxed")
    out_dir = Path(out_dir)
    return {
        "aws": write_cur2(frame, out_dir / FOLDERS["aws"]),
        "azure": write_cost_details(frame, out_dir / FOLDERS["azure"]),
        "gcp": write_bigquery_export(frame, out_dir / FOLDERS["gcp"]),
    }
