"""Delivery against real local servers: aiosmtpd for SMTP, a ThreadingHTTPServer for the webhook."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from finops import config, delivery, report_outputs, reports
from tests.fakes.server import LocalServer, QuietHandler, make_certificate
from tests.test_reports import bill, billing_store, cb  # noqa: F401 (fixtures)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            self.logins.append((data.login.decode(), data.password.decode()))
            ok = data.password == b"s3cret-from-env"
            return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself
        return AuthResult(success=False, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
                     auth_require_tls=False)
    ctl.start()
    yield inbox, port
    ctl.stop()


def _email_cfg(port: int, **kw: Any) -> config.EmailConfig:
    return config.EmailConfig(host="127.0.0.1", port=port, sender="finops@example.com",
                              to=["lead@example.com", "ml-research@example.com"], starttls=False, **kw)


def test_email_carries_the_summary_the_page_and_the_files(smtp: tuple[Inbox, int], cb: reports.Chargeback,
                                                          tmp_path: Path) -> None:
    inbox, port = smtp
    files = report_outputs.write(cb, tmp_path, ["xlsx", "csv"])
    delivery.send_email(cb, _email_cfg(port), files, html=report_outputs.render_html(cb))
    [(sender, rcpts, msg)] = inbox.messages
    assert sender == "finops@example.com" and rcpts == ["lead@example.com", "ml-research@example.com"]
    assert msg["Subject"] == f"Chargeback 2026-W46: USD {cb.total:,.2f}"
    parts = {p.get_content_type(): p for p in msg.walk()}
    text = parts["text/plain"].get_payload(decode=True).decode()
    assert f"total USD {cb.total:,.2f}" in text and "reconciled to the bill" in text
    assert "<svg" in parts["text/html"].get_payload(decode=True).decode()
    names = sorted(p.get_filename() for p in msg.walk() if p.get_filename())
    assert names == sorted(p.name for p in files)
    xlsx = next(p for p in msg.walk() if (p.get_filename() or "").endswith(".xlsx"))
    assert xlsx.get_payload(decode=True) == next(p for p in files if p.suffix == ".xlsx").read_bytes()


def test_login_comes_from_the_environment(smtp: tuple[Inbox, int], cb: reports.Chargeback,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port = smtp
    cfg = _email_cfg(port, username_env="T_SMTP_USER", password_env="T_SMTP_PASSWORD")
    with pytest.raises(delivery.DeliveryError, match="environment variable T_SMTP_USER is not set"):
        delivery.send_email(cb, cfg)
    monkeypatch.setenv("T_SMTP_USER", "finops")
    monkeypatch.setenv("T_SMTP_PASSWORD", "wrong")
    with pytest.raises(delivery.DeliveryError, match=rf"SMTP 127.0.0.1:{port}: SMTPAuthenticationError"):
        delivery.send_email(cb, cfg)
    monkeypatch.setenv("T_SMTP_PASSWORD", "s3cret-from-env")
    delivery.send_email(cb, cfg)
    assert inbox.logins[-1] == ("finops", "s3cret-from-env") and len(inbox.messages) == 1


def test_starttls_required_for_a_login(smtp: tuple[Inbox, int], cb: reports.Chargeback,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, port = smtp
    monkeypatch.setenv("T_SMTP_USER", "u")
    cfg = config.EmailConfig(host="127.0.0.1", port=port, sender="a@example.com", to=["b@example.com"],
                             username_env="T_SMTP_USER")
    with pytest.raises(delivery.DeliveryError, match="offers no STARTTLS; refusing to send the login"):
        delivery.send_email(cb, cfg)


def test_unreachable_smtp_server_is_named(cb: reports.Chargeback) -> None:
    port = _free_port()
    with pytest.raises(delivery.DeliveryError, match=rf"SMTP 127.0.0.1:{port}: ConnectionRefusedError"):
        delivery.send_email(cb, _email_cfg(port), timeout=5)


class Hook(QuietHandler):
    statuses: ClassVar[list[int]] = []
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.body()
        type(self).bodies.append({"path": self.path, "type": self.headers["Content-Type"], **json.loads(body)})
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.reply(status, b"ok" if status == 200 else b"invalid_payload", "text/plain",
                   {"Retry-After": "0"} if status == 429 else None)


@pytest.fixture
def hook() -> Iterator[tuple[type[Hook], str]]:
    Hook.statuses, Hook.bodies = [], []
    with LocalServer(Hook) as srv:
        yield Hook, srv.url


def test_webhook_posts_slack_format_and_retries(hook: tuple[type[Hook], str], cb: reports.Chargeback,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    h, base = hook
    h.statuses = [503, 429]
    monkeypatch.setenv("T_HOOK_URL", f"{base}/services/T000/B000/XXXX")
    delivery.post_webhook(cb, config.WebhookConfig(url_env="T_HOOK_URL"))
    assert len(h.bodies) == 3  # two retried failures, then delivered
    body = h.bodies[-1]
    assert body["path"] == "/services/T000/B000/XXXX" and body["type"].startswith("application/json")
    assert f"total USD {cb.total:,.2f}" in body["text"]
    assert body["blocks"][0]["text"]["text"] == "Chargeback 2026-W46"
    top = cb.summary.sort("total", descending=True).row(0, named=True)
    assert f"• {top['team']}: {top['total']:,.2f}" in body["text"]


def test_webhook_rejection_is_reported_without_the_secret_path(hook: tuple[type[Hook], str],
                                                               cb: reports.Chargeback,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    h, base = hook
    h.statuses = [400]
    monkeypatch.setenv("T_HOOK_URL", f"{base}/services/SECRET")
    with pytest.raises(delivery.DeliveryError, match=r"HTTP 400 after 1 attempt\(s\): invalid_payload") as e:
        delivery.post_webhook(cb, config.WebhookConfig(url_env="T_HOOK_URL"))
    assert "SECRET" not in str(e.value) and base in str(e.value)
    with pytest.raises(config.ConfigError, match="exactly one of url or url_env"):
        config.parse({"reports": {"webhook": {}}})


def test_starttls_then_login_against_a_tls_relay(cb: reports.Chargeback, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    crt, pem = make_certificate(tmp_path / "relay")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(crt, pem)
    inbox, port = Inbox(), _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
                     tls_context=server_ctx, require_starttls=True)  # AUTH only after STARTTLS
    ctl.start()
    try:
        monkeypatch.setenv("T_SMTP_USER", "finops")
        monkeypatch.setenv("T_SMTP_PASSWORD", "s3cret-from-env")
        cfg = dict(host="127.0.0.1", port=port, sender="a@example.com", to=["b@example.com"],
                   username_env="T_SMTP_USER", password_env="T_SMTP_PASSWORD")
        with pytest.raises(delivery.DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            delivery.send_email(cb, config.EmailConfig(**cfg), timeout=10)  # an unknown CA is refused
        delivery.send_email(cb, config.EmailConfig(**cfg, ca_file=str(crt)), timeout=10)
    finally:
        ctl.stop()
    assert inbox.logins == [("finops", "s3cret-from-env")] and len(inbox.messages) == 1
