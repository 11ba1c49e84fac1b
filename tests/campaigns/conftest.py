"""Fixtures of the campaign tests: the real app with the API, tokens by role, customers written straight to the store."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert

from bot.config import CoreSettings
from bot.services import SERVICES
from dangol.app import build_app
from crm_store import agents
from crm_store.consents import ConsentChange, record
from crm_store.database import Database
from crm_store.models import ChannelIdentity, Customer, CustomerEvent, CustomerTag
from crm_store.columns import new_id, utcnow


@pytest.fixture
async def client(aiohttp_client: Any, make_settings: Callable[..., CoreSettings]) -> TestClient:
    """The app without its own delivery worker and campaign ticks: each test sends and ticks when it says so."""
    test_client = await aiohttp_client(build_app(make_settings(delivery_enabled=False)))
    scheduler = test_client.app[SERVICES].campaigns
    assert scheduler is not None
    await scheduler.stop()
    return test_client


@pytest.fixture
def store(client: TestClient) -> Database:
    db = client.app[SERVICES].db
    assert db is not None
    return db


@pytest.fixture
def headers_for(store: Database) -> Callable[[str], Awaitable[dict[str, str]]]:
    async def make(role: str) -> dict[str, str]:
        _, token = await agents.create_agent(store, email=f"{role}-{uuid.uuid4().hex[:8]}@example.com", name=role.title(), role=role)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
async def marketer(headers_for: Callable[[str], Awaitable[dict[str, str]]]) -> dict[str, str]:
    return await headers_for("marketer")


async def add_customers(db: Database, people: Sequence[dict[str, Any]]) -> list[uuid.UUID]:
    """Customers with their identities (``channels``: {name: external id}), tags, consents and events, in one transaction.

    ``consent``: True grants marketing on every channel of theirs, False withdraws it, absent gives none.
    """
    now = utcnow()
    ids: list[uuid.UUID] = []
    customers, identities, tags, events, changes = [], [], [], [], []
    for person in people:
        cid = new_id()
        ids.append(cid)
        fields = {k: person.get(k) for k in ("name", "email", "locale", "timezone")}
        customers.append({"id": cid, **fields, "lifecycle_stage": person.get("lifecycle_stage", "lead"),
                          "attributes": person.get("attributes", {}), "created_at": person.get("created_at", now), "updated_at": now,
                          "last_seen_at": person.get("last_seen_at")})
        for channel, external in person.get("channels", {}).items():
            identities.append({"id": new_id(), "customer_id": cid, "channel": channel, "external_id": external, "profile": {},
                               "reachable": person.get("reachable", True), "created_at": now})
            if "consent" in person:
                changes.append(ConsentChange(cid, channel, "marketing", bool(person["consent"])))
        if person.get("night_consent"):
            changes.append(ConsentChange(cid, "*", "marketing_night", True))
        tags += [{"customer_id": cid, "tag": t} for t in person.get("tags", [])]
        for kind, amount, days_ago in person.get("events", []):
            events.append({"id": new_id(), "customer_id": cid, "type": kind, "properties": {}, "amount": amount, "currency": None,
                           "occurred_at": now - dt.timedelta(days=days_ago), "created_at": now})

    def write(conn: Any) -> None:
        conn.execute(insert(Customer.__table__), customers)
        for table, rows in ((ChannelIdentity.__table__, identities), (CustomerTag.__table__, tags), (CustomerEvent.__table__, events)):
            if rows:
                conn.execute(insert(table), rows)
        record(conn, changes, source="test", now=now - dt.timedelta(seconds=1))

    await db.run_in_transaction(write)
    return ids
