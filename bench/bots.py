"""The real bot for a benchmark round: its own account, data directory and metrics port, run as a process.

A fresh bot per round, so its peak resident memory (VmHWM) belongs to that round alone. Everything it is
given is what an operator would set, plus test mode (for the 999 test NHS numbers) and the status port
(for /metrics, on 127.0.0.1). The homeserver-admin token is set, as in a real practice, so the bot also
deletes each photo's upload from the homeserver: that work is part of what a photo costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.proc_stats import CpuReading, memory_kib, process_cpu
from bench.prometheus import MetricsUnavailableError, scrape
from bot.ids import UserID
from devtools.demo.bot_process import BotProcess
from devtools.local_homeserver import LocalHomeserver, pick_free_port


@dataclass
class BenchBot:
    process: BotProcess
    user_id: UserID
    data_dir: Path
    status_port: int

    @property
    def pid(self) -> int:
        if self.process.process is None or self.process.process.returncode is not None:
            raise RuntimeError("the bot is not running")
        return self.process.process.pid

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}/metrics"

    def cpu(self) -> CpuReading:
        return process_cpu(self.pid)

    def peak_rss_kib(self) -> int:
        return memory_kib(self.pid, "VmHWM")

    def rss_kib(self) -> int:
        return memory_kib(self.pid, "VmRSS")

    async def metrics(
        self, session: aiohttp.ClientSession
    ) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """The bot's metrics now; {} when its status server does not answer (metrics not available)."""
        try:
            return await scrape(session, self.metrics_url)
        except MetricsUnavailableError:
            return {}


async def new_bot(
    homeserver: LocalHomeserver,
    admin_token: str,
    base_dir: Path,
    name: str,
    extra_env: dict[str, str] | None = None,
) -> BenchBot:
    """Register the bot's account, run `photobot init`; the caller starts it (`bot.process.start()`)."""
    password = f"pw-{name}"
    user = await homeserver.register_user(name, password)
    data_dir = base_dir / name
    status_port = pick_free_port()
    env = {
        "PHOTOBOT_HOMESERVER_URL": homeserver.base_url,
        "PHOTOBOT_USER_ID": user.user_id,
        "PHOTOBOT_PASSWORD": password,
        "PHOTOBOT_DATA_DIR": str(data_dir),
        "PHOTOBOT_PRACTICE_NAME": "Benchmark Surgery",
        "PHOTOBOT_TEST_MODE": "true",
        "PHOTOBOT_LOG_LEVEL": "INFO",
        "PHOTOBOT_HOMESERVER_ADMIN_TOKEN": admin_token,
        "PHOTOBOT_STATUS_PORT": str(status_port),
    } | (extra_env or {})
    bot = BenchBot(BotProcess(env, base_dir / f"{name}.log"), UserID(user.user_id), data_dir, status_port)
    await bot.process.init()
    return bot
