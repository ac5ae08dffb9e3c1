"""The deletion ledger: every destruction of an image, written where no backup restore can undo it.

Why. A backup holds the database and the vault as they were at one moment. Restoring it would bring back
every image destroyed since, with its key: a deleted photo would be readable again. So each destruction is
also written to this ledger, a file in the data directory that `photobot backup` does not copy and
`photobot restore` does not overwrite, and the ledger is replayed at every start-up and by every restore.

The file, ``<data dir>/deletion-ledger`` (mode 0600), holds one JSON object per line::

    {"id": "<32 hex>", "images": ["<image id>", ...], "key": "mk-1a2b3c4d", "kind": "submission-deleted",
     "mac": "<64 hex>", "submission": "<submission id or null>", "v": 1}

It names images and submissions by their random ids only: never an NHS number, a name or image bytes.
`mac` is an HMAC-SHA256, under a key derived from the master key named by `key` (purpose
"deletion-ledger/v1"), of the canonical JSON (sorted keys, no spaces) of every other field. A line that does
not verify (torn by a crash, edited, forged, or made under a key this keyring does not hold) is ignored and
counted, never acted on: whoever can write the file cannot make the bot destroy anything. (They could
remove lines; the ledger protects against a restore, not against someone who owns the data directory.)

Kinds, and what replaying one does (each mirrors what the original destruction did):

- ``submission-deleted`` (a clinician's `!delete`): the submission's photo rows and wrapped keys go, its
  status becomes 'deleted', its patient details are erased, its postings' viewing windows end now.
- ``submission-images-destroyed`` (view then delete once viewed and described, or at the end of the
  viewing window; the retention job): the photo rows go, the submission is 'done' if it was still open.
- ``images-destroyed`` (single image versions: an edited photo's original when it is kept, a record version
  replaced by a newer edit, photos a patient's unfinished conversation dropped): each named image's key is
  removed from its row (or the row, for a photo not yet in a submission).

In every case the named vault files are removed as well.

Which entries are replayed. The destruction's own transaction inserts the entry's id into the table
``deletion_ledger_applied``; the ledger line is appended and synced *before* that transaction commits. A
replay carries out every verified entry the database does not list, then lists it. So after a restore
exactly the destructions made since the backup are carried out again, and at an ordinary start-up only one
whose transaction never committed (a crash between the ledger write and the commit): the intent was
recorded, so the destruction is completed. Because applied entries are never replayed again, an image id
that is legitimately used again later (an edit re-made after a restore) is not destroyed by an old entry.

A master-key rotation rewrites the file with every verified entry authenticated under the new key
(`rekey`, an atomic replace) before the old key is destroyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from bot.clock import Clock, iso
from bot.durable_files import fsync_directory, write_all
from bot.keyring import Keyring, KeyUnavailableError
from storage.audit import AuditAction, AuditLog
from storage.postings import PostingRepository
from storage.sql import Connection, Database
from storage.submissions import Status, SubmissionRepository
from storage.vault import IMAGE_ID_PATTERN, ImageVault

LEDGER_FILE_NAME = "deletion-ledger"
ENTRY_VERSION = 1
_MAC_PURPOSE = "deletion-ledger/v1"
_ENTRY_ID_BYTES = 16
_REPLAY_REASON = "replayed from the deletion ledger"


class LedgerKind(StrEnum):
    """What was destroyed; stored as its value."""

    SUBMISSION_DELETED = "submission-deleted"
    SUBMISSION_IMAGES_DESTROYED = "submission-images-destroyed"
    IMAGES_DESTROYED = "images-destroyed"


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: str
    kind: LedgerKind
    submission_id: str | None
    image_ids: tuple[str, ...]


@dataclass(frozen=True)
class LedgerContents:
    entries: tuple[LedgerEntry, ...]  # every verified entry, in the order written
    rejected: int  # lines that did not verify: torn, altered, forged, or under a key not held


def ledger_path(data_dir: Path) -> Path:
    """Where the ledger of the bot whose data directory is `data_dir` lives."""
    return data_dir / LEDGER_FILE_NAME


class DeletionLedger:
    """The append-only ledger file. `append`, `read` and `rekey` are blocking; `record` is the async way in."""

    def __init__(self, path: Path, keyring: Keyring) -> None:
        self.path = path
        self._keyring = keyring
        self._lock = threading.Lock()  # appends from several worker threads never interleave
        self._mac_keys: dict[str, bytes] = {}  # derived once per master key, not once per line

    # ---- writing -----------------------------------------------------------------------------------

    async def record(
        self,
        db: Connection,
        kind: LedgerKind,
        now: datetime,
        *,
        submission_id: str | None = None,
        image_ids: Iterable[str] = (),
    ) -> LedgerEntry:
        """Write an entry (synced) and list it as applied inside the caller's transaction `db`.

        Call it inside the transaction that commits the destruction, before the files are removed.
        """
        entry = LedgerEntry(
            secrets.token_hex(_ENTRY_ID_BYTES), LedgerKind(kind), submission_id, tuple(image_ids)
        )
        await asyncio.to_thread(self.append, entry)
        await mark_applied(db, entry.entry_id, now)
        return entry

    def append(self, entry: LedgerEntry) -> None:
        """Append `entry`, authenticated under the current master key, and sync it to disk."""
        line = self._line(entry, self._keyring.current_key_id)
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # the last line was torn by a crash: start on a line of our own
                write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_directory(self.path.parent)

    def _line(self, entry: LedgerEntry, key_id: str) -> bytes:
        fields: dict[str, object] = {
            "v": ENTRY_VERSION,
            "id": entry.entry_id,
            "kind": entry.kind.value,
            "submission": entry.submission_id,
            "images": list(entry.image_ids),
            "key": key_id,
        }
        fields["mac"] = self._mac(fields, key_id)
        return (json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")

    def _mac(self, fields: dict[str, object], key_id: str) -> str:
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
        mac_key = self._mac_keys.get(key_id)
        if mac_key is None:
            mac_key = self._mac_keys[key_id] = self._keyring.derive(_MAC_PURPOSE, key_id=key_id)
        return hmac.new(mac_key, canonical, hashlib.sha256).hexdigest()

    # ---- reading -----------------------------------------------------------------------------------

    def read(self) -> LedgerContents:
        """Every entry that verifies under a key this keyring holds, and how many lines did not."""
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return LedgerContents((), 0)
        entries: list[LedgerEntry] = []
        rejected = 0
        for line in content.split(b"\n"):
            if not line.strip():
                continue
            entry = self._verified(line)
            if entry is None:
                rejected += 1
            else:
                entries.append(entry)
        return LedgerContents(tuple(entries), rejected)

    def _verified(self, line: bytes) -> LedgerEntry | None:
        try:
            fields = json.loads(line)
        except ValueError:
            return None
        if not isinstance(fields, dict) or fields.get("v") != ENTRY_VERSION:
            return None
        mac, key_id = fields.pop("mac", None), fields.get("key")
        if not isinstance(mac, str) or not isinstance(key_id, str) or key_id not in self._keyring.key_ids:
            return None
        try:
            expected = self._mac(fields, key_id)
        except KeyUnavailableError:
            return None
        if not hmac.compare_digest(mac.encode("ascii", "replace"), expected.encode("ascii")):
            return None
        entry_id, kind, submission, images = (
            fields.get("id"),
            fields.get("kind"),
            fields.get("submission"),
            fields.get("images"),
        )
        if not isinstance(entry_id, str) or kind not in {member.value for member in LedgerKind}:
            return None
        if submission is not None and not isinstance(submission, str):
            return None
        if not isinstance(images, list) or not all(
            isinstance(image, str) and IMAGE_ID_PATTERN.fullmatch(image) for image in images
        ):
            return None
        return LedgerEntry(entry_id, LedgerKind(kind), submission, tuple(images))

    # ---- key rotation ------------------------------------------------------------------------------

    def rekey(self) -> LedgerContents:
        """Rewrite the file with every verified entry authenticated under the current key (atomic replace).

        Lines that do not verify are dropped: they could never be acted on. Returns what was kept.
        """
        with self._lock:
            contents = self.read()
            if not self.path.exists():
                return contents
            temporary = self.path.with_name(f".{self.path.name}.tmp-{secrets.token_hex(8)}")
            fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
            try:
                try:
                    for entry in contents.entries:
                        write_all(fd, self._line(entry, self._keyring.current_key_id))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                temporary.replace(self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
                raise
            fsync_directory(self.path.parent)
            return LedgerContents(contents.entries, 0)


async def mark_applied(db: Connection, entry_id: str, now: datetime) -> None:
    """List a ledger entry as carried out in this database (inside the caller's transaction)."""
    await db.execute(
        "INSERT INTO deletion_ledger_applied (entry_id, applied_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (entry_id, iso(now)),
    )


async def submission_image_ids(db: Connection, submission_id: str) -> tuple[str, ...]:
    """Every vault image a submission's photos still name (originals and record versions)."""
    async with db.execute(
        "SELECT photo_id, record_image_id, original_destroyed_at FROM photos WHERE submission_id = ?"
        " ORDER BY created_at, photo_id",
        (submission_id,),
    ) as cursor:
        rows = await cursor.fetchall()
    ids: list[str] = []
    for row in rows:
        if row["original_destroyed_at"] is None:
            ids.append(str(row["photo_id"]))
        if row["record_image_id"]:
            ids.append(str(row["record_image_id"]))
    return tuple(ids)


# ---- replay ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayReport:
    entries: int  # verified entries in the ledger
    replayed: int  # entries this database did not reflect yet, carried out now
    rows_changed: int  # submissions and photos whose state the replay changed
    files_removed: int  # vault files removed
    rejected: int  # ledger lines that did not verify (ignored)


class DeletionReplay:
    """Carries out, in one database and vault, every ledger entry the database does not list as applied."""

    def __init__(
        self,
        ledger: DeletionLedger,
        database: Database,
        vault: ImageVault,
        *,
        submissions: SubmissionRepository,
        postings: PostingRepository,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._ledger = ledger
        self._db = database
        self._vault = vault
        self._submissions = submissions
        self._postings = postings
        self._audit = audit
        self._clock = clock

    async def run(self) -> ReplayReport:
        contents = await asyncio.to_thread(self._ledger.read)
        async with self._db.connection.execute("SELECT entry_id FROM deletion_ledger_applied") as cursor:
            applied = {str(row[0]) for row in await cursor.fetchall()}
        replayed = rows_changed = files_removed = 0
        for entry in contents.entries:
            if entry.entry_id in applied:
                continue
            now = self._clock.now()
            async with self._db.transaction() as db:
                image_ids = set(entry.image_ids)
                if entry.kind is not LedgerKind.IMAGES_DESTROYED and entry.submission_id is not None:
                    image_ids.update(await submission_image_ids(db, entry.submission_id))
                rows_changed += await self._carry_out(db, entry, now)
                await mark_applied(db, entry.entry_id, now)
            files_removed += await asyncio.to_thread(self._destroy_files, sorted(image_ids))
            applied.add(entry.entry_id)
            replayed += 1
        if rows_changed or files_removed:
            await self._db.shred_checkpoint()
        return ReplayReport(len(contents.entries), replayed, rows_changed, files_removed, contents.rejected)

    def _destroy_files(self, image_ids: Sequence[str]) -> int:
        return sum(1 for image_id in image_ids if self._vault.destroy(image_id))

    async def _carry_out(self, db: Connection, entry: LedgerEntry, now: datetime) -> int:
        if entry.kind is LedgerKind.IMAGES_DESTROYED:
            return await self._images(db, entry.image_ids, now)
        if entry.submission_id is None:
            return 0
        async with db.execute(
            "SELECT reference, status, images_destroyed_at,"
            " (SELECT COUNT(*) FROM photos p WHERE p.submission_id = s.submission_id) AS photos"
            " FROM submissions s WHERE submission_id = ?",
            (entry.submission_id,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return 0  # the database is older than the submission
        submission_id, status = entry.submission_id, Status(row["status"])
        deleted = entry.kind is LedgerKind.SUBMISSION_DELETED
        holds_images = row["photos"] > 0 or row["images_destroyed_at"] is None
        if not holds_images and (status is Status.DELETED or not deleted):
            return 0
        await self._submissions.images_destroyed(db, submission_id, now)
        await self._postings.expire_now(db, submission_id)
        if deleted:
            await self._submissions.set_status(db, submission_id, Status.DELETED, now)
            await self._submissions.erase_patient_details(db, submission_id)
        elif status in (Status.NEW, Status.CLAIMED):
            await self._submissions.set_status(db, submission_id, Status.DONE, now)
        await self._audit.append(
            db,
            actor="bot",
            action=AuditAction.DELETE if deleted else AuditAction.IMAGES_DESTROYED,
            subject=str(row["reference"]),
            details={"why": _REPLAY_REASON},
        )
        return 1

    async def _images(self, db: Connection, image_ids: Sequence[str], now: datetime) -> int:
        changed = 0
        touched: set[str] = set()
        for image_id in image_ids:
            async with db.execute(
                "SELECT submission_id FROM photos WHERE photo_id = ? OR record_image_id = ?",
                (image_id, image_id),
            ) as cursor:
                owners = {str(row[0]) for row in await cursor.fetchall() if row[0] is not None}
            changes = 0
            for sql, params in (
                ("DELETE FROM photos WHERE photo_id = ? AND submission_id IS NULL", (image_id,)),
                (
                    "UPDATE photos SET wrapped_key = ?, original_destroyed_at = ?"
                    " WHERE photo_id = ? AND original_destroyed_at IS NULL",
                    (b"", iso(now), image_id),
                ),
                (
                    "UPDATE photos SET record_image_id = NULL, record_wrapped_key = NULL, record_size = NULL,"
                    " record_digest = NULL, record_edits = NULL WHERE record_image_id = ?",
                    (image_id,),
                ),
            ):
                async with db.execute(sql, params) as cursor:
                    changes += cursor.rowcount
            if changes:
                touched |= owners
            changed += changes
        for submission_id in sorted(touched):
            async with db.execute(
                "SELECT reference FROM submissions WHERE submission_id = ?", (submission_id,)
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None:
                await self._audit.append(
                    db,
                    actor="bot",
                    action=AuditAction.IMAGES_DESTROYED,
                    subject=str(row["reference"]),
                    details={"why": _REPLAY_REASON},
                )
        return changed
