"""Console fixtures: the app under test, people with passwords, and a logged-in browser-less client."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from tests.routing.conftest import API, Handoff, MakePerson, Person, handoff, person  # noqa: F401 - shared fixtures
from tests.service.conftest import admin, client, store, token_for  # noqa: F401 - shared fixtures

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def log_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Log in through the form like a person would; return the session's CSRF token."""
    form = await (await client.get("/console/login")).text()
    response = await client.post("/console/login", data={"email": email, "password": password, "csrf": csrf_of(form)},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    page = await (await client.get(response.headers["Location"])).text()
    return csrf_of(page)


LogIn = Callable[..., Awaitable[str]]
