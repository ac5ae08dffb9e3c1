"""Crash-test hooks in production: armed by the setting alone, outside test mode, they do nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.faults import FaultInjector


async def test_outside_test_mode_an_armed_fault_point_neither_fails_nor_pauses_the_bot(
    tmp_path: Path,
) -> None:
    """PHOTOBOT_FAULT_POINTS without test mode: every hook returns at once, nothing raised, nothing written."""
    faults = FaultInjector(
        frozenset({"after_commit=ENOSPC", "mid_crop=EIO@2", "before_send=pause"}),
        enabled=False,
        fault_dir=tmp_path / "faults",
    )
    for _ in range(3):
        faults.hit("after_commit")
        faults.hit("mid_crop")
    async with asyncio.timeout(1):
        await faults.pause("before_send")
    assert list(tmp_path.iterdir()) == []
