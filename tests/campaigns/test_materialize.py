"""Materializing a run fast gives what the plain way gave: the same messages, no one twice.

A template that only places customer fields is filled by dict look-ups
instead of Jinja; on PostgreSQL a chunk's rows go in by COPY, and a row the
outbox already holds for a member (another materializer got there) falls
back to an insert that keeps it.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from campaigns import service
from campaigns.runner import materialize
from campaigns.templates import SubstitutionTemplate, compile_message
from crm_store import campaign_runs as runs_store
from crm_store import campaigns as campaign_store
from crm_store import segments
from crm_store.bulk import gc_paused
from crm_store.columns import new_id, new_ids, utcnow
from crm_store.database import Database
from crm_store.models import OutboxRow
from tests.campaigns.conftest import add_customers

TEMPLATES = [
    "Hello {{ customer.name }}, your code is {{ customer.attributes.code }}",
    "{{ customer['name'] }} / {{ customer.attributes['code'] }} on {{ channel }}\n",
    "안녕하세요 {{ customer.name }}님, 쿠폰 {{ customer.attributes.coupon.amount }}원",
    "Just text, no fields",
]
CUSTOMERS: list[dict[str, Any]] = [
    {"name": "Ann", "attributes": {"code": "A1", "coupon": {"amount": 5000}}},
    {"name": "김민수", "attributes": {"code": 7, "coupon": {"amount": 2.5}}},
    {"name": None, "attributes": {"code": True, "coupon": {}}},
    {"name": "Bob", "attributes": {}},
    {"name": "Cy", "attributes": {"code": "C", "coupon": "not a mapping"}},
]


def outcome(render: Callable[[], str]) -> tuple[str, str]:
    try:
        return "ok", render()
    except Exception as exc:  # noqa: BLE001 - the same failure, with the same message, is what is compared
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("text", TEMPLATES)
def test_a_template_that_only_places_fields_is_filled_exactly_as_jinja_fills_it(text: str) -> None:
    template = compile_message({"text": text}).default.text
    assert isinstance(template, SubstitutionTemplate)
    for customer in CUSTOMERS:
        context = {"customer": customer, "channel": "telegram"}
        assert outcome(lambda: template.render(context)) == outcome(lambda: template.template.render(context))


@pytest.mark.parametrize("text", ["{{ customer.attributes.items }}", "{{ customer.name | upper }}", "{% if customer.name %}x{% endif %}",
                                  "{{ now }}"])
def test_anything_more_than_placing_fields_is_left_to_jinja(text: str) -> None:
    assert not isinstance(compile_message({"text": text}).default.text, SubstitutionTemplate)


async def test_a_member_already_in_the_outbox_keeps_their_row_and_gets_no_second(store: Database) -> None:
    people = [{"name": f"P{i}", "channels": {"telegram": str(100 + i)}, "consent": True, "attributes": {"code": f"C{i}"}}
              for i in range(30)]
    ids = sorted(await add_customers(store, people))
    segment = await segments.create_rule_segment(store, "all", {"channel": "telegram"})
    campaign = await service.create(store, {"name": "Twice", "segment_id": segment["id"], "purpose": "marketing", "channels": ["telegram"],
                                            "message": {"text": "Hi {{ customer.name }}"}}, None)
    await service.send(store, uuid.UUID(campaign["id"]))
    run_id = (await store.run_in_transaction(campaign_store.unfinished_runs))[0]["id"]
    now = utcnow()
    already = runs_store.campaign_row(new_id(), ids[12], "telegram", "112", '{"text": "written by another process"}', now, now, run_id, None)
    await store.run_in_transaction(runs_store.write_chunk, run_id, [already], [], None)

    assert await materialize(store, run_id, now, chunk=7) == 30

    outbox = OutboxRow.__table__
    async with store.read() as conn:
        per_customer = dict((await conn.execute(select(outbox.c.customer_id, func.count()).where(outbox.c.campaign_run_id == run_id)
                                                .group_by(outbox.c.customer_id))).all())
        kept = (await conn.execute(select(outbox.c.payload).where(outbox.c.id == already[0]))).scalar_one()
    assert per_customer == dict.fromkeys(ids, 1)
    assert kept == {"text": "written by another process"}


def test_ids_made_by_the_thousand_are_ordered_unique_version_7_ids_interleaving_with_single_ones() -> None:
    ids = [new_id(), *new_ids(5000), new_id(), *new_ids(1), *new_ids(3), new_id()]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 and uuid.UUID(str(i)) == i for i in ids)


def test_the_collector_paused_for_runs_comes_back_when_the_last_overlapping_run_ends_and_only_if_it_was_on() -> None:
    assert gc.isenabled()
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the other run still holds it paused
    second.__exit__(None, None, None)
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()


@pytest.mark.parametrize("payload", [
    {"text": "Hello \"Ann\" \\ 안녕 \n\t\u2028 \U0001F600", "campaign": {"purpose": "marketing", "tz": "Asia/Seoul", "quiet": [["21:00", "08:00"]]}},
    {"text": "Hi", "buttons": [{"title": "Yes", "payload": "/yes"}], "campaign": {"purpose": "service", "tz": "UTC", "quiet": []}},
    {"text": "no campaign part"},
])
def test_a_payload_is_encoded_as_the_json_module_encodes_it_whether_its_campaign_part_is_new_or_shared(payload: dict[str, Any]) -> None:
    import json

    encoder = runs_store.PayloadEncoder()
    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    assert encoder.encode(payload) == expected
    assert encoder.encode(payload) == expected  # its campaign part known now
    assert encoder.encode({**payload, "text": "other"}) == json.dumps({**payload, "text": "other"}, ensure_ascii=False, separators=(",", ":"))
