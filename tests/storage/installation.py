"""A synthetic installation on disk, as `photobot init` and a few days of use would leave it.

Everything is made here: generated images (Pillow), synthetic NHS numbers from the test range, made-up
Matrix ids. Rows are written through the bot's own repositories wherever one exists, with the same
contexts the bot seals with, so that a test reading them back with another key proves what the bot would
see. `Installation` remembers every plaintext, for comparisons.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nio.crypto.sessions import InboundGroupSession, OlmAccount, OutboundGroupSession
from nio.store.database import MatrixStore
from PIL import Image, ImageDraw

from bot.app import prepare_data_dir
from bot.backends import open_database, open_vault
from bot.clock import iso
from bot.cross_signing import CrossSigningKeys
from bot.ids import DeviceID, EventID, RoomID, UserID
from bot.keyring import Keyring, Sealer, create_master_key_file, load_master_key_file
from bot.settings import Settings, load_settings
from storage.account import AccountRepository, BotAccount
from storage.audit import AuditAction, AuditLog
from storage.conversations import ConversationRepository
from storage.deletion_ledger import DeletionLedger, LedgerKind, ledger_path
from storage.media_ledger import MediaLedger
from storage.outbox import Outbox
from storage.postings import PostingRepository
from storage.practice_config import ConfigRepository
from storage.rooms import RoomKind, RoomRepository
from storage.sql import Database
from storage.submissions import Decision, SubmissionRepository
from storage.vault import ImageVault

BOT_USER = UserID("@photobot:practice.example")
BOT_DEVICE = DeviceID("PHOTOBOTDEVICE")
ACCESS_TOKEN = "syt_synthetic_access_token_0001"
ADMIN_TOKEN = "syt_synthetic_admin_token_0002"
CLINICIAN = "@dr.synthetic:practice.example"
NIO_ROOM = "!clinicians:practice.example"


class FixedClock:
    """A clock that moves only when told to."""

    def __init__(self, moment: datetime | None = None) -> None:
        self.moment = moment or datetime(2031, 3, 4, 9, 30, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    """What the operator's .env would hold (the homeserver is never contacted by these commands)."""
    return {
        "PHOTOBOT_HOMESERVER_URL": "http://127.0.0.1:9",
        "PHOTOBOT_USER_ID": BOT_USER,
        "PHOTOBOT_DATA_DIR": str(data_dir),
        "PHOTOBOT_TEST_MODE": "true",
        "PHOTOBOT_LOG_LEVEL": "WARNING",
        **{f"PHOTOBOT_{key.upper()}": value for key, value in extra.items()},
    }


def synthetic_jpeg(number: int, size: tuple[int, int] = (96, 72)) -> bytes:
    """A small generated photo, different for each number."""
    image = Image.new("RGB", size, ((number * 37) % 256, (number * 91) % 256, (number * 53) % 256))
    ImageDraw.Draw(image).ellipse((10, 10, size[0] - 10, size[1] - 10), fill=(200, (number * 17) % 256, 90))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def synthetic_nhs_number(index: int) -> str:
    """A number from the 999 test range (never issued to a patient); the checksum does not matter here."""
    return f"999{index:07d}"


@dataclass
class Installation:
    settings: Settings
    clock: FixedClock
    images: dict[str, bytes] = field(default_factory=dict)  # vault image id -> plaintext
    submissions: dict[str, str] = field(default_factory=dict)  # submission id -> NHS number
    references: dict[str, str] = field(default_factory=dict)  # submission id -> reference
    members: dict[RoomID, UserID] = field(default_factory=dict)
    requests: dict[str, UserID] = field(default_factory=dict)  # photo request id -> patient
    media_urls: list[str] = field(default_factory=list)
    nio_identity: str = ""
    backend_environment: dict[str, str] = field(default_factory=dict)  # PHOTOBOT_DATABASE_URL, _VAULT_URL...

    @property
    def key_file(self) -> Path:
        return self.settings.master_key_file

    def keyring(self) -> Keyring:
        return Keyring(load_master_key_file(self.key_file))

    async def open(self) -> Database:
        return await open_database(self.settings)

    def vault(self, keyring: Keyring | None = None) -> ImageVault:
        """The installation's vault: the folder in its data directory, or its bucket (PHOTOBOT_VAULT_URL)."""
        return open_vault(self.settings, keyring or self.keyring())

    def ledger(self, keyring: Keyring | None = None) -> DeletionLedger:
        return DeletionLedger(ledger_path(self.settings.data_dir), keyring or self.keyring())

    def photo_images(self, submission_id: str) -> list[str]:
        return [image for image in self.images if image.startswith(f"{submission_id}-")]


async def build_installation(
    root: Path,
    *,
    submissions: int = 3,
    photos_each: int = 4,
    database_url: str | None = None,
    vault_environment: dict[str, str] | None = None,
) -> Installation:
    """An installation with `submissions` submissions of `photos_each` photos, one edited photo in each,
    in the SQLite file under its data directory or (`database_url`) a PostgreSQL database."""
    extra = {"database_url": database_url} if database_url else {}
    settings = load_settings(environment(root / "data", **extra) | (vault_environment or {}))
    settings.data_dir.mkdir(mode=0o700, parents=True)
    create_master_key_file(settings.master_key_file)
    prepare_data_dir(settings)
    installation = Installation(settings, FixedClock())
    if database_url:
        installation.backend_environment["PHOTOBOT_DATABASE_URL"] = database_url
    installation.backend_environment |= vault_environment or {}
    keyring = installation.keyring()
    database = await installation.open()
    try:
        await _populate(installation, database, keyring, submissions, photos_each)
    finally:
        await database.close()
    installation.nio_identity = _make_nio_store(settings, keyring)
    return installation


def _make_nio_store(settings: Settings, keyring: Keyring) -> str:
    store = MatrixStore(
        BOT_USER, BOT_DEVICE, str(settings.store_dir), pickle_key=keyring.nio_pickle_passphrase()
    )
    try:
        account = OlmAccount()
        store.save_account(account)
        outbound = OutboundGroupSession()
        identity = account.identity_keys
        store.save_inbound_group_session(
            InboundGroupSession(outbound.session_key, identity["ed25519"], identity["curve25519"], NIO_ROOM)
        )
        return str(identity["curve25519"])
    finally:
        store.database.close()


async def _populate(
    installation: Installation, database: Database, keyring: Keyring, submissions: int, photos_each: int
) -> None:
    clock = installation.clock
    sealer = Sealer(keyring)
    await AccountRepository(database, sealer, clock).save(
        BotAccount(BOT_USER, BOT_DEVICE, ACCESS_TOKEN, CrossSigningKeys.generate(), None)
    )
    rooms = RoomRepository(database, keyring, sealer, clock)
    conversations = ConversationRepository(database, sealer)
    outbox = Outbox(database, sealer, clock)
    media = MediaLedger(database, keyring, sealer, clock)
    repository = SubmissionRepository(database, sealer)
    postings = PostingRepository(database, sealer, clock)
    audit = AuditLog(database, keyring, clock)
    vault = installation.vault(keyring)
    async with database.transaction() as db:
        await ConfigRepository(database, sealer, clock).put(
            db, "homeserver_admin_token", ADMIN_TOKEN, by=CLINICIAN, sealed=True
        )
        await ConfigRepository(database, sealer, clock).put(db, "max_photos", 4, by=CLINICIAN)
    for index in range(submissions):
        room = RoomID(f"!patient{index}:practice.example")
        patient = UserID(f"@patient{index}:practice.example")
        submission_id = secrets.token_hex(8)
        reference = f"GP-{index:04d}-SYNT"
        nhs_number = synthetic_nhs_number(index)
        url = f"mxc://practice.example/synthetic-upload-{index}"
        request_id = f"request{index}"
        async with database.transaction() as db:
            await rooms.add(db, room, RoomKind.PATIENT, patient)
            await conversations.save(
                db, room, "submitted", {"synthetic": index, "nhs": nhs_number}, iso(clock.now())
            )
            await outbox.add(db, room, f"txn-{index}", "message", {"text": f"Synthetic reply {index}"})
            await media.add(
                db,
                room,
                EventID(f"$photo{index}"),
                (url,),
                sender=patient,
                sent_at_ms=0,
            )
            await db.execute(
                "INSERT INTO submissions (submission_id, reference, room_id, nhs_number, nhs_lookup,"
                " keep_in_record, intimate, acting_for_someone, details, status, created_at, request_id)"
                " VALUES (?, ?, ?, ?, ?, 1, 0, 0, ?, 'new', ?, ?)",
                (
                    submission_id,
                    reference,
                    room,
                    sealer.seal(nhs_number.encode(), context=f"submission-nhs:{submission_id}"),
                    keyring.lookup_hash(nhs_number, purpose="nhs-number"),
                    sealer.seal_json(
                        {"notes": [f"left arm {index}"]}, context=f"submission-details:{submission_id}"
                    ),
                    iso(clock.now()),
                    request_id,
                ),
            )
            await db.execute(
                "INSERT INTO photo_requests (request_id, room_id, patient_lookup, patient, requested_by, details,"
                " status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'answered', ?, ?)",
                (
                    request_id,
                    room,
                    keyring.lookup_hash(patient, purpose="room-member"),
                    sealer.seal(patient.encode(), context=f"photo-request-patient:{request_id}"),
                    CLINICIAN,
                    sealer.seal_json({"area": "left arm"}, context=f"photo-request:{request_id}"),
                    iso(clock.now()),
                    iso(clock.now() + timedelta(days=3)),
                ),
            )
            await repository.decide(
                db, submission_id, Decision(True, f"reason {index}", CLINICIAN, clock.now())
            )
            await repository.describe(db, submission_id, f"Synthetic description {index}", clock.now())
            await postings.add(
                db,
                submission_id=submission_id,
                room_id=RoomID(NIO_ROOM),
                txn_id=f"posting-{index}",
                kind="view",
                content={"photo": index},
                expires_at=clock.now() + timedelta(minutes=30),
            )
            await audit.append(
                db, actor=CLINICIAN, action=AuditAction.VIEW, subject=reference, details={"n": index}
            )
        posted = await postings.of_submission(submission_id)
        await postings.uploaded(
            posted[0].id, posted[0].txn_id, {"url": f"mxc://practice.example/posted-{index}"}
        )
        for number in range(photos_each):
            photo_id = f"{submission_id}-{number}"
            data = synthetic_jpeg(index * 100 + number)
            stored = vault.put(photo_id, data)
            installation.images[photo_id] = data
            async with database.transaction() as db:
                await db.execute(
                    "INSERT INTO photos (photo_id, room_id, conversation_id, submission_id, wrapped_key, size,"
                    " digest, mime, source_format, quality, created_at) VALUES (?, ?, ?, ?, ?, ?, ?,"
                    " 'image/jpeg', 'jpeg', '', ?)",
                    (
                        photo_id,
                        room,
                        submission_id,
                        submission_id,
                        stored.wrapped_key,
                        stored.size,
                        stored.digest,
                        iso(clock.now()),
                    ),
                )
                if number == 0:
                    record = vault.put(f"{photo_id}-r1", synthetic_jpeg(index * 100 + 50))
                    installation.images[f"{photo_id}-r1"] = synthetic_jpeg(index * 100 + 50)
                    await repository.set_record_version(
                        db,
                        photo_id,
                        image_id=f"{photo_id}-r1",
                        wrapped_key=record.wrapped_key,
                        size=record.size,
                        digest=record.digest,
                        edits=("crop 0 0 50 50",),
                    )
        installation.submissions[submission_id] = nhs_number
        installation.references[submission_id] = reference
        installation.members[room] = patient
        installation.requests[request_id] = patient
        installation.media_urls.append(url)
    # A destruction from before: its ledger entry must survive the rotation, authenticated anew.
    await _record_destruction(installation, database, keyring)


async def _record_destruction(installation: Installation, database: Database, keyring: Keyring) -> None:
    async with database.transaction() as db:
        await installation.ledger(keyring).record(
            db, LedgerKind.IMAGES_DESTROYED, installation.clock.now(), image_ids=["long-gone-photo"]
        )
