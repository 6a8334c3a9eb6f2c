"""Workload specs from YAML: valid forms, and errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from finops.workloads import SpecError, load, loads

GOOD = """\
workloads:
  - name: llm-pretrain
    team: nlp
    accelerators: {name: H100, count: 8}
    runtime_hours: 72
    checkpoint_minutes: 30
    residency: [eu]
    dataset: {provider: aws, region: eu-west-1, size_gb: 2000}
  - name: chat-serve
    team: nlp
    kind: serve
    accelerators: {any_of: [L4, A10G], count: 1}
    hours_per_week: 168
    replicas: 4
    spread: 2
    spot: never
  - name: finetune
    team: vision
    accelerators: {min_memory_gb: 80}
    runtime_hours: 3
"""


def test_good_specs_load_in_every_form(tmp_path: Path) -> None:
    specs = loads(GOOD, "q.yaml")
    assert [s.name for s in specs] == ["llm-pretrain", "chat-serve", "finetune"]
    assert specs[0].residency == ["EU"] and specs[0].accelerators.names() == ["H100"]
    assert specs[1].accelerators.names() == ["A10G", "L4"] and specs[1].markets() == ["on_demand"]
    assert set(specs[2].accelerators.names()) >= {"A100-80GB", "H100", "H200", "MI300X"}
    assert "A100-40GB" not in specs[2].accelerators.names()
    assert specs[1].base_hours == pytest.approx(168 * 730 / 168)
    single = loads("name: a\nteam: t\naccelerators: {name: A100}\nruntime_hours: 1\n")
    assert single[0].accelerators.names() == ["A100-40GB", "A100-80GB"]
    f = tmp_path / "q.yaml"
    f.write_text(GOOD)
    assert len(load(f)) == 3


@pytest.mark.parametrize(("text", "line", "field", "words"), [
    ("- name: a\n  team: t\n  accelerators:\n    name: A200\n  runtime_hours: 1\n", 3, "[0].accelerators",
     "unknown accelerator 'A200'"),
    ("- name: a\n  team: t\n  runtime_hours: 1\n  regions: [us-east-1, mars-1]\n", 4, "[0].regions", "mars-1"),
    ("- name: a\n  team: t\n  runtime_hours: 1\n- name: b\n  team: t\n  runtime_hours: -3\n", 6,
     "[1].runtime_hours", "greater than 0"),
    ("- name: a\n  team: t\n  runtime_hours: 5\n  spot: required\n  deadline: 2030-01-01T00:00:00Z\n", 1, "[0]",
     "checkpoint_minutes"),
    ("- name: a\n  team: t\n  runtime_hours: 5\n  gpus: 8\n", 4, "[0].gpus", "unknown field"),
    ("- name: a\n  team: t\n  kind: serve\n", 1, "[0]", "hours_per_week"),
    ("- name: a\n  team: t\n  runtime_hours: 1\n  residency: [Atlantis]\n", 4, "[0].residency", "Atlantis"),
    ("- name: a\n  team: t\n  runtime_hours: 1\n  accelerators: {name: A100, any_of: [T4]}\n", 4, "[0].accelerators",
     "exactly one"),
    ("- name: a\n  team: t\n  kind: serve\n  hours_per_week: 10\n  replicas: 4\n  spread: 4\n", 1, "[0]",
     "only 3 providers"),  # the registry's clouds, not a number written into the spec model
])
def test_bad_specs_name_file_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(SpecError) as e:
        loads(text, "jobs.yaml")
    msg = str(e.value)
    assert f"jobs.yaml:{line}: {field}" in msg, msg
    assert words in msg


def test_yaml_syntax_and_shape_errors() -> None:
    with pytest.raises(SpecError, match=r"jobs.yaml:2: not valid YAML"):
        loads("name: a\n  team: [\n", "jobs.yaml")
    with pytest.raises(SpecError, match="expected a workload mapping"):
        loads("- 1\n- 2\n", "jobs.yaml")
    with pytest.raises(SpecError, match="repeated in the file: a"):
        loads("- {name: a, team: t, runtime_hours: 1}\n- {name: a, team: t, runtime_hours: 2}\n", "jobs.yaml")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as e:
        loads("- {name: a, team: t, runtime_hours: -1}\n- {name: b, team: t, runtime_hours: 1, priority: 99}\n", "q")
    assert "q:1: [0].runtime_hours" in str(e.value) and "q:2: [1].priority" in str(e.value)


@pytest.mark.parametrize(("field", "yaml_value"), [
    ("runtime_hours", ".inf"), ("runtime_hours", ".nan"), ("runtime_hours", "1e308"),
    ("checkpoint_minutes", ".inf"), ("min_vcpus", "1e12"), ("min_memory_gb", ".inf"),
    ("accelerators", "{name: H100, count: .inf}"), ("accelerators", "{name: H100, count: 1e9}"),
    ("accelerators", "{min_memory_gb: .nan}"), ("dataset", "{provider: aws, region: us-east-1, size_gb: .inf}"),
    ("replicas", "100000000000000000000000000"),
])
def test_every_number_in_a_spec_is_finite_and_bounded(field: str, yaml_value: str) -> None:
    kind = "kind: serve\nhours_per_week: 10\n" if field == "replicas" else "runtime_hours: 5\n"
    text = f"name: a\nteam: t\n{kind}{field}: {yaml_value}\n"
    if field == "runtime_hours":
        text = f"name: a\nteam: t\nruntime_hours: {yaml_value}\n"
    with pytest.raises(SpecError) as e:
        loads(text, "jobs.yaml")
    assert f"jobs.yaml:{text.count(chr(10))}: {field}" in str(e.value)
    assert "finite" in str(e.value) or "less than or equal" in str(e.value)


def test_teams_are_configured_teams_once_listed() -> None:
    from finops import config

    cfg = config.parse({"teams": [{"name": "ml-research", "aliases": ["research"]}, {"name": "vision"}],
                        "allocation": {"aliases": {"vision": ["cv"]}}})
    specs = loads("- {name: a, team: ML_Research, runtime_hours: 1}\n- {name: b, team: ' Research', runtime_hours: 1}\n"
                  "- {name: c, team: CV, runtime_hours: 1}\n- {name: d, team: Vision, runtime_hours: 1}\n", "q", cfg)
    assert [s.team for s in specs] == ["ml-research", "ml-research", "vision", "vision"]
    with pytest.raises(SpecError, match=r"q:2: \[1\].team: unknown team 'nlp'.*\(ml-research, vision\)"):
        loads("- {name: a, team: vision, runtime_hours: 1}\n- {name: b, team: nlp, runtime_hours: 1}\n", "q", cfg)
    assert loads("name: a\nteam: Anything\nruntime_hours: 1\n", "q", config.Config())[0].team == "Anything"
