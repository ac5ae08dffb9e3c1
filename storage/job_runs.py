"""When each periodic job last ran (`job_runs`): the retention job's clock check, the daily digest."""

from __future__ import annotations

from datetime import datetime

from bot.clock import iso
from storage.sql import Connection, Database


async def last_run(database: Database, job: str) -> datetime | None:
    async with database.connection.execute(
        "SELECT last_run_at FROM job_runs WHERE job = ?", (job,)
    ) as cursor:
        row = await cursor.fetchone()
    return datetime.fromisoformat(row[0]) if row else None


async def save_run(db: Connection, job: str, now: datetime) -> None:
    await db.execute(
        "INSERT INTO job_runs (job, last_run_at) VALUES (?, ?)"
        " ON CONFLICT (job) DO UPDATE SET last_run_at = excluded.last_run_at",
        (job, iso(now)),
    )


async def clear_run(db: Connection, job: str) -> None:
    """Forget a job's run (the retention job's refusal, once an admin confirmed the clock)."""
    await db.execute("DELETE FROM job_runs WHERE job = ?", (job,))
