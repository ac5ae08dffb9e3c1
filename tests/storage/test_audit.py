"""The tamper-evident audit log on a real SQLite file: what it records, and every tampering it must catch.

Tampering is done as an attacker holding the database file (but not the master key) would: through a
separate raw sqlite3 connection that first drops the append-only triggers.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.keyring import Keyring, MasterKey
from storage.audit import GENESIS_MAC, AuditAction, AuditLog, AuditLogError, AuditReport
from storage.database import Database

OLD_KEY = MasterKey(key_id="mk-0000000a", secret=bytes(range(32)))
NEW_KEY = MasterKey(key_id="mk-0000000b", secret=bytes(range(100, 132)))
OTHER_KEY = MasterKey(key_id="mk-0000000c", secret=bytes(range(50, 82)))
MARKER = "SYNTHETIC-AUDIT-DETAIL-7f3a"
CLINICIAN = "@dr.synthetic:practice.example"
START = datetime(2031, 3, 4, 9, 30, 0, 125000, tzinfo=UTC)
ENTRY_COUNT = 5


class FixedClock:
    """A clock stopped at one moment."""

    def __init__(self, moment: datetime = START) -> None:
        self._moment = moment

    def now(self) -> datetime:
        return self._moment


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "photobot.sqlite3"


@pytest.fixture
async def database(db_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(db_path)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def audit(database: Database) -> AuditLog:
    return AuditLog(database, Keyring(NEW_KEY), FixedClock())


def _subject(index: int) -> str:
    return "PB-AAAA-1111" if index % 2 else "PB-BBBB-2222"


async def _fill(audit: AuditLog, database: Database, count: int = ENTRY_COUNT) -> list[int]:
    """Append `count` entries, each in its own transaction, alternating between two subjects."""
    seqs = []
    for index in range(1, count + 1):
        async with database.transaction() as db:
            seqs.append(
                await audit.append(
                    db,
                    actor=CLINICIAN,
                    action=AuditAction.VIEW,
                    subject=_subject(index),
                    details={"note": f"{MARKER}-{index}", "visit_number": index},
                )
            )
    return seqs


@contextlib.contextmanager
def _attacker(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection to the file with the append-only triggers dropped; its changes are committed."""
    raw = sqlite3.connect(db_path, isolation_level=None, timeout=10)
    try:
        raw.execute("DROP TRIGGER IF EXISTS audit_log_append_only_update")
        raw.execute("DROP TRIGGER IF EXISTS audit_log_append_only_delete")
        yield raw
    finally:
        raw.close()


def _row(raw: sqlite3.Connection, seq: int) -> tuple[object, ...]:
    row = raw.execute(
        "SELECT at, actor, action, subject, details, prev_mac, mac FROM audit_log WHERE seq = ?", (seq,)
    ).fetchone()
    assert row is not None
    return tuple(row)


def _assert_detected(report: AuditReport, *seqs: int) -> None:
    """The report fails, names each of `seqs`, and says nothing of any entry's details."""
    assert not report.ok
    assert report.problems
    for seq in seqs:
        assert any(re.search(rf"\b{seq}\b", problem) for problem in report.problems), (seq, report.problems)
    assert not any(MARKER in problem or "note" in problem for problem in report.problems)


# --- an honest log ---------------------------------------------------------------------------------------


async def test_empty_log_verifies(audit: AuditLog) -> None:
    """A log with no entries yet verifies, with nothing walked."""
    assert await audit.verify() == AuditReport(ok=True, entries=0, problems=[])
    assert await audit.entries() == []


async def test_honest_log_verifies(audit: AuditLog, database: Database) -> None:
    """Entries appended in the normal way verify, every one of them walked."""
    assert await _fill(audit, database) == [1, 2, 3, 4, 5]
    assert await audit.verify() == AuditReport(ok=True, entries=ENTRY_COUNT, problems=[])


async def test_entries_come_back_in_order_with_their_details(audit: AuditLog, database: Database) -> None:
    """Entries read back in order, with who, what, when, which subject and the details as written."""
    async with database.transaction() as db:
        first = await audit.append(
            db,
            actor=CLINICIAN,
            action=AuditAction.KEEP,
            subject="PB-AAAA-1111",
            details={"reason": "needed to compare at follow-up ✓", "photos": ["p1", "p2"], "count": 2},
        )
        second = await audit.append(db, actor="bot", action=AuditAction.CONSENT_ASKED, subject="")
    entries = await audit.entries()
    assert (first, second) == (1, 2)
    assert [entry.seq for entry in entries] == [1, 2]
    kept, asked = entries
    assert kept.actor == CLINICIAN
    assert kept.action == "keep"
    assert kept.subject == "PB-AAAA-1111"
    assert kept.details == {"reason": "needed to compare at follow-up ✓", "photos": ["p1", "p2"], "count": 2}
    assert asked.action == "consent_asked"
    assert asked.details == {}
    assert kept.at == START
    assert asked.at == START


async def test_entries_filter_by_subject(audit: AuditLog, database: Database) -> None:
    """Asking for one submission's trail returns only its entries, in order."""
    await _fill(audit, database)
    trail = await audit.entries("PB-AAAA-1111")
    assert [entry.seq for entry in trail] == [1, 3, 5]
    assert {entry.subject for entry in trail} == {"PB-AAAA-1111"}
    assert [entry.details["visit_number"] for entry in trail] == [1, 3, 5]
    assert await audit.entries("PB-NONE-0000") == []


async def test_entry_rolled_back_with_its_transaction_leaves_no_trace(
    audit: AuditLog, database: Database
) -> None:
    """An entry written in a transaction that fails is not kept, and the next entry is still number 1."""

    async def failing_handler() -> None:
        async with database.transaction() as db:
            await audit.append(db, actor=CLINICIAN, action=AuditAction.DELETE, subject="PB-AAAA-1111")
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await failing_handler()
    assert await audit.entries() == []
    async with database.transaction() as db:
        assert await audit.append(db, actor=CLINICIAN, action=AuditAction.VIEW, subject="PB-AAAA-1111") == 1
    assert await audit.verify() == AuditReport(ok=True, entries=1, problems=[])


async def test_a_second_audit_log_object_continues_the_same_chain(
    database: Database, audit: AuditLog
) -> None:
    """After a restart (a new AuditLog on the same file) entries continue the chain and still verify."""
    await _fill(audit, database, 2)
    restarted = AuditLog(database, Keyring(NEW_KEY), FixedClock(START + timedelta(hours=1)))
    async with database.transaction() as db:
        assert await restarted.append(db, actor="bot", action=AuditAction.RETENTION_WARNING, subject="") == 3
    assert (await restarted.verify()).ok
    assert (await audit.verify()).ok


async def test_details_are_not_in_the_database_file_in_clear(
    audit: AuditLog, database: Database, db_path: Path
) -> None:
    """No byte of the database files holds a details string, while the actor is there in clear."""
    await _fill(audit, database)  # left in the WAL as well as the main file: both are read
    on_disk = b"".join(
        path.read_bytes() for path in db_path.parent.iterdir() if path.name.startswith(db_path.name)
    )
    assert CLINICIAN.encode() in on_disk  # the files read are the ones written
    assert MARKER.encode() not in on_disk
    assert b"visit_number" not in on_disk


# --- the append-only triggers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor = 'bot' WHERE seq = 2", "DELETE FROM audit_log WHERE seq = 2"],
    ids=["update", "delete"],
)
async def test_normal_sql_cannot_change_or_remove_an_entry(
    audit: AuditLog, database: Database, statement: str
) -> None:
    """UPDATE and DELETE on the audit log are refused through ordinary SQL, and the log still verifies."""
    await _fill(audit, database)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with database.transaction() as db:
            await db.execute(statement)
    assert [entry.actor for entry in await audit.entries()] == [CLINICIAN] * ENTRY_COUNT
    assert (await audit.verify()).ok


# --- tampering with the file -----------------------------------------------------------------------------


EDITS: list[tuple[str, object]] = [
    ("at", "2031-03-04T09:00:00.000+00:00"),
    ("actor", "@someone.else:practice.example"),
    ("actor", CLINICIAN.encode()),  # the same bytes, stored as a BLOB instead of TEXT
    ("action", "claim"),
    ("subject", "PB-CCCC-3333"),
    ("subject", ""),
    ("prev_mac", "0" * 64),
    ("mac", "f" * 64),
]


@pytest.mark.parametrize(("column", "value"), EDITS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(EDITS)])
async def test_editing_any_column_is_detected(
    audit: AuditLog, database: Database, db_path: Path, column: str, value: object
) -> None:
    """Changing any one column of a middle entry makes verify fail and name that entry."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        raw.execute(f"UPDATE audit_log SET {column} = ? WHERE seq = 3", (value,))  # noqa: S608
    _assert_detected(await audit.verify(), 3)


@pytest.mark.parametrize("how", ["flip-a-byte", "copied-from-entry-2"])
async def test_editing_the_sealed_details_is_detected(
    audit: AuditLog, database: Database, db_path: Path, how: str
) -> None:
    """Altered details, or another entry's details moved in, fail both the mac and decryption."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        details = _row(raw, 2)[4] if how == "copied-from-entry-2" else _row(raw, 3)[4]
        assert isinstance(details, bytes)
        if how == "flip-a-byte":
            details = details[:-3] + bytes((details[-3] ^ 0x01,)) + details[-2:]
        raw.execute("UPDATE audit_log SET details = ? WHERE seq = 3", (details,))
    report = await audit.verify()
    _assert_detected(report, 3)
    assert any("entry 3" in problem and "decrypt" in problem for problem in report.problems)
    with pytest.raises(AuditLogError, match="entry 3"):
        await audit.entries()


async def test_moving_an_entry_to_another_seq_is_detected(
    audit: AuditLog, database: Database, db_path: Path
) -> None:
    """Renumbering an entry leaves a gap where it was and a mac mismatch where it went."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        raw.execute("UPDATE audit_log SET seq = 9 WHERE seq = 3")
    report = await audit.verify()
    _assert_detected(report, 3, 9)


@pytest.mark.parametrize("seq", [1, 3, ENTRY_COUNT], ids=["first", "middle", "last"])
async def test_deleting_an_entry_is_detected(
    audit: AuditLog, database: Database, db_path: Path, seq: int
) -> None:
    """Removing the first, a middle or the last entry makes verify fail and name the missing entry."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        raw.execute("DELETE FROM audit_log WHERE seq = ?", (seq,))
    report = await audit.verify()
    _assert_detected(report, seq)
    assert report.entries == ENTRY_COUNT - 1
    assert any(f"entry {seq}: missing" in problem for problem in report.problems)


async def test_deleting_every_entry_is_detected(audit: AuditLog, database: Database, db_path: Path) -> None:
    """Emptying the log is caught by the head, which still names the last entry."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        raw.execute("DELETE FROM audit_log")
    _assert_detected(await audit.verify(), ENTRY_COUNT)


async def test_removing_the_head_is_detected_and_blocks_appending(
    audit: AuditLog, database: Database, db_path: Path
) -> None:
    """Without its head the log fails verification, and a new entry is refused rather than restarting at 1."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        raw.execute("DELETE FROM audit_head")
    report = await audit.verify()
    assert not report.ok
    assert any("head" in problem for problem in report.problems)
    with pytest.raises(AuditLogError, match="head"):
        async with database.transaction() as db:
            await audit.append(db, actor=CLINICIAN, action=AuditAction.VIEW, subject="PB-AAAA-1111")


async def test_an_entry_appended_after_the_tail_was_removed_keeps_the_removal_visible(
    audit: AuditLog, database: Database, db_path: Path
) -> None:
    """Once the last entry is removed, the next entry chains to the removed one and verify still fails."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        raw.execute("DELETE FROM audit_log WHERE seq = ?", (ENTRY_COUNT,))
    async with database.transaction() as db:
        seq = await audit.append(db, actor=CLINICIAN, action=AuditAction.VIEW, subject="PB-AAAA-1111")
    assert seq == ENTRY_COUNT + 1
    _assert_detected(await audit.verify(), ENTRY_COUNT)


async def test_swapping_two_entries_is_detected(audit: AuditLog, database: Database, db_path: Path) -> None:
    """Exchanging the contents of two entries while keeping their seq makes verify fail for both."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        second, fourth = _row(raw, 2), _row(raw, 4)
        update = (
            "UPDATE audit_log SET at = ?, actor = ?, action = ?, subject = ?, details = ?, prev_mac = ?,"
            " mac = ? WHERE seq = ?"
        )
        raw.execute(update, (*fourth, 2))
        raw.execute(update, (*second, 4))
    _assert_detected(await audit.verify(), 2, 4)


async def test_a_forged_entry_at_the_end_is_detected(
    audit: AuditLog, database: Database, db_path: Path
) -> None:
    """An entry added at the end, chained and with the head moved to it, fails because its mac is forged."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        last_mac = _row(raw, ENTRY_COUNT)[6]
        forged_mac = "a" * 64
        raw.execute(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_mac, mac)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (6, "2031-03-04T10:00:00.000+00:00", CLINICIAN, "destroy", "PB-AAAA-1111", b"\x01" + bytes(40),
             last_mac, forged_mac),
        )  # fmt: skip
        raw.execute("UPDATE audit_head SET seq = 6, mac = ?", (forged_mac,))
    _assert_detected(await audit.verify(), 6)


async def test_an_entry_inserted_in_the_middle_is_detected(
    audit: AuditLog, database: Database, db_path: Path
) -> None:
    """Shifting later entries up to make room for a forged entry 3 makes verify fail."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        raw.execute("UPDATE audit_log SET seq = seq + 100 WHERE seq >= 3")
        raw.execute("UPDATE audit_log SET seq = seq - 99 WHERE seq >= 103")
        forged = list(_row(raw, 4))
        forged[1] = "@forger:practice.example"
        raw.execute(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_mac, mac)"
            " VALUES (3, ?, ?, ?, ?, ?, ?, ?)",
            forged,
        )
    _assert_detected(await audit.verify(), 3)


async def test_an_old_entry_put_back_over_a_newer_one_is_detected(
    audit: AuditLog, database: Database, db_path: Path
) -> None:
    """An entry 5 kept from before a rollback, valid on its own, put over the new entry 5 breaks the chain."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        old_fifth = _row(raw, 5)
        raw.execute("DELETE FROM audit_log WHERE seq = 5")
        raw.execute("UPDATE audit_head SET seq = 4, mac = ?", (_row(raw, 4)[6],))
    await _fill(audit, database, 2)  # the bot carries on: a new entry 5, then 6
    with _attacker(db_path) as raw:
        raw.execute(
            "UPDATE audit_log SET at = ?, actor = ?, action = ?, subject = ?, details = ?, prev_mac = ?,"
            " mac = ? WHERE seq = 5",
            old_fifth,
        )
    report = await audit.verify()
    _assert_detected(report, 6)
    assert any("entry 6: prev_mac does not chain" in problem for problem in report.problems)


async def test_a_valid_entry_from_another_log_is_detected(tmp_path: Path, db_path: Path) -> None:
    """An entry copied from another practice's log, valid there, fails here: each log has its own key."""
    other = await Database.open(tmp_path / "other" / "photobot.sqlite3")
    try:
        other_audit = AuditLog(other, Keyring(NEW_KEY), FixedClock())
        await _fill(other_audit, other, ENTRY_COUNT + 1)
        assert (await other_audit.verify()).ok
        foreign = list(
            await other.connection.execute_fetchall(
                "SELECT at, actor, action, subject, details, prev_mac, mac FROM audit_log WHERE seq = 6"
            )
        )
    finally:
        await other.close()
    database = await Database.open(db_path)
    try:
        audit = AuditLog(database, Keyring(NEW_KEY), FixedClock())
        await _fill(audit, database)
        with _attacker(db_path) as raw:
            raw.execute(
                "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_mac, mac)"
                " VALUES (6, ?, ?, ?, ?, ?, ?, ?)",
                tuple(foreign[0]),
            )
            raw.execute("UPDATE audit_head SET seq = 6, mac = ?", (foreign[0][6],))
        _assert_detected(await audit.verify(), 6)
    finally:
        await database.close()


async def test_replacing_the_audit_key_is_detected(
    audit: AuditLog, database: Database, db_path: Path
) -> None:
    """Swapping in another audit key (wrapped properly under the master key) fails every entry's mac."""
    await _fill(audit, database)
    with _attacker(db_path) as raw:
        replacement = Keyring(NEW_KEY).wrap_key(bytes(range(32)), aad=b"photobot/audit-key/v1")
        raw.execute("UPDATE audit_key SET wrapped_key = ?", (replacement,))
    restarted = AuditLog(database, Keyring(NEW_KEY), FixedClock())
    report = await restarted.verify()
    _assert_detected(report, *range(1, ENTRY_COUNT + 1))
    assert sum("mac mismatch" in problem for problem in report.problems) == ENTRY_COUNT


async def test_first_entry_chains_to_the_genesis_value(audit: AuditLog, database: Database) -> None:
    """Entry 1 chains to the fixed genesis value and each later entry to the one before it."""
    await _fill(audit, database, 3)
    rows = list(
        await database.connection.execute_fetchall("SELECT prev_mac, mac FROM audit_log ORDER BY seq")
    )
    assert rows[0]["prev_mac"] == GENESIS_MAC
    assert [row["prev_mac"] for row in rows[1:]] == [row["mac"] for row in rows[:-1]]


# --- master-key rotation ---------------------------------------------------------------------------------


async def test_rewrap_under_a_rotated_master_key_keeps_the_log_verifiable(database: Database) -> None:
    """After rewrap, a keyring holding only the new master key verifies the log, reads it and extends it."""
    await _fill(AuditLog(database, Keyring(OLD_KEY), FixedClock()), database)
    only_new = AuditLog(database, Keyring(NEW_KEY), FixedClock())
    before = await only_new.verify()
    assert not before.ok
    assert any("mk-0000000a" in problem for problem in before.problems)

    await AuditLog(database, Keyring(NEW_KEY, previous=[OLD_KEY]), FixedClock()).rewrap()

    after = AuditLog(database, Keyring(NEW_KEY), FixedClock(START + timedelta(days=1)))
    assert await after.verify() == AuditReport(ok=True, entries=ENTRY_COUNT, problems=[])
    assert [entry.details["visit_number"] for entry in await after.entries()] == [1, 2, 3, 4, 5]
    async with database.transaction() as db:
        assert await after.append(db, actor="cli:admin", action=AuditAction.CONFIG, subject="max_photos") == 6
    assert (await after.verify()).ok
    async with database.connection.execute("SELECT wrapped_key FROM audit_key") as cursor:
        (wrapped,) = await cursor.fetchall()
    assert Keyring.key_id_of(wrapped[0]) == "mk-0000000b"


async def test_rewrap_with_a_keyring_missing_the_old_key_is_refused(database: Database) -> None:
    """Rewrapping with a keyring that cannot open the audit key fails and leaves the key as it was."""
    await _fill(AuditLog(database, Keyring(OLD_KEY), FixedClock()), database, 2)
    with pytest.raises(AuditLogError, match="mk-0000000a"):
        await AuditLog(database, Keyring(OTHER_KEY), FixedClock()).rewrap()
    assert (await AuditLog(database, Keyring(OLD_KEY), FixedClock()).verify()).ok
