"""Schemathesis against /api/v1 with an admin token: no server error, no undocumented status, answers as
documented, and nothing the document allows refused (positive data acceptance).

The document states the value rules the handlers check (tag, name and channel
patterns, ids, cursors, e-mail), and two formats of its own that no regular
expression can: ``phone`` and ``iana-time-zone``; schemathesis is taught to
generate those below, as it generates e-mail addresses and uuids.

Segment rules are described in full (crm_store.segment_rule_schema), so
saving a segment is held to acceptance like the rest.  Not held to it: the
bodies whose text is a template language, a campaign's messages and schedule
(campaigns.spec) and a template preview.  The document gives their shape;
whether a Jinja template compiles only the compiler can say, and the
campaign contract wants a 422 naming the part when it does not.  Every other
check holds for them too.

Bounded: a fixed seed (derandomized), a few examples per operation, the
service on a loopback port in a thread of its own (schemathesis's client
is synchronous), a SQLite file of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
import schemathesis
import zoneinfo
from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance, response_schema_conformance, status_code_conformance

import bot.api  # noqa: F401 - registers the routes the document describes
from bot.api.endpoints import openapi_document
from bot.config import load_settings
from bot.services import SERVICES
from crm_store import agents
from dangol.app import build_app
from tests.service.processes import free_port

schema = schemathesis.openapi.from_dict(openapi_document())
#: Operations whose bodies hold templates (see above): every check but acceptance.
LANGUAGE_BODIES = {"POST /api/v1/campaigns", "POST /api/v1/templates/preview"}


def _example_phones() -> list[str]:
    """Every region's example mobile number, in E.164: numbers phonenumbers knows to be valid."""
    numbers = (phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
               for region in sorted(phonenumbers.SUPPORTED_REGIONS))
    return [phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in numbers if n is not None]


schemathesis.openapi.format("phone", st.sampled_from(_example_phones()))
schemathesis.openapi.format("iana-time-zone", st.sampled_from(sorted(zoneinfo.available_timezones())))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The app on a loopback port in a thread with its own event loop; its base URL and an admin token."""
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    loop = asyncio.new_event_loop()
    app = build_app(load_settings(database_url=f"sqlite+aiosqlite:///{folder}/api.db", offload="off"))
    runner = web.AppRunner(app)
    started = threading.Event()
    token: list[str] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        _, admin = loop.run_until_complete(agents.create_agent(app[SERVICES].db, email="fuzz@example.com", name="Fuzz", role="admin"))
        token.append(admin)
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(60)
    yield f"http://127.0.0.1:{port}", token[0]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


@schema.parametrize()
@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_document_says(case: Any, served: tuple[str, str]) -> None:
    base, token = served
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    if f"{case.method.upper()} {case.path}" not in LANGUAGE_BODIES:
        checks.append(positive_data_acceptance)
    case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {token}"}, checks=checks)
