"""First contact every app can read: greetings to a patient on Element's own crypto stack."""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
from pathlib import Path

import pytest

from devtools.local_homeserver import LocalHomeserver
from tests.e2e.conftest import BotFactory

pytestmark = pytest.mark.e2e

CLIENT = Path(__file__).resolve().parent / "element_client"
CONTACTS = 200


async def _run(*command: str, timeout: float) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=CLIENT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    assert process.returncode == 0, f"{command[0]} failed: {err.decode(errors='replace')[-2000:]}"
    return out.decode()


async def test_two_hundred_first_contacts_from_element_crypto_excluding_insecure_devices_are_all_readable(
    make_bot: BotFactory, homeserver: LocalHomeserver
) -> None:
    """Every one of 200 greetings to a cross-signed matrix-js-sdk Rust-crypto client in exclude-insecure
    mode decrypts."""
    assert shutil.which("node") and shutil.which("npm"), "this test needs Node.js and npm (matrix-js-sdk)"
    if not (CLIENT / "node_modules" / "matrix-js-sdk").exists():
        await _run("npm", "ci", "--no-audit", "--no-fund", timeout=300)
    bot = await make_bot()
    patient = await homeserver.register_user("elementpatient", "pw-element-patient")
    out = await _run(
        "node",
        "first_contact.mjs",
        homeserver.base_url,
        patient.user_id,
        "pw-element-patient",
        bot.user_id,
        str(CONTACTS),
        timeout=900,
    )
    result = json.loads(out.strip().splitlines()[-1])
    replies = result["first_reply_ms"]
    print(
        f"first contacts: {result['contacts']}, readable {result['readable']}, undecryptable "
        f"{result['undecryptable']}, missing {result['missing']}; first reply median "
        f"{statistics.median(replies):.0f} ms, max {max(replies)} ms"
    )
    assert result["contacts"] == CONTACTS
    assert result["undecryptable"] == 0 and result["missing"] == 0
    assert result["readable"] == CONTACTS
