"""Consent: recorded with its history, withdrawn by a word in any conversation, withdrawal winning over a grant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import literal, select

from campaigns.opt_out import OptOutConfigError, OptOutWords, load_opt_out_words
from crm_store import consents
from crm_store.database import Database
from crm_store.columns import utcnow
from crm_store.models import Customer
from tests.campaigns.conftest import add_customers
from tests.helpers import count, rows

API = "/api/v1"
NOW = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)


async def test_a_grant_and_a_withdrawal_are_recorded_with_their_history(client: TestClient, store: Database,
                                                                         marketer: dict[str, str]) -> None:
    (cid,) = await add_customers(store, [{"name": "Ann"}])
    url = f"{API}/customers/{cid}/consents"
    granted = await client.put(url, json={"channel": "web", "purpose": "marketing", "granted": True, "source": "signup form"},
                               headers=marketer)
    assert granted.status == 200
    assert [(c["channel"], c["granted"]) for c in (await granted.json())["consents"]] == [("web", True)]
    withdrawn = await client.put(url, json={"channel": "web", "purpose": "marketing", "granted": False, "source": "phone call"},
                                 headers=marketer)
    assert [(c["granted"], c["source"]) for c in (await withdrawn.json())["consents"]] == [(False, "phone call")]
    history = (await (await client.get(f"{url}/history", headers=marketer)).json())["items"]
    assert [(h["granted"], h["source"]) for h in history] == [(True, "signup form"), (False, "phone call")]
    assert all(h["agent_id"] for h in history)


@pytest.mark.parametrize(("body", "field"), [
    ({"channel": "web", "purpose": "spam", "granted": True, "source": "x"}, "purpose"),
    ({"channel": "Web Chat", "purpose": "marketing", "granted": True, "source": "x"}, "channel"),
    ({"channel": "web", "purpose": "marketing", "granted": True}, "source"),
])
async def test_a_bad_consent_is_refused_naming_the_field_and_nothing_is_written(
        client: TestClient, store: Database, marketer: dict[str, str], body: dict, field: str) -> None:
    (cid,) = await add_customers(store, [{"name": "Ann"}])
    response = await client.put(f"{API}/customers/{cid}/consents", json=body, headers=marketer)
    assert response.status == 422
    assert (await response.json())["error"]["field"] == field
    assert await count(store, "consent_events") == 0


async def test_consent_for_an_unknown_customer_is_404(client: TestClient, marketer: dict[str, str]) -> None:
    response = await client.put(f"{API}/customers/0190d2c4-0000-7000-8000-000000000000/consents",
                                json={"channel": "*", "purpose": "marketing", "granted": True, "source": "x"}, headers=marketer)
    assert response.status == 404


def test_a_withdrawal_wins_over_an_earlier_grant_and_a_tie() -> None:
    early, late = NOW - dt.timedelta(days=1), NOW
    assert consents.standing([("web", True, early), ("*", False, late)], "web") is False
    assert consents.standing([("web", True, late), ("*", False, early)], "web") is True  # opted in again later
    assert consents.standing([("web", True, late), ("web", False, late)], "web") is False
    assert consents.standing([("other", True, late)], "web") is None


CASES = [  # one customer's records of one purpose: (channel, granted, days ago)
    [("web", True, 1), ("*", False, 0)],
    [("web", True, 0), ("*", False, 1)],
    [("web", True, 0), ("*", False, 0)],  # a tie: the withdrawal wins
    [("*", True, 0), ("web", False, 0)],
    [("other", True, 0)],
    [("*", True, 3)],
    [],
]


async def test_a_run_reads_each_channels_consent_by_the_same_rule_as_standing(store: Database) -> None:
    """The SQL a campaign run reads consent with (standing_sql) gives what standing() gives, case by case."""
    ids = await add_customers(store, [{"name": f"C{i}"} for i in range(len(CASES))])
    changes = [(cid, consents.ConsentChange(cid, channel, consents.MARKETING, granted), NOW - dt.timedelta(days=days))
               for cid, case in zip(ids, CASES, strict=True) for channel, granted, days in case]

    def write(conn: Any) -> None:
        for _, change, at in changes:
            consents.record(conn, [change], source="test", now=at)

    await store.run_in_transaction(write)

    def read(conn: Any) -> list[bool | None]:
        return [conn.execute(select(consents.standing_sql(literal(cid, Customer.__table__.c.id.type), "web", consents.MARKETING)))
                .scalar_one_or_none() for cid in ids]

    async with store.read() as conn:
        from_sql = await conn.run_sync(read)
    expected = [consents.standing([(ch, granted, NOW - dt.timedelta(days=days)) for ch, granted, days in case], "web") for case in CASES]
    assert [None if v is None else bool(v) for v in from_sql] == expected


async def test_consents_older_than_two_years_are_listed_for_reconfirmation(client: TestClient, store: Database,
                                                                            marketer: dict[str, str]) -> None:
    old, fresh = await add_customers(store, [{"name": "Old"}, {"name": "Fresh"}])

    def write(conn: object) -> None:
        consents.record(conn, [consents.ConsentChange(old, "*", "marketing", True)], source="import",  # type: ignore[arg-type]
                        now=utcnow() - dt.timedelta(days=800))
        consents.record(conn, [consents.ConsentChange(fresh, "*", "marketing", True)], source="import")  # type: ignore[arg-type]

    await store.run_in_transaction(write)
    listed = (await (await client.get(f"{API}/consents/reconfirm", headers=marketer)).json())["items"]
    assert [item["customer_id"] for item in listed] == [str(old)]


async def say(client: TestClient, sender: str, text: str) -> list[dict]:
    response = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert response.status == 200
    return await response.json()


async def test_writing_수신거부_withdraws_marketing_everywhere_and_is_confirmed_in_korean(client: TestClient, store: Database) -> None:
    await say(client, "kim", "안녕하세요")
    (reply,) = await say(client, "kim", "수신거부")
    assert "수신거부 처리되었습니다" in reply["text"]
    (row,) = await rows(store, "consents", purpose="marketing")
    assert (row.channel, row.granted, row.source) == ("*", False, "bot")
    assert await count(store, "consent_events", granted=False) == 2  # marketing and its night-time consent
    (again,) = await say(client, "kim", "Start")
    assert "subscribed to our messages again" in again["text"]  # written in English, answered in English
    (row,) = await rows(store, "consents", purpose="marketing")
    assert row.granted is True


@pytest.mark.parametrize("text", ["STOP", "stop", " Stop! ", "unsubscribe", "광고거부", "수신 거부"])
def test_the_default_words_match_the_whole_message_whatever_the_case(text: str) -> None:
    action = OptOutWords().classify(text, "en")
    assert action is not None and action.kind == "opt_out"


@pytest.mark.parametrize("text", ["please don't stop", "stopwatch", "수신거부 하는 법 알려주세요", ""])
def test_a_message_that_only_mentions_a_word_is_not_an_opt_out(text: str) -> None:
    assert OptOutWords().classify(text, "en") is None


def test_the_words_are_configurable_per_bot_folder(tmp_path: Path) -> None:
    (tmp_path / "domain.yml").write_text("opt_out:\n  stop_words: [그만, QUIT]\n  confirm_stop: {ko: 그만 보낼게요}\n", encoding="utf-8")
    words = load_opt_out_words(tmp_path)
    assert words.classify("quit", "en") is not None
    assert words.classify("STOP", "en") is None
    assert words.classify("그만", "ko").confirmation == "그만 보낼게요"  # type: ignore[union-attr]


def test_an_unknown_opt_out_setting_is_named(tmp_path: Path) -> None:
    (tmp_path / "domain.yml").write_text("opt_out:\n  stop_wrods: [x]\n", encoding="utf-8")
    with pytest.raises(OptOutConfigError, match="stop_wrods"):
        load_opt_out_words(tmp_path)


async def test_an_agent_cannot_list_reconfirmations(client: TestClient, headers_for: Callable[[str], Awaitable[dict[str, str]]]) -> None:
    response = await client.get(f"{API}/consents/reconfirm", headers=await headers_for("agent"))
    assert response.status == 403
