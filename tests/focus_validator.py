"""Run the FinOps Foundation's ``focus-validator`` (PyPI, 2.2.1) on a FOCUS 1.2 file from the tests.

The validator needs Python >= 3.12 (and numpy<2), so it lives in its own venv, built by
``.ci/focus-validator.sh`` (default ``<repo>/.venv-focus-validator``, override with
``FOCUS_VALIDATOR_VENV``).  This module is a helper, not a test file.

How it is invoked (one subprocess per file)::

    cd <venv>/lib/python3.12/site-packages        # the folder that CONTAINS focus_validator/
    LOGGING_CONFIG=<tmp>/logging.yaml PYTHONIOENCODING=utf-8 \
    <venv>/bin/focus-validator --data-file /abs/path/data.csv \
        --validate-version 1.2 --block-download --output-type console \
        --applicability-criteria ALL

* The working directory matters: 2.2.1 opens ``focus_validator/rules/currency_codes.csv``
  relative to the cwd (FileNotFoundError from anywhere else, including from inside the
  package folder itself).  The rule model ``rules/model-1.2.0.1.json`` is found via
  importlib, and ``--block-download`` keeps it from asking GitHub for newer models.
* Input: the file name must end in ``.csv`` or ``.parquet`` (nothing else, no ``.csv.gz``).
* ``LOGGING_CONFIG`` replaces the packaged logging config, which would otherwise write a
  DEBUG log file ``focus_validator_detailed.log`` into the cwd (site-packages); ours sends
  warnings (e.g. "Dropped column ... due to datetime conversion issues") to stderr.
* The exit code is 0 whether rules fail or not; it is non-zero only on a crash.  The verdict
  is parsed from the console report (``<icon> <RuleId>: PASS|FAIL|SKIPPED (...)`` lines plus
  a ``--- Failures ---`` section with the message and the spec's MustSatisfy text).
* ``--applicability-criteria ALL`` declares every provider feature supported, which turns on
  the conditional rules (without it 441 of 578 rules are skipped and the dataset root rule
  is reported SKIPPED).

Verdict (``ValidatorResult.passed``): the validator reports a failing leaf even when an OR
composite above it passes (e.g. ``InvoiceId-C-004-C`` "MUST be null" is one branch of an OR
with "MUST NOT be null").  A failure therefore *blocks* only if no ancestor rule passed, it
has no failed child of its own (composites that failed because a child failed are explained
by that child), and it is not in ``KNOWN_UPSTREAM_FALSE_POSITIVES``.

What a pass does NOT prove (2.2.1 behaviour, so our own conform() must check these):
"MUST be one of the allowed values" passes once any row (or any null) is present next to an
allowed value; conditions "ChargeClass is not Correction" compile to ``ChargeClass IS NOT NULL
AND ...`` and so never apply to ordinary rows; CSV date/times like ``2024-09-01 00:00:00``
(no T/Z) are parsed and accepted; subcategory/category pairs are checked the same loose way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = REPO_ROOT / ".ci" / "focus-validator.sh"
FOCUS_VERSION = "1.2"
DEFAULT_TIMEOUT_S = 600.0
NO_PYTHON_EXIT = 3  # exit code of the setup script when no Python >= 3.12 exists

# Rules of the 1.2 model (model-1.2.0.1.json) that fail on any realistic dataset:
KNOWN_UPSTREAM_FALSE_POSITIVES: frozenset[str] = frozenset(
    {
        # "MUST be null when not tied to an invoice": the condition is not encoded, so it
        # demands InvoiceId null on every row.  It is one branch of an OR (InvoiceId-C-003-C).
        "InvoiceId-C-004-C",
        # Condition written as {"AND": [...]} without "CheckFunction": the validator drops it,
        # so CapacityReservationStatus must be non-null on every row.
        "CapacityReservationStatus-C-004-C",
        # Condition inverted (CommitmentDiscountId IS NULL instead of IS NOT NULL): contradicts
        # CommitmentDiscountStatus-C-003-C on every row without a commitment discount.
        "CommitmentDiscountStatus-C-004-C",
    }
)

_LOGGING_YAML = """\
version: 1
disable_existing_loggers: false
handlers:
  stderr: {class: logging.StreamHandler, stream: ext://sys.stderr, level: WARNING}
root: {level: WARNING, handlers: [stderr]}
"""
_STATUS_RE = re.compile(r"^\S+ (?P<id>[A-Za-z]+-[A-Z]-\d+-[A-Z]): (?P<status>PASS|FAIL|SKIPPED)\b")
_FAILURE_RE = re.compile(r"^- (?P<id>[A-Za-z]+-[A-Z]-\d+-[A-Z]): violations=(?P<v>[^;]*); (?P<msg>.*)$")


class ValidatorError(RuntimeError):
    """The validator could not be set up or crashed (as opposed to reporting rule failures)."""


@dataclass(frozen=True)
class RuleFailure:
    """One rule reported FAIL by the validator."""

    rule_id: str
    violations: str  # row count for leaf checks, "1" for a failed composite
    message: str
    must_satisfy: str = ""


@dataclass(frozen=True)
class ValidatorResult:
    """Parsed outcome of one validator run."""

    passed: bool
    failed_rules: list[RuleFailure]  # every FAIL, in report order
    blocking: list[str]  # the failures that make `passed` False (see module docstring)
    statuses: dict[str, str]  # rule id -> PASS / FAIL / SKIPPED
    raw_output: str  # stdout (the console report)
    stderr: str
    command: list[str]
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)  # Total / Pass / Fail / Skipped

    @property
    def failed_rule_ids(self) -> list[str]:
        """Ids of all failed rules, in report order."""
        return [f.rule_id for f in self.failed_rules]


@cache
def ensure_validator_venv() -> Path | None:
    """Run ``.ci/focus-validator.sh`` and return the venv path, or None if no Python >= 3.12.

    Raises ValidatorError when the install itself fails (e.g. no package registry).
    """
    proc = subprocess.run(
        ["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=1800, check=False
    )
    if proc.returncode == NO_PYTHON_EXIT:
        return None
    if proc.returncode != 0:
        raise ValidatorError(f"{SETUP_SCRIPT} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def validator_python_available() -> bool:
    """True when a Python >= 3.12 exists and the validator venv is (now) installed."""
    return ensure_validator_venv() is not None


def validator_site_packages(venv: Path) -> Path:
    """The site-packages folder of ``venv`` that contains ``focus_validator/``."""
    hits = sorted(venv.glob("lib/python3.*/site-packages/focus_validator"))
    if not hits:
        raise ValidatorError(f"focus_validator is not installed in {venv}")
    return hits[-1].parent


def model_json(venv: Path, version: str = FOCUS_VERSION) -> Path:
    """Path of the packaged rule model for ``version`` (e.g. ``model-1.2.0.1.json``)."""
    rules = validator_site_packages(venv) / "focus_validator" / "rules"
    hits = sorted(rules.glob(f"model-{version}*.json"))
    if not hits:
        raise ValidatorError(f"no model-{version}*.json in {rules}")
    return hits[-1]


def model_enumerations(model: Path) -> dict[str, object]:
    """Allowed-value lists of the rule model, as written to ``validator_enums_1_2.json``.

    Columns whose "MUST be one of the allowed values" rule is an OR of CheckValue items map to
    their value list; ``ServiceSubcategory`` maps each subcategory to its parent ServiceCategory
    (rule ServiceSubcategory-C-004-M); ``ChargeClass`` holds the single value of
    ChargeClass-C-005-C.  ``CurrencyCode`` is the validator's ``rules/currency_codes.csv``.
    """
    doc = json.loads(model.read_text())
    details = doc["Details"]
    out: dict[str, object] = {
        "_source": f"focus_validator/rules/{model.name} (ModelVersion {details['ModelVersion']}, "
        f"FOCUSVersion {details['FOCUSVersion']}) and rules/currency_codes.csv; "
        "regenerate with tests/focus_validator.py:model_enumerations",
        "_note": "CommitmentDiscountStatus here is the model's list; the FOCUS 1.2 spec allows "
        "Used/Unused. Allowed-value rules are only checked loosely by the validator "
        "(an OR over the whole column), so enforce these lists in our own code.",
    }
    for rid, rule in doc["ModelRules"].items():
        req = rule["ValidationCriteria"]["Requirement"]
        items = req.get("Items") or []
        if rid == "ServiceSubcategory-C-004-M":
            pairs = [{i["ColumnName"]: i["Value"] for i in pair["Items"]} for pair in items]
            out["ServiceSubcategory"] = {p["ServiceSubcategory"]: p["ServiceCategory"] for p in pairs}
        elif rid == "ChargeClass-C-005-C":
            out["ChargeClass"] = [req["Value"]]
        elif (
            rule["ValidationCriteria"]["MustSatisfy"].endswith("MUST be one of the allowed values.")
            and req.get("CheckFunction") == "OR"
            and rule["Reference"] != "ServiceSubcategory"
        ):
            out[rule["Reference"]] = [i["Value"] for i in items]
    codes = (model.parent / "currency_codes.csv").read_text().split()[1:]
    out["CurrencyCode"] = sorted(line.split(",")[1] for line in codes)
    return out


@cache
def _parents(model: Path) -> dict[str, set[str]]:
    """Map rule id -> ids of the rules whose Requirement references it (CheckModelRule)."""

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["ModelRuleId"]] if node.get("CheckFunction") == "CheckModelRule" else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    parents: dict[str, set[str]] = {}
    for rid, rule in json.loads(model.read_text())["ModelRules"].items():
        for child in refs(rule["ValidationCriteria"]["Requirement"]):
            parents.setdefault(child, set()).add(rid)
    return parents


def _blocking(statuses: dict[str, str], parents: dict[str, set[str]], ignore: frozenset[str]) -> list[str]:
    children: dict[str, set[str]] = {}
    for child, ps in parents.items():
        for p in ps:
            children.setdefault(p, set()).add(child)

    def has_passing_ancestor(rid: str, seen: set[str]) -> bool:
        for p in parents.get(rid, ()):
            if p not in seen:
                seen.add(p)
                if statuses.get(p) == "PASS" or has_passing_ancestor(p, seen):
                    return True
        return False

    return [
        rid
        for rid, st in statuses.items()
        if st == "FAIL"
        and rid not in ignore
        and not any(statuses.get(c) == "FAIL" for c in children.get(rid, ()))
        and not has_passing_ancestor(rid, set())
    ]


def _parse_failures(stdout: str) -> list[RuleFailure]:
    _, sep, tail = stdout.partition("--- Failures ---")
    out: list[RuleFailure] = []
    cur: dict[str, str] | None = None
    for line in tail.splitlines() if sep else []:
        m = _FAILURE_RE.match(line)
        if m:
            if cur:
                out.append(RuleFailure(**cur))
            cur = {"rule_id": m["id"], "violations": m["v"], "message": m["msg"], "must_satisfy": ""}
        elif cur is not None and line.startswith("  MustSatisfy: "):
            cur["must_satisfy"] = line.removeprefix("  MustSatisfy: ")
        elif cur is not None and line.strip():
            key = "must_satisfy" if cur["must_satisfy"] else "message"
            cur[key] += "\n" + line
    if cur:
        out.append(RuleFailure(**cur))
    return out


def run_focus_validator(
    data_path: Path,
    *,
    applicability_criteria: str | None = "ALL",
    ignore: frozenset[str] = KNOWN_UPSTREAM_FALSE_POSITIVES,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> ValidatorResult:
    """Validate ``data_path`` (.csv or .parquet) against the FOCUS 1.2 rules of focus-validator.

    ``applicability_criteria`` is passed as ``--applicability-criteria`` ("ALL", a comma list
    of criteria ids, or None for the validator's default of none).  ``ignore`` lists rule ids
    whose failure does not count towards ``passed`` (they are still in ``failed_rules``).
    Raises ValidatorError if no Python >= 3.12 exists, the venv cannot be built, the run
    crashes or times out.
    """
    data_path = Path(data_path).resolve()
    if data_path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"focus-validator reads only *.csv and *.parquet, not {data_path.name}")
    venv = ensure_validator_venv()
    if venv is None:
        raise ValidatorError("no Python >= 3.12 for focus-validator (see .ci/focus-validator.sh)")
    site = validator_site_packages(venv)
    cmd = [
        str(venv / "bin" / "focus-validator"),
        "--data-file", str(data_path),
        "--validate-version", FOCUS_VERSION,
        "--block-download",
        "--output-type", "console",
    ]  # fmt: skip
    if applicability_criteria:
        cmd += ["--applicability-criteria", applicability_criteria]
    with tempfile.TemporaryDirectory(prefix="focus-validator-") as tmp:
        log_cfg = Path(tmp) / "logging.yaml"
        log_cfg.write_text(_LOGGING_YAML)
        env = {**os.environ, "LOGGING_CONFIG": str(log_cfg), "PYTHONIOENCODING": "utf-8"}
        start = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, cwd=site, env=env, capture_output=True, text=True, encoding="utf-8", timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ValidatorError(f"focus-validator timed out after {timeout}s on {data_path}") from exc
        seconds = time.monotonic() - start
    if proc.returncode != 0 or "=== Validation Results ===" not in proc.stdout:
        raise ValidatorError(
            f"focus-validator crashed ({proc.returncode}) on {data_path}:\n{proc.stderr[-4000:]}"
        )
    statuses = {
        m["id"]: m["status"] for line in proc.stdout.splitlines() if (m := _STATUS_RE.match(line))
    }
    counts_m = re.search(r"Total: (\d+) \| Pass: (\d+) \| Fail: (\d+) \| Skipped: (\d+)", proc.stdout)
    names = ("total", "pass", "fail", "skipped")
    counts = dict(zip(names, map(int, counts_m.groups()), strict=True)) if counts_m else {}
    blocking = _blocking(statuses, _parents(model_json(venv)), ignore)
    return ValidatorResult(
        passed=not blocking,
        failed_rules=_parse_failures(proc.stdout),
        blocking=blocking,
        statuses=statuses,
        raw_output=proc.stdout,
        stderr=proc.stderr,
        command=cmd,
        seconds=seconds,
        counts=counts,
    )
