"""`photobot init`: data directories, the master key, the bot's device and its cross-signing identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bot.app import prepare_data_dir
from bot.backends import open_database
from bot.clock import Clock
from bot.cross_signing import CrossSigningKeys
from bot.ids import DeviceID, RoomID, UserID
from bot.keyring import Keyring, Sealer, create_master_key_file, load_master_key_file
from bot.matrix.gateway import Credentials, DeviceTrust, MatrixError, MatrixGateway, new_client
from bot.matrix.reachability import bounded, probe
from bot.settings import Settings
from bot.startup_checks import ensure_device_signed
from storage.account import AccountRepository, BotAccount

INIT_SECONDS = 60.0  # logging in, uploading keys and signing, once the homeserver answers


async def initialise(settings: Settings, clock: Clock, say: Callable[[str], None]) -> None:
    """`photobot init`: data directories, the master key, the bot's device and its cross-signing identity.

    Safe to run again: an existing master key is never overwritten, an existing device is kept. The
    homeserver is asked first, so a mistyped URL fails in seconds, naming it, before anything is created.
    """
    prepare_data_dir(settings)
    await probe(settings.homeserver_url)
    if settings.master_key_file.exists():
        master = load_master_key_file(settings.master_key_file)
        say(f"Using the existing master key {master.key_id} at {settings.master_key_file}.")
    else:
        master = create_master_key_file(settings.master_key_file)
        say(f"Created the master key {master.key_id} at {settings.master_key_file} (mode 0600). Back it up.")
    keyring = Keyring(master)
    database = await open_database(settings)
    try:
        sealer = Sealer(keyring)
        accounts = AccountRepository(database, sealer, clock)
        account = await accounts.load()
        client = new_client(
            settings.homeserver_url, settings.user_id, settings.store_dir, keyring.nio_pickle_passphrase()
        )
        gateway = MatrixGateway(client, trust=_exclude_everyone)
        try:
            async with bounded(settings.homeserver_url, INIT_SECONDS, "logging in and uploading keys"):
                await _set_up_device(settings, accounts, account, gateway, say)
        except MatrixError as error:
            if settings.homeserver_url in str(error):
                raise
            raise type(error)(f"{error} (the homeserver at {settings.homeserver_url})") from None
        finally:
            await client.close()
    finally:
        await database.close()


async def _set_up_device(
    settings: Settings,
    accounts: AccountRepository,
    account: BotAccount | None,
    gateway: MatrixGateway,
    say: Callable[[str], None],
) -> None:
    if account is None:
        if not settings.password:
            raise MatrixError("PHOTOBOT_PASSWORD is needed once, for `photobot init` to log the bot in.")
        credentials = await gateway.login(settings.password.value, settings.device_name)
        account = BotAccount(credentials.user_id, credentials.device_id, credentials.access_token, None, None)
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


async def _exclude_everyone(room_id: RoomID, user_id: UserID, device_id: DeviceID, key: str) -> DeviceTrust:
    return DeviceTrust.EXCLUDE
