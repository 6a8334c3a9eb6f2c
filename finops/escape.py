"""Text that leaves finops, neutralised for its format: one function per format's rule.

* CSV (:func:`csv_cell`, :func:`csv_line`): OWASP's CSV-injection rule. A text cell that starts with
  ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` so a spreadsheet shows it
  as text instead of evaluating a formula; every text cell is wrapped in double quotes with inner
  quotes doubled. Numbers (and text that is exactly a plain decimal number, such as ``-12.34``) are
  written as they are: a negative amount stays a number.
* XLSX (:func:`xlsx_text`): strings are written with ``write_string`` (never ``write``, which turns
  ``=…`` into a formula and ``http…`` into a link); this only bounds the length to Excel's cell limit.
* HTML (:func:`html_text`): ``&``, ``<``, ``>``, ``"`` and ``'`` as character references, for text and
  attribute values alike.
* Slack mrkdwn (:func:`slack_text`): ``&``, ``<`` and ``>`` as ``&amp;``, ``&lt;``, ``&gt;``, as
  Slack's formatting reference requires, so ``<!channel>`` or ``<http://evil|click>`` is shown, not
  acted on. Plain text (an e-mail's text part) needs no escaping.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""Leading characters a spreadsheet may read as the start of a formula (OWASP)."""

_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")
XLSX_MAX_CHARS = 32767
"""Excel's limit on the characters in one cell."""


def csv_text(text: str) -> str:
    """``text`` with a ``'`` in front when a spreadsheet could read it as a formula (unquoted)."""
    if text.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_cell(value: Any) -> str:
    """One CSV field: empty for None; numbers as written; text neutralised and always double-quoted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return '"' + csv_text(str(value)).replace('"', '""') + '"'


def csv_line(values: Iterable[Any]) -> str:
    """One CSV record (comma separated, CRLF-free: the caller joins lines with ``\\n``)."""
    return ",".join(csv_cell(v) for v in values)


def xlsx_text(text: str) -> str:
    """A string for ``Worksheet.write_string``: as it is, cut to Excel's cell limit."""
    return text if len(text) <= XLSX_MAX_CHARS else text[: XLSX_MAX_CHARS - 1] + "…"


def html_text(text: str) -> str:
    """Text for an HTML element or a quoted attribute value."""
    return html.escape(text, quote=True)


def slack_text(text: str) -> str:
    """Text for a Slack ``mrkdwn`` field (or the message ``text``): control characters ``&``, ``<``, ``>``
    escaped, so no mention, link or command can be formed from data."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
