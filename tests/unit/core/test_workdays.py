"""Working days and deadlines for England & Wales and Scotland, 2012-2030, checked against gov.uk's dates.

Expected dates are written out by hand (gov.uk's published bank holidays; Easter from the calendar), never
computed by the code under test.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from importlib.metadata import version
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.core.workdays import CalendarRangeError, WorkCalendar

LONDON = ZoneInfo("Europe/London")
ENG = WorkCalendar.for_division("england-and-wales")
SCT = WorkCalendar.for_division("scotland")
NIR = WorkCalendar.for_division("northern-ireland")
CALENDARS = {"england-and-wales": ENG, "scotland": SCT}


def london(text: str) -> datetime:
    """A wall-clock time in London, e.g. "2025-03-07 17:30"."""
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def last_sunday(year: int, month: int) -> date:
    day = date(year, month, calendar.monthrange(year, month)[1])
    return day - timedelta(days=(day.weekday() + 1) % 7)


# (day, working in England & Wales, working in Scotland, why)
DAYS = [
    ("2012-06-04", False, False, "spring bank holiday moved for the Diamond Jubilee"),
    ("2012-06-05", False, False, "Diamond Jubilee"),
    ("2012-05-28", True, True, "last Monday in May, not a holiday in 2012"),
    ("2015-12-28", False, False, "Boxing Day substitute"),
    ("2016-12-27", False, False, "Christmas Day substitute"),
    ("2020-05-08", False, False, "early May bank holiday moved to VE Day"),
    ("2020-05-04", True, True, "first Monday in May, not a holiday in 2020"),
    ("2021-12-27", False, False, "Christmas Day substitute"),
    ("2021-12-28", False, False, "Boxing Day substitute"),
    ("2021-12-29", True, True, "after the substitutes"),
    ("2022-01-03", False, False, "New Year's Day substitute"),
    ("2022-05-30", True, True, "spring bank holiday moved to 2 June in 2022"),
    ("2022-06-02", False, False, "spring bank holiday 2022"),
    ("2022-06-03", False, False, "Platinum Jubilee"),
    ("2022-09-19", False, False, "State Funeral of Queen Elizabeth II"),
    ("2022-12-26", False, False, "Boxing Day"),
    ("2022-12-27", False, False, "Christmas Day substitute"),
    ("2023-05-08", False, False, "Coronation of King Charles III"),
    ("2026-12-28", False, False, "Boxing Day substitute"),
    ("2027-12-27", False, False, "Christmas Day substitute"),
    ("2027-12-28", False, False, "Boxing Day substitute"),
    ("2028-01-03", False, False, "New Year's Day substitute"),
    ("2012-04-09", False, True, "Easter Monday: England & Wales only"),
    ("2016-03-28", False, True, "Easter Monday: England & Wales only"),
    ("2019-04-22", False, True, "Easter Monday: England & Wales only"),
    ("2025-04-21", False, True, "Easter Monday: England & Wales only"),
    ("2030-04-22", False, True, "Easter Monday: England & Wales only"),
    ("2025-04-18", False, False, "Good Friday"),
    ("2023-08-28", False, True, "late summer bank holiday: England & Wales only"),
    ("2023-08-07", True, False, "summer bank holiday: Scotland only"),
    ("2013-01-02", True, False, "2 January: Scotland only"),
    ("2024-01-02", True, False, "2 January: Scotland only"),
    ("2030-01-02", True, False, "2 January: Scotland only"),
    ("2016-01-04", True, False, "2 January substitute (Saturday)"),
    ("2021-01-04", True, False, "2 January substitute (Saturday)"),
    ("2022-01-04", True, False, "2 January substitute (Sunday, after New Year's substitute)"),
    ("2023-01-03", True, False, "2 January substitute (New Year's Day on Sunday)"),
    ("2027-01-04", True, False, "2 January substitute (Saturday)"),
    ("2012-11-30", True, False, "St Andrew's Day: Scotland only"),
    ("2018-11-30", True, False, "St Andrew's Day: Scotland only"),
    ("2013-12-02", True, False, "St Andrew's Day substitute (Saturday)"),
    ("2014-12-01", True, False, "St Andrew's Day substitute (Sunday)"),
    ("2019-12-02", True, False, "St Andrew's Day substitute (Saturday)"),
    ("2024-12-02", True, False, "St Andrew's Day substitute (Saturday)"),
    ("2025-12-01", True, False, "St Andrew's Day substitute (Sunday)"),
    ("2030-12-02", True, False, "St Andrew's Day substitute (Saturday)"),
    ("2026-06-15", True, False, "World Cup bank holiday: Scotland only (proclaimed 2025)"),
    ("2024-11-29", True, True, "the Friday before a St Andrew's Day weekend"),
    ("2026-03-28", False, False, "Saturday"),
    ("2026-03-29", False, False, "Sunday (clocks go forward)"),
    ("2026-03-30", True, True, "an ordinary Monday"),
]


@pytest.mark.parametrize(("day", "eng", "sct", "why"), DAYS, ids=[row[0] for row in DAYS])
def test_working_days_follow_gov_uk(day: str, eng: bool, sct: bool, why: str) -> None:
    d = date.fromisoformat(day)
    assert (ENG.is_working_day(d), SCT.is_working_day(d)) == (eng, sct), why


def test_northern_ireland_has_its_own_holidays() -> None:
    for day in (date(2025, 3, 17), date(2025, 7, 14)):  # St Patrick's Day; Battle of the Boyne substitute
        assert not NIR.is_working_day(day)
        assert ENG.is_working_day(day)


# (division, event in London wall-clock time, n, expected due date; due is always 17:00 London)
DEADLINES = [
    ("england-and-wales", "2025-03-03 10:00", 5, "2025-03-10"),  # Monday morning: Monday is day 0
    ("england-and-wales", "2025-03-07 16:59:59", 5, "2025-03-14"),  # Friday, just before the cut-off
    ("england-and-wales", "2025-03-07 17:00", 5, "2025-03-17"),  # exactly 17:00 counts from Monday
    ("england-and-wales", "2025-03-07 17:30", 5, "2025-03-17"),  # Friday evening counts from Monday
    ("england-and-wales", "2025-03-08 11:00", 5, "2025-03-17"),  # Saturday counts from Monday
    ("england-and-wales", "2026-01-09 18:45", 5, "2026-01-19"),
    ("scotland", "2026-01-09 18:45", 5, "2026-01-19"),
    ("england-and-wales", "2026-03-27 17:01", 5, "2026-04-08"),  # Friday evening, then Easter
    ("scotland", "2026-03-27 17:01", 5, "2026-04-07"),  # no Easter Monday in Scotland
    ("england-and-wales", "2025-11-28 17:30", 5, "2025-12-08"),
    ("scotland", "2025-11-28 17:30", 5, "2025-12-09"),  # Friday evening, then St Andrew's substitute
    ("england-and-wales", "2021-12-23 10:00", 5, "2022-01-04"),  # Christmas and New Year substitutes
    ("scotland", "2021-12-23 10:00", 5, "2022-01-05"),  # plus the 2 January substitute
    ("england-and-wales", "2022-12-23 17:30", 5, "2023-01-05"),
    ("scotland", "2022-12-23 17:30", 5, "2023-01-06"),
    ("england-and-wales", "2027-12-24 17:30", 5, "2028-01-06"),  # 2027 Christmas substitutes
    ("scotland", "2027-12-24 17:30", 5, "2028-01-07"),
    ("england-and-wales", "2025-04-17 12:00", 5, "2025-04-28"),  # Good Friday and Easter Monday
    ("scotland", "2025-04-17 12:00", 5, "2025-04-25"),  # Good Friday only
    ("england-and-wales", "2022-05-31 09:00", 5, "2022-06-09"),  # Platinum Jubilee weekend
    ("scotland", "2022-05-31 09:00", 5, "2022-06-09"),
    ("england-and-wales", "2022-09-16 18:00", 5, "2022-09-27"),  # Friday evening, then the State Funeral
    ("scotland", "2022-09-16 18:00", 5, "2022-09-27"),
    ("england-and-wales", "2023-05-05 10:00", 5, "2023-05-15"),  # Coronation Monday
    ("scotland", "2023-05-05 10:00", 5, "2023-05-15"),
    ("england-and-wales", "2024-11-28 11:00", 5, "2024-12-05"),
    ("scotland", "2024-11-28 11:00", 5, "2024-12-06"),  # St Andrew's substitute
    ("england-and-wales", "2024-12-31 12:00", 5, "2025-01-08"),
    ("scotland", "2024-12-31 12:00", 5, "2025-01-09"),  # 2 January
    ("england-and-wales", "2012-06-01 17:00", 1, "2012-06-07"),  # acknowledgement over the Jubilee
    ("scotland", "2012-06-01 17:00", 1, "2012-06-07"),
]


@pytest.mark.parametrize(("division", "event", "n", "due"), DEADLINES)
def test_deadline_is_17_00_on_the_nth_working_day(division: str, event: str, n: int, due: str) -> None:
    deadline = CALENDARS[division].add_working_days(london(event), n)
    assert deadline == datetime.combine(date.fromisoformat(due), time(17), tzinfo=LONDON)


@pytest.mark.parametrize(
    ("event", "due"),
    [
        ("2025-06-06T16:30:00+00:00", "2025-06-16"),  # 17:30 BST on a Friday: after the cut-off
        ("2025-01-10T16:30:00+00:00", "2025-01-17"),  # 16:30 GMT on a Friday: before it
    ],
)
def test_cut_off_is_london_wall_clock_whatever_zone_the_event_is_in(event: str, due: str) -> None:
    deadline = ENG.add_working_days(datetime.fromisoformat(event), 5)
    assert deadline.astimezone(LONDON).date() == date.fromisoformat(due)


# (year, due after a Friday 10:00 notice E&W / Scotland, after a Monday 10:00 notice E&W / Scotland):
# the Friday before and the Monday after the last Sunday of March. Easter falls here in some years.
MARCH = [
    (2012, "2012-03-30", "2012-03-30", "2012-04-02", "2012-04-02"),
    (2013, "2013-04-09", "2013-04-08", "2013-04-09", "2013-04-08"),  # the Friday is Good Friday
    (2014, "2014-04-04", "2014-04-04", "2014-04-07", "2014-04-07"),
    (2015, "2015-04-07", "2015-04-06", "2015-04-08", "2015-04-07"),
    (2016, "2016-04-05", "2016-04-04", "2016-04-05", "2016-04-04"),  # Good Friday; Easter Monday
    (2017, "2017-03-31", "2017-03-31", "2017-04-03", "2017-04-03"),
    (2018, "2018-04-03", "2018-04-02", "2018-04-04", "2018-04-03"),
    (2019, "2019-04-05", "2019-04-05", "2019-04-08", "2019-04-08"),
    (2020, "2020-04-03", "2020-04-03", "2020-04-06", "2020-04-06"),
    (2021, "2021-04-06", "2021-04-05", "2021-04-07", "2021-04-06"),
    (2022, "2022-04-01", "2022-04-01", "2022-04-04", "2022-04-04"),
    (2023, "2023-03-31", "2023-03-31", "2023-04-03", "2023-04-03"),
    (2024, "2024-04-09", "2024-04-08", "2024-04-09", "2024-04-08"),
    (2025, "2025-04-04", "2025-04-04", "2025-04-07", "2025-04-07"),
    (2026, "2026-04-07", "2026-04-06", "2026-04-08", "2026-04-07"),
    (2027, "2027-04-06", "2027-04-05", "2027-04-06", "2027-04-05"),  # the Monday is Easter Monday
    (2028, "2028-03-31", "2028-03-31", "2028-04-03", "2028-04-03"),
    (2029, "2029-04-03", "2029-04-02", "2029-04-04", "2029-04-03"),
    (2030, "2030-04-05", "2030-04-05", "2030-04-08", "2030-04-08"),
]


@pytest.mark.parametrize(
    ("year", "fri_eng", "fri_sct", "mon_eng", "mon_sct"), MARCH, ids=[str(r[0]) for r in MARCH]
)
def test_clocks_go_forward_deadline_stays_17_00_bst(
    year: int, fri_eng: str, fri_sct: str, mon_eng: str, mon_sct: str
) -> None:
    sunday = last_sunday(year, 3)
    friday = datetime.combine(sunday - timedelta(days=2), time(10), tzinfo=LONDON)  # GMT
    monday = datetime.combine(sunday + timedelta(days=1), time(10), tzinfo=LONDON)  # BST
    cases = [(ENG, friday, fri_eng), (SCT, friday, fri_sct), (ENG, monday, mon_eng), (SCT, monday, mon_sct)]
    for cal, event, due in cases:
        deadline = cal.add_working_days(event, 5)
        assert deadline.astimezone(UTC) == datetime.combine(date.fromisoformat(due), time(16), tzinfo=UTC)
        assert deadline.astimezone(LONDON).time() == time(17)


# (year, due after a Friday 10:00 notice, after a Monday 10:00 notice) around the last Sunday of October;
# no bank holiday falls near it in either division.
OCTOBER = [
    (2012, "2012-11-02", "2012-11-05"),
    (2013, "2013-11-01", "2013-11-04"),
    (2014, "2014-10-31", "2014-11-03"),
    (2015, "2015-10-30", "2015-11-02"),
    (2016, "2016-11-04", "2016-11-07"),
    (2017, "2017-11-03", "2017-11-06"),
    (2018, "2018-11-02", "2018-11-05"),
    (2019, "2019-11-01", "2019-11-04"),
    (2020, "2020-10-30", "2020-11-02"),
    (2021, "2021-11-05", "2021-11-08"),
    (2022, "2022-11-04", "2022-11-07"),
    (2023, "2023-11-03", "2023-11-06"),
    (2024, "2024-11-01", "2024-11-04"),
    (2025, "2025-10-31", "2025-11-03"),
    (2026, "2026-10-30", "2026-11-02"),
    (2027, "2027-11-05", "2027-11-08"),
    (2028, "2028-11-03", "2028-11-06"),
    (2029, "2029-11-02", "2029-11-05"),
    (2030, "2030-11-01", "2030-11-04"),
]


@pytest.mark.parametrize(("year", "after_friday", "after_monday"), OCTOBER, ids=[str(r[0]) for r in OCTOBER])
def test_clocks_go_back_deadline_stays_17_00_gmt(year: int, after_friday: str, after_monday: str) -> None:
    sunday = last_sunday(year, 10)
    friday = datetime.combine(sunday - timedelta(days=2), time(10), tzinfo=LONDON)  # BST
    monday = datetime.combine(sunday + timedelta(days=1), time(10), tzinfo=LONDON)  # GMT
    for cal in (ENG, SCT):
        for event, due in ((friday, after_friday), (monday, after_monday)):
            deadline = cal.add_working_days(event, 5)
            assert deadline.astimezone(UTC) == datetime.combine(date.fromisoformat(due), time(17), tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "due"),
    [
        ("2025-03-03 10:00", "2025-03-07"),  # Monday is day 1
        ("2025-03-07 17:30", "2025-03-14"),  # counts from Monday, which is day 1
    ],
)
def test_count_event_day_makes_the_counting_day_day_one(event: str, due: str) -> None:
    deadline = ENG.add_working_days(london(event), 5, count_event_day=True)
    assert deadline == datetime.combine(date.fromisoformat(due), time(17), tzinfo=LONDON)


def test_extra_closures_from_config_are_not_working_days() -> None:
    closed = WorkCalendar.for_division(
        "england-and-wales", extra_closures=[date(2026, 12, d) for d in (29, 30, 31)]
    )
    event = london("2026-12-24 10:00")
    assert ENG.add_working_days(event, 5).date() == date(2027, 1, 5)
    assert closed.add_working_days(event, 5).date() == date(2027, 1, 8)
    assert not closed.is_working_day(date(2026, 12, 30))


def test_day_end_is_configurable() -> None:
    early = WorkCalendar.for_division("england-and-wales", day_end=time(16, 30))
    deadline = early.add_working_days(london("2025-03-07 16:45"), 1)  # after 16:30: counts from Monday
    assert deadline == london("2025-03-11 16:30")


@pytest.mark.parametrize(
    ("deadline", "n", "expected"),
    [
        ("2025-03-10 17:00", 2, "2025-03-06 17:00"),  # Monday deadline: Thursday before
        ("2025-03-10 17:00", 1, "2025-03-07 17:00"),
        ("2022-06-09 17:00", 2, "2022-06-07 17:00"),
        ("2022-06-09 17:00", 4, "2022-06-01 17:00"),  # back over the Jubilee holidays
        ("2025-04-22 17:00", 1, "2025-04-17 17:00"),  # back over Easter
    ],
)
def test_subtract_working_days_gives_the_reminder_moment(deadline: str, n: int, expected: str) -> None:
    assert ENG.subtract_working_days(london(deadline), n) == london(expected)


@pytest.mark.parametrize(
    ("start", "end", "count"),
    [
        (date(2025, 3, 3), date(2025, 3, 10), 5),
        (date(2025, 3, 3), date(2025, 3, 3), 0),
        (date(2021, 12, 24), date(2022, 1, 4), 4),
        (date(2022, 1, 4), date(2021, 12, 24), -4),
        (london("2025-03-03 10:00"), london("2025-03-04 09:00"), 1),  # acknowledged the next working day
        (london("2025-03-07 23:30"), datetime(2025, 3, 10, 8, tzinfo=UTC), 1),
    ],
)
def test_working_days_between(start: date, end: date, count: int) -> None:
    assert ENG.working_days_between(start, end) == count


def test_records_what_the_deadline_was_computed_with() -> None:
    assert (ENG.name, SCT.name) == ("england-and-wales", "scotland")
    assert ENG.holidays_version == version("holidays")
    assert ENG.holidays_version.count(".") >= 1


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ENG.add_working_days(datetime(2025, 3, 3, 10), 5)
    with pytest.raises(ValueError, match="timezone-aware"):
        ENG.subtract_working_days(datetime(2025, 3, 10, 17), 2)
    with pytest.raises(ValueError, match="timezone-aware"):
        ENG.counting_start(datetime(2025, 3, 3, 10))


def test_dates_outside_the_holiday_years_are_refused_not_guessed() -> None:
    short = WorkCalendar.for_division("scotland", years=range(2025, 2027))
    with pytest.raises(CalendarRangeError, match="2027-01-01 is outside the holiday years 2025-2026"):
        short.add_working_days(london("2026-12-30 10:00"), 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "wales"}, "unknown division 'wales'"),
        ({"name": "scotland", "day_end": time(17, tzinfo=UTC)}, "no tzinfo"),
        ({"name": "scotland", "years": range(2030, 2020)}, "non-empty range"),
    ],
)
def test_bad_calendar_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkCalendar.for_division(**kwargs)  # type: ignore[arg-type]


def test_negative_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="n >= 0"):
        ENG.add_working_days(london("2025-03-03 10:00"), -1)
    with pytest.raises(ValueError, match="n >= 1"):
        ENG.add_working_days(london("2025-03-03 10:00"), 0, count_event_day=True)
    with pytest.raises(ValueError, match="negative"):
        ENG.subtract_working_days(london("2025-03-10 17:00"), -1)


# Properties over 2012-2030, events given in London or UTC (including times that do not exist in London).
events = st.datetimes(
    min_value=datetime(2012, 1, 1), max_value=datetime(2030, 11, 30), timezones=st.sampled_from([LONDON, UTC])
)
lengths = st.integers(min_value=0, max_value=25)
divisions = st.sampled_from([ENG, SCT])


@given(cal=divisions, event=events, n=lengths)
def test_due_is_a_working_day_at_day_end_after_the_event(cal: WorkCalendar, event: datetime, n: int) -> None:
    due = cal.add_working_days(event, n).astimezone(LONDON)
    assert cal.is_working_day(due.date())
    assert due.time() == time(17)
    assert due > event
    assert cal.working_days_between(cal.counting_start(event), due) == n


@given(cal=divisions, a=events, b=events, n=lengths)
def test_due_is_monotonic_in_the_event_time(cal: WorkCalendar, a: datetime, b: datetime, n: int) -> None:
    early, late = sorted((a, b))
    assert cal.add_working_days(early, n) <= cal.add_working_days(late, n)


@given(cal=divisions, event=events, n=lengths)
def test_add_then_subtract_returns_to_the_counting_day(cal: WorkCalendar, event: datetime, n: int) -> None:
    due = cal.add_working_days(event, n)
    assert cal.subtract_working_days(due, n) == cal.end_of_day(cal.counting_start(event))
