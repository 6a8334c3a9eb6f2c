"""finops.exprs.recode: a dictionary lookup that keeps queries streaming."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from finops.exprs import recode

words = st.text(alphabet="abcXY-", min_size=0, max_size=3)


@given(st.dictionaries(words, words, max_size=6), st.lists(st.one_of(st.none(), words), max_size=40),
       st.sampled_from(["null", "keep", "value"]))
def test_recode_is_a_lookup_with_a_default(mapping: dict[str, str], values: list[str | None], how: str) -> None:
    default = {"null": None, "keep": pl.col("v"), "value": "other"}[how]
    got = pl.LazyFrame({"v": values}, schema={"v": pl.String}).select(
        recode(pl.col("v"), mapping, default=default).alias("r")).collect(engine="streaming")["r"].to_list()

    def want(v: str | None) -> str | None:
        if v is not None and v in mapping:
            return mapping[v]
        return {"null": None, "keep": v, "value": "other"}[how]

    assert got == [want(v) for v in values]
