"""Periodic scoring inside ``dangol serve``: an asyncio task, one run every
``insights_score_interval`` seconds (the first one interval after start).

Whether this process should run a due job is asked of :func:`may_run_periodic_job`
alone, so that leader election among several processes on one database
(PostgreSQL advisory locks) can be put there without touching the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.services import SERVICES
from crm_store.database import Database
from insights.scoring import score_customers

log = logging.getLogger(__name__)
JOB: web.AppKey[asyncio.Task[None]] = web.AppKey("insights_job", asyncio.Task)


async def may_run_periodic_job(db: Database, name: str) -> bool:
    """True when this process should run the periodic job ``name`` now; every process does until a leader is elected."""
    return True


async def score_periodically(db: Database, every: float, run: Callable[[Database], Awaitable[object]] | None = None) -> None:
    """Score every ``every`` seconds; a failed run is logged and tried again next time."""
    run = run or score_customers
    while True:
        await asyncio.sleep(every)
        try:
            if await may_run_periodic_job(db, "insights.score"):
                await run(db)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a busy or briefly absent database is tried again next round
            log.exception("periodic scoring failed")


def setup(app: web.Application) -> None:
    async def start(app: web.Application) -> None:
        services = app[SERVICES]
        every = services.settings.insights_score_interval
        if every > 0 and services.db is not None and services.engine is not None:
            app[JOB] = asyncio.create_task(score_periodically(services.db, every), name="insights-scoring")

    async def stop(app: web.Application) -> None:
        task = app.get(JOB)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
