"""Wiring: builds every object once from the settings (the composition root; no loops, no SQL).

`open_app` opens the data directory and the database, runs the checks that must pass before anything is
built, and `_build` makes each object once, passing its dependencies in. What runs them is elsewhere:
`bot.serve` (photobot run), `bot.sync_loop`, `bot.housekeeping`, `bot.status_endpoint`, `bot.startup_checks`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from bot.backends import open_database, open_vault
from bot.clock import Clock, iso
from bot.conversation import AskConsent
from bot.executor import CpuPool
from bot.faults import FaultInjector
from bot.housekeeping import Housekeeping, UploadPurges, interval_for
from bot.ids import RoomID, UserID
from bot.key_rotation import refuse_unfinished_rotation
from bot.keyring import CryptoError, Keyring, MasterKeyError, Sealer, load_master_key_file
from bot.matrix.events import Incoming, ReactionMessage
from bot.matrix.gateway import Credentials, MatrixGateway, new_client
from bot.matrix.port import MatrixPort
from bot.metrics import BotMetrics, Metrics
from bot.settings import Settings, SettingsError
from bot.startup_checks import StartupChecks, check_database
from bot.status_endpoint import StatusEndpoint, gauge_sources
from bot.status_server import Heartbeat
from bot.sync_loop import RestoreCatchUp, SyncLoop
from bot.trust_policy import DeviceVerdict, TrustPolicy
from handlers.admin import AdminDesk
from handlers.clinician import ClinicianDesk, ReadingDesk
from handlers.clinician_decisions import DecisionDesk
from handlers.clinician_deletion import DeletionDesk
from handlers.clinician_packages import PackageDesk
from handlers.clinician_requests import PatientConsentAsker, RequestDesk, RequestOpener
from handlers.commands import Invocation
from handlers.credential_guard import CredentialGuard
from handlers.delivery import Delivery
from handlers.desk_support import DeskSupport
from handlers.destruction import Destruction
from handlers.effects import ConsentRecords, Effects, SubmissionRecords
from handlers.patient import PatientHandler
from handlers.patient_policy import PolicyInForce
from handlers.photo_intake import PhotoIntake
from handlers.photo_requests import PhotoRequests
from handlers.record_packages import RecordPackages
from handlers.refusals import InviteRefusals
from handlers.reminders import ReminderJob
from handlers.request_links import RequestLinks, request_links_for
from handlers.retention import RetentionJob
from handlers.room_guard import RoomGuard
from handlers.room_locks import RoomLocks
from handlers.router import RoomHandlers, Router
from handlers.staff import StaffRooms, command_table
from handlers.staff_media import StaffMedia
from handlers.viewing_windows import ViewingWindows
from storage.account import AccountRepository, BotAccount
from storage.alert_events import AlertEvents
from storage.audit import AuditLog
from storage.backup import refuse_interrupted_restore
from storage.checkpoint import SyncCheckpoint
from storage.confirmations import PendingConfirmations
from storage.consents import ConsentRepository
from storage.conversations import ConversationRepository
from storage.deletion_ledger import DeletionLedger, ledger_path
from storage.handled_events import HandledEvents
from storage.media_ledger import MediaLedger
from storage.outbox import Outbox, derive_txn_id
from storage.photo_requests import PhotoRequestRepository
from storage.photo_store import PhotoStore
from storage.photos import PhotoRepository
from storage.postings import PostingRepository
from storage.practice_config import ConfigRepository, LiveConfig, defaults_from
from storage.refused_invites import RefusedInvites
from storage.rooms import RoomKind, RoomRepository
from storage.sql import Database
from storage.staff_identities import StaffIdentities
from storage.submissions import Submission, SubmissionRepository
from storage.vault import ImageVault


class NotInitialisedError(Exception):
    pass


def prepare_data_dir(settings: Settings) -> None:
    """The data directory and everything in it readable by the bot's user only."""
    s3 = settings.vault is not None and settings.vault.is_s3
    for directory in (settings.data_dir, settings.store_dir, *(() if s3 else (settings.vault_dir,))):
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        except OSError as error:
            raise SettingsError(
                [f"PHOTOBOT_DATA_DIR: cannot create or use {directory} ({error.strerror or error})."]
            ) from None


@dataclass
class App:
    """What `photobot run` and `photobot check` use, built once by `_build`: the configuration, the two
    connections to close (Matrix and the database) and the CPU pool, the patient handler (its rooms, its
    upload ledger), the staff rooms (whose device check the staff fuzz test replaces), and the four things
    that run: start-up checks, status endpoint, housekeeping, sync loop. The clock, keyring and audit log
    are here for the web chat, which builds itself from the running app (`bot.web_chat.serve`)."""

    settings: Settings
    clock: Clock
    keyring: Keyring
    audit: AuditLog
    config: LiveConfig
    database: Database
    gateway: MatrixGateway
    pool: CpuPool
    patient: PatientHandler
    staff: StaffRooms
    checks: StartupChecks
    status: StatusEndpoint
    housekeeping: Housekeeping
    sync: SyncLoop

    async def close(self) -> None:
        await self.gateway.close()
        await self.database.close()
        self.pool.shutdown()


async def open_app(settings: Settings, clock: Clock) -> App:
    """Everything the bot needs to serve. Refuses to start without a valid master key or account."""
    refuse_interrupted_restore(settings.data_dir)
    keyring = Keyring(load_master_key_file(settings.master_key_file))
    prepare_data_dir(settings)
    database = await open_database(settings)
    try:
        await check_database(database)
        await refuse_unfinished_rotation(database)
        return await _build(settings, clock, keyring, database)
    except BaseException:
        await database.close()
        raise


async def _load_account(settings: Settings, accounts: AccountRepository) -> BotAccount:
    """The bot's account, or why the bot cannot start: a master key that does not open it, or none yet."""
    try:
        account = await accounts.load()
    except CryptoError as error:
        raise MasterKeyError(
            f"The master key file {settings.master_key_file} does not open this installation's data (it was "
            f"{error}). Point the configuration at the right key file, restoring it from your key backup; "
            "do not run `photobot init`, which cannot bring the old key back."
        ) from None
    if account is None:
        raise NotInitialisedError(f"{settings.database} holds no bot account yet: run `photobot init` first.")
    return account


async def _build(settings: Settings, clock: Clock, keyring: Keyring, database: Database) -> App:
    sealer = Sealer(keyring)
    accounts = AccountRepository(database, sealer, clock)
    account = await _load_account(settings, accounts)
    faults = FaultInjector(
        settings.fault_points, enabled=settings.test_mode, fault_dir=settings.data_dir / "faults"
    )
    config = LiveConfig(defaults_from(settings), ConfigRepository(database, sealer, clock))
    await config.refresh()
    rooms = RoomRepository(database, keyring, sealer, clock)
    identities = StaffIdentities(database, clock)
    trust = TrustPolicy(rooms, config, clock, identities)
    client = new_client(
        settings.homeserver_url, account.user_id, settings.store_dir, keyring.nio_pickle_passphrase()
    )
    gateway = MatrixGateway(
        client, trust=trust, admin_token=lambda: config.current.homeserver_admin_token.value
    )
    trust.use_keys_query(gateway.query_device_keys)
    trust.on_identity_changed(_identity_alert(database, Outbox(database, sealer, clock), config, clock))
    gateway.restore(Credentials(account.user_id, account.device_id, account.access_token))
    outbox = Outbox(database, sealer, clock)
    # Always counted (cheap, in memory); only served when PHOTOBOT_STATUS_PORT is set (bot.status_endpoint).
    metrics_registry = Metrics(prefix="photobot_")
    metrics = BotMetrics.create(metrics_registry, gauge_sources(database, clock))
    delivery = Delivery(outbox, gateway, faults, metrics, alerts := AlertEvents(database, clock))
    handled = HandledEvents(database, clock)
    locks = RoomLocks()
    pool = CpuPool(settings.cpu_workers)
    vault = open_vault(settings, keyring)
    ledger = DeletionLedger(ledger_path(settings.data_dir), keyring)
    audit = AuditLog(database, keyring, clock)
    consents = ConsentRepository(database)
    submissions = SubmissionRepository(database, sealer)
    postings = PostingRepository(database, sealer, clock)
    workspace_lock = asyncio.Lock()
    patient, photo_requests = patient_side(
        settings,
        database=database,
        keyring=keyring,
        rooms=rooms,
        handled=handled,
        locks=locks,
        clock=clock,
        faults=faults,
        config=config,
        gateway=gateway,
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
    requests = PhotoRequests(gateway, patient, photo_requests, clock, settings.allowed_servers)

    async def ask_consent(
        submission: Submission, consent_id: str, purpose: str, asked_by: UserID, now: datetime
    ) -> bool:
        ask = AskConsent(consent_id, purpose, submission.reference, now)
        return await patient.ask_consent(submission.room_id, ask, submission.submission_id, asked_by)

    packages = RecordPackages(submissions, consents, vault, pool, config, clock)
    media = StaffMedia(gateway, postings, submissions, vault, pool, clock, config, packages, metrics)
    desk, viewing_windows, retention = clinician_workspace(
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
        lock=workspace_lock,
        ask_patient_consent=ask_consent,
        open_request=requests.open,
        faults=faults,
        ledger=ledger,
        alerts=alerts,
        request_links=request_links_for(settings.web_chat, database, sealer, audit, settings.reminders.zone),
    )
    admin = AdminDesk(config, audit, _redactor(outbox, database), retention.resume, identities)
    staff = StaffRooms(
        database,
        handled,
        outbox,
        delivery,
        config,
        clock,
        {},
        metrics,
        _device_check(gateway, trust),
        alerts,
        PendingConfirmations(database, sealer),
    )
    staff.table = command_table(desk, admin, staff.help)

    def staff_kind(room_id: RoomID) -> RoomKind | None:
        kind = config.current.staff_room_kind(room_id)
        return None if kind is None else RoomKind(kind)

    delivery.when_removal_refused(patient.removal_refused)
    guard = RoomGuard(gateway, patient)
    credentials = CredentialGuard(database, outbox, config, gateway)  # a pasted credential leaves any room
    router = Router(
        gateway=gateway,
        rooms=rooms,
        handled=handled,
        delivery=delivery,
        locks=locks,
        allowed_servers=settings.allowed_servers,
        staff_kind=staff_kind,
        start_patient=patient.start,
        refuse_invite=InviteRefusals(
            database=database,
            rooms=rooms,
            refused=RefusedInvites(),
            outbox=outbox,
            delivery=delivery,
            gateway=gateway,
            config=config,
            clock=clock,
            allowed_servers=settings.allowed_servers,
        ).refuse,
        handlers={
            RoomKind.PATIENT: RoomHandlers(
                handle=credentials.guarding(RoomKind.PATIENT, patient.handle), failed=patient.failed
            ),
            RoomKind.CLINICIAN: RoomHandlers(
                handle=credentials.guarding(RoomKind.CLINICIAN, staff.handler(RoomKind.CLINICIAN)),
                failed=staff.failed,
            ),
            RoomKind.ADMIN: RoomHandlers(
                handle=credentials.guarding(RoomKind.ADMIN, staff.handler(RoomKind.ADMIN)),
                failed=staff.failed,
            ),
        },
        metrics=metrics,
        admit_patient_room=guard.admit,
        still_private=guard.still_private,
    )
    checkpoint = SyncCheckpoint(database, clock)
    heartbeat = Heartbeat()
    return App(
        settings=settings,
        clock=clock,
        keyring=keyring,
        audit=audit,
        config=config,
        database=database,
        gateway=gateway,
        pool=pool,
        patient=patient,
        staff=staff,
        checks=StartupChecks(
            database=database,
            vault=vault,
            pool=pool,
            ledger=ledger,
            submissions=submissions,
            postings=postings,
            audit=audit,
            clock=clock,
            accounts=accounts,
            gateway=gateway,
        ),
        status=StatusEndpoint(settings, metrics_registry, metrics, heartbeat, database),
        housekeeping=Housekeeping(
            interval=interval_for(settings.practice.conversation_timeout, settings.undo_window),
            clock=clock,
            config=config,
            patient=patient,
            viewing_windows=viewing_windows,
            staff_media=media,
            retention=retention,
            reminders=ReminderJob(database, submissions, outbox, config, clock, settings.reminders),
            uploads=UploadPurges(
                ledger=patient.media,
                gateway=gateway,
                database=database,
                outbox=outbox,
                config=config,
                clock=clock,
            ),
            delivery=delivery,
        ),
        sync=SyncLoop(
            gateway=gateway,
            checkpoint=checkpoint,
            catch_up=RestoreCatchUp(database, checkpoint, outbox, config, clock),
            router=router,
            delivery=delivery,
            config=config,
            faults=faults,
            heartbeat=heartbeat,
        ),
    )


def patient_side(
    settings: Settings,
    *,
    database: Database,
    keyring: Keyring,
    rooms: RoomRepository,
    handled: HandledEvents,
    locks: RoomLocks,
    clock: Clock,
    faults: FaultInjector,
    config: LiveConfig,
    gateway: MatrixPort,
    vault: ImageVault,
    pool: CpuPool,
    ledger: DeletionLedger,
    outbox: Outbox,
    delivery: Delivery,
    submissions: SubmissionRepository,
    consents: ConsentRepository,
    audit: AuditLog,
    metrics: BotMetrics,
) -> tuple[PatientHandler, PhotoRequestRepository]:
    """The patient's side: its photo store (vault file and row together), intake, effects and handler."""
    sealer = Sealer(keyring)
    photo_store = PhotoStore(
        vault=vault, photos=PhotoRepository(sealer), ledger=ledger, database=database, pool=pool, clock=clock
    )
    conversations = ConversationRepository(database, sealer)
    photo_requests = PhotoRequestRepository(keyring, sealer)
    patient = PatientHandler(
        database=database,
        rooms=rooms,
        conversations=conversations,
        handled=handled,
        locks=locks,
        clock=clock,
        faults=faults,
        policy_in_force=PolicyInForce(config, settings.test_mode),
        intake=PhotoIntake(gateway, photo_store, pool, faults, metrics, keyring),
        effects=Effects(
            conversations=conversations,
            outbox=outbox,
            photos=photo_store,
            submissions=SubmissionRecords(submissions, photo_requests, photo_store, keyring),
            consents=ConsentRecords(consents, audit, outbox, config, settings.reminders.zone),
            config=config,
            delivery=delivery,
            media=MediaLedger(database, keyring, sealer, clock),
            gateway=gateway,
        ),
        metrics=metrics,
    )
    return patient, photo_requests


def clinician_workspace(
    settings: Settings,
    *,
    database: Database,
    submissions: SubmissionRepository,
    postings: PostingRepository,
    consents: ConsentRepository,
    outbox: Outbox,
    vault: ImageVault,
    pool: CpuPool,
    audit: AuditLog,
    clock: Clock,
    config: LiveConfig,
    media: StaffMedia,
    lock: asyncio.Lock,
    ask_patient_consent: PatientConsentAsker,
    open_request: RequestOpener,
    faults: FaultInjector,
    ledger: DeletionLedger,
    alerts: AlertEvents,
    request_links: RequestLinks | None,
) -> tuple[ClinicianDesk, ViewingWindows, RetentionJob]:
    """The clinicians' commands and the jobs that destroy images, all through one `Destruction`."""
    destruction = Destruction(
        database, submissions, postings, outbox, vault, pool, audit, ledger, media, faults
    )
    support = DeskSupport(submissions, audit, outbox, media.gateway, lock, alerts, settings.reminders.zone)
    desk = ClinicianDesk(
        reading=ReadingDesk(support, submissions, postings, audit, media, config),
        decisions=DecisionDesk(
            support, submissions, vault, pool, destruction, config, faults, settings.undo_window
        ),
        packages=PackageDesk(support, postings, consents, media, config),
        requests=RequestDesk(support, config, ask_patient_consent, open_request, request_links),
        deletion=DeletionDesk(support, database, submissions, outbox, destruction, config),
    )
    viewing_windows = ViewingWindows(submissions, destruction, config, clock, lock)
    retention = RetentionJob(database, submissions, audit, outbox, destruction, config, clock, lock)
    return desk, viewing_windows, retention


def _redactor(outbox: Outbox, database: Database) -> Callable[[Invocation], Awaitable[None]]:
    """Removes an admin's message that carried a secret (the admin credential) from the room."""

    async def redact(cmd: Invocation) -> None:
        async with database.transaction() as db:
            await outbox.add(
                db,
                cmd.room_id,
                derive_txn_id(cmd.event_id, 98),
                "redaction",
                {"event_id": cmd.event_id, "reason": "Removed: it carried a secret."},
            )

    return redact


def _device_check(
    gateway: MatrixGateway, trust: TrustPolicy
) -> Callable[[Incoming], Awaitable[DeviceVerdict]]:
    """Whether the device that sent a staff command (as the encryption proves it) may be obeyed."""

    async def check_device(event: Incoming) -> DeviceVerdict:
        if isinstance(event, ReactionMessage) and not event.encrypted:
            return await trust.staff_account(event.sender)  # Element Web reacts in clear: no device proof
        if event.sender_keys is None:
            return DeviceVerdict.UNKNOWN
        device = await gateway.sender_device(event.sender, event.sender_keys)
        return DeviceVerdict.UNKNOWN if device is None else await trust.staff_device(event.sender, *device)

    return check_device


def _identity_alert(
    database: Database, outbox: Outbox, config: LiveConfig, clock: Clock
) -> Callable[[UserID], Awaitable[None]]:
    """Queue (never send: a send may be under way) the admin room's alert about a changed staff identity."""

    async def alert(user_id: UserID) -> None:
        admin_room = config.current.admin_room
        if admin_room is None:
            return
        text = (
            f"**{user_id}'s cross-signing identity has changed** (reset with their password, or someone else "
            "has their password). Until you accept it I obey none of their devices and share nothing with "
            f"them. Check with them in person or by phone, then: `!identity accept {user_id}`"
        )
        async with database.transaction() as db:
            txn_id = derive_txn_id(f"identity-changed:{user_id}:{iso(clock.now())}", 0)
            await outbox.add(db, admin_room, txn_id, "message", {"text": text})

    return alert
