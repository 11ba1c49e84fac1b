"""Stopping a serving process while a campaign tick runs lets the tick finish its chunk, quietly."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from campaigns import scheduler as scheduler_module
from campaigns.scheduler import CampaignScheduler
from crm_store.database import Database


async def test_a_tick_under_way_finishes_and_nothing_is_logged_as_an_error(
        store: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow_tick(db: Database, now: dt.datetime) -> None:  # a chunk that takes a while to write
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    monkeypatch.setattr(scheduler_module, "tick", slow_tick)
    campaigns = CampaignScheduler(store, every=0.05)
    campaigns.start()
    await asyncio.wait_for(started.wait(), 10)
    with caplog.at_level(logging.INFO):
        await campaigns.stop()  # APScheduler's shutdown cancels running jobs
    assert finished.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
