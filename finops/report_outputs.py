"""Chargeback outputs: CSV (one file per view), XLSX (one sheet per view), one self-contained HTML page
with inline SVG charts (no script, stylesheet, font or image from elsewhere).

:func:`write` builds every file in a hidden folder beside the destination and moves it into place only
when all are written, so a failure leaves the previous report (or nothing), never half of one.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from finops.reports import Chargeback

FORMATS = ("csv", "xlsx", "html")


def write(cb: Chargeback, out_dir: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the report under ``out_dir/chargeback-<week>/``; returns the files written."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"--format {','.join(bad)}: expected any of {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / f"chargeback-{cb.week.label}{'' if cb.dimension == 'team' else '-by-' + cb.dimension}"
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=out))
    try:
        names = []
        if "csv" in formats:
            names += write_csv(cb, stage)
        if "xlsx" in formats:
            names.append(write_xlsx(cb, stage / f"{final.name}.xlsx"))
        if "html" in formats:
            p = stage / f"{final.name}.html"
            p.write_text(render_html(cb), encoding="utf-8")
            names.append(p)
        _swap(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return [final / p.name for p in names]


def _swap(stage: Path, final: Path) -> None:
    """Put ``stage`` where ``final`` is, replacing an earlier report only once the new one is whole."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
    stage.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _stem(cb: Chargeback) -> str:
    return f"chargeback-{cb.week.label}"


def write_csv(cb: Chargeback, folder: Path) -> list[Path]:
    paths = []
    for name, df in cb.views().items():
        p = folder / f"{_stem(cb)}-{name}.csv"
        df.write_csv(p)
        paths.append(p)
    return paths


def write_xlsx(cb: Chargeback, path: Path) -> Path:
    """One sheet per view; money as numbers with two decimals, headers bold, columns sized."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"constant_memory": False})
    bold = wb.add_format({"bold": True, "bg_color": "#E8EEF7", "border": 1})
    money = wb.add_format({"num_format": "#,##0.00"})
    try:
        for name, df in cb.views().items():
            ws = wb.add_worksheet(name[:31])
            for c, col in enumerate(df.columns):
                ws.write(0, c, col, bold)
                width = max([len(col)] + [len(_cell_text(v)) for v in df[col].head(200).to_list()])
                is_money = isinstance(df.schema[col], pl.Decimal)
                ws.set_column(c, c, min(width + 2, 48), money if is_money else None)
            for r, row in enumerate(df.iter_rows(), start=1):
                for c, v in enumerate(row):
                    if v is None:
                        continue
                    if isinstance(v, str):  # never a formula, whatever a tag value starts with
                        ws.write_string(r, c, v)
                    else:
                        ws.write(r, c, float(v) if isinstance(v, Decimal) else v)
            ws.freeze_panes(1, 0)
        info = wb.add_worksheet("about")
        for r, (k, v) in enumerate(_about(cb)):
            info.write(r, 0, k, bold)
            info.write(r, 1, v)
        info.set_column(0, 0, 22)
        info.set_column(1, 1, 100)
    finally:
        wb.close()
    return path


def _about(cb: Chargeback) -> list[tuple[str, str]]:
    return [("week", cb.week.label), ("from", f"{cb.week.start:%Y-%m-%d} 00:00 UTC"),
            ("to (exclusive)", f"{cb.week.end:%Y-%m-%d} 00:00 UTC"), ("grouped by", cb.dimension),
            ("cost basis", cb.basis), ("currency", cb.currency),
            ("reconciled", "yes: the sum over teams equals the bill per provider" if cb.reconciled else "NO"),
            *(("warning", w) for w in cb.warnings)]


def _cell_text(v: Any) -> str:
    return "" if v is None else (f"{v:,.2f}" if isinstance(v, Decimal) else str(v))


# -- HTML ------------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;
color:#1d2430;padding:0 16px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5a6475;margin-bottom:12px}table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{padding:4px 8px;font-size:13px;border-bottom:1px solid #e3e7ee;text-align:left;white-space:nowrap}
th{background:#f2f5fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid #9aa5b8}.ok{color:#17803d}.bad{color:#b42318}
.wrap{overflow-x:auto}.warn{background:#fff6e0;border:1px solid #f1c767;padding:6px 10px;margin:4px 0;border-radius:4px}
svg text{font:12px system-ui,sans-serif;fill:#1d2430}
"""
_PALETTE = ("#3b6fd4", "#9bb7ee", "#e07b39", "#4caf7d", "#b05fc4", "#d4b13b", "#5ab3c8", "#c44f6a")


def render_html(cb: Chargeback) -> str:
    """The whole report as one HTML document; charts are inline SVG."""
    dim = cb.dimension
    s = cb.summary
    parts = [(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
              f"<title>Chargeback {cb.week.label}</title><style>{_CSS}</style></head><body>"),
             f"<h1>Chargeback {html.escape(cb.week.label)} by {dim}</h1>",
             f"<div class='meta'>{cb.week.start:%a %d %b %Y} – {cb.week.end:%a %d %b %Y} (UTC, end exclusive) · "
             f"{html.escape(cb.basis)} · {html.escape(cb.currency)} · total "
             f"<b>{cb.total:,.2f}</b> · " + ("<span class='ok' id='reconciled'>reconciled to the bill</span>"
                                             if cb.reconciled else "<span class='bad'>NOT reconciled</span>")
             + "</div>"]
    parts += [f"<div class='warn'>{html.escape(w)}</div>" for w in cb.warnings]
    parts.append(f"<h2>Cost by {dim}</h2>")
    parts.append(_stacked_bars([(r[dim], float(r["direct"]), float(r["shared"])) for r in s.iter_rows(named=True)],
                               ("direct", "shared")))
    parts.append(_table(s, total_of=("direct", "shared", "total", "previous_week", "change", "month_to_date",
                                     "spot_cost", "spot_savings")))
    parts.append("<h2>Week over week</h2>")
    parts.append(_paired_bars([(r[dim], float(r["previous_week"] or 0), float(r["total"]))
                               for r in s.iter_rows(named=True)], ("previous week", cb.week.label)))
    if not cb.gpus.is_empty():
        parts.append("<h2>GPU / TPU hours by accelerator</h2>")
        by_acc = cb.gpus.group_by("accelerator").agg(pl.col("gpu_hours").sum()).sort("gpu_hours", descending=True)
        parts.append(_bars([(r["accelerator"], float(r["gpu_hours"])) for r in by_acc.iter_rows(named=True)], "h"))
        parts.append(_table(cb.gpus))
    parts.append("<h2>Shared costs and how they were split</h2>")
    parts.append(_table(cb.shared) if not cb.shared.is_empty() else "<p>No shared cost this week.</p>")
    parts.append("<h2>Top services</h2>" + _table(cb.services))
    parts.append(f"<h2>By {dim} and provider</h2>" + _table(cb.providers))
    parts.append("<h2>Reconciliation</h2><p>The store's own total for the week per provider (a separate query "
                 "over the billing rows, rounded to the cent) against the sum over "
                 f"{dim}s.</p>" + _table(cb.reconciliation, last_is_total=True))
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(v: Any) -> tuple[str, bool]:
    if v is None:
        return "", True
    if isinstance(v, Decimal):
        return f"{v:,.2f}", True
    if isinstance(v, float):
        return f"{v:,.1f}", True
    if isinstance(v, int):
        return f"{v:,}", True
    return html.escape(str(v)), False


def _table(df: pl.DataFrame, total_of: Iterable[str] = (), last_is_total: bool = False) -> str:
    cols = df.columns
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = [f"<div class='wrap'><table><thead><tr>{head}</tr></thead><tbody>"]
    n = df.height
    for i, r in enumerate(df.iter_rows()):
        cells = []
        for v in r:
            text, num = _fmt(v)
            cells.append(f"<td class='n'>{text}</td>" if num else f"<td>{text}</td>")
        cls = " class='total'" if last_is_total and i == n - 1 else ""
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    totals = [c for c in total_of if c in cols]
    if totals and n:
        cells = [("<td>total</td>" if j == 0 else
                  (f"<td class='n'>{_fmt(sum((v for v in df[c].to_list() if v is not None), Decimal(0)))[0]}</td>"
                   if c in totals else "<td></td>")) for j, c in enumerate(cols)]
        rows.append("<tr class='total'>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table></div>")
    return "".join(rows)


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{html.escape(label)}' "
            f"width='{width}' height='{height}' viewBox='0 0 {width} {height}'>" + "".join(body) + "</svg>")


def _legend(names: Sequence[str], x: int, y: int) -> list[str]:
    out = []
    for i, n in enumerate(names):
        out.append(f"<rect x='{x + i * 130}' y='{y}' width='12' height='12' fill='{_PALETTE[i]}'/>"
                   f"<text x='{x + i * 130 + 18}' y='{y + 11}'>{html.escape(n)}</text>")
    return out


def _stacked_bars(rows: Sequence[tuple[str, float, float]], names: Sequence[str]) -> str:
    """Horizontal bars, one per row, stacked (direct, shared)."""
    width, left, bar, gap = 900, 150, 20, 8
    top = 28
    height = top + len(rows) * (bar + gap) + 10
    hi = max([a + b for _, a, b in rows] + [1e-9])
    body = _legend(names, left, 4)
    for i, (label, a, b) in enumerate(rows):
        y = top + i * (bar + gap)
        x: float = left
        body.append(f"<text x='{left - 8}' y='{y + 15}' text-anchor='end'>{html.escape(label)}</text>")
        for j, v in enumerate((a, b)):
            w = max(v, 0) / hi * (width - left - 110)
            body.append(f"<rect class='bar' x='{x:.1f}' y='{y}' width='{w:.1f}' height='{bar}' fill='{_PALETTE[j]}'>"
                        f"<title>{html.escape(label)} {names[j]}: {v:,.2f}</title></rect>")
            x += w
        body.append(f"<text x='{x + 6:.1f}' y='{y + 15}'>{a + b:,.0f}</text>")
    return _svg(width, height, body, "cost by recipient, direct and shared")


def _paired_bars(rows: Sequence[tuple[str, float, float]], names: Sequence[str]) -> str:
    """Vertical bar pairs (previous, this week) per recipient."""
    width, height, bottom, top = 900, 260, 40, 28
    n = max(len(rows), 1)
    slot = (width - 40) / n
    hi = max([max(a, b) for _, a, b in rows] + [1e-9])
    body = _legend(names, 40, 4)
    for i, (label, a, b) in enumerate(rows):
        x0 = 40 + i * slot
        for j, v in enumerate((a, b)):
            h = max(v, 0) / hi * (height - bottom - top)
            body.append(f"<rect class='bar' x='{x0 + 6 + j * (slot - 12) / 2:.1f}' y='{height - bottom - h:.1f}' "
                        f"width='{(slot - 12) / 2 - 2:.1f}' height='{h:.1f}' fill='{_PALETTE[j]}'>"
                        f"<title>{html.escape(label)} {names[j]}: {v:,.2f}</title></rect>")
        body.append(f"<text x='{x0 + slot / 2:.1f}' y='{height - bottom + 16}' text-anchor='middle'>"
                    f"{html.escape(label)}</text>")
    return _svg(width, height, body, "week over week")


def _bars(rows: Sequence[tuple[str, float]], unit: str) -> str:
    width, left, bar, gap = 900, 150, 18, 6
    height = len(rows) * (bar + gap) + 10
    hi = max([v for _, v in rows] + [1e-9])
    body = []
    for i, (label, v) in enumerate(rows):
        y = 4 + i * (bar + gap)
        w = max(v, 0) / hi * (width - left - 110)
        body += [f"<text x='{left - 8}' y='{y + 14}' text-anchor='end'>{html.escape(label)}</text>",
                 (f"<rect class='bar' x='{left}' y='{y}' width='{w:.1f}' height='{bar}' fill='{_PALETTE[i % 8]}'>"
                  f"<title>{html.escape(label)}: {v:,.1f} {unit}</title></rect>"),
                 f"<text x='{left + w + 6:.1f}' y='{y + 14}'>{v:,.0f} {unit}</text>"]
    return _svg(width, height, body, "accelerator hours")
