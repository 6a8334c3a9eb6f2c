"""The provider registry (finops/providers.py): lookups, and that every collector it names keeps its
role's one signature."""

from __future__ import annotations

import inspect

import pytest

from finops import providers
from finops.generate import PROVIDER_KEYS


def test_clouds_in_order_and_lookups() -> None:
    assert providers.clouds() == ("aws", "gcp", "azure")
    assert providers.expected() == "aws, gcp or azure"
    assert providers.get("gcp").name == "Google Cloud"
    with pytest.raises(providers.UnknownProvider, match="unknown provider 'ibm': expected aws, gcp or azure"):
        providers.get("ibm")
    assert set(PROVIDER_KEYS) <= set(providers.clouds())  # the generator models registered clouds only


@pytest.mark.parametrize("name, key", [("Amazon Web Services, Inc.", "aws"), ("AWS", "aws"),
                                       ("Google Cloud", "gcp"), ("Microsoft", "azure"), ("Oracle", "oci"),
                                       ("Some Cloud, Inc.", "some-cloud-inc")])
def test_slug(name: str, key: str) -> None:
    assert providers.slug(name) == key


def test_spellings_cover_the_focus_names_in_their_usual_cases() -> None:
    assert {"AWS", "Amazon Web Services", "aws"} <= set(providers.spellings("aws"))
    assert {"Microsoft", "MICROSOFT", "microsoft azure"} <= set(providers.spellings("azure"))
    assert all(providers.slug(s) == "gcp" for s in providers.spellings("gcp"))


def test_regions_come_from_the_one_table() -> None:
    assert providers.get("gcp").jurisdiction("europe-west4") == "EU"
    assert providers.get("aws").jurisdiction("eu-west-2") == "UK"


def _params(fn: object) -> list[tuple[str, object]]:
    """The parameters every caller passes (the required ones, and ``settings``); a module may add
    keyword-only tuning with defaults (tests shorten retries through them)."""
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
            if (p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
            or p.name == "settings"]


@pytest.mark.parametrize("key, kind", [(k, kind) for k in providers.clouds()
                                       for kind in providers.get(k).billing_kinds])
def test_every_billing_collector_has_the_one_shape(key: str, kind: str) -> None:
    mod = providers.get(key).billing_module(kind)
    positional, keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    assert _params(mod.collect)[1:] == [("source", positional), ("cursor", positional), ("since", positional),
                                        ("settings", keyword)]
    assert [n for n, _ in _params(mod.make_client)] == ["source"]
    assert [n for n, _ in _params(mod.source_id)] == ["source", "settings"]
    assert not hasattr(mod, "chunks") and not hasattr(mod, "client")  # one name per role


@pytest.mark.parametrize("key", providers.clouds())
def test_every_price_collector_has_the_one_shape(key: str) -> None:
    mod = providers.resolve(providers.get(key).prices)
    sig = inspect.signature(mod.collect).parameters
    assert list(sig)[1:2] == ["regions"] and {"observed_at", "progress"} <= set(sig)
    assert all(sig[n].kind is inspect.Parameter.KEYWORD_ONLY for n in ("observed_at", "progress"))
    assert next(iter(inspect.signature(mod.make_client).parameters)) == "endpoint"


@pytest.mark.parametrize("key", providers.clouds())
def test_native_formats_belong_to_their_cloud(key: str) -> None:
    formats = providers.resolve(providers.get(key).native_formats)
    assert formats and {f.provider for f in formats} == {key}


def test_an_unknown_billing_kind_names_the_expected_ones() -> None:
    with pytest.raises(providers.UnknownProvider, match=r"cannot be of kind 'cur' \(expected bigquery-export\)"):
        providers.get("gcp").billing_module("cur")


@pytest.mark.parametrize("rules, key, value, ok", [
    (providers.AWS_TAGS, "finops-team", "ML Research", True),
    (providers.AWS_TAGS, "aws:team", "x", False),            # reserved prefix
    (providers.AWS_TAGS, "finops-team", "a" * 257, False),   # values ≤ 256
    (providers.GCP_LABELS, "finops-team", "ml-research", True),
    (providers.GCP_LABELS, "finops-team", "ML-Research", False),  # lower case only
    (providers.GCP_LABELS, "finops-placement", "a" * 64, False),  # ≤ 63
    (providers.GCP_LABELS, "9team", "x", False),              # keys start with a letter
    (providers.AZURE_TAGS, "finops-workload", "train/llm?v=2", True),  # values may hold anything
    (providers.AZURE_TAGS, "finops/workload", "x", False),    # names may not hold < > % & \ ? /
    (providers.AZURE_TAGS, "Microsoft.team", "x", False),     # reserved prefix
])
def test_label_rules(rules: providers.LabelRules, key: str, value: str, ok: bool) -> None:
    assert (rules.problems(key, value) == []) is ok


def test_fit_makes_a_value_every_cloud_accepts() -> None:
    for rules in (providers.AWS_TAGS, providers.GCP_LABELS, providers.AZURE_TAGS):
        value = rules.fit("ML Research/#1 " + "x" * 300)
        assert rules.problems("finops-team", value) == []
    assert providers.GCP_LABELS.fit("ML Research") == "ml-research"
