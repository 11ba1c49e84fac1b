"""Every customer has a name to show: the name, else the e-mail, phone, platform username, else "Visitor #<short id>"."""

from __future__ import annotations

import uuid

from aiohttp.test_utils import TestClient

from crm_store.database import Database
from crm_store.display_names import display_name
from tests.helpers import rows
from tests.routing.conftest import API, Handoff, MakePerson, handoff, person  # noqa: F401 - shared fixtures
from tests.service.conftest import client, store  # noqa: F401 - shared fixtures

ID = uuid.UUID("01938a4e-0000-7000-8000-00000000beef")


def test_the_first_known_of_name_email_phone_username_then_a_short_id() -> None:
    assert display_name(ID, name="Kim Minji", email="k@example.com") == "Kim Minji"
    assert display_name(ID, first_name="Minji", last_name="Kim") == "Minji Kim"
    assert display_name(ID, email="k@example.com", phone="+821022223333") == "k@example.com"
    assert display_name(ID, phone="+821022223333", attributes={"username": "minji"}) == "+821022223333"
    assert display_name(ID, attributes={"username": "minji"}) == "@minji"
    assert display_name(ID, name="   ") == "Visitor #00beef"


async def test_the_api_and_the_console_show_it(client: TestClient, handoff: Handoff, person: MakePerson, store: Database) -> None:
    from tests.console.conftest import PASSWORD, log_in

    me = await person("admin", password=PASSWORD)
    created = await client.post(f"{API}/customers", json={"email": "lee@example.com"}, headers=me.headers)
    assert created.status == 201, await created.text()
    assert (await created.json())["display_name"] == "lee@example.com"
    conversation = await handoff("c1")
    (identity,) = await rows(store, "channel_identities", channel="rest", external_id="c1")
    visitor = f"Visitor #{identity.customer_id.hex[-6:]}"
    listing = await (await client.get(f"{API}/customers", headers=me.headers)).json()
    assert {c["display_name"] for c in listing["items"]} == {"lee@example.com", visitor}
    inbox = await (await client.get(f"{API}/inbox", headers=me.headers)).json()
    assert [c["customer_display_name"] for c in inbox["items"]] == [visitor]
    (account,) = await rows(store, "agents", id=me.id)
    await log_in(client, account.email)
    for page in ("/console/customers", "/console/inbox", f"/console/conversations/{conversation['id']}"):
        html = await (await client.get(page)).text()
        assert "Anonymous visitor" not in html and visitor in html, page
    assert "lee@example.com" in await (await client.get("/console/customers")).text()
