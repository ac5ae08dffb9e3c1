"""Submissions in the clinicians' queue and their photos: what clinicians list, claim, view and decide on.

A submission's NHS number, the patient's notes, the clinician's decision and description are sealed; the
status, flags and times are in clear so the queue can be listed and the retention job can find old ones.
A photo has an original and, once a clinician edits it, a record version (its own vault image and key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from bot.clock import iso
from bot.ids import RoomID
from bot.keyring import Sealer
from storage.sql import Connection, Database, Row

PAGE_SIZE = 10


class Status(Enum):
    NEW = "new"
    CLAIMED = "claimed"
    DONE = "done"
    DELETED = "deleted"


@dataclass(frozen=True)
class Decision:
    kept: bool
    reason: str = field(repr=False)
    decided_by: str
    decided_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "decided_at": iso(self.decided_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        return cls(
            bool(data["kept"]),
            str(data["reason"]),
            str(data["decided_by"]),
            datetime.fromisoformat(str(data["decided_at"])),
        )


@dataclass(frozen=True)
class Submission:
    submission_id: str
    reference: str
    room_id: RoomID
    status: Status
    keep_in_record: bool  # the patient's choice: False means view then delete
    intimate: bool
    acting_for_someone: bool
    created_at: datetime
    request_id: str | None
    claimed_by: str | None
    first_viewed_at: datetime | None
    decision: Decision | None
    description: str | None = field(repr=False)
    retention_warned_at: datetime | None
    images_destroyed_at: datetime | None
    photo_count: int
    reminded_at: datetime | None = None  # when the clinician room was reminded that it waits unclaimed
    destroy_at: datetime | None = None  # described view then delete: its photos go then, unless undone

    @property
    def view_then_delete(self) -> bool:
        """Destroyed once viewed and described, or at the end of the viewing window (rules 5 and 6)."""
        return self.intimate or not self.keep_in_record

    @property
    def has_images(self) -> bool:
        return self.images_destroyed_at is None and self.photo_count > 0


@dataclass(frozen=True)
class Photo:
    photo_id: str
    number: int  # 1, 2, ... in the order received
    mime: str
    size: int
    wrapped_key: bytes = field(repr=False)
    created_at: datetime
    quality: tuple[str, ...]
    record_image_id: str | None
    record_wrapped_key: bytes | None = field(repr=False)
    record_size: int | None
    edits: tuple[str, ...]
    original_destroyed: bool
    caption: str | None = field(default=None, repr=False)  # the patient's words sent with it

    @property
    def image_id(self) -> str:
        """The version a clinician sees: the record version once there is one."""
        return self.record_image_id or self.photo_id

    @property
    def image_key(self) -> bytes:
        if self.record_image_id and self.record_wrapped_key is not None:
            return self.record_wrapped_key
        return self.wrapped_key

    @property
    def image_ids(self) -> tuple[str, ...]:
        """Every vault image this photo still has."""
        ids = () if self.original_destroyed else (self.photo_id,)
        return ids + ((self.record_image_id,) if self.record_image_id else ())


@dataclass(frozen=True)
class PatientWords:
    """What the patient wrote, verbatim: their notes, each photo's caption (by photo number), and the area a
    clinician's request asked for. Never rendered as HTML or mentions (see `handlers.identity`)."""

    notes: tuple[str, ...] = field(default=(), repr=False)
    captions: tuple[tuple[int, str], ...] = field(default=(), repr=False)
    requested_area: str | None = field(default=None, repr=False)


def normalise_reference(text: str) -> str:
    """'gp-7kq2-m4xd', 'GP 7KQ2 M4XD' and '7KQ2M4XD' all name GP-7KQ2-M4XD."""
    compact = "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())
    compact = compact.removeprefix("GP")
    if len(compact) != 8:
        return text.strip().upper()
    return f"GP-{compact[:4]}-{compact[4:]}"


class SubmissionRepository:
    def __init__(self, database: Database, sealer: Sealer) -> None:
        self._db = database
        self._sealer = sealer

    _COLUMNS = (
        "s.submission_id, s.reference, s.room_id, s.status, s.keep_in_record, s.intimate,"
        " s.acting_for_someone, s.created_at, s.request_id, s.claimed_by, s.first_viewed_at, s.decision,"
        " s.description, s.retention_warned_at, s.images_destroyed_at, s.reminded_at, s.destroy_at,"
        " (SELECT COUNT(*) FROM photos p WHERE p.submission_id = s.submission_id) AS photo_count"
    )

    def _row(self, row: Row) -> Submission:
        submission_id = str(row["submission_id"])
        decision = None
        if row["decision"] is not None:
            decision = Decision.from_dict(
                self._sealer.open_json(row["decision"], context=f"submission-decision:{submission_id}")
            )
        description = None
        if row["description"] is not None:
            description = self._sealer.open(
                row["description"], context=f"submission-description:{submission_id}"
            ).decode("utf-8")
        return Submission(
            submission_id=submission_id,
            reference=str(row["reference"]),
            room_id=RoomID(row["room_id"]),
            status=Status(row["status"]),
            keep_in_record=bool(row["keep_in_record"]),
            intimate=bool(row["intimate"]),
            acting_for_someone=bool(row["acting_for_someone"]),
            created_at=datetime.fromisoformat(row["created_at"]),
            request_id=row["request_id"],
            claimed_by=row["claimed_by"],
            first_viewed_at=_moment(row["first_viewed_at"]),
            decision=decision,
            description=description,
            retention_warned_at=_moment(row["retention_warned_at"]),
            images_destroyed_at=_moment(row["images_destroyed_at"]),
            photo_count=int(row["photo_count"]),
            reminded_at=_moment(row["reminded_at"]),
            destroy_at=_moment(row["destroy_at"]),
        )

    async def by_reference(self, reference: str) -> Submission | None:
        async with self._db.connection.execute(
            f"SELECT {self._COLUMNS} FROM submissions s WHERE s.reference = ?",  # noqa: S608 - fixed columns
            (normalise_reference(reference),),
        ) as cursor:
            row = await cursor.fetchone()
        return self._row(row) if row is not None else None

    async def by_id(self, submission_id: str) -> Submission | None:
        async with self._db.connection.execute(
            f"SELECT {self._COLUMNS} FROM submissions s WHERE s.submission_id = ?",  # noqa: S608 - fixed columns
            (submission_id,),
        ) as cursor:
            row = await cursor.fetchone()
        return self._row(row) if row is not None else None

    async def queue(self, statuses: tuple[Status, ...], page: int) -> tuple[list[Submission], int]:
        """One page of submissions in these statuses, newest first, and how many there are in all."""
        marks = ",".join("?" for _ in statuses)
        values = [status.value for status in statuses]
        async with self._db.connection.execute(
            f"SELECT COUNT(*) FROM submissions WHERE status IN ({marks})",  # noqa: S608 - placeholders only
            values,
        ) as cursor:
            row = await cursor.fetchone()
            total = int(row[0]) if row else 0
        async with self._db.connection.execute(
            f"SELECT {self._COLUMNS} FROM submissions s WHERE s.status IN ({marks})"  # noqa: S608 - placeholders
            " ORDER BY s.created_at DESC, s.reference LIMIT ? OFFSET ?",
            (*values, PAGE_SIZE, max(0, page - 1) * PAGE_SIZE),
        ) as cursor:
            rows = await cursor.fetchall()
        return [self._row(row) for row in rows], total

    async def waiting(self) -> list[Submission]:
        """New and claimed submissions, oldest first (reminders and the daily digest)."""
        async with self._db.connection.execute(
            f"SELECT {self._COLUMNS} FROM submissions s WHERE s.status IN ('new', 'claimed')"  # noqa: S608
            " ORDER BY s.created_at, s.reference",  # fixed columns only
        ) as cursor:
            rows = await cursor.fetchall()
        return [self._row(row) for row in rows]

    async def status_counts(self) -> dict[Status, int]:
        async with self._db.connection.execute(
            "SELECT status, COUNT(*) FROM submissions GROUP BY status"
        ) as cursor:
            rows = await cursor.fetchall()
        return {Status(row[0]): int(row[1]) for row in rows}

    async def unkept_with_images(self) -> list[Submission]:
        """Submissions still holding images that nobody kept for the record (the retention job's concern).
        Housekeeping asks every minute, so the kept ones, the bulk, are left out in SQL, not decrypted."""
        return await self._holding_images("s.decision IS NULL")

    async def viewed_view_then_delete(self) -> list[Submission]:
        """View-then-delete and intimate submissions viewed and still holding images (the viewing window)."""
        return await self._holding_images(
            "s.first_viewed_at IS NOT NULL AND (s.intimate = 1 OR s.keep_in_record = 0)"
        )

    async def _holding_images(self, condition: str) -> list[Submission]:
        async with self._db.connection.execute(
            f"SELECT {self._COLUMNS} FROM submissions s WHERE s.images_destroyed_at IS NULL"  # noqa: S608
            f" AND s.status != 'deleted' AND {condition} ORDER BY s.created_at",  # fixed conditions only
        ) as cursor:
            rows = await cursor.fetchall()
        return [self._row(row) for row in rows]

    async def photos(self, submission_id: str) -> list[Photo]:
        async with self._db.connection.execute(
            "SELECT photo_id, mime, size, wrapped_key, created_at, quality, record_image_id, record_wrapped_key,"
            " record_size, record_edits, original_destroyed_at, caption FROM photos WHERE submission_id = ?"
            " ORDER BY created_at, photo_id",
            (submission_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            Photo(
                photo_id=str(row["photo_id"]),
                number=index,
                mime=str(row["mime"]),
                size=int(row["size"]),
                wrapped_key=bytes(row["wrapped_key"]),
                created_at=datetime.fromisoformat(row["created_at"]),
                quality=tuple(item for item in str(row["quality"]).split(",") if item),
                record_image_id=row["record_image_id"],
                record_wrapped_key=bytes(row["record_wrapped_key"]) if row["record_wrapped_key"] else None,
                record_size=row["record_size"],
                edits=tuple(json.loads(row["record_edits"])) if row["record_edits"] else (),
                original_destroyed=row["original_destroyed_at"] is not None,
                caption=self._caption(str(row["photo_id"]), row["caption"]),
            )
            for index, row in enumerate(rows, start=1)
        ]

    def _caption(self, photo_id: str, sealed: bytes | None) -> str | None:
        if not sealed:
            return None
        return self._sealer.open(sealed, context=f"photo-caption:{photo_id}").decode("utf-8")

    async def _details(self, submission_id: str) -> dict[str, Any]:
        async with self._db.connection.execute(
            "SELECT details FROM submissions WHERE submission_id = ?", (submission_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or not row["details"]:
            return {}  # unknown, or erased by a delete
        details = self._sealer.open_json(row["details"], context=f"submission-details:{submission_id}")
        return details if isinstance(details, dict) else {}

    async def patient_words(self, submission_id: str) -> PatientWords:
        """The notes and requested area from the submission; captions from its photos while they exist, and
        from the copy kept in the submission once the photos are destroyed."""
        details = await self._details(submission_id)
        photos = await self.photos(submission_id)
        if photos:
            captions = tuple((photo.number, photo.caption) for photo in photos if photo.caption)
        else:
            captions = tuple(
                (int(item[0]), str(item[1])) for item in details.get("captions", []) if len(item) == 2
            )
        area = details.get("requested_area")
        return PatientWords(
            notes=tuple(str(note) for note in details.get("notes", [])),
            captions=captions,
            requested_area=str(area) if area else None,
        )

    async def requester(self, request_id: str) -> str | None:
        """The Matrix id of the clinician whose `!request` a submission answers."""
        async with self._db.connection.execute(
            "SELECT requested_by FROM photo_requests WHERE request_id = ?", (request_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return str(row["requested_by"]) if row is not None else None

    async def nhs_number(self, submission_id: str) -> str:
        async with self._db.connection.execute(
            "SELECT nhs_number FROM submissions WHERE submission_id = ?", (submission_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or not row["nhs_number"]:
            raise LookupError("the submission holds no NHS number any more")
        return self._sealer.open(row["nhs_number"], context=f"submission-nhs:{submission_id}").decode("ascii")

    # ---- changes, inside the caller's transaction -------------------------------------------------------

    async def warnings(self, submission_id: str) -> tuple[str, ...]:
        """What the clinician must see first (notes contradicting the screening, changed answers): fixed
        wording of ours, kept in the sealed details; none once the patient's details were erased."""
        async with self._db.connection.execute(
            "SELECT details FROM submissions WHERE submission_id = ?", (submission_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or not row["details"]:
            return ()
        details = self._sealer.open_json(row["details"], context=f"submission-details:{submission_id}")
        found = details.get("warnings") if isinstance(details, dict) else None
        return tuple(str(item) for item in found) if isinstance(found, list) else ()

    async def insert(
        self,
        db: Connection,
        submission_id: str,
        *,
        reference: str,
        room_id: RoomID,
        nhs_number: str,
        nhs_lookup: str,
        keep_in_record: bool,
        intimate: bool,
        acting_for_someone: bool,
        details: dict[str, Any],
        created_at: datetime,
        request_id: str | None,
    ) -> None:
        """A patient's new submission, in the queue as 'new'; its NHS number and details sealed."""
        await db.execute(
            "INSERT INTO submissions (submission_id, reference, room_id, nhs_number, nhs_lookup, keep_in_record,"
            " intimate, acting_for_someone, details, status, created_at, request_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'new', ?, ?)",
            (
                submission_id,
                reference,
                room_id,
                self._sealer.seal(nhs_number.encode(), context=f"submission-nhs:{submission_id}"),
                nhs_lookup,
                int(keep_in_record),
                int(intimate),
                int(acting_for_someone),
                self._sealer.seal_json(details, context=f"submission-details:{submission_id}"),
                iso(created_at),
                request_id,
            ),
        )

    async def set_status(self, db: Connection, submission_id: str, status: Status, now: datetime) -> None:
        await db.execute(
            "UPDATE submissions SET status = ?, updated_at = ? WHERE submission_id = ?",
            (status.value, iso(now), submission_id),
        )

    async def claim(self, db: Connection, submission_id: str, clinician: str, now: datetime) -> None:
        await db.execute(
            "UPDATE submissions SET status = 'claimed', claimed_by = ?, updated_at = ? WHERE submission_id = ?",
            (clinician, iso(now), submission_id),
        )

    async def mark_viewed(self, db: Connection, submission_id: str, now: datetime) -> None:
        await db.execute(
            "UPDATE submissions SET first_viewed_at = COALESCE(first_viewed_at, ?), updated_at = ?"
            " WHERE submission_id = ?",
            (iso(now), iso(now), submission_id),
        )

    async def decide(self, db: Connection, submission_id: str, decision: Decision) -> None:
        sealed = self._sealer.seal_json(decision.to_dict(), context=f"submission-decision:{submission_id}")
        await db.execute(
            "UPDATE submissions SET decision = ?, updated_at = ? WHERE submission_id = ?",
            (sealed, iso(decision.decided_at), submission_id),
        )

    async def describe(self, db: Connection, submission_id: str, text: str, now: datetime) -> None:
        sealed = self._sealer.seal(text.encode("utf-8"), context=f"submission-description:{submission_id}")
        await db.execute(
            "UPDATE submissions SET description = ?, updated_at = ? WHERE submission_id = ?",
            (sealed, iso(now), submission_id),
        )

    async def due_for_destruction(self, now: datetime) -> list[Submission]:
        """Described view-then-delete submissions whose undo window has ended."""
        return await self._holding_images(f"s.destroy_at IS NOT NULL AND s.destroy_at <= '{iso(now)}'")

    async def schedule_destruction(self, db: Connection, submission_id: str, when: datetime | None) -> None:
        await db.execute(
            "UPDATE submissions SET destroy_at = ? WHERE submission_id = ?",
            (iso(when) if when else None, submission_id),
        )

    async def reminded(self, db: Connection, submission_id: str, now: datetime) -> None:
        await db.execute(
            "UPDATE submissions SET reminded_at = ? WHERE submission_id = ?", (iso(now), submission_id)
        )

    async def warned(self, db: Connection, submission_id: str, now: datetime) -> None:
        await db.execute(
            "UPDATE submissions SET retention_warned_at = ? WHERE submission_id = ?",
            (iso(now), submission_id),
        )

    async def images_destroyed(self, db: Connection, submission_id: str, now: datetime) -> None:
        """The images' rows go (their wrapped keys with them: crypto-shredding); the submission stays, with the
        photos' captions copied into its sealed details: the patient's words outlive the photos."""
        photos = await self.photos(submission_id)
        captions = [[photo.number, photo.caption] for photo in photos if photo.caption]
        if captions:
            details = await self._details(submission_id)
            details["captions"] = captions
            sealed = self._sealer.seal_json(details, context=f"submission-details:{submission_id}")
            await db.execute(
                "UPDATE submissions SET details = ? WHERE submission_id = ?", (sealed, submission_id)
            )
        await db.execute("DELETE FROM photos WHERE submission_id = ?", (submission_id,))
        await db.execute(
            "UPDATE submissions SET images_destroyed_at = ?, updated_at = ? WHERE submission_id = ?",
            (iso(now), iso(now), submission_id),
        )

    async def erase_patient_details(self, db: Connection, submission_id: str) -> None:
        """A deleted submission keeps its reference and status for the audit trail, nothing about the patient."""
        await db.execute(
            "UPDATE submissions SET nhs_number = ?, details = ?, description = NULL, decision = NULL"
            " WHERE submission_id = ?",
            (b"", b"", submission_id),
        )

    async def set_record_version(
        self,
        db: Connection,
        photo_id: str,
        *,
        image_id: str,
        wrapped_key: bytes,
        size: int,
        digest: str,
        edits: tuple[str, ...],
    ) -> None:
        await db.execute(
            "UPDATE photos SET record_image_id = ?, record_wrapped_key = ?, record_size = ?, record_digest = ?,"
            " record_edits = ? WHERE photo_id = ?",
            (image_id, wrapped_key, size, digest, json.dumps(list(edits)), photo_id),
        )

    async def original_destroyed(self, db: Connection, photo_id: str, now: datetime) -> None:
        await db.execute(
            "UPDATE photos SET wrapped_key = ?, original_destroyed_at = ? WHERE photo_id = ?",
            (b"", iso(now), photo_id),
        )


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
