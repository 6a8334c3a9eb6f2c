"""Configuration: the example is valid, errors name the file and key, secrets are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from finops import config


def test_the_example_is_valid_and_complete(tmp_path: Path) -> None:
    path = tmp_path / "finops.toml"
    path.write_text(config.EXAMPLE)
    cfg = config.load(path)
    assert cfg.store.url == "./finops-data"
    assert [t.name for t in cfg.teams] == ["ml-research", "vision"]
    assert cfg.providers["aws"].accounts[0].team == "ml-research"
    assert cfg.source == str(path)


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    cfg = config.load()
    assert cfg.source is None and cfg.store.url == config.DEFAULT_STORE
    assert cfg.ledger_url() == f"sqlite:///{(tmp_path / 'finops-data' / 'ledger.db')}"


def test_lookup_order_flag_then_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, url in (("finops.toml", "cwd"), ("env.toml", "env"), ("flag.toml", "flag")):
        (tmp_path / name).write_text(f'[store]\nurl = "{url}"\n')
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    assert config.load().store.url == "cwd"
    monkeypatch.setenv(config.ENV_VAR, str(tmp_path / "env.toml"))
    assert config.load().store.url == "env"
    assert config.load(tmp_path / "flag.toml").store.url == "flag"


def test_ledger_url_for_remote_store_and_explicit() -> None:
    assert config.parse({"store": {"url": "s3://b/p"}}).ledger_url().endswith("finops-ledger.db")
    assert config.parse({"ledger": {"url": "postgresql://h/db"}}).ledger_url() == "postgresql://h/db"


@pytest.mark.parametrize("text, fragments", [
    ('[store]\nurl = 5\n', ["store.url", "string", "5"]),
    ('[stor]\nurl = "x"\n', ["stor", "unknown key"]),
    ('[[teams]]\nname = "a"\nmonthly_budget = "lots"\n', ["teams[0].monthly_budget", "lots"]),
    ('[[teams]]\nmonthly_budget = 3\n', ["teams[0].name", "required key is missing"]),
    ('[providers.ibm]\n', ["providers.ibm", "unknown provider 'ibm'", "aws, gcp or azure"]),
    ('[[teams]]\nname = "a"\nhome_provider = "ibm"\n', ["teams[0].home_provider", "aws, gcp or azure"]),
    ('[prices]\nendpoints = { ibm = "http://x" }\n', ["prices.endpoints.ibm", "unknown provider"]),
    ('[[providers.gcp.billing]]\nkind = "cur"\n',
     ["gcp.billing[0].kind", "a gcp billing source cannot be of kind 'cur'", "expected bigquery-export"]),
    ('[[providers.aws.billing]]\nkind = "cux"\n', ["providers.aws.billing[0].kind", "unknown billing source kind 'cux'",
                                                   "cost-explorer"]),
    ('[[providers.azure.billing]]\nkind = "cost-management"\nmetrics = ["ActualCost"]\n',
     ["providers.azure.billing[0].metrics", "unknown key"]),
    ('[[teams]]\nname = "a"\n[[teams]]\nname = "a"\n', ["teams", "repeated: a"]),
    ('[store\n', ["not valid TOML"]),
])
def test_errors_name_file_key_and_expectation(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as e:
        config.load(path)
    msg = str(e.value)
    assert str(path) in msg
    for f in fragments:
        assert f in msg


def test_credentials_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[providers.aws]\naccounts = [{ id = "1", secret_access_key = "AKIA..." }]\n')
    with pytest.raises(config.ConfigError, match=r"providers.aws.accounts\[0\].secret_access_key: credentials"):
        config.load(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="no such configuration file"):
        config.load(tmp_path / "nope.toml")


@pytest.mark.parametrize("text", ['[store]\nurl = "s3://KEY:SECRET@bucket"\n',
                                  '[ledger]\nurl = "postgresql+psycopg://finops:SECRET@db/finops"\n',
                                  '[reports.webhook]\nurl = "https://user:SECRET@hooks.example.com/x"\n'])
def test_credentials_in_urls_are_refused_without_echoing_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match="credentials") as e:
        config.load(path)
    assert "SECRET" not in str(e.value)
    config.parse({"ledger": {"url": "postgresql+psycopg://finops@db/finops"},
                         "store": {"url": "s3://bucket/p", "endpoint_url": "http://localhost:9000"}})


@pytest.mark.parametrize("url", ["", "   "])
def test_an_empty_store_url_is_refused(url: str) -> None:
    with pytest.raises(config.ConfigError, match=r"store\.url: the store URL is empty"):
        config.parse({"store": {"url": url}})


def test_unreadable_config_files_are_sentences(tmp_path: Path) -> None:
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(config.ConfigError, match="not UTF-8"):
        config.load(binary)
    with pytest.raises(config.ConfigError, match="is a folder"):
        config.load(tmp_path)


def test_a_local_store_that_is_a_file_or_cannot_be_made(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(config.ConfigError, match="is a file"):
        config.parse({"store": {"url": str(f)}}).open_store()
    with pytest.raises(config.ConfigError, match="cannot create the store folder"):
        config.parse({"store": {"url": str(f / "sub")}}).open_store()
    config.parse({"store": {"url": str(tmp_path / "new")}}).check_store(create=False)
    assert not (tmp_path / "new").exists()
