"""Working days: Monday to Friday minus one UK division's bank holidays and configured closures.

Pure: dates come from the `holidays` package (gov.uk's divisions map to its UK subdivisions), times are
compared in the calendar's zone (Europe/London by default), and nothing here reads the clock. The rules are
written out with worked examples in docs/clocks.md; in short:

- an event counts from its *counting day*: the day it happens if that is a working day and the local time is
  before `day_end` (17:00), otherwise the next working day; an event at 17:00:00 exactly counts from the next
  working day;
- "n working days from an event" ends at `day_end` on the n-th working day after the counting day (or the
  (n-1)-th when `count_event_day` is set, so the counting day itself is day 1).

Every answer depends on the holiday data, so a deadline stores `name` and `holidays_version` with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from importlib.metadata import version
from typing import Final
from zoneinfo import ZoneInfo

# gov.uk's bank-holiday divisions and the `holidays` package's UK subdivision codes for them.
DIVISIONS: Final = {"england-and-wales": "ENG", "scotland": "SCT", "northern-ireland": "NIR"}
DEFAULT_YEARS: Final = range(2010, 2041)
_ONE_DAY: Final = timedelta(days=1)


class CalendarRangeError(ValueError):
    """A date outside the years the calendar holds holidays for: guessing would silently drop holidays."""


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"work calendar: {what} must be timezone-aware, got naive {value.isoformat()}")


def _check_settings(name: str, day_end: time, years: range) -> None:
    if name not in DIVISIONS:
        raise ValueError(f"work calendar: unknown division {name!r}; choose one of {', '.join(DIVISIONS)}")
    if day_end.tzinfo is not None:
        raise ValueError("work calendar: day_end is a wall-clock time in the calendar's zone; give no tzinfo")
    if len(years) == 0 or years.step != 1:
        raise ValueError(
            f"work calendar: years must be a non-empty range of consecutive years, got {years!r}"
        )


@dataclass(frozen=True)
class WorkCalendar:
    """Which days are working days in one division, and when a working day ends."""

    name: str
    bank_holidays: frozenset[date] = field(repr=False)
    extra_closures: frozenset[date]
    tz: ZoneInfo
    day_end: time
    first_year: int
    last_year: int
    holidays_version: str

    @classmethod
    def for_division(
        cls,
        name: str,
        *,
        extra_closures: Iterable[date] = (),
        day_end: time = time(17),
        tz: str | ZoneInfo = "Europe/London",
        years: range = DEFAULT_YEARS,
    ) -> WorkCalendar:
        """The calendar of a gov.uk division ("england-and-wales", "scotland", "northern-ireland")."""
        _check_settings(name, day_end, years)
        import holidays  # loads every country (~9 MB): only when a calendar is built

        uk = holidays.country_holidays("GB", subdiv=DIVISIONS[name], years=years)
        return cls(
            name=name,
            bank_holidays=frozenset(uk),
            extra_closures=frozenset(extra_closures),
            tz=tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz),
            day_end=day_end,
            first_year=years[0],
            last_year=years[-1],
            holidays_version=version("holidays"),
        )

    def local_date(self, value: date) -> date:
        """The calendar day of `value`; an aware datetime is first converted to the calendar's zone."""
        if isinstance(value, datetime):
            _require_aware(value, "a time")
            return value.astimezone(self.tz).date()
        return value

    def is_working_day(self, day: date) -> bool:
        day = self.local_date(day)
        if not self.first_year <= day.year <= self.last_year:
            raise CalendarRangeError(
                f"work calendar {self.name}: {day.isoformat()} is outside the holiday years "
                f"{self.first_year}-{self.last_year}"
            )
        return day.weekday() < 5 and day not in self.bank_holidays and day not in self.extra_closures

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        return self.shift_working_days(day, 1)

    def shift_working_days(self, day: date, n: int) -> date:
        """The n-th working day after `day` (before it when n < 0); `day` itself is never counted."""
        day = self.local_date(day)
        step = _ONE_DAY if n > 0 else -_ONE_DAY
        remaining = abs(n)
        while remaining:
            day += step
            if self.is_working_day(day):
                remaining -= 1
        return day

    def end_of_day(self, day: date) -> datetime:
        """`day_end` on `day`, aware; zoneinfo gives the right offset on either side of a clock change."""
        return datetime.combine(self.local_date(day), self.day_end, tzinfo=self.tz)

    def counting_start(self, event: datetime) -> date:
        """The working day an event counts from: its own day if working and before day_end, else the next."""
        _require_aware(event, "an event time")
        local = event.astimezone(self.tz)
        if self.is_working_day(local.date()) and local.time() < self.day_end:
            return local.date()
        return self.next_working_day(local.date())

    def add_working_days(self, event: datetime, n: int, *, count_event_day: bool = False) -> datetime:
        """The deadline "n working days from `event`": day_end on the n-th working day after the counting day.

        With `count_event_day` the counting day is day 1, so the deadline falls one working day earlier.
        """
        lowest = 1 if count_event_day else 0
        if n < lowest:
            raise ValueError(f"work calendar: a deadline needs n >= {lowest} working days, got {n}")
        offset = n - 1 if count_event_day else n
        return self.end_of_day(self.shift_working_days(self.counting_start(event), offset))

    def subtract_working_days(self, deadline: datetime, n: int) -> datetime:
        """day_end on the n-th working day before the deadline's day: when "n working days left" begins."""
        _require_aware(deadline, "a deadline")
        if n < 0:
            raise ValueError(f"work calendar: cannot subtract a negative number of working days ({n})")
        return self.end_of_day(self.shift_working_days(deadline, -n))

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days fall after `start` up to and including `end` (negative when end < start).

        Datetimes count by their local date, so an acknowledgement the working day after sending is 1.
        """
        first, last = self.local_date(start), self.local_date(end)
        sign = 1
        if last < first:
            first, last, sign = last, first, -1
        count = 0
        day = first
        while day < last:
            day += _ONE_DAY
            if self.is_working_day(day):
                count += 1
        return sign * count
