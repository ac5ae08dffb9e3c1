"""Metrics, health and logs of the real bot: the counters move during a journey, and off means off."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.demo.bot_process import BotProcess
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import answer, reach_photos, send_photo
from tests.e2e.workspace import command, open_practice
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
TCP_LISTEN = "0A"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pid_of(process: BotProcess) -> int:
    assert process.process is not None
    return process.process.pid


def _ipv4(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)[::-1]  # /proc/net/tcp holds it in host (little-endian) order
    return socket.inet_ntoa(raw)


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, read from /proc as `ss -ltp` would."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except FileNotFoundError:
            continue  # closed while we looked
        if str(target).startswith("socket:["):
            inodes.add(str(target)[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and inode in inodes:
                address, port = local.rsplit(":", 1)
                shown = _ipv4(address) if table == "tcp" else f"ipv6:{address}"
                found.add((shown, int(port, 16)))
    return found


@dataclass(frozen=True)
class Page:
    status: int
    body: str


async def http_get(port: int, path: str) -> Page:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode("ascii"))
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return Page(int(head.split(b" ")[1]), body.decode("utf-8"))


async def scrape(port: int) -> dict[str, float]:
    """Every sample of /metrics, keyed as written: 'photobot_photos_rejected_total{reason="corrupt"}'."""
    page = await http_get(port, "/metrics")
    assert page.status == 200
    samples = {}
    for line in page.body.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


def moved(before: dict[str, float], after: dict[str, float], series: str) -> float:
    return after.get(series, 0.0) - before.get(series, 0.0)


async def wait_for_sample(port: int, series: str, value: float, timeout: float = 30.0) -> dict[str, float]:
    """Scrape until `series` has `value` (a gauge that follows the database catches up with a reply)."""
    async with asyncio.timeout(timeout):
        while True:
            samples = await scrape(port)
            if samples.get(series) == value:
                return samples
            await asyncio.sleep(0.2)


async def test_metrics_and_health_follow_a_patient_journey_on_loopback(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """With a status port, /metrics counts photos, rejections, submissions and commands; /healthz says ok."""
    port = free_port()
    practice = await open_practice(make_bot, make_person, status_port=str(port))
    bot = practice.bot
    assert listening_sockets(pid_of(bot.process)) == {("127.0.0.1", port)}, "loopback, one port, nothing else"

    async with asyncio.timeout(60):
        while True:
            health = await http_get(port, "/healthz")
            report = json.loads(health.body)
            if report["checks"]["sync"].startswith("last successful sync"):
                break
            await asyncio.sleep(0.2)
    assert health.status == 200
    assert report["status"] == "ok"
    assert report["checks"]["database"] == "answers"

    before = await scrape(port)
    assert before["photobot_photos_received_total"] == 0
    assert before['photobot_conversations{state="awaiting_photos"}'] == 0
    assert before['photobot_queue_length{status="new"}'] == 0

    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)
    waiting = await scrape(port)
    assert waiting['photobot_conversations{state="awaiting_photos"}'] == 1

    for number in (1, 2):
        jpeg = make_jpeg(1200 + 16 * number, 900, gps=True)
        await send_photo(
            patient,
            room_id,
            jpeg,
            f"Photo {number} received",
            filename=f"p{number}.jpg",
            mimetype="image/jpeg",
        )
    await send_photo(
        patient,
        room_id,
        PDF,
        "looks like a PDF file, not a photo",
        filename="scan.pdf",
        mimetype="application/pdf",
        as_file=True,
    )
    during = await scrape(port)
    assert moved(before, during, "photobot_photos_received_total") == 3
    assert moved(before, during, "photobot_photos_accepted_total") == 2
    assert moved(before, during, 'photobot_photos_rejected_total{reason="unsupported_type"}') == 1
    assert moved(before, during, "photobot_photo_processing_seconds_count") == 3
    assert moved(before, during, "photobot_photo_pipeline_cpu_seconds_count") == 3
    assert during["photobot_photo_pipeline_cpu_seconds_sum"] > 0
    assert moved(before, during, "photobot_replies_sent_total") >= 3
    assert moved(before, during, "photobot_event_handling_seconds_count") >= 3
    assert moved(before, during, "photobot_decrypt_failures_total") == 0

    done = await answer(patient, room_id, "done", "reference")
    reference = done.split("reference is ")[1].split(".")[0].strip("*")
    after = await wait_for_sample(port, 'photobot_conversations{state="submitted"}', 1)
    assert after['photobot_conversations{state="awaiting_photos"}'] == 0
    assert moved(before, after, "photobot_submissions_total") == 1
    assert moved(before, after, 'photobot_queue_length{status="new"}') == 1

    await command(practice.clinician, practice.clinician_room, "!queue", reference)
    await command(practice.clinician, practice.clinician_room, "!frobnicate 9997654323", "!help")
    await command(practice.clinician, practice.clinician_room, f"!claim {reference}", reference)
    staff = await wait_for_sample(port, 'photobot_queue_length{status="claimed"}', 1)
    assert staff['photobot_commands_total{command="queue",outcome="ok"}'] == 1
    assert staff['photobot_commands_total{command="unknown",outcome="unknown"}'] == 1
    assert staff['photobot_commands_total{command="claim",outcome="ok"}'] == 1
    assert staff['photobot_queue_length{status="new"}'] == 0
    assert staff["photobot_event_loop_lag_seconds_count"] > 0

    await command(practice.clinician, practice.clinician_room, f"!view {reference}", "Showing 2 photo")
    viewed = await wait_for_sample(port, "photobot_photo_forward_seconds_count", 2)
    assert viewed["photobot_photo_forward_seconds_sum"] > 0
    assert viewed['photobot_commands_total{command="view",outcome="ok"}'] == 1
    assert "photobot_purge_backlog" in viewed
    assert "photobot_outbox_backlog" in viewed
    scraped = (await http_get(port, "/metrics")).body
    assert "9997654323" not in scraped, "nothing a user typed becomes a label"


async def test_without_a_status_port_nothing_listens_and_json_logs_are_json(make_bot: BotFactory) -> None:
    """By default the bot listens on no port at all; with PHOTOBOT_LOG_FORMAT=json every log line is JSON."""
    bot = await make_bot(log_format="json")  # serving: the status endpoint would be listening by now

    assert listening_sockets(pid_of(bot.process)) == set()
    served = bot.process.log_text().rsplit("---- run 1 ----", 1)[1]  # what `photobot run` wrote
    lines = [line for line in served.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    assert any(entry["message"] == "the bot is serving" for entry in entries)
    assert not any("metrics and health served" in entry["message"] for entry in entries)
