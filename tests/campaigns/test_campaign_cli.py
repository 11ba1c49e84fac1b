"""``dangol campaign``: list, show, send, pause, resume, cancel, report, reconfirm."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid

from click.testing import CliRunner

from dangol.cli import main
from campaigns import service
from crm_store import segments
from crm_store.columns import utcnow
from crm_store.database import Database
from crm_store.events import EventIn, store_events
from tests.campaigns.conftest import add_customers


def run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"DANGOL_DATABASE_URL": url}, catch_exceptions=False)
    return result.exit_code, result.output


async def _draft(url: str) -> str:
    db = Database(url)
    try:
        await add_customers(db, [{"name": "Ann", "channels": {"telegram": "1"}, "consent": True},
                                 {"name": "Bob", "channels": {"telegram": "2"}}])
        segment = await segments.create_rule_segment(db, "all", {"not": {"tag": "none"}})
        campaign = await service.create(db, {"name": "겨울 세일", "segment_id": segment["id"], "purpose": "marketing",
                                             "channels": ["telegram"], "message": {"text": "hi {{ customer.name }}"}}, None)
        return str(campaign["id"])
    finally:
        await db.dispose()


def test_a_campaign_is_sent_and_reported_from_the_command_line(sqlite_url: str) -> None:
    campaign_id = asyncio.run(_draft(sqlite_url))
    code, out = run(sqlite_url, "campaign", "list")
    assert code == 0 and campaign_id in out and "draft" in out and "겨울 세일" in out
    code, out = run(sqlite_url, "campaign", "send", campaign_id, "--materialize")
    assert code == 0 and "running" in out
    code, out = run(sqlite_url, "campaign", "report", campaign_id, "--format", "json")
    report = json.loads(out)
    assert (report["targeted"], report["queued"], report["skipped"]["no_consent"]) == (2, 1, 1)
    code, out = run(sqlite_url, "campaign", "report", campaign_id, "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:2] == ["variant", "targeted"] and rows[1][:2] == ["all", "2"]
    assert run(sqlite_url, "campaign", "pause", campaign_id) == (0, f"{campaign_id}: paused\n")
    assert run(sqlite_url, "campaign", "resume", campaign_id) == (0, f"{campaign_id}: running\n")
    code, out = run(sqlite_url, "campaign", "show", campaign_id, "--json")
    assert json.loads(out)["status"] == "running"


def test_sending_twice_or_an_unknown_campaign_is_a_clear_error(sqlite_url: str) -> None:
    campaign_id = asyncio.run(_draft(sqlite_url))
    run(sqlite_url, "campaign", "send", campaign_id)
    code, out = run(sqlite_url, "campaign", "send", campaign_id)
    assert code == 1 and "only a draft can be sent" in out
    code, out = run(sqlite_url, "campaign", "report", str(uuid.uuid4()))
    assert code == 1 and "does not exist" in out
    code, out = run(sqlite_url, "campaign", "pause", "nope")
    assert code == 2 and "not a campaign id" in out


def test_reconfirmation_lists_nothing_when_consents_are_recent(sqlite_url: str) -> None:
    asyncio.run(_draft(sqlite_url))
    assert run(sqlite_url, "campaign", "reconfirm") == (0, "none due\n")


async def _sequence(url: str) -> str:
    """A running welcome sequence with Ann enrolled by her signup and its first step written."""
    db = Database(url)
    try:
        (ann,) = await add_customers(db, [{"name": "Ann", "channels": {"telegram": "1"}, "consent": True}])
        segment = await segments.create_rule_segment(db, "all", {"not": {"tag": "none"}})
        campaign = await service.create(db, {"name": "Welcome", "segment_id": segment["id"], "purpose": "marketing",
                                             "channels": ["telegram"], "trigger": {"event": "signup"},
                                             "steps": [{"delay": 0, "message": {"text": "hi"}},
                                                       {"delay": "P1D", "message": {"text": "day two"}}]}, None)
        await service.send(db, uuid.UUID(campaign["id"]))
        await db.run_in_transaction(store_events, [EventIn(type="signup", occurred_at=utcnow(), customer_id=ann)])
        await service.tick(db)
        return str(campaign["id"])
    finally:
        await db.dispose()


def test_a_triggered_campaign_reports_its_steps_on_the_command_line(sqlite_url: str) -> None:
    campaign_id = asyncio.run(_sequence(sqlite_url))
    code, out = run(sqlite_url, "campaign", "report", campaign_id)
    assert code == 0
    assert "enrolments: enrolled 1, active 1" in out
    assert "step 1 (after 0 s): sent 0, failed 0, queued 1" in out and "step 2 (after 86400 s): sent 0, failed 0, queued 0" in out
    code, out = run(sqlite_url, "campaign", "report", campaign_id, "--format", "csv")
    assert [row[:3] for row in csv.reader(io.StringIO(out))][2:] == [["step-1", "1", "1"], ["step-2", "0", "0"]]
