"""What every fuzz test shares: how many cases it runs, the 2-second limit per case, and reproducibility.

In CI each fuzz test runs a fixed number of cases (`examples`) from a fixed seed (`derandomize`, no example
database), so a run is the same on every machine and a failure is seen by everyone. A longer soak multiplies
every count and draws fresh cases each time:

    PHOTOBOT_FUZZ_SCALE=20 .venv/bin/pytest tests/unit/test_fuzz_*.py tests/unit/test_image_fuzz.py

A soak keeps Hypothesis's example database (.hypothesis/, not committed), so a failure it finds is replayed
first by the next run. This module is the one place the fuzz tests read the environment: the soak is a
setting of the test run, not of the bot.

Case counts per target (CI, scale 1), reported in docs and checked by `test_the_ci_run_has_enough_cases`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings

from bot.app import App, open_app, prepare_data_dir
from bot.clock import SystemClock
from bot.ids import DeviceID
from bot.keyring import Keyring, Sealer, create_master_key_file
from bot.settings import load_settings
from storage.account import AccountRepository, BotAccount
from storage.database import Database

SCALE_VARIABLE = "PHOTOBOT_FUZZ_SCALE"
CASE_LIMIT = timedelta(seconds=2)  # no single case may take longer (issue 5: "no hang over 2 seconds")


def fuzz_scale() -> int:
    """The soak multiplier: 1 in CI, more when PHOTOBOT_FUZZ_SCALE says so."""
    raw = os.environ.get(SCALE_VARIABLE, "1")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{SCALE_VARIABLE} must be a whole number from 1, not {raw!r}")
    return int(raw)


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for a fuzz test of `examples` cases (times the soak scale), 2 s at most each."""
    scale = fuzz_scale()
    common = settings(
        max_examples=examples * scale,
        deadline=CASE_LIMIT,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )
    if scale > 1:
        return common  # fresh cases each soak, failures kept in the example database
    return settings(common, derandomize=True, database=None)


async def offline_app(data_dir: Path, **values: str) -> App:
    """The real bot, built by `open_app` with a master key and an account, on a homeserver that is not there.

    The homeserver URL is the discard port on this machine, and the bot's Matrix client knows no rooms, so
    replies wait in the outbox (where a test reads them) and nothing reaches a network. `values` are
    PHOTOBOT_ settings without the prefix. The caller closes the app.
    """
    env = {
        "PHOTOBOT_HOMESERVER_URL": "http://127.0.0.1:9",
        "PHOTOBOT_USER_ID": "@photobot:example.org",
        "PHOTOBOT_DATA_DIR": str(data_dir),
        "PHOTOBOT_TEST_MODE": "true",
        "PHOTOBOT_PRACTICE_NAME": "Riverside Surgery",
    } | {f"PHOTOBOT_{key}": value for key, value in values.items()}
    config = load_settings(env)
    prepare_data_dir(config)
    keyring = Keyring(create_master_key_file(config.master_key_file))
    database = await Database.open(config.database_path)
    try:
        account = BotAccount(config.user_id, DeviceID("FUZZDEVICE"), "no-token", None, None)
        await AccountRepository(database, Sealer(keyring), SystemClock()).save(account)
    finally:
        await database.close()
    return await open_app(config, SystemClock())


# Cases per fuzz target in the CI run; the tests take their counts from here so the total is stated once.
CASES: dict[str, int] = {
    "image: JPEG segments": 900,
    "image: PNG chunks": 700,
    "image: WebP chunks": 500,
    "image: HEIC boxes": 400,
    "image: huge declared dimensions": 400,
    "image: random bytes after a valid header": 400,
    "NHS number: any text": 1000,
    "NHS number: a valid number as typed": 800,
    "NHS number: one digit mistyped": 500,
    "NHS number: two digits swapped": 300,
    "personal data: any text": 800,
    "personal data: planted details": 800,
    "personal data: NHS numbers and concern descriptions": 400,
    "personal data: long adversarial text": 150,
    "staff commands: any text": 800,
    "staff commands: arguments": 500,
    "staff dispatch: commands from anyone in any staff room": 800,
    "patient conversation: any text at every step": 1000,
    "patient handler: scripts of messages": 150,
}


def test_the_ci_run_has_enough_cases() -> None:
    """The fuzz targets together run at least 10,000 cases in CI (issue 5)."""
    assert sum(CASES.values()) >= 10_000
