"""The engine layer without a cluster: a store snapshot cut into pieces (as a Ray cluster's tasks get it)
gives exactly what one query over it gives — chargeback, FOCUS validation, reconciliation sums,
dashboard rollups, ingest — for any cut (property tests over random ``rows_per_task``). The Ray
engine itself runs on a real cluster in ``test_engine_ray.py``; here ``LocalEngine(rows_per_task=k)``
runs the same pieces one after another in this process."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from collectors import distributed
from collectors.files import IngestError
from collectors.files import ingest as ingest_files
from finops import config, focus, reconcile, reports
from finops.engine import EngineError, LocalEngine, open_engine
from finops.engine.pieces import combine, cut, over_store
from finops.generate import generate
from finops.rollups import Rollups
from finops.store import LiveFile, Store
from tests.test_reports import CFG, WEEK

FOCUS_SCHEMA = focus.empty_frame().schema
SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def clean_bill() -> pl.DataFrame:
    """Generated FOCUS rows; every 7th carries a placement tag (13 placements)."""
    bill = pl.concat(list(generate(days=35, end=dt.date(2026, 11, 25), seed=3)))
    i = pl.int_range(pl.len())
    tag = pl.format('{{"finops-placement": "{}", "finops-team": "nlp"}}', (i % 13).cast(pl.String))
    return bill.with_columns(pl.when(i % 7 == 0).then(tag).otherwise(pl.col("Tags")).alias("Tags"))


@pytest.fixture(scope="module")
def bill(clean_bill: pl.DataFrame) -> pl.DataFrame:
    """The same with a malformed FOCUS value in a few rows (the store takes it: validation finds it)."""
    i = pl.int_range(pl.len())
    return clean_bill.with_columns(
        pl.when(i % 997 == 5).then(pl.lit("Spot-ish")).otherwise(pl.col("PricingCategory")).alias("PricingCategory"))


@pytest.fixture(scope="module")
def store(bill: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The bill in one commit of four staged slices: several data files per partition."""
    s = Store(tmp_path_factory.mktemp("engine") / "store")
    step = bill.height // 4 + 1
    with s.transaction("billing") as tx:
        for k in range(4):
            tx.stage(bill.slice(k * step, step))
        tx.commit()
    return s


def _rows_per_task(store: Store) -> st.SearchStrategy[int]:
    total = sum(f.rows for f in store.live("billing")[0])
    return st.integers(min_value=1, max_value=total + 1)


# -- cutting and merging ---------------------------------------------------------------------------
@given(files=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 50)), min_size=0, max_size=25),
       per_task=st.integers(1, 120))
def test_cut_reads_every_file_once_and_keeps_pieces_within_size(files: list[tuple[str, int]], per_task: int) -> None:
    live = [LiveFile(f"{pid}/f{i}.parquet", rows * 10, rows, {}, pid, None) for i, (pid, rows) in enumerate(files)]
    pieces = cut(live, per_task)
    read = [p for piece in pieces for p in piece.paths]
    assert sorted(read) == sorted(f.path for f in live)
    for piece in pieces:
        assert piece.rows == sum(f.rows for f in live if f.path in piece.paths)
        assert len(piece.paths) == 1 or piece.rows <= per_task  # only a single file may be larger


@given(rows=st.lists(st.tuples(st.sampled_from(["x", "y", None]), st.integers(0, 3),
                               st.decimals(-1000, 1000, places=6, allow_nan=False, allow_infinity=False)),
                     min_size=1, max_size=60),
       cuts=st.lists(st.integers(0, 60), max_size=6))
def test_merged_partials_equal_one_group_by(rows: list[tuple[str | None, int, Decimal]], cuts: list[int]) -> None:
    df = pl.DataFrame(rows, schema={"k": pl.String, "n": pl.Int64, "v": pl.Decimal(18, 6)}, orient="row")
    agg = _group_sum
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    partials = [agg(df.slice(a, b - a).lazy()) for a, b in itertools.pairwise(bounds)]
    merged = combine(partials, ["v", "rows"]).sort("k", "n", nulls_last=True)
    assert_frame_equal(merged, agg(df.lazy()).sort("k", "n", nulls_last=True), check_dtypes=False)


def _group_sum(lf: pl.LazyFrame) -> pl.DataFrame:
    return lf.group_by("k", "n").agg(pl.col("v").sum(), pl.len().cast(pl.Int64).alias("rows")).collect()


# -- the same answers for any cut ------------------------------------------------------------------
@pytest.fixture(scope="module")
def whole_chargeback(store: Store) -> dict:
    return reports.chargeback(store, config.parse(CFG), WEEK).to_json()


@SETTINGS
@given(data=st.data())
def test_chargeback_is_the_same_for_any_cut_of_the_store(store: Store, whole_chargeback: dict,
                                                         data: st.DataObject) -> None:
    k = data.draw(_rows_per_task(store))
    got = reports.chargeback(store, config.parse(CFG), WEEK, engine=LocalEngine(rows_per_task=k)).to_json()
    assert json.dumps(got, sort_keys=True) == json.dumps(whole_chargeback, sort_keys=True)


@SETTINGS
@given(data=st.data())
def test_validation_is_the_same_for_any_cut_of_the_store(store: Store, data: st.DataObject) -> None:
    whole = focus.validate(store.scan("billing", schema=FOCUS_SCHEMA))
    assert any(p.column == "PricingCategory" for p in whole)  # the fixture's malformed values are found
    k = data.draw(_rows_per_task(store))
    tallies = over_store(LocalEngine(rows_per_task=k), store, "billing", focus.tally, schema=FOCUS_SCHEMA)
    assert len(tallies) > 1 or k > 1000
    assert focus.problems(tallies) == whole


@SETTINGS
@given(data=st.data())
def test_reconciliation_sums_are_the_same_for_any_cut(store: Store, bill: pl.DataFrame, data: st.DataObject) -> None:
    k = data.draw(_rows_per_task(store))
    partials = over_store(LocalEngine(rows_per_task=k), store, "billing", reconcile.tag_sums)
    got = reconcile.tagged_cost(pl.concat(partials), summed=True)
    expected = reconcile.tagged_cost(bill.lazy())
    assert_frame_equal(got, expected)
    # and it is the bill's own sum of the tagged rows, to the cent
    by_hand: dict[int, Decimal] = {}
    for tags, cost in bill.select("Tags", "BilledCost").iter_rows():
        if tags and "finops-placement" in tags:
            pid = int(json.loads(tags)["finops-placement"])
            by_hand[pid] = by_hand.get(pid, Decimal(0)) + cost
    assert dict(zip(got["placement_id"], got["billed"], strict=True)) == by_hand


def test_rollups_on_pieces_equal_the_rollups_in_process(store: Store, tmp_path: Path) -> None:
    cfg = config.parse(CFG)
    here = Rollups(store, cfg, tmp_path / "a").billing().frame
    pieces = Rollups(store, cfg, tmp_path / "b", engine=LocalEngine(rows_per_task=1)).billing().frame
    keys = [c for c in here.columns if here.schema[c] != pl.Decimal]
    assert_frame_equal(here.sort(keys, nulls_last=True), pieces.sort(keys, nulls_last=True))


# -- ingest as tasks -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exports(clean_bill: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The bill as two FOCUS Parquet exports per provider of many small row groups."""
    root = tmp_path_factory.mktemp("exports")
    out = []
    for (provider,), rows in sorted(clean_bill.group_by("ProviderName"), key=lambda g: str(g[0])):
        half = rows.height // 2
        for i, part in enumerate((rows.head(half), rows.tail(rows.height - half))):
            path = root / f"{provider}-{i}.parquet"
            part.write_parquet(path, row_group_size=500)
            out.append(path)
    return out


def _snapshot(store: Store) -> tuple[list[tuple], pl.DataFrame]:
    ms = [(m.partition, m.rows, m.sums, sorted(s["sha256"] for s in m.sources)) for m in store.manifests("billing")]
    df = store.scan("billing").collect()
    return sorted(ms, key=str), df.sort(["ChargePeriodStart", "BilledCost", "ResourceId", "SkuId"], nulls_last=True)


@pytest.fixture(scope="module")
def ingested_here(exports: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple], pl.DataFrame]:
    s = Store(tmp_path_factory.mktemp("here") / "store")
    ingest_files(s, exports)
    return _snapshot(s)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(per_task=st.sampled_from([400, 1_000, 2_500, 10**9]))
def test_ingest_as_tasks_writes_what_ingest_writes(exports: list[Path], ingested_here: tuple, per_task: int,
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    store = Store(tmp_path_factory.mktemp("tasks") / "store")
    tasks = distributed.plan([str(p) for p in exports], None, per_task)
    assert len(tasks) >= len(exports) and (per_task > 5_000 or len(tasks) > len(exports))
    res = distributed.ingest(LocalEngine(rows_per_task=per_task), store, exports)
    assert res.rows == sum(f.rows for f in res.files) == ingested_here[1].height
    assert len(store.history("billing")) == 1  # one commit of every task's files
    manifests, data = _snapshot(store)
    assert manifests == ingested_here[0]
    assert_frame_equal(data, ingested_here[1])


def test_a_bad_file_among_the_tasks_writes_nothing(exports: list[Path], tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    distributed.ingest(LocalEngine(rows_per_task=1_000), store, exports[:1])
    before = (store.history("billing"), sorted(p.name for p in (tmp_path / "store").rglob("*.parquet")))
    bad = tmp_path / "bad.csv"
    bad.write_text("BilledCost,ChargePeriodStart\nnot money,yesterday\n")
    with pytest.raises(IngestError, match=r"bad\.csv"):
        distributed.ingest(LocalEngine(rows_per_task=1_000), store, [*exports[1:], bad])
    after = (store.history("billing"), sorted(p.name for p in (tmp_path / "store").rglob("*.parquet")))
    assert after == before  # no new version, and the finished tasks' placed files were removed


def test_an_unknown_engine_is_one_clear_error() -> None:
    with pytest.raises(EngineError, match="expected one of local, ray"):
        open_engine(config.parse({}).engine, "spark")
