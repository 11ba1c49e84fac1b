"""Fixtures of the routing tests: the app under test (shared with tests/service) and agents in teams."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from crm_store import agents, teams
from crm_store.database import Database
from tests.service.conftest import admin, client, store, token_for  # noqa: F401 - shared fixtures

API = "/api/v1"


@dataclass
class Person:
    id: uuid.UUID
    token: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakePerson = Callable[..., Awaitable[Person]]


@pytest.fixture
def person(store: Database) -> MakePerson:
    """An account of ``role``, in ``team`` (if given), ``presence`` and ``max_chats``."""
    async def make(role: str = "agent", *, team: str | None = None, presence: str = "offline", max_chats: int = 5,
                   password: str | None = None, name: str | None = None) -> Person:
        record, token = await agents.create_agent(store, email=f"{role}-{uuid.uuid4().hex[:8]}@example.com",
                                                  name=name or f"{role.title()} {uuid.uuid4().hex[:4]}", role=role, password=password)
        if team:
            await teams.add_agent_to_teams(store, record.id, [team])
        await teams.set_presence(store, record.id, presence, max_chats)
        return Person(record.id, token, role)

    return make


Handoff = Callable[[str], Awaitable[dict[str, Any]]]


@pytest.fixture
def handoff(client: TestClient, store: Database) -> Handoff:
    """A REST-channel customer asks for a person; returns the conversation as stored."""
    async def run(sender: str) -> dict[str, Any]:
        response = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": "/human_handoff"})
        assert response.status == 200, await response.text()
        from crm_store.inbox import conversation_detail
        from tests.helpers import rows

        (identity,) = await rows(store, "channel_identities", channel="rest", external_id=sender)
        (conversation,) = [c for c in await rows(store, "conversations", customer_id=identity.customer_id) if c.status != "resolved"]
        return await conversation_detail(store, conversation.id)

    return run
