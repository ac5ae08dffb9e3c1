"""A practice's patient handler and clinician desk, built as the wiring builds them, on the fake Matrix.

Everything but Matrix is the project's own: the database, keyring, vault, deletion ledger and CPU pool live
in a temporary directory. Matrix is `tests.support.fake_matrix.FakeMatrix`, passed in where the wiring
passes the gateway. Staff devices are taken as verified (the trust rule has its own end-to-end tests,
tests/e2e/test_device_trust.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.app import clinician_workspace, patient_side
from bot.backends import open_vault
from bot.conversation import AskConsent
from bot.executor import CpuPool
from bot.faults import FaultInjector
from bot.ids import EventID, RoomID, UserID
from bot.matrix.events import EncryptedFile, Incoming, MediaKind, MediaMessage, TextMessage
from bot.settings import load_settings
from bot.trust_policy import DeviceVerdict
from handlers.clinician import ClinicianDesk
from handlers.commands import Command, Role
from handlers.delivery import Delivery
from handlers.patient import PatientHandler
from handlers.record_packages import RecordPackages
from handlers.room_locks import RoomLocks
from handlers.staff import StaffRooms
from handlers.staff_media import StaffMedia
from storage.alert_events import AlertEvents
from storage.audit import AuditLog
from storage.confirmations import PendingConfirmations
from storage.consents import ConsentRepository
from storage.deletion_ledger import DeletionLedger, ledger_path
from storage.handled_events import HandledEvents
from storage.outbox import Outbox
from storage.postings import PostingRepository
from storage.practice_config import ConfigRepository, LiveConfig, defaults_from
from storage.rooms import RoomKind, RoomRepository
from storage.submissions import Status, Submission, SubmissionRepository
from storage.vault import ImageVault
from tests.support.fake_matrix import FakeMatrix
from tests.support.real_storage import Storage, StorageTemplate, real_storage, unscraped_metrics

CLINICIAN = UserID("@dr.ada:example.org")
CLINIC_ROOM = RoomID("!clinicians:example.org")
PATIENT = UserID("@pat:example.org")
PATIENT_ROOM = RoomID("!pat-chat:example.org")
NHS_NUMBER = "999 765 4323"  # a synthetic test-range number (valid check digit), accepted in test mode

_numbers = itertools.count()


@dataclass(frozen=True)
class Practice:
    matrix: FakeMatrix
    storage: Storage
    rooms: RoomRepository
    outbox: Outbox
    delivery: Delivery
    vault: ImageVault
    submissions: SubmissionRepository
    patient: PatientHandler
    desk: ClinicianDesk
    staff: StaffRooms


async def _signed(event: Incoming) -> DeviceVerdict:
    return DeviceVerdict.SIGNED


def _clinician_commands(desk: ClinicianDesk) -> dict[str, Command]:
    """The clinician commands these tests use, as the command table lists them."""
    c = Role.CLINICIAN
    return {
        "queue": Command("queue", c, "!queue [new|claimed|done|open|all] [page]", "list", desk.reading.queue),
        "view": Command("view", c, "!view REF", "show its photos here", desk.reading.view),
        "delete": Command("delete", c, "!delete REF <reason>", "destroy it everywhere", desk.deletion.delete),
    }


@asynccontextmanager
async def practice(
    directory: Path, template: StorageTemplate | None = None, environment: Mapping[str, str] | None = None
) -> AsyncIterator[Practice]:
    """A practice in test mode (synthetic NHS numbers accepted) with one clinician room, on the fake.

    `environment` adds settings: PHOTOBOT_VAULT_URL and PHOTOBOT_S3_* put the vault in an S3 bucket."""
    settings = load_settings(
        {
            "PHOTOBOT_HOMESERVER_URL": "http://127.0.0.1:9",
            "PHOTOBOT_USER_ID": "@photobot:example.org",
            "PHOTOBOT_DATA_DIR": str(directory),
            "PHOTOBOT_TEST_MODE": "true",
            "PHOTOBOT_PRACTICE_NAME": "Riverside Surgery",
            "PHOTOBOT_CLINICIANS": CLINICIAN,
            "PHOTOBOT_CLINICIAN_ROOMS": CLINIC_ROOM,
            "PHOTOBOT_HOMESERVER_ADMIN_TOKEN": "admin-token",
        }
        | dict(environment or {})
    )
    pool = CpuPool(1)
    async with real_storage(directory, template=template) as storage:
        database, keyring, sealer, clock = storage.database, storage.keyring, storage.sealer, storage.clock
        matrix = FakeMatrix(settings.user_id)
        matrix.add_room(CLINIC_ROOM, CLINICIAN)
        faults = FaultInjector(frozenset(), enabled=False)
        metrics = unscraped_metrics()
        config = LiveConfig(defaults_from(settings), ConfigRepository(database, sealer, clock))
        await config.refresh()
        rooms = RoomRepository(database, keyring, sealer, clock)
        outbox = Outbox(database, sealer, clock)
        alerts = AlertEvents(database, clock)
        delivery = Delivery(outbox, matrix, faults, metrics, alerts)
        handled = HandledEvents(database, clock)
        locks = RoomLocks()
        vault = open_vault(settings, keyring)
        ledger = DeletionLedger(ledger_path(settings.data_dir), keyring)
        audit = AuditLog(database, keyring, clock)
        consents = ConsentRepository(database)
        submissions = SubmissionRepository(database, sealer)
        postings = PostingRepository(database, sealer, clock)
        # Built by the app's own wiring, so these tests exercise what runs, with Matrix faked.
        patient, _ = patient_side(
            settings,
            database=database,
            keyring=keyring,
            rooms=rooms,
            handled=handled,
            locks=locks,
            clock=clock,
            faults=faults,
            config=config,
            gateway=matrix,
            vault=vault,
            pool=pool,
            ledger=ledger,
            outbox=outbox,
            delivery=delivery,
            submissions=submissions,
            consents=consents,
            audit=audit,
            metrics=metrics,
        )

        async def ask_consent(
            submission: Submission, consent_id: str, purpose: str, asked_by: UserID, now: datetime
        ) -> bool:
            ask = AskConsent(consent_id, purpose, submission.reference, now)
            return await patient.ask_consent(submission.room_id, ask, submission.submission_id, asked_by)

        async def no_requests(
            request_id: str, patient: UserID, area: str, *, note: str | None, by: UserID, expires: datetime
        ) -> str:
            return "Photo requests are not part of these tests."

        packages = RecordPackages(submissions, consents, vault, pool, config, clock)
        media = StaffMedia(matrix, postings, submissions, vault, pool, clock, config, packages, metrics)
        desk, _, _ = clinician_workspace(
            settings,
            database=database,
            submissions=submissions,
            postings=postings,
            consents=consents,
            outbox=outbox,
            vault=vault,
            pool=pool,
            audit=audit,
            clock=clock,
            config=config,
            media=media,
            lock=asyncio.Lock(),
            ask_patient_consent=ask_consent,
            open_request=no_requests,
            faults=faults,
            ledger=ledger,
            alerts=alerts,
            request_links=None,
        )
        staff = StaffRooms(
            database,
            handled,
            outbox,
            delivery,
            config,
            clock,
            {},
            metrics,
            _signed,
            alerts,
            PendingConfirmations(database, sealer),
        )
        staff.table = _clinician_commands(desk)
        delivery.when_removal_refused(patient.removal_refused)
        try:
            yield Practice(matrix, storage, rooms, outbox, delivery, vault, submissions, patient, desk, staff)
        finally:
            pool.shutdown()


# ---- the patient's side ----------------------------------------------------------------------------------


def patient_text(text: str) -> TextMessage:
    return TextMessage(EventID(f"$text{next(_numbers)}"), PATIENT_ROOM, PATIENT, 0, True, body=text)


def patient_attachment(file: EncryptedFile, kind: MediaKind, size: int) -> MediaMessage:
    return MediaMessage(
        EventID(f"$media{next(_numbers)}"), PATIENT_ROOM, PATIENT, 0, True,
        kind=kind, file=file, thumbnail=None, declared_size=size, media_urls=(file.url,),
    )  # fmt: skip


async def patient_sends(bot: Practice, event: Incoming) -> list[str]:
    """Hand the patient's event to the handler and send what it queued; the bot's replies to it."""
    before = len(bot.matrix.messages(PATIENT_ROOM))
    await bot.patient.handle(event)
    await bot.delivery.flush_all()
    return bot.matrix.messages(PATIENT_ROOM)[before:]


async def reach_photos(bot: Practice) -> None:
    """Open the patient's chat and answer every question up to the photo step."""
    await bot.patient.start(PATIENT_ROOM, PATIENT)
    bot.matrix.add_room(PATIENT_ROOM, PATIENT)  # the room appears in the next sync
    await bot.delivery.flush_all()
    assert "NHS number" in bot.matrix.messages(PATIENT_ROOM)[0]
    assert any(NHS_NUMBER in reply for reply in await patient_sends(bot, patient_text(NHS_NUMBER)))
    assert any("intimate area" in reply for reply in await patient_sends(bot, patient_text("1")))
    assert any("DONE" in reply for reply in await patient_sends(bot, patient_text("no")))


async def submit_photo(bot: Practice, jpeg: bytes) -> Submission:
    """A patient's whole journey with one photo; the submission the clinicians receive."""
    await reach_photos(bot)
    photo = patient_attachment(bot.matrix.add_attachment(jpeg, PATIENT), MediaKind.IMAGE, len(jpeg))
    assert any("Photo 1 received" in reply for reply in await patient_sends(bot, photo))
    await patient_sends(bot, patient_text("done"))
    [submission], _ = await bot.submissions.queue((Status.NEW,), 1)
    return submission


# ---- the clinicians' side --------------------------------------------------------------------------------


async def clinician_says(bot: Practice, text: str) -> list[str]:
    """A clinician's message in the clinician room, handled as the router hands it on; the bot's replies
    there (and anything it posted, such as images)."""
    before = len(bot.matrix.messages(CLINIC_ROOM))
    event = TextMessage(EventID(f"$staff{next(_numbers)}"), CLINIC_ROOM, CLINICIAN, 0, True, body=text)
    await bot.staff.handle(RoomKind.CLINICIAN, event)
    await bot.delivery.flush_all()
    return bot.matrix.messages(CLINIC_ROOM)[before:]
