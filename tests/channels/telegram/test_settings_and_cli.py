"""DANGOL_TELEGRAM_* settings, the polling mode and the `telegram` CLI group."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from bot.app import create_app
from bot.config import ConfigError, load_settings
from channels.registry import enabled_channels
from channels.telegram import ALLOWED_UPDATES
from channels.telegram.cli import telegram
from tests.channels.telegram.conftest import SECRET, TOKEN, eventually, store_of
from tests.fakes.telegram import FakeTelegram
from tests.helpers import rows


def test_without_a_token_the_channel_is_off(sqlite_url: str) -> None:
    assert "telegram" not in {c.name for c in enabled_channels(load_settings(database_url=sqlite_url))}


def test_a_token_without_a_webhook_secret_stops_the_start_naming_the_key(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match="DANGOL_TELEGRAM_WEBHOOK_SECRET is required when DANGOL_TELEGRAM_TOKEN is set"):
        load_settings(database_url=sqlite_url, telegram_token=TOKEN)


def test_a_secret_without_a_token_is_reported(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match="DANGOL_TELEGRAM_TOKEN is required"):
        load_settings(database_url=sqlite_url, telegram_webhook_secret=SECRET)


def test_a_secret_telegram_would_refuse_is_reported(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match="1-256 characters"):
        load_settings(database_url=sqlite_url, telegram_token=TOKEN, telegram_webhook_secret="has spaces!")


def test_polling_needs_no_secret(sqlite_url: str) -> None:
    settings = load_settings(database_url=sqlite_url, telegram_token=TOKEN, telegram_polling=True)
    assert [c.name for c in enabled_channels(settings) if c.name == "telegram"] == ["telegram"]


def test_environment_and_toml_keys_both_work(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "dangol.toml"
    config.write_text(f'telegram_token = "{TOKEN}"\ntelegram_api_url = "http://127.0.0.1:1"\n')
    monkeypatch.setenv("DANGOL_TELEGRAM_WEBHOOK_SECRET", SECRET)
    settings = load_settings(config, database_url=sqlite_url)
    assert settings.telegram_token.get_secret_value() == TOKEN  # type: ignore[attr-defined]
    assert settings.telegram_webhook_secret.get_secret_value() == SECRET  # type: ignore[attr-defined]
    assert "123456" not in repr(settings)


async def test_polling_stores_updates_through_the_same_path(aiohttp_client: Any, sqlite_url: str, fake_telegram: FakeTelegram,
                                                           tg_fixture: Any) -> None:
    settings = load_settings(database_url=sqlite_url, telegram_token=TOKEN, telegram_polling=True, telegram_api_url=fake_telegram.url)
    client = await aiohttp_client(create_app(settings))
    update = tg_fixture("update_message_text_private.json")
    fake_telegram.push_update({k: v for k, v in update.items() if k != "update_id"})
    await eventually(lambda: _stored(client))
    assert fake_telegram.called("deleteWebhook")
    assert fake_telegram.called("getUpdates")[0]["allowed_updates"] == list(ALLOWED_UPDATES)
    assert (await client.post("/webhooks/telegram", json=update)).status == 401  # no secret: no webhook either


async def _stored(client: Any) -> bool:
    return len(await rows(store_of(client), "messages", direction="in")) == 1


async def test_set_webhook_registers_the_url_with_the_secret_and_the_update_kinds(fake_telegram: FakeTelegram,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"DANGOL_TELEGRAM_TOKEN": TOKEN, "DANGOL_TELEGRAM_WEBHOOK_SECRET": SECRET, "DANGOL_TELEGRAM_API_URL": fake_telegram.url}
    result = await asyncio.to_thread(CliRunner().invoke, telegram, ["set-webhook", "https://bot.example.com/webhooks/telegram"], env=env)
    assert result.exit_code == 0, result.output
    [call] = fake_telegram.called("setWebhook")
    assert call["url"] == "https://bot.example.com/webhooks/telegram"
    assert call["secret_token"] == SECRET
    assert call["allowed_updates"] == list(ALLOWED_UPDATES)


def test_set_webhook_without_a_secret_is_a_clear_error() -> None:
    result = CliRunner().invoke(telegram, ["set-webhook", "https://bot.example.com/webhooks/telegram"],
                                env={"DANGOL_TELEGRAM_TOKEN": TOKEN, "DANGOL_TELEGRAM_WEBHOOK_SECRET": None})
    assert result.exit_code != 0 and "DANGOL_TELEGRAM_WEBHOOK_SECRET" in result.output


def test_poll_runs_the_main_clis_serve_with_polling_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str | None] = {}

    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        ctx.ensure_object(dict)

    @main.command()
    def serve() -> None:
        import os

        seen["polling"] = os.environ.get("DANGOL_TELEGRAM_POLLING")

    main.add_command(telegram)
    monkeypatch.setenv("DANGOL_TELEGRAM_POLLING", "false")
    result = CliRunner().invoke(main, ["telegram", "poll"], env={"DANGOL_TELEGRAM_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert seen == {"polling": "true"}
