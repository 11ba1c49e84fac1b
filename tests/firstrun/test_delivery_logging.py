"""An operator follows delivery failures in the log: one line per failed try, an error line when given up."""

from __future__ import annotations

import logging

import pytest

from channels.base import SendError
from crm_store.database import Database
from tests.delivery.test_delivery_worker import ScriptedChannel, make_due, queue_replies, worker


async def test_each_failed_try_is_one_warning_naming_channel_recipient_error_attempt_and_next_try(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await queue_replies(db)
    w = worker(db, ScriptedChannel([SendError("502 bad gateway")]), max_attempts=3)
    with caplog.at_level(logging.WARNING, logger="channels.delivery"):
        await w.run_once()
    await w.stop()
    (record,) = [r for r in caplog.records if r.name == "channels.delivery"]
    assert record.levelno == logging.WARNING
    line = record.getMessage()
    assert "via webchat to v0" in line and "502 bad gateway" in line
    assert "attempt 1 of 3" in line and "next try in" in line


async def test_giving_up_is_one_error_line(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    await queue_replies(db)
    w = worker(db, ScriptedChannel([SendError("boom 0"), SendError("boom 1")]), max_attempts=2)
    with caplog.at_level(logging.WARNING, logger="channels.delivery"):
        await w.run_once()
        await make_due(db)
        await w.run_once()
    await w.stop()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "channels.delivery"]
    assert len(lines) == 2
    assert lines[0][0] == logging.WARNING and "attempt 1 of 2" in lines[0][1]
    assert lines[1][0] == logging.ERROR and "given up" in lines[1][1] and "boom 1" in lines[1][1]
