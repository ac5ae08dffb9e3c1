"""`photobot practice add|remove|list`: the practices of a host directory (bot.practices).

`add NAME --env-file FILE` checks the practice's settings (and that it shares no bot account, room, key
file or port with another practice), creates its folder with a copy of its settings (without the password,
needed once) and runs `photobot init` for it: master key, device, cross-signing identity. A running host
starts serving it within seconds. If anything fails, nothing of it is left behind.

`remove NAME` destroys the practice: its folder is marked (a running host stops serving it and lets its data
directory go) and its bot's device is logged out of the homeserver, then its master key is destroyed first - from that moment nothing it stored, in any copy or
backup, can be read - then its rows, then its files (vault, nio store, deletion ledger, settings). Interrupted,
it is run again to finish; the practice is never served in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from dotenv import dotenv_values

from bot.backends import open_database, s3_location
from bot.clock import Clock, SystemClock
from bot.durable_files import fsync_directory, write_new_file
from bot.exit_codes import ExitCode
from bot.initialise import initialise
from bot.keyring import (
    CryptoError,
    Keyring,
    MasterKeyError,
    Sealer,
    destroy_master_key_file,
    load_master_key_file,
)
from bot.matrix.homeserver_audit import HomeserverAudit
from bot.matrix.reachability import HomeserverUnreachableError
from bot.practices import (
    ADD_ONLY,
    DATABASE_URL,
    POSTGRES_SCHEMES,
    PRACTICE_ENV,
    REMOVING,
    VAULT_URL,
    Host,
    check_name,
    describe,
    file_problems,
    isolation_problems,
    practice_values,
)
from bot.settings import PREFIX, Settings, SettingsError, load_settings
from storage.account import AccountRepository
from storage.data_dir_lock import DataDirBusyError, DataDirLock
from storage.practice_data import DestroyedRows, destroy_database, destroy_objects, destroy_schema
from storage.sql import DatabaseError

REMOVE_WAIT_SECONDS = 60.0  # for a running host to stop serving the practice being removed


def _read_env_file(env_file: Path | None) -> dict[str, str]:
    if env_file is None:
        raise SettingsError(["name the practice's settings file: photobot practice add NAME --env-file FILE"])
    if not env_file.is_file():
        raise SettingsError([f"--env-file {env_file}: no such file."])
    return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def _others(host: Host, name: str, say: Callable[[str], None]) -> dict[str, Settings]:
    others: dict[str, Settings] = {}
    for other in host.serving_names():
        if other == name:
            continue
        try:
            others[other] = host.settings(other)
        except SettingsError as error:
            say(f"warning: {'; '.join(error.problems)} (not compared with the new practice)")
    return others


def _kept_copy(values: Mapping[str, str]) -> bytes:
    lines = [
        "# This practice's settings under the host (photobot practice add). Edit, then restart the host.\n",
        f"# {PREFIX}DATA_DIR is set by the host; the password was used once, by init, and is not kept.\n",
    ]
    for key, value in values.items():
        if key in ADD_ONLY:
            continue
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        lines.append(f"{key}='{escaped}'\n")
    return "".join(lines).encode()


async def add_practice(
    host: Host, name: str, env_file: Path | None, clock: Clock, say: Callable[[str], None]
) -> int:
    check_name(name)
    if host.is_removing(name):
        raise SettingsError(
            [f"practice {name} is being removed: finish with `photobot practice remove {name}`."]
        )
    if host.exists(name) and not host.env_file(name).is_file():
        raise SettingsError(
            [f"practice {name} was left half made: clear it with `photobot practice remove {name}`."]
        )
    if host.exists(name):
        raise SettingsError([f"practice {name} already exists in {host.root} (`photobot practice list`)."])
    values = _read_env_file(env_file)
    if problems := file_problems(values):
        raise SettingsError([f"{env_file}: {problem}" for problem in problems])
    try:
        settings = load_settings(
            practice_values(host, name, values) | {k: values[k] for k in ADD_ONLY if k in values}
        )
    except SettingsError as error:
        raise SettingsError([f"{env_file}: {problem}" for problem in error.problems]) from None
    shared = isolation_problems(_others(host, name, say) | {name: settings}).get(name)
    if shared:
        raise SettingsError([f"practice {name}: {problem}" for problem in shared])
    host.practices_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_existed = settings.master_key_file.exists()
    directory = host.practice_dir(name)
    # The settings file is written last: a host serves a folder only once it has one, so a running host never
    # starts a practice half made. The lock keeps `photobot run --practice NAME` out meanwhile.
    with DataDirLock.acquire(directory, f"photobot practice add {name}"):
        try:
            await initialise(settings, clock, say)
            partial = directory / f".{PRACTICE_ENV}.new"
            partial.unlink(missing_ok=True)
            write_new_file(partial, _kept_copy(values))
            partial.rename(directory / PRACTICE_ENV)
            fsync_directory(directory)
        except BaseException:
            if not key_existed:
                destroy_master_key_file(settings.master_key_file)
            shutil.rmtree(directory, ignore_errors=True)
            say(f"Practice {name} was not added; nothing of it was kept.")
            raise
    say(
        f"Added practice {name} ({settings.practice.practice_name}, bot {settings.user_id}) in {directory}. "
        "A running host serves it within seconds; otherwise start it with `photobot run`."
    )
    return ExitCode.OK


def _confirmed(name: str, ask: Callable[[str], str], say: Callable[[str], None]) -> bool:
    answer = ask(
        f"This destroys practice {name} for good: its master key, every photo, record and audit entry, and "
        f"its bot's device keys. Type the practice's name ({name}) to go on: "
    ).strip()
    if answer != name:
        say(f"Practice {name} was not removed.")
        return False
    return True


async def _lock_when_released(directory: Path, name: str, wait: float) -> DataDirLock:
    """The practice's data directory, once a running host has stopped serving it (it sees REMOVING)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            return DataDirLock.acquire(directory, f"photobot practice remove {name}")
        except DataDirBusyError:
            if loop.time() >= deadline:
                raise DataDirBusyError(
                    f"practice {name} is still in use after {wait:.0f} s. It is marked for removal and will "
                    f"not be served again: run `photobot practice remove {name}` again to finish."
                ) from None
            await asyncio.sleep(0.2)


def _master_key_file(host: Host, name: str) -> Path:
    """The practice's key file, from its own settings file when it names one (checked absolute at add)."""
    env = host.env_file(name)
    values = dotenv_values(env) if env.is_file() else {}
    named = (values.get(f"{PREFIX}MASTER_KEY_FILE") or "").strip()
    return Path(named).expanduser() if named else host.practice_dir(name) / "master.key"


async def _destroy_rows(host: Host, name: str, directory: Path) -> DestroyedRows:
    """The practice's rows: its SQLite file, and its own PostgreSQL schema when the host's database is that."""
    rows = await destroy_database(directory / "photobot.sqlite3")
    env = host.env_file(name)
    url = host.values(name).get(DATABASE_URL, "") if env.is_file() else ""
    if url.startswith(POSTGRES_SCHEMES):
        in_schema = await destroy_schema(url)
        rows = DestroyedRows(rows.tables + in_schema.tables, rows.rows + in_schema.rows)
    return rows


async def _destroy_objects(host: Host, name: str, say: Callable[[str], None]) -> int:
    """The practice's image objects, when its vault is in an object store (under its own prefix)."""
    env = host.env_file(name)
    if not env.is_file() or not host.values(name).get(VAULT_URL, "").startswith("s3://"):
        return 0
    try:
        location = s3_location(load_settings(host.values(name)))
    except SettingsError as error:
        raise SettingsError(
            [
                f"practice {name}: its object store cannot be reached to delete its images: {problem}"
                for problem in error.problems
            ]
        ) from None
    if location is None:
        return 0
    deleted = await asyncio.to_thread(destroy_objects, location)
    say(f"Deleted its {deleted} object(s) under s3://{location.bucket}/{location.prefix}/.")
    return deleted


async def _log_out_bot(host: Host, name: str, key_file: Path, say: Callable[[str], None]) -> None:
    """Log the practice's bot device out of the homeserver, which deletes the device and its keys there (so
    patients' apps stop encrypting to it). Best effort: a removal is not held up by a homeserver that does
    not answer, or by a practice that was never initialised or is half destroyed already."""
    try:
        settings = load_settings(host.values(name))
        if not settings.database_path.exists() or not key_file.exists():
            return
        keyring = Keyring(load_master_key_file(key_file))
        database = await open_database(settings)
        try:
            account = await AccountRepository(database, Sealer(keyring), SystemClock()).load()
        finally:
            await database.close()
        if account is None:
            return
        async with HomeserverAudit.session() as session:
            answer = await HomeserverAudit(settings.homeserver_url, session).log_out(account.access_token)
    except (
        SettingsError,
        MasterKeyError,
        CryptoError,
        DatabaseError,
        HomeserverUnreachableError,
        OSError,
    ) as error:
        say(f"warning: the bot's device could not be logged out ({error}); delete it on the homeserver.")
        return
    if answer.status == 200:
        say(
            f"Logged out its bot's device {account.device_id} ({account.user_id}): the homeserver deleted its keys."
        )
    elif answer.status == 401:
        say(f"Its bot's device {account.device_id} was already logged out.")
    else:
        say(
            f"warning: the homeserver refused to log out the bot's device {account.device_id} ({answer.errcode}); "
            f"delete it on the homeserver."
        )


async def remove_practice(
    host: Host,
    name: str,
    *,
    yes: bool,
    ask: Callable[[str], str],
    say: Callable[[str], None],
    wait: float = REMOVE_WAIT_SECONDS,
) -> int:
    check_name(name)
    directory = host.practice_dir(name)
    if not directory.is_dir():
        raise SettingsError([f"there is no practice {name!r} in {host.root}."])
    if not yes and not _confirmed(name, ask, say):
        return ExitCode.USAGE
    key_file = _master_key_file(host, name)
    marker = directory / REMOVING
    if not marker.exists():
        write_new_file(marker, b"photobot practice remove\n")
        fsync_directory(directory)
    with await _lock_when_released(directory, name, wait):
        await _log_out_bot(host, name, key_file, say)
        if destroy_master_key_file(key_file):
            say(
                f"Destroyed practice {name}'s master key ({key_file}): nothing it stored can be read any more."
            )
        rows = await _destroy_rows(host, name, directory)
        say(f"Destroyed its database: {rows.rows} row(s) in {rows.tables} table(s).")
        images = sum(1 for path in (directory / "vault").rglob("*") if path.is_file())
        images += await _destroy_objects(host, name, say)
        shutil.rmtree(directory)
    with contextlib.suppress(FileNotFoundError):
        fsync_directory(host.practices_dir)
    say(
        f"Removed practice {name}: {images} encrypted image(s), its nio store and settings deleted. Destroy "
        "any offline copy of its master key too, and deactivate its bot's account on the homeserver."
    )
    return ExitCode.OK


def list_practices(host: Host, say: Callable[[str], None]) -> int:
    names = host.names()
    if not names:
        say(f"No practices in {host.root} yet: add one with `photobot practice add NAME --env-file FILE`.")
        return ExitCode.OK
    for line in describe(host, names):
        say(line)
    return ExitCode.OK
