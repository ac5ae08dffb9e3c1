"""The throwaway Synapse that the end-to-end tests, the demo and the benchmarks run against."""

import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devtools.local_homeserver import (
    HomeserverError,
    LocalHomeserver,
    RegisteredUser,
    default_synapse_python,
)

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def stopped_homeserver(tmp_path: Path) -> AsyncIterator[LocalHomeserver]:
    """A homeserver the test starts itself; stopped afterwards whatever the test did."""
    server = LocalHomeserver(tmp_path / "synapse", synapse_python=default_synapse_python(PROJECT_ROOT))
    try:
        yield server
    finally:
        await server.stop()


async def whoami(server: LocalHomeserver, user: RegisteredUser) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {user.access_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.base_url}/_matrix/client/v3/account/whoami", headers=headers) as response,
    ):
        return response.status, await response.json()


async def admin_lookup_status(server: LocalHomeserver, caller: RegisteredUser, user_id: str) -> int:
    headers = {"Authorization": f"Bearer {caller.access_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.base_url}/_synapse/admin/v2/users/{user_id}", headers=headers) as response,
    ):
        return response.status


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


async def test_users_keep_their_logins_across_a_restart_and_nothing_is_left_running(
    stopped_homeserver: LocalHomeserver, record_property: Callable[[str, object], None]
) -> None:
    """Users' tokens work before and after a restart on the same port, and stop leaves no process."""
    server = stopped_homeserver
    began = time.monotonic()
    await server.start()
    cold_start = time.monotonic() - began
    record_property("cold_start_seconds", round(cold_start, 2))
    print(f"Synapse cold start: {cold_start:.2f} s")  # read it with `pytest -s`

    admin = await server.register_user("practice-admin", "admin password", admin=True)
    patient = await server.register_user("patient", "patient password")
    assert admin.user_id == "@practice-admin:localhost"
    assert patient.user_id == "@patient:localhost"
    for user in (admin, patient):
        status, body = await whoami(server, user)
        assert status == 200
        assert body["user_id"] == user.user_id
        assert body["device_id"] == user.device_id
    assert await admin_lookup_status(server, admin, patient.user_id) == 200
    assert await admin_lookup_status(server, patient, admin.user_id) == 403

    port, first_pid = server.port, server.pid
    assert first_pid is not None
    await server.restart()
    assert server.port == port
    assert server.base_url == f"http://127.0.0.1:{port}"
    assert server.pid not in (None, first_pid)
    assert not process_exists(first_pid)
    for user in (admin, patient):
        status, body = await whoami(server, user)
        assert status == 200
        assert body["user_id"] == user.user_id

    second_pid = server.pid
    assert second_pid is not None
    await server.stop()
    await server.stop()
    assert server.pid is None
    assert not process_exists(second_pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(second_pid, 0)
    assert not accepts_connections(port)

    log_text = server.log_path.read_text(encoding="utf8")
    assert "STARTING SERVER" in log_text
    for user in (admin, patient):
        assert user.access_token not in log_text
        assert user.access_token not in repr(user)


async def test_a_homeserver_that_cannot_start_says_why(tmp_path: Path) -> None:
    """A configuration Synapse rejects fails start() with Synapse's own complaint, and leaves no process."""
    progress: list[str] = []
    server = LocalHomeserver(
        tmp_path / "synapse",
        synapse_python=default_synapse_python(PROJECT_ROOT),
        server_name="not a server name",
        log=progress.append,
    )
    try:
        with pytest.raises(HomeserverError, match="exited during start-up") as failure:
            await server.start()
        assert "Server name 'not a server name' has an invalid format" in str(failure.value)
        assert server.pid is None
        assert any("starting Synapse" in line for line in progress)
    finally:
        await server.stop()
