"""The campaign scheduler of a serving process: an APScheduler job that ticks while this process leads.

Every process runs the job; each tick first asks ``Leadership`` whether
this process leads ``campaign-scheduler`` (on PostgreSQL one process does;
on SQLite the only one does), and only the leader fires schedules and
materializes runs.  State lives in the database (campaigns.next_fire_at,
campaign_runs with their cursors), so a restart, or another process taking
over, carries on where the last tick left off.  ``kick`` runs a tick now
(after a send) rather than at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from campaigns.service import Clock, tick
from crm_store.columns import utcnow
from crm_store.database import Database
from crm_store.leadership import Leadership

log = logging.getLogger(__name__)
TICK_SECONDS = 5.0
DUTY = "campaign-scheduler"
STOP_WAIT_SECONDS = 5.0


class CampaignScheduler:
    def __init__(self, db: Database, *, clock: Clock = utcnow, every: float = TICK_SECONDS,
                 on_rows: Callable[[], None] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.every = every
        self.on_rows = on_rows
        self.leadership = Leadership(db.url, DUTY)
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._lock = asyncio.Lock()
        self._stopped = False

    def start(self) -> None:
        # one tick at a time (max_instances=1); ticks missed while one ran are folded into the next (coalesce)
        self._scheduler.add_job(self._job, "interval", seconds=self.every, id=DUTY, max_instances=1, coalesce=True,
                                misfire_grace_time=None)
        self._scheduler.start()

    def kick(self) -> None:
        """Tick now (a campaign was just sent) instead of at the next interval."""
        if not self._stopped:
            asyncio.get_running_loop().create_task(self._tick())

    async def _job(self) -> None:
        """The interval job: a tick in a task of its own.

        APScheduler's shutdown cancels the jobs that are running; shielded,
        the tick finishes its chunk while :meth:`stop` waits for it, instead
        of being cut mid-statement and reported as a failed job.
        """
        work = asyncio.ensure_future(self._tick())
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            if not self._stopped:
                raise

    async def _tick(self) -> None:
        if self._lock.locked() or self._stopped:
            return  # the running tick will see what a kick wanted
        async with self._lock:
            try:
                if not await self.leadership.try_lead():
                    return
                await tick(self.db, self.clock())
                if self.on_rows is not None:
                    self.on_rows()
            except Exception:  # noqa: BLE001 - a failed tick is tried again at the next interval
                if self._stopped:  # the store closing under a tick that outlived STOP_WAIT_SECONDS
                    log.info("a campaign tick ended with the stop; the next leader resumes its run", exc_info=True)
                else:
                    log.exception("campaign scheduler tick failed")

    async def stop(self) -> None:
        self._stopped = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        try:  # a tick under way may finish its chunk; one that takes longer is left (the run's cursor keeps its place)
            await asyncio.wait_for(self._lock.acquire(), STOP_WAIT_SECONDS)
            self._lock.release()
        except TimeoutError:
            log.info("stopping while a campaign tick runs; the next leader resumes its run")
        await self.leadership.close()
