"""When reminders and the daily digest are due: working days and hours in the practice's time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.reminders import (
    WEEKDAYS,
    ReminderPolicy,
    digest_due,
    parse_days,
    parse_hours,
    reminder_due,
    waited,
    working_time_between,
)

LONDON = ZoneInfo("Europe/London")
POLICY = ReminderPolicy(timedelta(hours=2), WEEKDAYS, time(8), time(18, 30), time(8), LONDON)


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=LONDON)


def test_only_working_hours_count() -> None:
    """A request sent on Friday at 17:30 has waited 1 h by Monday 08:00 and 3 h by Monday 10:00."""
    friday = at(4, 17, 30)
    assert working_time_between(friday, at(7, 8), POLICY) == timedelta(hours=1)
    assert not reminder_due(friday, at(7, 8, 59), POLICY)
    assert reminder_due(friday, at(7, 9), POLICY)
    assert working_time_between(friday, at(7, 10), POLICY) == timedelta(hours=3)


def test_evenings_and_weekends_do_not_count() -> None:
    """A request sent on Saturday evening has waited nothing until Monday 08:00."""
    assert working_time_between(at(5, 20), at(7, 8), POLICY) == timedelta(0)


def test_working_hours_follow_summer_time() -> None:
    """08:00 is 08:00 on the surgery's wall clock in summer too (07:00 UTC)."""
    summer_monday = datetime(2026, 6, 1, 7, 0, tzinfo=ZoneInfo("UTC"))
    assert working_time_between(summer_monday, summer_monday + timedelta(hours=1), POLICY) == timedelta(
        hours=1
    )


def test_the_digest_is_due_once_a_day_after_its_hour() -> None:
    """Due once its local hour has passed since the last digest; never on the very first run."""
    assert not digest_due(None, at(7, 9), POLICY)
    assert digest_due(at(6, 9), at(7, 8), POLICY)
    assert not digest_due(at(7, 8, 1), at(7, 17), POLICY)
    assert not digest_due(at(7, 8, 1), at(8, 7, 59), POLICY)


def test_settings_read_days_and_hours() -> None:
    """Days and hours read as people write them; nonsense is refused."""
    assert parse_days("mon-fri") == WEEKDAYS
    assert parse_days("sat-mon") == frozenset({5, 6, 0})
    assert parse_days("funday") is None
    assert parse_hours("08:00-18:30") == (time(8), time(18, 30))
    assert parse_hours("00:00-24:00") == (time(0), None)
    assert parse_hours("18:00-08:00") is None
    assert waited(timedelta(hours=3, minutes=5)) == "3 h 05 min"
