"""The real bot as a child process (`python -m bot ...`), for the demo and the end-to-end tests.

Running the real entry point, not a stand-in, is what lets a test kill it with SIGKILL at the worst moment
and start it again, as an operator's service manager would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from devtools.local_homeserver import die_with_parent

SERVING = "the bot is serving"


class BotProcess:
    """`photobot` as a child process.

    With `own_process_group`, each child runs in a process group of its own: a Ctrl-C typed in the
    terminal then reaches only the parent, which stops the bot in order, and stopping signals the whole
    group. Either way the child is killed by the kernel if the parent dies (`die_with_parent`).
    """

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        own_process_group: bool = False,
        program: tuple[str, ...] = (sys.executable, "-m", "bot"),
    ) -> None:
        """`program` is the command that is `photobot`: by default this interpreter's `bot` package; the
        packaging tests pass an installed `photobot` script instead."""
        self.env = env
        self.program = program
        self.log_path = log_path
        self.own_process_group = own_process_group
        self.process: asyncio.subprocess.Process | None = None
        self.runs = 0

    def _full_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOBOT_")}
        return base | self.env | (extra or {})

    async def command(
        self, *args: str, extra_env: dict[str, str] | None = None, stdin: str = ""
    ) -> tuple[int, str]:
        """Run `photobot <args>` to completion, `stdin` on its standard input (where secrets are given);
        returns the exit code and everything it printed."""
        process = await asyncio.create_subprocess_exec(
            *self.program,
            *args,
            env=self._full_env(extra_env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=self.own_process_group,
            preexec_fn=die_with_parent(),
        )
        try:
            output, _ = await process.communicate(stdin.encode())
        except BaseException:  # cancelled (Ctrl-C) or failed while waiting: do not leave it running
            self._signal(process, signal.SIGKILL)
            await process.wait()
            raise
        text = output.decode(errors="replace")
        # Kept in the log too, so that whatever `photobot <command>` printed is checked with the rest.
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8", errors="replace") as log_file:
            log_file.write(f"\n---- photobot {args[0] if args else ''} ----\n{text}")
        return process.returncode or 0, text

    async def init(self) -> str:
        code, output = await self.command("init")
        if code != 0:
            raise RuntimeError(f"photobot init failed ({code}):\n{output}")
        return output

    async def start(self, *, extra_env: dict[str, str] | None = None, wait: bool = True) -> None:
        """Start `photobot run`; wait until it serves (its log says so)."""
        self.runs += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n---- run {self.runs} ----\n".encode())
            log_file.flush()
            self.process = await asyncio.create_subprocess_exec(
                *self.program,
                "run",
                env=self._full_env(extra_env),
                stdout=log_file,
                stderr=log_file,
                start_new_session=self.own_process_group,
                preexec_fn=die_with_parent(),
            )
        if wait:
            await self._wait_for_log(SERVING, offset)

    async def _wait_for_log(self, text: str, offset: int, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            content = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if text in content:
                return
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"the bot exited ({self.process.returncode}):\n{content[-3000:]}")
            await asyncio.sleep(0.1)
        raise TimeoutError(f"the bot did not log {text!r} in {timeout} s")

    async def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        async with asyncio.timeout(timeout):
            return await self.process.wait()

    async def kill(self) -> None:
        """As abrupt as a power cut for the process: SIGKILL, no clean-up."""
        if self.process is not None and self.process.returncode is None:
            self._signal(self.process, signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self._signal(self.process, signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await self.process.wait()
            except TimeoutError:
                await self.kill()
            except BaseException:  # cancelled while waiting: do not leave it running
                self._signal(self.process, signal.SIGKILL)
                raise

    @property
    def pid(self) -> int | None:
        """The running bot's process id, or None when it is not running."""
        if self.process is None or self.process.returncode is not None:
            return None
        return self.process.pid

    def _signal(self, process: asyncio.subprocess.Process, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.own_process_group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
