"""The README's first steps lead to a logged-in admin: a one-time password, a forced change, set-password."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from bot.config import load_settings
from dangol.app import build_app
from dangol.cli import main
from tests.console.conftest import csrf_of


def cli(*args: str, url: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"DANGOL_DATABASE_URL": url}, input=input, catch_exceptions=False)
    return result.exit_code, result.output


async def acli(*args: str, url: str, input: str | None = None) -> tuple[int, str]:
    """The command as a person runs it, off the test's event loop (the CLI runs its own)."""
    return await asyncio.to_thread(cli, *args, url=url, input=input)


async def console_for(aiohttp_client: Any, url: str) -> TestClient:
    return await aiohttp_client(build_app(load_settings(database_url=url)))


async def post_login(client: TestClient, email: str, password: str) -> Any:
    form = await (await client.get("/console/login")).text()
    return await client.post("/console/login", data={"email": email, "password": password, "csrf": csrf_of(form)},
                             allow_redirects=False)


def test_agent_create_without_a_password_prints_a_one_time_password(sqlite_url: str) -> None:
    code, out = cli("agent", "create", "--email", "admin@example.com", "--name", "Admin", "--role", "admin", "--json", url=sqlite_url)
    assert code == 0, out
    created = json.loads(out)
    assert len(created["password"]) >= 12 and created["token"].startswith("dgl_")
    code, out = cli("agent", "create", "--email", "b@example.com", "--name", "B", "--role", "agent", url=sqlite_url)
    assert code == 0 and "one-time console password" in out


def test_a_given_password_is_not_printed(sqlite_url: str) -> None:
    code, out = cli("agent", "create", "--email", "a@example.com", "--name", "A", "--role", "agent", "--password", "s3cret-pass",
                    "--json", url=sqlite_url)
    assert code == 0 and "password" not in json.loads(out)


async def test_the_one_time_password_logs_in_and_every_page_asks_for_a_new_one_first(sqlite_url: str, aiohttp_client: Any) -> None:
    _, out = await acli("agent", "create", "--email", "admin@example.com", "--name", "Admin", "--role", "admin", "--json", url=sqlite_url)
    one_time = json.loads(out)["password"]
    client = await console_for(aiohttp_client, sqlite_url)
    response = await post_login(client, "admin@example.com", one_time)
    assert response.status == 303
    inbox = await client.get("/console/inbox", allow_redirects=False)
    assert inbox.status == 303 and inbox.headers["Location"] == "/console/password"
    page = await (await client.get("/console/password")).text()
    assert "one-time password" in page
    csrf = csrf_of(page)
    wrong = await client.post("/console/password", data={"csrf": csrf, "current_password": "nope-nope", "new_password": "a-new-pass-1",
                                                         "confirm_password": "a-new-pass-1"}, allow_redirects=False)
    assert wrong.status == 400 and "current password is wrong" in await wrong.text()
    changed = await client.post("/console/password", data={"csrf": csrf, "current_password": one_time, "new_password": "a-new-pass-1",
                                                           "confirm_password": "a-new-pass-1"}, allow_redirects=False)
    assert changed.status == 303 and changed.headers["Location"] == "/console/inbox"
    assert (await client.get("/console/inbox", allow_redirects=False)).status == 200
    client.session.cookie_jar.clear()
    assert (await post_login(client, "admin@example.com", one_time)).status == 401
    assert (await post_login(client, "admin@example.com", "a-new-pass-1")).status == 303


async def test_set_password_lets_an_account_made_without_one_log_in(sqlite_url: str, aiohttp_client: Any) -> None:
    await acli("agent", "create", "--email", "kim@example.com", "--name", "Kim", "--role", "agent", url=sqlite_url)
    code, out = await acli("agent", "set-password", "--email", "Kim@Example.com", url=sqlite_url, input="chosen-pass\nchosen-pass\n")
    assert code == 0 and "password set for kim@example.com" in out
    client = await console_for(aiohttp_client, sqlite_url)
    assert (await post_login(client, "kim@example.com", "chosen-pass")).status == 303
    assert (await client.get("/console/inbox", allow_redirects=False)).status == 200


def test_set_password_names_an_unknown_account_and_a_short_password(sqlite_url: str) -> None:
    code, out = cli("agent", "set-password", "--email", "nobody@example.com", "--password", "long-enough", url=sqlite_url)
    assert code == 1 and "no agent has the e-mail nobody@example.com" in out
    cli("agent", "create", "--email", "kim@example.com", "--name", "Kim", "--role", "agent", url=sqlite_url)
    code, out = cli("agent", "set-password", "--email", "kim@example.com", "--password", "short", url=sqlite_url)
    assert code == 1 and "at least 8 characters" in out
