"""The weekly chargeback: built from the store, written as files, delivered by e-mail and webhook."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from finops import report_outputs, reports
from finops.config import Config
from finops.periods import Week
from finops.services.engine import engine_for
from finops.services.progress import QUIET, Progress

Dimension = Literal["team", "project"]


class ReportOptionError(ValueError):
    """A report option that cannot be used (a format, a dimension, delivery not configured)."""


@dataclass(frozen=True)
class ChargebackResult:
    chargeback: reports.Chargeback
    files: list[Path]
    sent: list[str] = field(default_factory=list)
    """Where it was delivered (``e-mail to …``, ``webhook``)."""


def check_options(cfg: Config, formats: Sequence[str], by: str, send: bool) -> None:
    """Refuse options that cannot work before any data is read."""
    if by not in ("team", "project"):
        raise ReportOptionError(f"--by {by!r}: expected team or project")
    if not formats or any(f not in report_outputs.FORMATS for f in formats):
        raise ReportOptionError(f"--format {','.join(formats)}: expected any of {', '.join(report_outputs.FORMATS)}")
    if send and cfg.reports.email is None and cfg.reports.webhook is None:
        raise ReportOptionError("--send: configure [reports.email] and/or [reports.webhook] in finops.toml")


def check_out(out: Path) -> None:
    """Refuse an output folder that is a file or lies under one, before any data is read."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == out else f"is under {p}, which is a file"
                raise ReportOptionError(f"--out {out}: {what}; give a folder for the report files")
            return


def chargeback(cfg: Config, week: Week | None = None, *, by: Dimension = "team",
               formats: Sequence[str] | None = None, out: Path | None = None, send: bool = False,
               as_of: int | datetime | None = None, engine: str | None = None,
               progress: Progress = QUIET) -> ChargebackResult:
    """Build the chargeback of ``week`` (default: the last complete week) by team or project from the bill
    as it stands (or as it stood ``as_of`` a store version or time), write it under ``out`` (default:
    ``[reports] out``) in ``formats``, and with ``send`` deliver it as configured. The bill's rows are
    aggregated on ``engine`` (default ``[engine]``), the rules applied here."""
    formats = list(formats or cfg.reports.formats)
    check_options(cfg, formats, by, send)
    check_out(out or Path(cfg.reports.out))
    wk = week or Week.last_complete()
    step = progress.start(f"chargeback {wk.label}")
    with engine_for(cfg, engine) as eng:
        cb = reports.chargeback(cfg.open_store(), cfg, wk, by, as_of=as_of, engine=eng, progress=progress)
    try:
        files = report_outputs.write(cb, out or Path(cfg.reports.out), formats)
    except OSError as e:
        raise ReportOptionError(f"{out or cfg.reports.out}: cannot write the report files there: "
                                f"{e.strerror or e}; give another --out or [reports] out") from None
    step.finish()
    return ChargebackResult(cb, files, deliver(cfg, cb, files) if send else [])


def deliver(cfg: Config, cb: reports.Chargeback, files: Sequence[Path]) -> list[str]:
    """E-mail the report (HTML body, CSV/XLSX attached) and post it to the webhook, as configured."""
    from finops import delivery

    rep, sent = cfg.reports, []
    if rep.email is not None:
        attach = [p for p in files if p.suffix in (".xlsx", ".csv")]
        delivery.send_email(cb, rep.email, attach, html=report_outputs.render_html(cb))
        sent.append(f"e-mail to {', '.join(rep.email.to)}")
    if rep.webhook is not None:
        delivery.post_webhook(cb, rep.webhook)
        sent.append("webhook")
    return sent
