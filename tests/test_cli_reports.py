"""`finops report chargeback` and the demo's report, run as a user runs them (the real entry point)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl
import pytest

from finops.reports import Week
from tests.test_cli import run
from tests.test_delivery import Hook, Inbox, hook, smtp  # noqa: F401 (fixtures)

CONFIG = """
[[teams]]
name = "ml-research"
monthly_budget = 50000
aliases = ["research"]

[[teams]]
name = "ml-platform"

[[teams]]
name = "recsys"

[[allocation.shared]]
name = "platform"
accounts = ["ml-shared-services", "ML shared platform", "Shared Platform - Production"]
split = "proportional"

[[allocation.shared]]
name = "network"
service_categories = ["Networking"]
split = "fixed"
percentages = { ml-research = 60, recsys = 40 }
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli-reports")
    (d / "finops.toml").write_text(CONFIG)
    run(d, "generate", "--out", "exports", "--days", "21", "--teams", "3")
    run(d, "ingest", *map(str, sorted((d / "exports").rglob("*.parquet"))))
    return d


def _expected_by_provider(exports: Path, week: Week) -> dict[str, Decimal]:
    """The week's amortised cost per provider, straight from the export files (not from the store)."""
    df = pl.read_parquet(sorted(exports.rglob("*.parquet")))
    week_rows = df.filter((pl.col("ChargePeriodStart") >= week.start) & (pl.col("ChargePeriodStart") < week.end))
    purchases = (pl.col("ChargeCategory") == "Purchase") & pl.col("CommitmentDiscountId").is_not_null()
    out = {}
    for (prov,), part in week_rows.filter(~purchases).group_by("ProviderName"):
        exact = sum((Decimal(str(v)) for v in part["EffectiveCost"].to_list()), Decimal(0))
        out[prov] = exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return out


def test_chargeback_of_last_week_reconciles_and_writes_every_format(workdir: Path) -> None:
    week = Week.last_complete()
    res = json.loads(run(workdir, "report", "chargeback", "--json", "--out", "out").stdout)
    assert res["week"] == week.label and res["reconciled"] is True
    expected = _expected_by_provider(workdir / "exports", week)
    rec = {r["provider"]: r for r in res["reconciliation"]}
    assert {p: Decimal(rec[p]["allocated"]) for p in expected} == expected
    assert Decimal(rec["total"]["allocated"]) == sum(expected.values())
    assert sum(Decimal(t["total"]) for t in res["teams"]) == sum(expected.values())
    assert {t["team"] for t in res["teams"]} <= {"ml-research", "ml-platform", "recsys", "unallocated"}
    network = [s for s in res["shared"] if s["pool"] == "network"]
    assert {s["team"] for s in network} == {"ml-research", "recsys"}
    folder = workdir / "out" / f"chargeback-{week.label}"
    assert sorted(Path(f).name for f in res["files"]) == sorted(p.name for p in folder.iterdir())
    assert {Path(f).suffix for f in res["files"]} == {".csv", ".xlsx", ".html"}
    table = run(workdir, "report", "chargeback", "--week", week.label, "--format", "html", "--out", "out2")
    assert "Reconciliation" in table.stdout and "ml-research" in table.stdout
    assert [p.suffix for p in (workdir / "out2" / f"chargeback-{week.label}").iterdir()] == [".html"]


def test_by_project(workdir: Path) -> None:
    res = json.loads(run(workdir, "report", "chargeback", "--by", "project", "--format", "csv", "--json",
                         "--out", "out-project").stdout)
    assert res["dimension"] == "project" and res["reconciled"] and "projects" in res
    assert res["files"] and all((workdir / f).exists() for f in res["files"])


def test_bad_input_writes_nothing(workdir: Path, tmp_path: Path) -> None:
    empty = run(workdir, "report", "chargeback", "--week", "2020-W01", "--out", str(tmp_path / "a"), check=False)
    assert empty.returncode == 2 and "no billing rows in 2020-W01 (2019-12-30 to 2020-01-05)" in empty.stderr
    assert "Traceback" not in empty.stderr and not (tmp_path / "a").exists()
    bad_week = run(workdir, "report", "chargeback", "--week", "2026-W60", check=False)
    assert bad_week.returncode == 2 and "2026 has no ISO week 60" in bad_week.stderr
    bad_fmt = run(workdir, "report", "chargeback", "--format", "pdf", "--out", str(tmp_path / "b"), check=False)
    assert bad_fmt.returncode == 2 and "--format pdf" in bad_fmt.stderr
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    cfg = tmp_path / "bad.toml"
    cfg.write_text(CONFIG.replace("ml-research = 60", "ml-research = 50"))
    pct = run(workdir, "--config", str(cfg), "report", "chargeback", "--out", str(tmp_path / "c"), check=False)
    assert pct.returncode == 2
    assert "allocation.shared[1].percentages" in pct.stderr and "sum to 100 (got 90)" in pct.stderr
    assert not (tmp_path / "c").exists()


def test_unknown_tag_key_is_a_warning(workdir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "keys.toml"
    cfg.write_text(CONFIG + '\n[allocation]\nteam_tags = ["costcentre", "team"]\n')
    proc = run(workdir, "--config", str(cfg), "report", "chargeback", "--format", "csv", "--out", str(tmp_path))
    assert "warning" in proc.stderr and "costcentre never occur" in proc.stderr and "finops-team" in proc.stderr


def test_send_by_email_and_webhook(workdir: Path, tmp_path: Path, smtp: tuple[Inbox, int],
                                   hook: tuple[type[Hook], str]) -> None:
    inbox, port = smtp
    h, base = hook
    cfg = tmp_path / "send.toml"
    cfg.write_text(CONFIG + f"""
[reports.email]
host = "127.0.0.1"
port = {port}
sender = "finops@example.com"
to = ["lead@example.com"]
starttls = false

[reports.webhook]
url = "{base}/hook"
""")
    proc = run(workdir, "--config", str(cfg), "report", "chargeback", "--send", "--out", str(tmp_path / "r"))
    assert "sent: e-mail to lead@example.com" in proc.stderr and "sent: webhook" in proc.stderr
    [(_, rcpts, msg)] = inbox.messages
    assert rcpts == ["lead@example.com"] and msg["Subject"].startswith(f"Chargeback {Week.last_complete().label}")
    assert any((p.get_filename() or "").endswith(".xlsx") for p in msg.walk())
    [body] = h.bodies
    assert body["path"] == "/hook" and "reconciled to the bill" in body["text"]


def test_send_without_delivery_settings_fails_clearly(workdir: Path, tmp_path: Path) -> None:
    proc = run(workdir, "report", "chargeback", "--send", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2 and "configure [reports.email] and/or [reports.webhook]" in proc.stderr


def test_demo_writes_last_weeks_report(tmp_path: Path) -> None:
    res = json.loads(run(tmp_path, "demo", "--days", "14", "--teams", "2", "--json").stdout)
    files = [Path(tmp_path / f) for f in res["chargeback"]]
    assert files and all(f.exists() for f in files)
    assert files[0].parent.name == f"chargeback-{Week.last_complete().label}"
    # without [[teams]] in finops.toml the demo allocates by the generated organisation's teams and accounts
    teams = pl.read_csv(next(f for f in files if f.name.endswith("-teams.csv")))
    assert teams["team"][-1] == "total"  # every view ends with its totals row
    named = set(teams["team"][:-1])
    assert named <= {"ml-research", "ml-platform", "unallocated"} and "ml-research" in named
    rec = pl.read_csv(next(f for f in files if f.name.endswith("-reconciliation.csv")))
    assert (rec["difference"] == 0).all()
    text = run(tmp_path, "demo", "--days", "14", "--teams", "2", "--once").stdout
    assert f"last week's chargeback: reports/chargeback-{Week.last_complete().label}/" in text
