"""Chargeback outputs: CSV (one file per view, plus ``about``), XLSX (one sheet per view), one
self-contained HTML page with inline SVG charts (no script, stylesheet, font or image from elsewhere).

Every text that leaves here is neutralised for its format by :mod:`finops.escape`: CSV text cells by
OWASP's rule (no cell a spreadsheet would read as a formula), XLSX strings written as strings, HTML
escaped. CSV and XLSX views end with a ``total`` row summing each money (and hours) column; the
reconciliation carries its own.

:func:`write` builds every file in a hidden folder beside the destination and moves it into place only
when all are written, so a failure leaves the previous report (or nothing), never half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from finops.escape import csv_line, html_text, xlsx_text
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


HEADERS = {"change_pct": "change %", "budget_used_pct": "budget used %", "spot_share_pct": "spot share %",
           "gpu_hours": "GPU hours", "tpu_chip_hours": "TPU chip-hours", "store_total_exact": "store total (exact)",
           "commitment_purchases_excluded": "commitment purchases (excluded)"}
"""Column name → the header people read (HTML and XLSX); others read with ``_`` as a space. CSV keeps
the column names, for programs."""


def header(column: str) -> str:
    return HEADERS.get(column, column.replace("_", " "))


def _summed(df: pl.DataFrame) -> list[str]:
    return [c for c, t in df.schema.items() if isinstance(t, pl.Decimal) or (c.endswith("_hours") and t.is_numeric())]


def with_totals(name: str, df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with a last ``total`` row summing each money (and hours) column; the reconciliation (which
    has its own) and empty views as they are."""
    cols = _summed(df)
    if name == "reconciliation" or df.is_empty() or not cols or df.schema[df.columns[0]] != pl.String:
        return df
    row: dict[str, Any] = dict.fromkeys(df.columns)
    row[df.columns[0]] = "total"
    for c in cols:
        row[c] = df[c].sum()
    return pl.concat([df, pl.DataFrame([row], schema=df.schema, orient="row")])


def write_csv(cb: Chargeback, folder: Path) -> list[Path]:
    """One CSV per view (with its total row) and ``about``; text cells neutralised (:func:`finops.escape.csv_cell`)."""
    paths = []
    for name, df in cb.views().items():
        p = folder / f"{_stem(cb)}-{name}.csv"
        _csv(p, df.columns, with_totals(name, df).iter_rows())
        paths.append(p)
    p = folder / f"{_stem(cb)}-about.csv"
    _csv(p, ["item", "value"], _about(cb))
    return [*paths, p]


def _csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(csv_line(columns) + "\n")
        for r in rows:
            for v in r:
                if isinstance(v, list | dict | tuple | pl.Series):
                    raise TypeError(f"{path.name}: a nested value cannot be written as a CSV cell")
            f.write(csv_line(r) + "\n")


def write_xlsx(cb: Chargeback, path: Path) -> Path:
    """One sheet per view; money as numbers with two decimals, headers bold, columns sized."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"constant_memory": False})
    bold = wb.add_format({"bold": True, "bg_color": "#E8EEF7", "border": 1})
    money = wb.add_format({"num_format": "#,##0.00"})
    bold_money = wb.add_format({"num_format": "#,##0.00", "bold": True})
    try:
        for name, view in cb.views().items():
            ws = wb.add_worksheet(name[:31])
            df = with_totals(name, view)
            for c, col in enumerate(df.columns):
                ws.write_string(0, c, header(col), bold)
                width = max([len(header(col))] + [len(_cell_text(v)) for v in df[col].head(200).to_list()])
                is_money = isinstance(df.schema[col], pl.Decimal)
                ws.set_column(c, c, min(width + 2, 48), money if is_money else None)
            for r, row in enumerate(df.iter_rows(), start=1):
                for c, v in enumerate(row):
                    if v is None:
                        continue
                    if isinstance(v, str):  # never a formula or a link, whatever a tag value starts with
                        ws.write_string(r, c, xlsx_text(v), bold if r == view.height + 1 else None)
                    elif isinstance(v, Decimal):
                        ws.write_number(r, c, float(v), bold_money if r == view.height + 1 else None)
                    else:
                        ws.write(r, c, v)
            ws.freeze_panes(1, 0)
        info = wb.add_worksheet("about")
        for r, (k, v) in enumerate(_about(cb)):
            info.write_string(r, 0, xlsx_text(k), bold)
            info.write_string(r, 1, xlsx_text(v))
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
            ("part week", "no: the whole week" if cb.part_week_until is None else
             f"yes: the week was still in progress at {cb.part_week_until:%Y-%m-%d %H:%M} UTC"),
            *(("warning", w) for w in cb.warnings)]


def _cell_text(v: Any) -> str:
    return "" if v is None else (f"{v:,.2f}" if isinstance(v, Decimal) else str(v))


# -- HTML ------------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1240px;
color:#1d2430;padding:0 16px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5a6475;margin-bottom:12px}table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{padding:4px 6px;font-size:12.5px;border-bottom:1px solid #e3e7ee;text-align:left;white-space:nowrap}
th{background:#f2f5fa;font-weight:600;white-space:normal;vertical-align:bottom;min-width:3.5em}
th.n{text-align:right}td.n{text-align:right;font-variant-numeric:tabular-nums}
svg{max-width:100%;height:auto}.part{background:#fde8e8;color:#b42318;padding:1px 6px;border-radius:3px}
tr.total td{font-weight:600;border-top:2px solid #9aa5b8}.ok{color:#17803d}.bad{color:#b42318}
.wrap{overflow-x:auto;max-width:100%}
.warn{background:#fff6e0;border:1px solid #f1c767;padding:6px 10px;margin:4px 0;border-radius:4px}
svg text{font:12px system-ui,sans-serif;fill:#1d2430}
"""
_PALETTE = ("#3b6fd4", "#9bb7ee", "#e07b39", "#4caf7d", "#b05fc4", "#d4b13b", "#5ab3c8", "#c44f6a")


def render_html(cb: Chargeback) -> str:
    """The whole report as one HTML document; charts are inline SVG."""
    dim = cb.dimension
    s = cb.summary
    label = html_text(cb.week.label)
    part = ("" if cb.part_week_until is None else
            f"<span class='part' id='part-week'>part week: in progress at {cb.part_week_until:%a %d %b %H:%M} UTC"
            "</span> · ")
    parts = [(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
              f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
              f"<title>Chargeback {label}{' (part week)' if part else ''}</title><style>{_CSS}</style></head><body>"),
             f"<h1>Chargeback {label} by {html_text(dim)}</h1>",
             f"<div class='meta'>{part}{cb.week.start:%a %d %b %Y} – {cb.week.end:%a %d %b %Y} (UTC, end exclusive) · "
             f"{html_text(cb.basis)} · {html_text(cb.currency)} · total "
             f"<b>{cb.total:,.2f}</b> · " + ("<span class='ok' id='reconciled'>reconciled to the bill</span>"
                                             if cb.reconciled else "<span class='bad'>NOT reconciled</span>")
             + "</div>"]
    parts += [f"<div class='warn'>{html_text(w)}</div>" for w in cb.warnings]
    parts.append(f"<h2>Cost by {html_text(dim)}</h2>")
    parts.append(_stacked_bars([(r[dim], float(r["direct"]), float(r["shared"])) for r in s.iter_rows(named=True)],
                               ("direct", "shared")))
    parts.append(_table(s, total_of=("direct", "shared", "total", "previous_week", "change", "month_to_date",
                                     "monthly_budget", "spot_cost", "spot_savings", "gpu_hours", "tpu_chip_hours"),
                        table_id="summary"))
    parts.append("<h2>Week over week</h2>")
    parts.append(_paired_bars([(r[dim], float(r["previous_week"] or 0), float(r["total"]))
                               for r in s.iter_rows(named=True)], ("previous week", cb.week.label)))
    if not cb.gpus.is_empty():
        parts.append("<h2>GPU hours and TPU chip-hours by accelerator</h2>")
        by_acc = (cb.gpus.group_by("accelerator").agg(pl.col("gpu_hours").sum(), pl.col("tpu_chip_hours").sum())
                  .with_columns((pl.col("gpu_hours") + pl.col("tpu_chip_hours")).alias("_h"))
                  .sort("_h", "accelerator", descending=[True, False]))
        parts.append(_bars([(r["accelerator"], float(r["_h"]), "chip-h" if r["tpu_chip_hours"] else "GPU-h")
                            for r in by_acc.iter_rows(named=True)]))
        parts.append(_table(cb.gpus, total_of=_summed(cb.gpus)))
    parts.append("<h2>Shared costs and how they were split</h2>")
    parts.append(_table(cb.shared, total_of=_summed(cb.shared)) if not cb.shared.is_empty()
                 else "<p>No shared cost this week.</p>")
    parts.append("<h2>Top services</h2>" + _table(cb.services, total_of=_summed(cb.services)))
    parts.append(f"<h2>By {html_text(dim)} and provider</h2>" + _table(cb.providers, total_of=_summed(cb.providers)))
    parts.append("<h2>Reconciliation</h2><p>The store's own total for the week per provider (a separate query "
                 "over the billing rows, rounded to the cent) against the sum over "
                 f"{html_text(dim)}s.</p>" + _table(cb.reconciliation, last_is_total=True))
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
    return html_text(str(v)), False


def _table(df: pl.DataFrame, total_of: Iterable[str] = (), last_is_total: bool = False, table_id: str = "") -> str:
    cols = df.columns
    numeric = {c for c, t in df.schema.items() if t.is_numeric() or isinstance(t, pl.Decimal)}
    head = "".join(("<th class='n'>" if c in numeric else "<th>") + f"{html_text(header(c))}</th>" for c in cols)
    ident = f" id='{html_text(table_id)}'" if table_id else ""
    rows = [f"<div class='wrap'><table{ident}><thead><tr>{head}</tr></thead><tbody>"]
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
                  (f"<td class='n'>{_fmt(_sum(df[c]))[0]}</td>" if c in totals else "<td></td>"))
                 for j, c in enumerate(cols)]
        rows.append("<tr class='total'>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table></div>")
    return "".join(rows)


def _sum(col: pl.Series) -> Any:
    values = [v for v in col.to_list() if v is not None]
    if isinstance(col.dtype, pl.Decimal):
        return sum(values, Decimal(0))
    return float(sum(values))


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{html_text(label)}' "
            f"width='{width}' height='{height}' viewBox='0 0 {width} {height}'>" + "".join(body) + "</svg>")


def _legend(names: Sequence[str], x: int, y: int) -> list[str]:
    out = []
    for i, n in enumerate(names):
        out.append(f"<rect x='{x + i * 130}' y='{y}' width='12' height='12' fill='{_PALETTE[i]}'/>"
                   f"<text x='{x + i * 130 + 18}' y='{y + 11}'>{html_text(n)}</text>")
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
        body.append(f"<text x='{left - 8}' y='{y + 15}' text-anchor='end'>{html_text(_clip(label))}</text>")
        for j, v in enumerate((a, b)):
            w = max(v, 0) / hi * (width - left - 110)
            body.append(f"<rect class='bar' x='{x:.1f}' y='{y}' width='{w:.1f}' height='{bar}' fill='{_PALETTE[j]}'>"
                        f"<title>{html_text(label)} {html_text(names[j])}: {v:,.2f}</title></rect>")
            x += w
        body.append(f"<text x='{x + 6:.1f}' y='{y + 15}'>{a + b:,.0f}</text>")
    return _svg(width, height, body, "cost by recipient, direct and shared")


def _paired_bars(rows: Sequence[tuple[str, float, float]], names: Sequence[str]) -> str:
    """Vertical bar pairs (previous, this week) per recipient, each labelled with its value."""
    width, height, bottom, top = 900, 276, 40, 44
    n = max(len(rows), 1)
    slot = (width - 40) / n
    hi = max([max(a, b) for _, a, b in rows] + [1e-9])
    body = _legend(names, 40, 4)
    for i, (label, a, b) in enumerate(rows):
        x0 = 40 + i * slot
        for j, v in enumerate((a, b)):
            h = max(v, 0) / hi * (height - bottom - top)
            bx, bw = x0 + 6 + j * (slot - 12) / 2, (slot - 12) / 2 - 2
            body.append(f"<rect class='bar' x='{bx:.1f}' y='{height - bottom - h:.1f}' "
                        f"width='{bw:.1f}' height='{h:.1f}' fill='{_PALETTE[j]}'>"
                        f"<title>{html_text(label)} {html_text(names[j])}: {v:,.2f}</title></rect>")
            body.append(f"<text class='value' x='{bx + bw / 2:.1f}' y='{height - bottom - h - 4:.1f}' "
                        f"text-anchor='middle' style='font-size:{10 if bw >= 40 else 8}px'>{_short(v)}</text>")
        body.append(f"<text x='{x0 + slot / 2:.1f}' y='{height - bottom + 16}' text-anchor='middle'>"
                    f"{html_text(_clip(label, max(4, int(slot / 7))))}</text>")
    return _svg(width, height, body, "week over week")


def _clip(label: str, n: int = 20) -> str:
    """A chart label that fits its space (the full text stays in the bar's tooltip and the tables)."""
    return label if len(label) <= n else label[: n - 1] + "…"


def _short(v: float) -> str:
    """A bar's value in few characters: 950, 12.3k, 4.56M."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:,.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:,.1f}k"
    return f"{v:,.0f}"


def _bars(rows: Sequence[tuple[str, float, str]]) -> str:
    """Horizontal bars, one per (label, value, unit)."""
    width, left, bar, gap = 900, 150, 18, 6
    height = len(rows) * (bar + gap) + 10
    hi = max([v for _, v, _ in rows] + [1e-9])
    body = []
    for i, (label, v, unit) in enumerate(rows):
        y = 4 + i * (bar + gap)
        w = max(v, 0) / hi * (width - left - 130)
        body += [f"<text x='{left - 8}' y='{y + 14}' text-anchor='end'>{html_text(_clip(label))}</text>",
                 (f"<rect class='bar' x='{left}' y='{y}' width='{w:.1f}' height='{bar}' fill='{_PALETTE[i % 8]}'>"
                  f"<title>{html_text(label)}: {v:,.1f} {unit}</title></rect>"),
                 f"<text x='{left + w + 6:.1f}' y='{y + 14}'>{v:,.0f} {unit}</text>"]
    return _svg(width, height, body, "GPU hours and TPU chip-hours")
