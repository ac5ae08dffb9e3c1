"""What `photobot`'s exit status means: one small table, used by every command and by the service manager.

A service manager restarts the bot on a failure that time can fix (the homeserver is not up yet, another
photobot process holds the data directory) and must not restart it on one that only the operator can fix
(the configuration is wrong, the master key does not open the data): restarting then only fills the log.
The systemd unit (deploy/photobot.service) lists the do-not-restart codes in `RestartPreventExitStatus`.
The numbers follow BSD's sysexits.h, which service managers and operators already know.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    PROBLEMS_FOUND = 1  # `check`, `audit verify`, `backup`: the run finished and found problems, listed
    USAGE = 2  # the command line is wrong (argparse's own code); the message says what is expected
    TEMPORARY = 75  # EX_TEMPFAIL: the homeserver cannot be reached or is busy, the data directory is in use
    CONFIG = 78  # EX_CONFIG: the configuration, master key or data needs the operator; do not restart


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.PROBLEMS_FOUND: "finished, and found the problems it lists",
    ExitCode.USAGE: "the command line is wrong",
    ExitCode.TEMPORARY: "the homeserver cannot be reached yet or is busy, or the data directory is in use: "
    "try again later (the service manager restarts it)",
    ExitCode.CONFIG: "the configuration, master key or data needs the operator: fix what the message says "
    "(the service manager does not restart it)",
}


def exit_code_table() -> str:
    """The table for `photobot --help`."""
    return "exit status:\n" + "\n".join(f"  {int(code):>3}  {MEANINGS[code]}" for code in ExitCode)
