"""Month and week arithmetic, UTC: billing months (the unit of a bill and of a budget) and ISO weeks
(the unit of a chargeback). The one place that knows how long a month is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


class PeriodError(ValueError):
    """A period given as text that is not one (``--week 2026-W60``)."""


def month_start(d: date | datetime) -> date:
    """The first day of the month holding ``d``."""
    return date(d.year, d.month, 1)


def add_months(d: date, n: int) -> date:
    """The first day of the month ``n`` months after the one holding ``d`` (``n`` may be negative)."""
    y, m = divmod(d.month - 1 + n, 12)
    return date(d.year + y, m + 1, 1)


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Start and end (exclusive) of the UTC month holding ``now``, as aware datetimes."""
    first = month_start(now.astimezone(UTC) if now.tzinfo else now)
    nxt = add_months(first, 1)
    return (datetime(first.year, first.month, 1, tzinfo=UTC), datetime(nxt.year, nxt.month, 1, tzinfo=UTC))


def month_hours_left(now: datetime) -> float:
    """Hours from ``now`` to the end of its UTC month."""
    return (month_bounds(now)[1] - now).total_seconds() / 3600


def months_between(first: date, last: date) -> list[date]:
    """First days of the months from ``first``'s to ``last``'s, both included, oldest first."""
    out, d = [], month_start(first)
    while d <= month_start(last):
        out.append(d)
        d = add_months(d, 1)
    return out


@dataclass(frozen=True)
class Week:
    """An ISO week, Monday 00:00 UTC to the next Monday."""

    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> Week:
        m = re.fullmatch(r"(\d{4})-?W(\d{1,2})", text.strip(), re.IGNORECASE)
        if not m:
            raise PeriodError(f"--week {text!r}: expected an ISO week such as 2026-W47")
        year, week = int(m.group(1)), int(m.group(2))
        try:
            start = date.fromisocalendar(year, week, 1)
            start + timedelta(days=7)
        except (ValueError, OverflowError):
            raise PeriodError(f"--week {text!r}: {year} has no ISO week {week}") from None
        if year < 1970:
            raise PeriodError(f"--week {text!r}: weeks before 1970 hold no billing data")
        return cls(year, week)

    @classmethod
    def containing(cls, day: date) -> Week:
        y, w, _ = day.isocalendar()
        return cls(y, w)

    @classmethod
    def last_complete(cls, now: datetime | None = None) -> Week:
        """The last week that has ended by ``now`` (default: the current time, UTC)."""
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        return cls.containing(today - timedelta(days=7))

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def start(self) -> datetime:
        d = date.fromisocalendar(self.year, self.week, 1)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=7)

    @property
    def month_start(self) -> datetime:
        """Start of the month holding the week's last day (for month-to-date)."""
        last = self.end - timedelta(days=1)
        return datetime(last.year, last.month, 1, tzinfo=UTC)

    def previous(self) -> Week:
        return Week.containing((self.start - timedelta(days=7)).date())

    def complete(self, now: datetime | None = None) -> bool:
        """Whether the week has ended by ``now``."""
        return (now or datetime.now(UTC)) >= self.end
