"""The ``dry_run`` target: records exactly what would be submitted, launches nothing.

It is the default target until one is configured, and it is a real implementation of the launcher
contract (the test double ships as a launcher, as dlt's do): each submission is written as one JSON line
to ``<target.folder>/submissions.jsonl`` and then answers ``find`` and ``status`` like a provider that never
starts anything (``pending``, with a message saying so).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finops.config import DryRunTarget
from placement.launchers.base import PLACEMENT_TAG, Job, LaunchError, Submission

KIND = "dry_run"
MESSAGE = "dry run: recorded, nothing was launched (configure a target under [launch.targets])"


class Client:
    """Where the submissions are recorded."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._seen: tuple[tuple[int, int], list[dict[str, Any]]] | None = None

    @property
    def file(self) -> Path:
        return self.folder / "submissions.jsonl"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # two dispatchers append whole lines, one at a time
            yield

    def records(self) -> list[dict[str, Any]]:
        """Every recorded submission (parsed again only when the file changed: dispatch asks per workload)."""
        try:
            st = self.file.stat()
        except FileNotFoundError:
            return []
        key = (st.st_size, st.st_mtime_ns)
        if self._seen is None or self._seen[0] != key:
            self._seen = (key, [json.loads(line) for line in self.file.read_text().splitlines() if line.strip()])
        return self._seen[1]


def make_client(target: DryRunTarget) -> Client:
    return Client(target.folder or "./finops-dry-run")


def submit(client: Client, target: DryRunTarget, sub: Submission) -> Job:
    with client.locked():
        known = next((r for r in client.records() if r["name"] == sub.name), None)
        if known is None:
            known = {**_plain(sub), "recorded_at": datetime.now(UTC).isoformat()}
            try:
                with client.file.open("a") as f:
                    f.write(json.dumps(known, sort_keys=True) + "\n")
            except OSError as e:
                raise LaunchError("permanent", f"cannot record the dry run in {client.file}: {e.strerror or e}",
                                  call="dry_run.submit") from None
    return _job(known)


def find(client: Client, target: DryRunTarget, tags: Mapping[str, str]) -> list[Job]:
    hits = [r for r in client.records()
            if all(r["tags"].get(k) == v for k, v in tags.items()) and PLACEMENT_TAG in r["tags"]]
    return [_job(r) for r in reversed(hits)]


def status(client: Client, target: DryRunTarget, external_id: str) -> Job:
    found = next((r for r in client.records() if _external_id(r["name"]) == external_id), None)
    if found is None:
        raise LaunchError("permanent", f"no dry-run record of {external_id} in {client.file}", call="dry_run.status")
    return _job(found)


def cancel(client: Client, target: DryRunTarget, external_id: str) -> None:
    """Nothing runs, so nothing to stop."""


def _plain(sub: Submission) -> dict[str, Any]:
    d = asdict(sub)
    d["command"], d["env"], d["tags"] = list(sub.command), dict(sub.env), dict(sub.tags)
    return d


def _external_id(name: str) -> str:
    return f"dry-run:{name}"


def _job(r: Mapping[str, Any]) -> Job:
    return Job(external_id=_external_id(r["name"]), name=r["name"], state="pending", tags=dict(r["tags"]),
               message=MESSAGE)
