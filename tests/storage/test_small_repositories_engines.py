"""The small repositories, on each engine: what each promises its callers (the handler tests reach the big
ones on both engines; these are the ones they reach on SQLite only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.ids import EventID, RoomID, UserID
from bot.keyring import Keyring, MasterKey, Sealer
from storage.confirmations import PendingConfirmations
from storage.conversations import ConversationRepository
from storage.database import SqliteDatabase
from storage.gauges import Gauges
from storage.handled_events import HandledEvents
from storage.job_runs import clear_run, last_run, save_run
from storage.postgres import PostgresDatabase
from storage.refused_invites import RefusedInvites
from storage.restores import Restores, record_restore
from storage.rooms import RoomKind, RoomRepository
from storage.sql import Database
from storage.staff_identities import StaffIdentities

NOW = datetime(2031, 3, 4, 9, 30, tzinfo=UTC)
ROOM = RoomID("!room:practice.example")
CLINICIAN = UserID("@dr.synthetic:practice.example")


class Clock:
    def now(self) -> datetime:
        return NOW


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    opened: Database
    if request.param == "postgresql":
        opened = await PostgresDatabase.open(request.getfixturevalue("postgres_url"))
    else:
        opened = await SqliteDatabase.open(tmp_path / "photobot.sqlite3")
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_staff_identity_is_pinned_once_and_a_change_waits_for_an_admin(database: Database) -> None:
    identities = StaffIdentities(database, Clock())
    await identities.pin(CLINICIAN, "key-1")
    await identities.pin(CLINICIAN, "key-other")  # already pinned: kept
    assert await identities.note_change(CLINICIAN, "key-2") is True
    assert await identities.note_change(CLINICIAN, "key-2") is False, "the same change is noted once"
    assert await identities.note_change(CLINICIAN, "key-1") is False, "the pinned key is not a change"
    pinned = await identities.get(CLINICIAN)
    assert pinned is not None and (pinned.master_key, pinned.changed_key) == ("key-1", "key-2")
    async with database.transaction() as db:
        await identities.accept(db, CLINICIAN, "key-2")
    accepted = await identities.get(CLINICIAN)
    assert accepted is not None and (accepted.master_key, accepted.changed_key) == ("key-2", None)


async def test_a_confirmation_waits_a_minute_and_is_replaced_and_cleared(database: Database) -> None:
    confirmations = PendingConfirmations(database, Sealer(Keyring(MasterKey.generate())))
    async with database.transaction() as db:
        await confirmations.ask(db, ROOM, CLINICIAN, "!delete GP-1 wrong patient", NOW)
        await confirmations.ask(db, ROOM, CLINICIAN, "!delete GP-2 duplicate", NOW)
    assert (
        await confirmations.waiting(ROOM, CLINICIAN, NOW + timedelta(seconds=30)) == "!delete GP-2 duplicate"
    )
    assert await confirmations.waiting(ROOM, CLINICIAN, NOW + timedelta(minutes=5)) is None
    async with database.transaction() as db:
        await confirmations.done(db, ROOM, CLINICIAN)
    assert await confirmations.waiting(ROOM, CLINICIAN, NOW) is None


async def test_refused_invitations_are_counted_and_explained_once_a_window(database: Database) -> None:
    refused = RefusedInvites()
    window = timedelta(hours=1)
    async with database.transaction() as db:
        assert await refused.record(db, "other.example", NOW, window) == (1, True)
        assert await refused.record(db, "other.example", NOW + timedelta(minutes=5), window) == (2, False)
        assert await refused.record(db, "other.example", NOW + timedelta(hours=2), window) == (3, True)


async def test_restores_jobs_events_and_gauges(database: Database) -> None:
    restores = Restores(database)
    async with database.transaction() as db:
        await record_restore(db, NOW, "2031-03-01T00:00:00+00:00", ("max_photos",))
        await save_run(db, "retention", NOW)
        await HandledEvents(database, Clock()).mark(db, EventID("$event"), ROOM)
    waiting = await restores.awaiting_catch_up()
    assert waiting is not None and waiting.rolled_back == ("max_photos",)
    assert await last_run(database, "retention") == NOW
    assert await HandledEvents(database, Clock()).seen(EventID("$event"))
    async with database.transaction() as db:
        await restores.caught_up(db, NOW)
        await clear_run(db, "retention")
    assert await restores.awaiting_catch_up() is None
    assert await last_run(database, "retention") is None

    keyring = Keyring(MasterKey.generate())
    rooms = RoomRepository(database, keyring, Sealer(keyring), Clock())
    conversations = ConversationRepository(database, Sealer(keyring))
    async with database.transaction() as db:
        await rooms.add(db, ROOM, RoomKind.PATIENT, UserID("@patient:practice.example"))
        await conversations.save(db, ROOM, "asking_nhs_number", {"step": 1}, NOW.isoformat())
    assert await conversations.rooms_in_states(["asking_nhs_number", "done"]) == [(ROOM, NOW.isoformat())]
    gauges = Gauges(database)
    assert await gauges.conversations_by_state() == {"asking_nhs_number": 1.0}
    assert await gauges.outbox_backlog() == 0.0
    assert await gauges.purge_backlog(NOW) == 0.0
