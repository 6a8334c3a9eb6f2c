"""Delivery of a chargeback: e-mail (SMTP) and a Slack-compatible incoming webhook.

Secrets never sit in ``finops.toml``: the SMTP user and password and a webhook URL that embeds a token
are read from environment variables whose *names* the configuration gives (``username_env``,
``password_env``, ``url_env``).
"""

from __future__ import annotations

import json
import mimetypes
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

from finops.config import EmailConfig, WebhookConfig
from finops.escape import slack_text
from finops.reports import Chargeback
from finops.retry import RetryPolicy, retrying


class DeliveryError(RuntimeError):
    """A report that could not be delivered: names the server or URL (never a secret) and the reason."""


def summary_text(cb: Chargeback, top: int = 10) -> str:
    """A short plain-text summary: total, reconciliation and the largest recipients. Plain text, for an
    e-mail's text part; :func:`webhook_payload` escapes it for Slack's mrkdwn."""
    dim = cb.dimension
    part = (f" PART WEEK as of {cb.part_week_until:%d %b %H:%M} UTC" if cb.part_week_until is not None else "")
    last = cb.week.end - timedelta(days=1)
    lines = [f"Chargeback {cb.week.label} ({cb.week.start:%d %b} – {last:%d %b %Y}{part}, {cb.basis}): "
             f"total {cb.currency} {cb.total:,.2f}, " + ("reconciled to the bill" if cb.reconciled else
                                                         "NOT reconciled")]
    for r in cb.summary.sort("total", descending=True).head(top).iter_rows(named=True):
        change = f" ({r['change_pct']:+.1f}% wow)" if r["change_pct"] is not None else ""
        lines.append(f"• {r[dim]}: {r['total']:,.2f}{change}")
    lines += [f"⚠ {w}" for w in cb.warnings]
    return "\n".join(lines)


def _env(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise DeliveryError(f"{what}: environment variable {name} is not set (finops.toml names it)")
    return value


def send_email(cb: Chargeback, cfg: EmailConfig, attachments: Sequence[Path] = (), html: str | None = None,
               timeout: float = 30) -> None:
    """Send the report: the summary as text, the HTML page as the alternative body, files attached."""
    msg = EmailMessage()
    msg["Subject"] = f"Chargeback {cb.week.label}: {cb.currency} {cb.total:,.2f}"
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg.set_content(summary_text(cb))
    if html:
        msg.add_alternative(html, subtype="html")
    for p in attachments:
        ctype, _ = mimetypes.guess_type(p.name)
        main, sub = (ctype or "application/octet-stream").split("/", 1)
        msg.add_attachment(p.read_bytes(), maintype=main, subtype=sub, filename=p.name)
    _smtp_send(msg, cfg, timeout)


def _smtp_send(msg: EmailMessage, cfg: EmailConfig, timeout: float) -> None:
    """Send ``msg`` through ``cfg``'s server: TLS as configured, never a login in clear."""
    user, password = _env(cfg.username_env, "reports.email"), _env(cfg.password_env, "reports.email")
    where = f"SMTP {cfg.host}:{cfg.port}"
    context = ssl.create_default_context(cafile=cfg.ca_file)
    try:
        with (smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=context) if cfg.ssl
              else smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)) as smtp:
            if cfg.starttls and not cfg.ssl:
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                elif user:
                    raise DeliveryError(f"{where}: the server offers no STARTTLS; refusing to send the login "
                                        "in clear (set starttls = false only for a local relay)")
            if user:
                smtp.login(user, password or "")
            refused = smtp.send_message(msg)
    except DeliveryError:
        raise
    except (OSError, smtplib.SMTPException) as e:
        raise DeliveryError(f"{where}: {type(e).__name__}: {e}") from None
    if refused:
        raise DeliveryError(f"{where}: recipients refused: {', '.join(refused)}")


def webhook_payload(cb: Chargeback) -> dict[str, object]:
    """Slack's incoming-webhook format: ``text`` (the fallback every compatible receiver reads) and
    ``blocks`` with the same summary. Every text is escaped for mrkdwn (``&``, ``<``, ``>``), so a tag
    value such as ``<!channel>`` or ``<http://evil|click>`` is shown as written, never acted on."""
    text = slack_text(summary_text(cb))
    return {"text": text, "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": f"Chargeback {cb.week.label}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def post_webhook(cb: Chargeback, cfg: WebhookConfig, attempts: int = 3, timeout: float = 15,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """POST the summary; 429, 5xx and connection failures are retried (``Retry-After`` honoured, in
    seconds or as an HTTP date; waits capped at 10 s; at most ``attempts`` tries)."""
    url = cfg.url or _env(cfg.url_env, "reports.webhook")
    if url is None:
        raise DeliveryError("reports.webhook: set url_env (the environment variable holding the URL)")
    parts = urlsplit(url)
    shown = f"webhook {parts.scheme}://{parts.netloc}" + ("" if cfg.url_env else parts.path)
    body = json.dumps(webhook_payload(cb)).encode()
    policy = RetryPolicy(attempts=attempts, backoff=0.5, max_wait=10.0)

    def post() -> None:
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()

    def transient(e: BaseException) -> bool:
        if isinstance(e, urllib.error.HTTPError):
            return e.code in policy.statuses
        return isinstance(e, urllib.error.URLError | OSError)

    tries = retrying(policy, transient, sleep)
    try:
        tries(post)
    except urllib.error.HTTPError as e:
        detail = e.read()[:200].decode(errors="replace")
        raise DeliveryError(f"{shown}: HTTP {e.code} after {tries.statistics.get('attempt_number', 1)} "
                            f"attempt(s): {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DeliveryError(f"{shown}: {getattr(e, 'reason', e)} after "
                            f"{tries.statistics.get('attempt_number', 1)} attempt(s)") from None


def send_text(subject: str, body: str, cfg: EmailConfig, timeout: float = 30) -> None:
    """E-mail a plain-text message (an alert) through the configured server, as :func:`send_email` does."""
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, cfg.sender, ", ".join(cfg.to)
    msg.set_content(body)
    _smtp_send(msg, cfg, timeout)


def post_text(body: str, cfg: WebhookConfig, timeout: float = 15) -> None:
    """POST a plain-text message (an alert) to the webhook in Slack's format, escaped for mrkdwn; one try
    (the scheduler's next run tries again)."""
    url = cfg.url or _env(cfg.url_env, "reports.webhook")
    if url is None:
        raise DeliveryError("reports.webhook: set url_env (the environment variable holding the URL)")
    parts = urlsplit(url)
    shown = f"webhook {parts.scheme}://{parts.netloc}" + ("" if cfg.url_env else parts.path)
    data = json.dumps({"text": slack_text(body)}).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        raise DeliveryError(f"{shown}: HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DeliveryError(f"{shown}: {getattr(e, 'reason', e)}") from None
