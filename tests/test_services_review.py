"""Generator options found in review: a day or team count below one, an output folder that cannot be made —
one line and exit status 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from finops import config
from finops.services import demo
from tests.test_cli import run


@pytest.mark.parametrize(("kw", "says"), [({"days": 0}, "--days 0"), ({"days": -1}, "--days -1"),
                                          ({"teams": 0}, "--teams 0")])
def test_generate_and_demo_refuse_counts_below_one(tmp_path: Path, kw: dict[str, int], says: str) -> None:
    with pytest.raises(demo.GenerateError, match=says):
        demo.generate(tmp_path / "g", **kw)
    with pytest.raises(demo.GenerateError, match=says):
        demo.demo(config.parse({"store": {"url": str(tmp_path / "store")}}), work=tmp_path / "w", **kw)
    assert not any((tmp_path / d).exists() for d in ("g", "w", "store"))


def test_generate_into_a_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(demo.GenerateError, match="file"):
        demo.generate(tmp_path / "file" / "out", days=2, teams=1)
    for args in (["generate", "--days", "0"], ["demo", "--teams", "0"], ["generate", "--out", "file/out"]):
        res = run(tmp_path, *args, check=False)
        assert res.returncode == 2 and "Traceback" not in res.stderr and "error:" in res.stderr, (args, res.stderr)


def test_prices_show_refuses_a_negative_limit(tmp_path: Path) -> None:
    from finops import offers
    from finops.services import prices

    with pytest.raises(offers.OfferError, match="--limit -1"):
        prices.cheapest(config.parse({"store": {"url": str(tmp_path / "store")}}), limit=-1)
    res = run(tmp_path, "prices", "show", "--limit", "-1", check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "--limit -1" in res.stderr, res.stderr


def test_a_report_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    run(tmp_path, "generate", "--days", "10", "--teams", "2", "--out", "g")
    run(tmp_path, "ingest", "g")
    (tmp_path / "file").write_text("x")
    (tmp_path / "finops.toml").write_text('[reports]\nout = "file/reports"\n')
    for args in (["report", "chargeback", "--out", "/proc/finops-reports"], ["report", "chargeback"]):
        res = run(tmp_path, *args, check=False)
        assert res.returncode == 2 and "Traceback" not in res.stderr and "error:" in res.stderr, (args, res.stderr)
    with pytest.raises(demo.GenerateError, match="cannot write"):
        demo.demo_report(config.parse({"store": {"url": str(tmp_path / "finops-data")},
                                       "reports": {"out": "/proc/finops-reports"}}), teams=2)


def test_as_of_with_a_digit_that_is_not_decimal_is_one_line(tmp_path: Path) -> None:
    res = run(tmp_path, "report", "chargeback", "--as-of", "²", check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "--as-of" in res.stderr, res.stderr
