"""When to remind the clinician room of an unclaimed request, and when the daily digest is due. Pure.

    policy = ReminderPolicy(after=timedelta(hours=2), days=WEEKDAYS, start=time(8), end=time(18, 30),
                            digest_at=time(8), zone=ZoneInfo("Europe/London"))
    working_time_between(created, now, policy)   only the practice's working hours count
    reminder_due(created, now, policy)           True once a request has waited `after` of working time
    digest_due(last, now, policy)                True once the digest time has passed since the last one

Times are compared in the practice's time zone (summer time included), so "08:00" is 08:00 on the surgery
wall clock all year. Nothing here reads a clock: the caller passes `now` (tests move it at will).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = frozenset(range(5))
MAX_DAYS_COUNTED = 366  # a request older than this has long been reminded of; stop counting


@dataclass(frozen=True)
class ReminderPolicy:
    after: timedelta  # working time a request may wait unclaimed before the room is reminded
    days: frozenset[int]  # working days, Monday = 0
    start: time  # working hours, local
    end: time | None  # None: until midnight
    digest_at: time | None  # the daily digest's local time; None: no digest
    zone: ZoneInfo


def parse_days(text: str) -> frozenset[int] | None:
    """'mon-fri', 'mon,tue,thu', 'mon-sun' -> weekday numbers; None if it does not read."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            return None
        a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return frozenset(days) or None


def parse_hours(text: str) -> tuple[time, time | None] | None:
    """'08:00-18:30' -> (08:00, 18:30); '00:00-24:00' -> (00:00, None); None if it does not read."""
    start_text, _, end_text = text.replace(" ", "").partition("-")
    start = parse_time(start_text)
    end = None if end_text == "24:00" else parse_time(end_text)
    if start is None or (end is None and end_text != "24:00") or (end is not None and end <= start):
        return None
    return start, end


def parse_time(text: str) -> time | None:
    hours, _, minutes = text.partition(":")
    if not (hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit()):
        return None
    if int(hours) > 23 or int(minutes) > 59:
        return None
    return time(int(hours), int(minutes))


def _local(day: date, moment: time | None, zone: ZoneInfo) -> datetime:
    if moment is None:
        return datetime.combine(day + timedelta(days=1), time(0), zone)
    return datetime.combine(day, moment, zone)


def working_time_between(since: datetime, now: datetime, policy: ReminderPolicy) -> timedelta:
    """How much of the span since..now fell within the practice's working days and hours."""
    if now <= since:
        return timedelta(0)
    total = timedelta(0)
    first = since.astimezone(policy.zone).date()
    last = now.astimezone(policy.zone).date()
    day = max(first, last - timedelta(days=MAX_DAYS_COUNTED))
    while day <= last:
        if day.weekday() in policy.days:
            opens, closes = _local(day, policy.start, policy.zone), _local(day, policy.end, policy.zone)
            begin, finish = max(opens, since), min(closes, now)
            if finish > begin:
                total += finish - begin
        day += timedelta(days=1)
    return total


def reminder_due(created: datetime, now: datetime, policy: ReminderPolicy) -> bool:
    return working_time_between(created, now, policy) >= policy.after


def digest_due(last: datetime | None, now: datetime, policy: ReminderPolicy) -> bool:
    """True when the digest's local time today has passed and the last digest was before it."""
    if policy.digest_at is None or last is None:
        return False  # the first run only starts the count: no digest the moment the bot starts
    today = now.astimezone(policy.zone).date()
    due_at = datetime.combine(today, policy.digest_at, policy.zone)
    return now >= due_at > last


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """'Mon 7 Dec 14:05' in the practice's time zone."""
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def waited(span: timedelta) -> str:
    """'3 h 05 min', '2 days 4 h', '12 min'."""
    minutes = int(span.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''} {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"
