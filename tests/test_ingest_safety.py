"""`finops ingest` loses nothing without a word (issue 11): a partition built from other files is not
replaced unless asked, partition names are one per account id, a multi-partition ingest lands whole or
not at all, folders are read as users expect, and bad input (a doubled column, an amount of 1e400, a full
disk) gets one line and exit status 2 with the store left as it was."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finops.store import Store, account_key, safe_key
from tests.conftest import SAMPLE_10, SAMPLE_12
from tests.test_cli import FINOPS, run

ACCOUNT = "01A2B3-C4D5E6-F70819"  # one of SAMPLE_12's two GCP billing accounts (2026-05)


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    (tmp_path / "finops.toml").write_text('[store]\nurl = "store"\n')
    return tmp_path


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def account_rows(account: str = ACCOUNT) -> tuple[list[str], list[list[str]]]:
    header, rows = read_rows(SAMPLE_12)
    i = header.index("BillingAccountId")
    return header, [r for r in rows if r[i] == account]


def billed(cwd: Path, **filters: str) -> tuple[int, Decimal]:
    """Rows and BilledCost the store holds (for rows matching ``filters`` on data columns)."""
    lf = Store(cwd / "store").scan("billing")
    for col, value in filters.items():
        lf = lf.filter(pl.col(col) == value)
    df = lf.select(pl.len(), pl.col("BilledCost").sum()).collect()
    return int(df[0, 0]), Decimal(str(df[0, 1] or 0))


def total(header: list[str], rows: list[list[str]]) -> Decimal:
    i = header.index("BilledCost")
    return sum((Decimal(r[i]) for r in rows if r[i] not in ("", "NULL")), Decimal(0))


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


# -- 1a: one month of an account in two files ---------------------------------------------------------
def test_a_month_in_two_halves_is_refused_alone_and_kept_whole_together(cwd: Path) -> None:
    header, rows = account_rows()
    half = len(rows) // 2
    first = write_rows(cwd / "first-half.csv", header, rows[:half])
    second = write_rows(cwd / "second-half.csv", header, rows[half:])
    run(cwd, "ingest", str(first))
    before = billed(cwd)
    assert before == (half, total(header, rows[:half]))

    # the second half alone would replace the first: refused, naming the partition and the file there
    line = one_line_error(run(cwd, "ingest", str(second), check=False))
    assert "billing_account=" + ACCOUNT in line and "first-half.csv" in line and "--replace" in line
    assert billed(cwd) == before

    # both halves of the delivery given together replace the partition as a set; again, nothing changes
    run(cwd, "ingest", str(first), str(second))
    assert billed(cwd) == (len(rows), total(header, rows))
    run(cwd, "ingest", str(second), str(first))
    assert billed(cwd) == (len(rows), total(header, rows))

    # the same file under another name is the same source (by SHA-256): no refusal
    shutil.copy(first, cwd / "copy-of-first.csv")
    shutil.copy(second, cwd / "copy-of-second.csv")
    run(cwd, "ingest", str(cwd / "copy-of-first.csv"), str(cwd / "copy-of-second.csv"))
    assert billed(cwd) == (len(rows), total(header, rows))

    # --replace says the user means it
    run(cwd, "ingest", "--replace", str(second))
    assert billed(cwd) == (len(rows) - half, total(header, rows[half:]))


# -- 1b: Azure's actual-cost file alone after the actual + amortized pair ---------------------------
def test_azure_actual_file_alone_after_the_pair_is_refused(cwd: Path) -> None:
    run(cwd, "generate", "--format", "native", "--rows", "3000", "--out", "native")
    folder = cwd / "native" / "azure-cost-details"
    actual = min(folder.glob("cost-details-actual_*.csv"))
    amortized = folder / actual.name.replace("actual", "amortized")
    assert amortized.exists()
    run(cwd, "ingest", str(actual), str(amortized))
    before = Store(cwd / "store").manifests("billing")
    line = one_line_error(run(cwd, "ingest", str(actual), check=False))
    assert "provider=azure" in line and amortized.name in line
    assert Store(cwd / "store").manifests("billing") == before
    run(cwd, "ingest", str(amortized), str(actual))  # the pair again: the same sources, no refusal
    assert [(m.partition, m.rows, m.sums) for m in Store(cwd / "store").manifests("billing")] == \
        [(m.partition, m.rows, m.sums) for m in before]


# -- 1c: account ids that clean to the same name ---------------------------------------------------
def test_account_ids_that_clean_alike_keep_their_own_partitions(cwd: Path) -> None:
    header, rows = account_rows()
    i = header.index("BillingAccountId")
    colon = [[*r[:i], "payer:one", *r[i + 1:]] for r in rows]
    slash = [[*r[:i], "payer/one", *r[i + 1:]] for r in rows[:3]]
    assert safe_key("payer:one") == safe_key("payer/one")  # the directory names may be the same …
    run(cwd, "ingest", str(write_rows(cwd / "colon.csv", header, colon)))
    run(cwd, "ingest", str(write_rows(cwd / "slash.csv", header, slash)))  # … the partitions are not
    assert billed(cwd, BillingAccountId="payer:one") == (len(colon), total(header, colon))
    assert billed(cwd, BillingAccountId="payer/one") == (len(slash), total(header, slash))
    accounts = {m.partition["billing_account"] for m in Store(cwd / "store").manifests("billing")}
    assert accounts == {account_key("payer:one"), account_key("payer/one")} and len(accounts) == 2


@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_partition_names_are_one_per_account_id(a: str, b: str) -> None:
    if a != b and not (a.startswith("/providers/") or b.startswith("/providers/")):
        assert account_key(a) != account_key(b)
    assert account_key(a) == account_key(a)


def test_existing_partition_names_are_unchanged() -> None:
    assert account_key("1234567890123") == "1234567890123"
    assert account_key("01A2B3-C4D5E6-F70819") == "01A2B3-C4D5E6-F70819"
    assert account_key("/providers/Microsoft.Billing/billingAccounts/8611537") == \
        "providers_Microsoft.Billing_billingAccounts_8611537"


# -- 1d: a crash during the commit of a multi-partition ingest --------------------------------------
def test_a_killed_multi_partition_ingest_leaves_all_partitions_old_or_all_new(cwd: Path) -> None:
    header, rows = read_rows(SAMPLE_10)
    p = header.index("ProviderName")
    old, new = [], []
    for provider in sorted({r[p] for r in rows}):
        mine = [r for r in rows if r[p] == provider]
        old.append(str(write_rows(cwd / f"{provider}.csv", header, mine)))
        new.append(str(write_rows(cwd / f"{provider}-restated.csv", header, mine + mine)))
    run(cwd, "ingest", *old)
    store = Store(cwd / "store")
    before = {tuple(m.partition.values()): m.rows for m in store.manifests("billing")}
    assert len(before) >= 4
    data = cwd / "store" / "billing"
    for attempt in range(6):
        # kill the ingest the moment its first file is placed in the table (placed, not yet committed),
        # or a little later: the one Delta commit is either in the log or not
        known = set(data.rglob("part-*.parquet"))
        proc = subprocess.Popen([*FINOPS, "ingest", "--replace", *new], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if set(data.glob("provider=*/*/*/part-*.parquet")) - known:
                time.sleep(0.002 * attempt)
                break
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = {tuple(m.partition.values()): m.rows for m in Store(cwd / "store").manifests("billing")}
        assert now.keys() == before.keys()
        assert now == before or now == {k: 2 * v for k, v in before.items()}, (attempt, now)
        assert sum(now.values()) == Store(cwd / "store").scan("billing").select(pl.len()).collect().item()
        if now != before:
            break
    run(cwd, "ingest", "--replace", *new)  # the store still takes the ingest, whole
    now = {tuple(m.partition.values()): m.rows for m in Store(cwd / "store").manifests("billing")}
    assert now == {k: 2 * v for k, v in before.items()}


# -- 2: folders --------------------------------------------------------------------------------
def test_the_tour_ingests_the_generated_exports_folder(cwd: Path) -> None:
    run(cwd, "generate", "--rows", "2000", "--out", "exports")
    assert not list((cwd / "exports").glob("*.parquet"))  # the generator writes exports/<cloud>/…
    (cwd / "exports" / "notes.txt").write_text("not an export")
    out = run(cwd, "ingest", "exports", "--json").stdout
    files = sorted(str(p.relative_to(cwd)) for p in (cwd / "exports").rglob("*.parquet"))
    assert sorted(f["file"] for f in json.loads(out)["files"]) == files
    rows = billed(cwd)[0]
    assert rows == sum(pl.scan_parquet(cwd / f).select(pl.len()).collect().item() for f in files)
    run(cwd, "ingest", "exports")  # the same files again: idempotent
    assert billed(cwd)[0] == rows


def test_a_folder_with_no_export_files_is_a_clear_error(cwd: Path) -> None:
    (cwd / "empty" / "sub").mkdir(parents=True)
    (cwd / "empty" / "sub" / "readme.txt").write_text("nothing here")
    line = one_line_error(run(cwd, "ingest", "empty", check=False))
    assert line.startswith("error: empty: a folder with no export files")
    assert not (cwd / "store" / "billing").exists() or not Store(cwd / "store").manifests("billing")


# -- 3: bad input ----------------------------------------------------------------------------------
def test_a_column_named_twice_is_refused_naming_it(cwd: Path) -> None:
    header, rows = account_rows()
    path = write_rows(cwd / "twice.csv", [*header, "BilledCost"], [[*r, "1"] for r in rows])
    line = one_line_error(run(cwd, "ingest", str(path), check=False))
    assert "twice.csv" in line and "'BilledCost' appears more than once" in line
    assert not Store(cwd / "store").manifests("billing")


def test_an_amount_too_large_is_refused_naming_row_and_column(cwd: Path) -> None:
    header, rows = account_rows()
    rows[3][header.index("BilledCost")] = "1e400"
    path = write_rows(cwd / "huge.csv", header, rows)
    line = one_line_error(run(cwd, "ingest", str(path), check=False))
    assert "huge.csv" in line and "column BilledCost, row 4: '1e400'" in line
    assert not Store(cwd / "store").manifests("billing")


def test_a_full_disk_is_reported_as_such(cwd: Path) -> None:
    """The store on a 128 kB tmpfs (mounted in a private mount namespace, so no root is needed)."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1)")
    (cwd / "small").mkdir()
    script = (f"mount -t tmpfs -o size=128k tmpfs small || exit 77; cp finops.toml small/ && cd small && "
              f"exec {FINOPS[0]} ingest {SAMPLE_10}")  # some 270 kB in the store
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)
    if proc.returncode == 77 or "unshare:" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    line = one_line_error(proc)
    assert "no space left on" in line and "while writing the store" in line
    assert "values that do not parse" not in line and "cannot read" not in line
