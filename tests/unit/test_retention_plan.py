"""The retention plan: what one run of the job warns about and destroys, for any clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.ids import RoomID
from handlers.retention import RetentionPlan, plan_retention
from storage.submissions import Decision, Status, Submission

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)
WARNING = timedelta(days=7)


def _submission(number: int, *, age: timedelta, warned: timedelta | None = None) -> Submission:
    created = START - age
    return Submission(
        submission_id=f"s{number}",
        reference=f"GP-TEST-{number:04d}",
        room_id=RoomID("!room:example.org"),
        status=Status.NEW,
        keep_in_record=True,
        intimate=False,
        acting_for_someone=False,
        created_at=created,
        request_id=None,
        claimed_by=None,
        first_viewed_at=None,
        decision=None,
        description=None,
        retention_warned_at=None if warned is None else START - warned,
        images_destroyed_at=None,
        photo_count=2,
    )


def _plan(
    submissions: list[Submission], *, now: datetime = START, last_run: datetime | None = None, cap: int = 20
) -> RetentionPlan:
    return plan_retention(
        submissions, now=now, last_run=last_run, retention=RETENTION, warning=WARNING, max_per_run=cap
    )


def test_a_submission_is_warned_about_when_the_warning_period_starts_and_not_before() -> None:
    """At 23 days nothing happens; at 24 days (30 - 7 + 1) clinicians are warned; nothing is destroyed."""
    young, due_warning = _submission(1, age=timedelta(days=22)), _submission(2, age=timedelta(days=24))
    plan = _plan([young, due_warning])
    assert [s.reference for s in plan.warn] == [due_warning.reference]
    assert plan.destroy == () and plan.refused is None


def test_nothing_is_destroyed_without_a_warning_that_stood_for_a_day() -> None:
    """Past retention but never warned: warned now, destroyed later; warned an hour ago: still kept."""
    unwarned = _submission(1, age=timedelta(days=40))
    warned_an_hour_ago = _submission(2, age=timedelta(days=40), warned=timedelta(hours=1))
    warned_two_days_ago = _submission(3, age=timedelta(days=40), warned=timedelta(days=2))
    plan = _plan([unwarned, warned_an_hour_ago, warned_two_days_ago])
    assert [s.reference for s in plan.warn] == [unwarned.reference]
    assert [s.reference for s in plan.destroy] == [warned_two_days_ago.reference]


def test_kept_and_already_destroyed_submissions_are_never_touched() -> None:
    """A submission a clinician kept for the record, or whose photos are gone, is neither warned nor destroyed."""
    old = _submission(1, age=timedelta(days=60), warned=timedelta(days=10))
    kept = replace(old, submission_id="s2", decision=Decision(True, "needed", "@dr:example.org", START))
    gone = replace(old, submission_id="s3", images_destroyed_at=START - timedelta(days=1))
    plan = _plan([kept, gone])
    assert plan.warn == () and plan.destroy == ()


def test_one_run_destroys_at_most_the_cap_and_says_how_many_wait() -> None:
    """With 25 due and a cap of 20, 20 are destroyed and 5 are left for the next run."""
    due = [_submission(n, age=timedelta(days=45), warned=timedelta(days=3)) for n in range(25)]
    plan = _plan(due, cap=20)
    assert len(plan.destroy) == 20 and plan.left_for_later == 5


@pytest.mark.parametrize(
    ("last_run", "refuses"),
    [
        (START + timedelta(hours=1), True),  # the clock went back an hour since the last run
        (START + timedelta(minutes=4), False),  # within the tolerance of a clock correction
        (START - timedelta(days=31), True),  # jumped forward by more than the retention period
        (START - timedelta(days=29), False),  # a month's downtime, still within the period
    ],
)
def test_the_job_refuses_to_act_on_a_clock_it_cannot_trust(last_run: datetime, refuses: bool) -> None:
    """After the clock went back, or jumped further than the retention period, nothing is warned or destroyed."""
    due = [
        _submission(1, age=timedelta(days=45), warned=timedelta(days=3)),
        _submission(2, age=timedelta(days=25)),
    ]
    plan = _plan(due, last_run=last_run)
    if refuses:
        assert plan.refused is not None and plan.warn == () and plan.destroy == ()
    else:
        assert plan.refused is None and len(plan.destroy) == 1 and len(plan.warn) == 1
