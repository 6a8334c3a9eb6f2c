"""The use-case layer, called as the scheduler and the dashboard will call it: a Config in, a typed result
out, nothing printed; and the CLI's one error boundary."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from finops import config
from finops.services import ingest, prices, queue, store
from finops.services.collect import ChoiceError, collect_billing
from finops.services.progress import Step
from tests.conftest import SAMPLE_10, SAMPLE_12
from tests.test_cli import run


class Recorder:
    """A Progress that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | int | None]] = []

    def start(self, description: str, total: int | None = None) -> Step:
        self.events.append(("start", description))
        return self

    def update(self, description: str) -> None:
        self.events.append(("update", description))

    def advance(self, n: int = 1) -> None:
        self.events.append(("advance", n))

    def finish(self, description: str | None = None) -> None:
        self.events.append(("finish", description))


def _cfg(tmp_path: Path) -> config.Config:
    return config.parse({"store": {"url": str(tmp_path / "store")}})


def test_ingest_validate_and_info_return_typed_results_and_print_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, seen = _cfg(tmp_path), Recorder()
    done = ingest.ingest(cfg, [str(SAMPLE_10), str(SAMPLE_12)], progress=seen)
    assert [f.rows for f in done.result.files] == [1000, 100] and done.seconds > 0
    assert seen.events[0] == ("start", "ingest") and seen.events.count(("advance", 1)) == 2
    assert seen.events[-1][0] == "finish" and "1,100 rows" in str(seen.events[-1][1])
    info = store.info(cfg)
    assert sum(m.rows for m in info.partitions) == 1100
    billed = sum((f.sums["BilledCost"] for f in done.result.files), Decimal(0))
    assert sum(Decimal(t["BilledCost"]) for t in info.totals(("provider",))) == billed
    checked = ingest.validate(cfg)
    assert list(checked.problems) == [info.store] and not checked.failed
    assert capsys.readouterr() == ("", "")


def test_services_refuse_bad_choices_with_a_sentence(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with pytest.raises(ChoiceError, match="no billing sources configured"):
        collect_billing(cfg)
    with pytest.raises(ChoiceError, match=r"--provider ibm: expected aws, gcp or azure"):
        collect_billing(cfg, ["ibm"])


def test_queue_and_prices_through_services(tmp_path: Path) -> None:
    cfg = config.parse({"store": {"url": str(tmp_path / "store")}, "placement": {"stale": "allow"}})
    imported = prices.import_catalog(cfg)
    assert imported.offers_known > 0 and {r["provider"] for r in imported.counts} == {"aws", "gcp", "azure"}
    spec = tmp_path / "jobs.yaml"
    spec.write_text("- {name: t4-probe, team: vision, kind: train, accelerators: {name: T4, count: 1},"
                    " runtime_hours: 2, spot: never}\n")
    queued = queue.add(cfg, [spec])
    assert [q.spec.name for q in queued] == ["t4-probe"]
    placed = queue.place(cfg, dry_run=True)
    assert placed.dry_run and [w.state for w in queue.workloads(cfg)] == ["queued"]
    assert placed.plan.decisions and placed.plan.decisions[0].placed
    cheapest = prices.cheapest(cfg, "T4", 1)
    assert cheapest.height > 0 and cheapest["price_per_hour"].is_sorted()


def test_one_error_boundary_one_line_or_the_traceback_with_debug(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,focus,file\n1,2,3,4\n")
    plain = run(tmp_path, "ingest", str(bad), check=False)
    assert plain.returncode == 2 and plain.stderr.startswith("error: ") and "Traceback" not in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1 and str(bad) in plain.stderr
    debug = run(tmp_path, "--debug", "ingest", str(bad), check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "IngestError" in debug.stderr
    as_of = run(tmp_path, "report", "chargeback", "--as-of", "yesterday-ish", check=False)
    assert as_of.returncode == 2 and "--as-of" in as_of.stderr and "Traceback" not in as_of.stderr


def test_a_dry_run_in_an_empty_folder_creates_no_ledger(tmp_path: Path) -> None:
    cfg = config.parse({"store": {"url": str(tmp_path / "store")}})
    prices.import_catalog(cfg)
    placed = queue.place(cfg, dry_run=True)
    assert placed.plan.decisions == [] and not list(tmp_path.rglob("*.db")) and not list(tmp_path.rglob("*.sqlite*"))


def test_generate_refuses_a_row_count_it_cannot_make(tmp_path: Path) -> None:
    from finops.services.demo import GenerateError, generate

    with pytest.raises(GenerateError, match="--rows 99999999999999999999999: expected a count from 0"):
        generate(tmp_path / "out", rows=99999999999999999999999)
    assert not (tmp_path / "out").exists()
