"""README.md's "A tour", run line by line, in order, in a fresh folder, as a new user would (issue 11).

The lines are read from the ```sh block under "## A tour", so the test follows the README. Each must exit
0, except the ones the README marks "needs credentials": with no credentials anywhere, each of those must
fail with exit status 2 and one `error:` line per source or provider it could not read (nothing else on
stderr: no SDK dump, never a traceback).

How the lines are run:

- ``. .venv/bin/activate`` is the environment this test runs in (the venv's ``bin`` first on PATH).
- COLUMNS is 1000, so a message is one line however long (rich wraps at the terminal's width).
- Each line runs in ``sh`` (so ``exports/*/*.parquet`` is expanded by the shell, as for a user).
- Smaller than written, to keep the test under a minute: ``--rows 1000000`` runs as ``--rows 20000``.
- ``--week 2026-W47`` runs as the week before the last complete one: a README names a fixed week, the
  generated bill ends today.
- No credentials and no network: AWS_*/GOOGLE_*/AZURE_* variables are removed, HOME is the test's folder,
  the instance-metadata services are disabled or pointed at a closed loopback port, and every HTTP(S)
  proxy variable names that port. Where ``unshare -rn`` works (a user and network namespace), each line
  also runs in a network namespace of its own, where no address but loopback exists.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from finops.periods import Week

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there
NEEDS_CREDENTIALS = "needs credentials"
SMALLER = {"--rows 1000000": "--rows 20000"}


def tour_lines(text: str) -> list[tuple[str, str]]:
    """(command, comment) for each line of the ```sh block under "## A tour"."""
    section = text.split("\n## A tour\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "README.md: no ```sh block under ## A tour"
    lines = []
    for raw in block.group(1).splitlines():
        if not raw.strip():
            continue
        command = " ".join(shlex.split(raw, comments=True))  # what the shell runs: the comment dropped
        comment = raw[len(raw.split("#", 1)[0]):] if "#" in raw else ""
        lines.append((command.strip(), comment))
    return lines


def as_run(command: str) -> str:
    """The command as this test runs it (see the module docstring)."""
    for written, smaller in SMALLER.items():
        command = command.replace(written, smaller)
    earlier = Week.containing((Week.last_complete().start - timedelta(days=7)).date())
    return re.sub(r"--week \d{4}-W\d{2}", f"--week {earlier.label}", command)


def _env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "GOOGLE_", "AZURE_", "CLOUDSDK_", "GCE_", "MSI_", "IDENTITY_", "FINOPS_"))
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    proxy = f"http://{CLOSED}"
    return keep | {
        "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "1000",
        "VIRTUAL_ENV": str(BIN.parent),
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": proxy,
        "AWS_CONFIG_FILE": str(home / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "NO_GCE_CHECK": "True", "GCE_METADATA_HOST": CLOSED, "GCE_METADATA_IP": CLOSED,
        "CLOUDSDK_CONFIG": str(home / "no-gcloud"),
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": proxy, "AZURE_CONFIG_DIR": str(home / "no-azure"),
        "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": proxy,
        "http_proxy": proxy, "https_proxy": proxy, "all_proxy": proxy, "NO_PROXY": "", "no_proxy": "",
    }


def _isolated() -> list[str]:
    """``unshare -rn`` (a network namespace with loopback only) where it works, else nothing."""
    tool = shutil.which("unshare")
    if tool and subprocess.run([tool, "-rn", "true"], capture_output=True, check=False).returncode == 0:
        return [tool, "-rn"]
    return []


def test_tour_lines_are_read_from_the_readme() -> None:
    lines = tour_lines(README.read_text())
    commands = [c for c, _ in lines]
    assert commands[0] == ". .venv/bin/activate" and commands[1] == "finops init"
    assert "finops queue add jobs.yaml" in commands and "finops placements" in commands
    assert commands.index("finops prices import-catalog") < commands.index("finops place --dry-run")
    credentialed = [c for c, note in lines if NEEDS_CREDENTIALS in note]
    assert credentialed == ["finops collect billing", "finops accounts", "finops collect prices"]
    assert as_run("finops generate --rows 1000000 --out exports") == "finops generate --rows 20000 --out exports"
    assert re.fullmatch(r"finops report chargeback --week \d{4}-W\d{2} --as-of 0",
                        as_run("finops report chargeback --week 2026-W47 --as-of 0"))


def test_the_tour_as_written(tmp_path: Path) -> None:
    home = tmp_path / "tour"
    home.mkdir()
    env, prefix = _env(home), _isolated()
    for command, note in tour_lines(README.read_text()):
        if command == ". .venv/bin/activate":
            continue  # the environment this test runs in
        line = as_run(command)
        proc = subprocess.run([*prefix, "sh", "-c", line], cwd=home, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        shown = f"$ {line}\nexit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, shown
        if NEEDS_CREDENTIALS in note:
            # one line per source or provider that could not be read, and nothing else (no SDK dump)
            said = [x for x in proc.stderr.splitlines() if x.strip()]
            assert proc.returncode == 2 and said and all(x.startswith("error:") for x in said), shown
        else:
            assert proc.returncode == 0, shown
        _check(command, proc, home)


def _check(command: str, proc: subprocess.CompletedProcess[str], home: Path) -> None:
    """What a line should have left behind, where the README promises something."""
    if command == "finops init":
        assert (home / "finops.toml").is_file() and (home / "jobs.yaml").is_file()
    elif command == "finops queue add jobs.yaml":
        assert "queued 3 workload(s)" in proc.stderr
    elif command == "finops place --dry-run":
        assert re.search(r"[1-9]\d* placed", proc.stdout), proc.stdout  # the snapshot is placed on
        assert "days old" in proc.stdout  # ... and the plan says how old its prices are
    elif command == "finops dispatch":
        assert re.search(r"Dispatch: [1-9]\d* submitted", proc.stdout), proc.stdout
        assert "dry run: recorded" in proc.stderr
    elif command == "finops jobs":
        assert "llm-finetune" in proc.stdout and "submitted" in proc.stdout
    elif command == "finops reconcile":
        assert "Reconciliation:" in proc.stdout
    elif command == "finops placements":
        assert "llm-finetune" in proc.stdout and "Recorded placements" in proc.stdout
    elif command == "finops demo --once":
        # finops.toml (from init) lists teams: the demo used them, wrote no file and says so
        assert "allocated by the teams in finops.toml" in proc.stdout
        assert not (home / "finops-demo.toml").exists()


@pytest.mark.parametrize("command", ["finops init", "finops demo --once", "finops dispatch", "finops reconcile"])
def test_tour_commands_are_finops_commands(command: str) -> None:
    assert command in [c for c, _ in tour_lines(README.read_text())]


# -- the demo's configuration: written where it says, and reproducing its report ----------------------
def _run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    from tests.test_cli import run

    return run(cwd, *args, check=check)


def _teams_csv(files: list[str], cwd: Path) -> str:
    return next((cwd / f).read_text() for f in files if f.endswith("-teams.csv"))


def test_demo_writes_its_rules_to_finops_toml_and_the_report_reproduces(tmp_path: Path) -> None:
    import json

    res = json.loads(_run(tmp_path, "demo", "--days", "14", "--teams", "3", "--json").stdout)
    written = tmp_path / "finops.toml"
    assert res["config"] == "finops.toml" and written.read_text().startswith("# Written by `finops demo`")
    demo_teams = _teams_csv(res["chargeback"], tmp_path)
    again = json.loads(_run(tmp_path, "report", "chargeback", "--json").stdout)
    assert _teams_csv(again["files"], tmp_path) == demo_teams  # the same report, from finops.toml alone
    assert all(team in demo_teams for team in ("ml-research", "ml-platform", "recsys"))
    # run again with other teams: the demo's own file is rewritten for them
    res = json.loads(_run(tmp_path, "demo", "--days", "14", "--teams", "2", "--json").stdout)
    assert res["config"] == "finops.toml" and "recsys" not in written.read_text()
    text = _run(tmp_path, "demo", "--days", "14", "--teams", "2", "--once").stdout
    assert "are in finops.toml: `finops report chargeback` reproduces it" in text


def test_demo_never_overwrites_a_users_config(tmp_path: Path) -> None:
    import json

    mine = '[store]\nurl = "./data"\n\n[reports]\nout = "./out"\n'
    (tmp_path / "finops.toml").write_text(mine)
    res = json.loads(_run(tmp_path, "demo", "--days", "14", "--teams", "2", "--json").stdout)
    assert (tmp_path / "finops.toml").read_text() == mine
    assert res["config"] == "finops-demo.toml"
    demo_cfg = (tmp_path / "finops-demo.toml").read_text()
    assert 'url = "./data"' in demo_cfg and 'out = "./out"' in demo_cfg  # the rest of the user's settings kept
    again = json.loads(_run(tmp_path, "-c", "finops-demo.toml", "report", "chargeback", "--json").stdout)
    assert _teams_csv(again["files"], tmp_path) == _teams_csv(res["chargeback"], tmp_path)
    text = _run(tmp_path, "demo", "--days", "14", "--teams", "2", "--once").stdout
    assert "`finops -c finops-demo.toml report chargeback` reproduces it" in text
    # a finops-demo.toml the demo did not write is refused before anything is done
    (tmp_path / "finops-demo.toml").write_text("# mine\n")
    (tmp_path / "demo-exports").rename(tmp_path / "old-exports")
    proc = _run(tmp_path, "demo", "--days", "14", "--teams", "2", "--once", check=False)
    assert proc.returncode == 2 and "finops-demo.toml exists and was not written by `finops demo`" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (tmp_path / "finops-demo.toml").read_text() == "# mine\n" and not (tmp_path / "demo-exports").exists()


def test_demo_config_path_rules(tmp_path: Path) -> None:
    from finops import config
    from finops.services.demo import DEMO_HEADER, GenerateError, demo_config_path

    assert demo_config_path(config.Config(), tmp_path) == tmp_path / "finops.toml"
    (tmp_path / "finops.toml").write_text("")
    loaded = config.Config(source=str(tmp_path / "finops.toml"))
    assert demo_config_path(loaded, tmp_path) == tmp_path / "finops-demo.toml"
    (tmp_path / "finops-demo.toml").write_text(f"{DEMO_HEADER} …\n")
    assert demo_config_path(loaded, tmp_path) == tmp_path / "finops-demo.toml"
    (tmp_path / "finops-demo.toml").write_text("[store]\n")
    with pytest.raises(GenerateError, match="not written by `finops demo`"):
        demo_config_path(loaded, tmp_path)


def test_config_toml_round_trips_through_config_load(tmp_path: Path) -> None:
    import tomllib

    from finops import config
    from finops.generate import make_org
    from finops.services.demo import config_dump, demo_rules, to_toml, write_config

    example = config.parse(tomllib.loads(config.EXAMPLE), "example")
    for cfg in (example, demo_rules(example, make_org(6, 0)), demo_rules(config.Config(), make_org(16, 3)),
                config.Config()):
        text = to_toml(config_dump(cfg))
        assert config.parse(tomllib.loads(text)).model_dump() == cfg.model_dump()
        write_config(cfg, tmp_path / "c.toml")
        assert config.load(tmp_path / "c.toml").model_dump() == cfg.model_dump()
    assert not list(tmp_path.glob(".*.tmp"))


def test_toml_writer_round_trips_any_text() -> None:
    import tomllib
    from decimal import Decimal

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from finops.services.demo import to_toml

    text = st.text(st.characters(codec="utf-8"), max_size=20)
    scalar = st.one_of(text, st.booleans(), st.integers(-(2**63), 2**63 - 1),
                       st.floats(allow_nan=False), st.lists(text, max_size=3))
    flat = st.dictionaries(text, scalar, max_size=3)
    table = st.dictionaries(text, st.one_of(scalar, flat, st.lists(flat, max_size=3),
                                            st.dictionaries(text, flat, max_size=2)), max_size=4)
    doc = st.dictionaries(text, st.one_of(table, st.lists(table, min_size=1, max_size=2)), max_size=3)

    @settings(max_examples=300, deadline=None)
    @given(doc)
    def check(data: dict) -> None:
        assert tomllib.loads(to_toml(data)) == data

    check()
    assert tomllib.loads(to_toml({"t": {"a": Decimal(70), "b": Decimal("0.125")}})) == {"t": {"a": 70, "b": 0.125}}
