"""Start the Streamlit dashboard (``dashboards/app.py``) on a host and port, as a subprocess."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from finops import config as config_mod
from finops.config import Config

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
START_SECONDS = 60.0


class DashboardError(ValueError):
    """A dashboard that cannot be started (a host it must not bind, a port in use, streamlit failing)."""


@dataclass
class Dashboard:
    """A running dashboard: its URL and process, and notes for the reader (no login configured, …)."""

    url: str
    process: subprocess.Popen[bytes]
    notes: list[str] = field(default_factory=list)

    def wait(self) -> int:
        """Wait for the server to end; a SIGTERM to this process ends the wait (and, through the caller's
        ``finally: stop()``, the server) rather than orphaning it."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        return self.process.wait()

    def stop(self) -> None:
        """Stop the server (politely, then firmly) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(cfg: Config, host: str, port: int) -> list[str]:
    """Refuse what cannot work before anything starts; the notes to print."""
    if not 0 < port < 65536:
        raise DashboardError(f"--port {port}: expected a port from 1 to 65535")
    if not is_loopback(host) and not cfg.dashboard.login:
        raise DashboardError(f"--host {host}: without a login anyone who can reach it sees every team's costs; "
                             "set [dashboard] login = true (OIDC through st.login) or keep --host 127.0.0.1")
    cfg.check_store(create=False)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise DashboardError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); "
                                 "give another --port") from None
    if cfg.dashboard.login:
        if not any(_has_auth(p) for p in secrets_files()):
            raise DashboardError("[dashboard] login = true needs the OIDC provider in an [auth] section of "
                                 ".streamlit/secrets.toml (here or in your home folder); see the README's Dashboard "
                                 "section")
        return [f"sign-in required (OIDC via st.login); the {cfg.dashboard.team_claim!r} claim picks the team"]
    return [f"no login configured: bound to {host}, so only this machine can open it, and it shows every team"]


def secrets_files() -> list[Path]:
    """Where Streamlit reads secrets from: the home folder's and the working folder's ``.streamlit``."""
    return [Path.home() / ".streamlit" / "secrets.toml", Path.cwd() / ".streamlit" / "secrets.toml"]


def _has_auth(path: Path) -> bool:
    import tomllib

    try:
        return "auth" in tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
            "--client.toolbarMode", "viewer", "--theme.base", "light", "--server.fileWatcherType", "none"]


def start(cfg: Config, host: str = "127.0.0.1", port: int = 8501, *, timeout: float = START_SECONDS) -> Dashboard:
    """Start the dashboard reading ``cfg``'s store and ledger on ``host``:``port``; returns once it answers."""
    notes = check(cfg, host, port)
    env = dict(os.environ)
    if cfg.source:
        env[config_mod.ENV_VAR] = str(Path(cfg.source).resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(APP.parents[1]), env.get("PYTHONPATH")) if p)
    log = tempfile.TemporaryFile()  # noqa: SIM115 (a file, not a pipe: nobody reads it while the server runs)
    proc = subprocess.Popen(command(host, port), env=env, stdout=subprocess.DEVNULL, stderr=log)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    _wait_healthy(proc, url, timeout, log)
    return Dashboard(url, proc, notes)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, timeout: float, log: IO[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()
            raise DashboardError(f"streamlit exited with status {proc.returncode} before serving {url}: "
                                 f"{tail[-1] if tail else 'no message'}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    proc.terminate()
    raise DashboardError(f"the dashboard did not answer on {url} within {timeout:.0f} s")
