"""Wiring: builds every object once from the settings, and runs the sync loop.

The sync loop is ours, not nio's `sync_forever`: a batch is fetched, handled and committed, and only then
is the checkpoint saved (exactly-once, matrix-notes #1). A batch that could not be finished (the homeserver
went away mid-way) is fetched again from the same checkpoint; handled events are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from bot.clock import Clock
from bot.conversation import AskConsent
from bot.cross_signing import CrossSigningKeys
from bot.errors import TransientError, error_reference
from bot.executor import CpuPool
from bot.faults import FaultInjector
from bot.ids import DeviceID, RoomID, UserID
from bot.keyring import Keyring, Sealer, create_master_key_file, load_master_key_file
from bot.matrix.gateway import (
    Credentials,
    DeviceTrust,
    MatrixError,
    MatrixGateway,
    TransientMatrixError,
    new_client,
    sync_once,
)
from bot.settings import Settings
from bot.trust_policy import TrustPolicy
from handlers.admin import AdminDesk
from handlers.clinician import ClinicianDesk
from handlers.commands import Invocation
from handlers.delivery import Delivery
from handlers.patient import PatientHandler, purge_pending_media
from handlers.photo_requests import PhotoRequests
from handlers.record_packages import RecordPackages
from handlers.retention import RetentionJob
from handlers.room_locks import RoomLocks
from handlers.router import RoomHandlers, Router
from handlers.staff import StaffRooms, command_table
from handlers.staff_media import StaffMedia
from storage.account import AccountRepository, BotAccount
from storage.audit import AuditLog
from storage.checkpoint import SyncCheckpoint
from storage.consents import ConsentRepository
from storage.conversations import ConversationRepository
from storage.database import Database
from storage.handled_events import HandledEvents
from storage.media_ledger import MediaLedger
from storage.outbox import Outbox, derive_txn_id
from storage.postings import PostingRepository
from storage.practice_config import ConfigRepository, LiveConfig, defaults_from
from storage.rooms import RoomKind, RoomRepository
from storage.submissions import Submission, SubmissionRepository
from storage.vault import Vault

log = logging.getLogger(__name__)
T = TypeVar("T")

SYNC_TIMEOUT_MS = 30_000
RETRY_SECONDS = 2.0


class NotInitialisedError(Exception):
    pass


def prepare_data_dir(settings: Settings) -> None:
    """The data directory and everything in it readable by the bot's user only."""
    for directory in (settings.data_dir, settings.store_dir, settings.vault_dir):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)


@dataclass
class App:
    settings: Settings
    clock: Clock
    keyring: Keyring
    database: Database
    gateway: MatrixGateway
    accounts: AccountRepository
    checkpoint: SyncCheckpoint
    delivery: Delivery
    router: Router
    pool: CpuPool
    faults: FaultInjector
    vault: Vault
    patient: PatientHandler
    config: LiveConfig
    audit: AuditLog
    desk: ClinicianDesk
    media: StaffMedia
    retention: RetentionJob

    async def clean_up_after_crash(self) -> None:
        """Torn temporary files and vault files whose row was never committed: remove them before serving."""
        torn = await self.pool.run(self.vault.clean_temporary_files)
        async with self.database.connection.execute(
            "SELECT photo_id, record_image_id, original_destroyed_at FROM photos"
        ) as cursor:
            rows = await cursor.fetchall()
        known = {str(row["photo_id"]) for row in rows if row["original_destroyed_at"] is None}
        known |= {str(row["record_image_id"]) for row in rows if row["record_image_id"]}
        orphans = await self.pool.run(self.vault.sweep_orphans, known)
        if torn or orphans:
            log.info("start-up clean-up removed %d torn and %d orphaned vault files", torn, len(orphans))

    async def close(self) -> None:
        await self.gateway.client.close()
        await self.database.close()
        self.pool.shutdown()


async def open_app(settings: Settings, clock: Clock) -> App:
    """Everything the bot needs to serve. Refuses to start without a valid master key or account."""
    keyring = Keyring(load_master_key_file(settings.master_key_file))
    prepare_data_dir(settings)
    database = await Database.open(settings.database_path)
    try:
        return await _build(settings, clock, keyring, database)
    except BaseException:
        await database.close()
        raise


async def _build(settings: Settings, clock: Clock, keyring: Keyring, database: Database) -> App:
    sealer = Sealer(keyring)
    accounts = AccountRepository(database, sealer, clock)
    account = await accounts.load()
    if account is None:
        raise NotInitialisedError(
            f"{settings.database_path} holds no bot account yet: run `photobot init` first."
        )
    faults = FaultInjector(
        settings.fault_points, enabled=settings.test_mode, fault_dir=settings.data_dir / "faults"
    )
    config = LiveConfig(defaults_from(settings), ConfigRepository(database, sealer, clock))
    await config.refresh()
    rooms = RoomRepository(database, keyring, sealer, clock)
    trust = TrustPolicy(rooms, config, clock)
    client = new_client(
        settings.homeserver_url, account.user_id, settings.store_dir, keyring.nio_pickle_passphrase()
    )
    gateway = MatrixGateway(
        client, trust=trust, admin_token=lambda: config.current.homeserver_admin_token.value
    )
    trust.use_keys_query(gateway.query_device_keys)
    gateway.restore(Credentials(account.user_id, account.device_id, account.access_token))
    outbox = Outbox(database, sealer, clock)
    delivery = Delivery(outbox, gateway, faults)
    handled = HandledEvents(database, clock)
    locks = RoomLocks()
    pool = CpuPool(settings.cpu_workers)
    vault = Vault(settings.vault_dir, keyring)
    audit = AuditLog(database, keyring, clock)
    consents = ConsentRepository(database)
    submissions = SubmissionRepository(database, sealer)
    postings = PostingRepository(database, sealer, clock)
    workspace_lock = asyncio.Lock()
    patient = PatientHandler(
        database=database,
        keyring=keyring,
        sealer=sealer,
        conversations=ConversationRepository(database, sealer),
        rooms=rooms,
        handled=handled,
        outbox=outbox,
        media=MediaLedger(database, keyring, sealer, clock),
        delivery=delivery,
        gateway=gateway,
        vault=vault,
        pool=pool,
        clock=clock,
        faults=faults,
        config=config,
        test_mode=settings.test_mode,
        locks=locks,
        consents=consents,
        audit=audit,
    )
    requests = PhotoRequests(gateway, patient, keyring, sealer, clock, settings.allowed_servers)

    async def ask_consent(
        submission: Submission, consent_id: str, purpose: str, asked_by: UserID, now: datetime
    ) -> bool:
        ask = AskConsent(consent_id, purpose, submission.reference, now)
        return await patient.ask_consent(submission.room_id, ask, submission.submission_id, asked_by)

    packages = RecordPackages(submissions, consents, vault, pool, config, clock)
    media = StaffMedia(gateway, postings, submissions, vault, pool, clock, config, packages)
    desk = ClinicianDesk(
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
    )
    retention = RetentionJob(database, submissions, audit, outbox, desk, config, clock, workspace_lock)
    admin = AdminDesk(config, audit, _redactor(outbox, database), retention.resume)
    staff = StaffRooms(database, handled, outbox, delivery, config, clock, {})
    staff.table = command_table(desk, admin, staff.help)

    def staff_kind(room_id: RoomID) -> RoomKind | None:
        kind = config.current.staff_room_kind(room_id)
        return None if kind is None else RoomKind(kind)

    router = Router(
        gateway=gateway,
        rooms=rooms,
        handled=handled,
        delivery=delivery,
        locks=locks,
        allowed_servers=settings.allowed_servers,
        staff_kind=staff_kind,
        start_patient=patient.start,
        handlers={
            RoomKind.PATIENT: RoomHandlers(handle=patient.handle, failed=patient.failed),
            RoomKind.CLINICIAN: RoomHandlers(handle=staff.handler(RoomKind.CLINICIAN), failed=staff.failed),
            RoomKind.ADMIN: RoomHandlers(handle=staff.handler(RoomKind.ADMIN), failed=staff.failed),
        },
    )
    return App(
        settings=settings,
        clock=clock,
        keyring=keyring,
        database=database,
        gateway=gateway,
        accounts=accounts,
        checkpoint=SyncCheckpoint(database, clock),
        delivery=delivery,
        router=router,
        pool=pool,
        faults=faults,
        vault=vault,
        patient=patient,
        config=config,
        audit=audit,
        desk=desk,
        media=media,
        retention=retention,
    )


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


async def ensure_device_signed(gateway: MatrixGateway, accounts: AccountRepository) -> None:
    """Sign our device with the self-signing key unless the device key now in use is the one last signed
    (first start, or the device changed). Used by `init` and at every start."""
    account = await accounts.load()
    if account is None or account.cross_signing is None:
        return
    if account.signed_device_key == gateway.device_ed25519():
        return
    signed = await gateway.sign_own_device(account.cross_signing)
    await accounts.save(replace(account, signed_device_key=signed))
    log.info("signed the bot's device with its cross-signing identity")


async def housekeeping(app: App, stop: asyncio.Event) -> None:
    """Every little while: expire idle conversations, retry media deletions and unsent replies."""
    interval = min(60.0, max(1.0, app.settings.conversation_timeout.total_seconds() / 4))
    while not stop.is_set():
        await _sleep_or_stop(stop, interval)
        try:
            await app.config.refresh()
            await app.patient.expire_idle(app.config.current.conversation_timeout)
            await app.desk.end_viewing_windows()
            await app.media.retract_due()
            await app.media.post_pending()
            await app.retention.run()
            await purge_pending_media(app.patient.media, app.gateway)
            await app.delivery.flush_all()
        except TransientError:
            log.info("housekeeping will try again: the homeserver is not reachable")
        except Exception:
            log.exception("housekeeping failed (ref %s)", error_reference())


async def run(app: App, stop: asyncio.Event) -> None:
    """Serve until `stop` is set."""
    await app.clean_up_after_crash()
    await app.gateway.start_keys()
    await ensure_device_signed(app.gateway, app.accounts)
    chores = asyncio.create_task(housekeeping(app, stop))
    try:
        await _sync_loop(app, stop)
    finally:
        stop.set()
        await chores


async def _sync_loop(app: App, stop: asyncio.Event) -> None:
    token = await app.checkpoint.load()
    full_state = True  # rooms are not persisted by nio: rebuild them on the first sync (matrix-notes #7)
    log.info("the bot is serving")
    while not stop.is_set():
        try:
            batch = await _until_stopped(
                sync_once(
                    app.gateway, token, full_state=full_state, timeout_ms=0 if full_state else SYNC_TIMEOUT_MS
                ),
                stop,
            )
            if batch is None:
                return
            await app.gateway.maintain_keys(batch.one_time_key_count)
            await app.config.refresh()  # a change made from the CLI is in force for this batch
            complete = await app.router.handle_batch(batch)
        except TransientMatrixError as error:
            log.info("the homeserver is not reachable (%s); trying again", error)
            await _sleep_or_stop(stop, RETRY_SECONDS)
            continue
        if complete:
            app.faults.hit("before_sync_checkpoint")
            await app.checkpoint.save(batch.next_batch)
            token = batch.next_batch
            full_state = False
        else:
            await _sleep_or_stop(stop, RETRY_SECONDS)
        await app.delivery.flush_all()


async def _until_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """The result of `work`, or None if `stop` is set first (then `work` is cancelled: a long-poll sync
    holds nothing that needs finishing, and the checkpoint was not moved)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def initialise(settings: Settings, clock: Clock, say: Callable[[str], None]) -> None:
    """`photobot init`: data directories, the master key, the bot's device and its cross-signing identity.

    Safe to run again: an existing master key is never overwritten, an existing device is kept.
    """
    prepare_data_dir(settings)
    if settings.master_key_file.exists():
        master = load_master_key_file(settings.master_key_file)
        say(f"Using the existing master key {master.key_id} at {settings.master_key_file}.")
    else:
        master = create_master_key_file(settings.master_key_file)
        say(f"Created the master key {master.key_id} at {settings.master_key_file} (mode 0600). Back it up.")
    keyring = Keyring(master)
    database = await Database.open(settings.database_path)
    try:
        sealer = Sealer(keyring)
        accounts = AccountRepository(database, sealer, clock)
        account = await accounts.load()
        client = new_client(
            settings.homeserver_url, settings.user_id, settings.store_dir, keyring.nio_pickle_passphrase()
        )
        gateway = MatrixGateway(client, trust=_exclude_everyone)
        try:
            if account is None:
                if not settings.password:
                    raise MatrixError(
                        "PHOTOBOT_PASSWORD is needed once, for `photobot init` to log the bot in."
                    )
                credentials = await gateway.login(settings.password.value, settings.device_name)
                account = BotAccount(
                    credentials.user_id, credentials.device_id, credentials.access_token, None, None
                )
                await accounts.save(account)
                say(f"Logged in as {account.user_id} with a new device {account.device_id}.")
            else:
                gateway.restore(Credentials(account.user_id, account.device_id, account.access_token))
                say(f"Keeping the existing device {account.device_id}.")
            await gateway.start_keys()
            if account.cross_signing is None:
                keys = CrossSigningKeys.generate()
                account = replace(account, cross_signing=keys, signed_device_key=None)
                await accounts.save(account)  # saved before upload: an upload is never orphaned
                await gateway.set_up_cross_signing(keys)
                say("Created the bot's cross-signing identity.")
            await ensure_device_signed(gateway, accounts)
            say("The bot's device is signed: patients' apps show it as verified by its owner.")
        finally:
            await client.close()
    finally:
        await database.close()


async def _exclude_everyone(room_id: RoomID, user_id: UserID, device_id: DeviceID, key: str) -> DeviceTrust:
    return DeviceTrust.EXCLUDE
