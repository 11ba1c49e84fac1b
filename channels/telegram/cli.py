"""``dangol telegram …``: register the webhook, or poll without one.

Attached to the main CLI with ``main.add_command(telegram)``.  It does not
import ``bot`` (channels may not): settings are read from the same places
as the service's (``DANGOL_TELEGRAM_*`` over the ``--config`` TOML file),
and ``poll`` runs the parent CLI's own ``serve`` with polling switched on.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import click

from channels.telegram import ALLOWED_UPDATES, DEFAULT_API_URL, WEBHOOK_PATH, TelegramChannel


def _setting(ctx: click.Context, key: str, default: str | None = None) -> str | None:
    """Environment first, then the TOML file given to the root command, as the service reads them."""
    value = os.environ.get(f"DANGOL_{key.upper()}")
    if value is not None:
        return value
    root = ctx.find_root().obj or {}
    config = root.get("config") if isinstance(root, dict) else None
    if config and Path(config).is_file():
        with open(config, "rb") as fh:
            found = tomllib.load(fh).get(key)
        if found is not None:
            return str(found)
    return default


def _channel(ctx: click.Context, *, need_secret: bool) -> TelegramChannel:
    token = _setting(ctx, "telegram_token")
    if not token:
        raise click.ClickException("DANGOL_TELEGRAM_TOKEN is not set (environment or telegram_token in the config file)")
    secret = _setting(ctx, "telegram_webhook_secret")
    if need_secret and not secret:
        raise click.ClickException("DANGOL_TELEGRAM_WEBHOOK_SECRET is not set: Telegram must send it so the webhook can check requests")
    return TelegramChannel(token, secret, _setting(ctx, "telegram_api_url", DEFAULT_API_URL) or DEFAULT_API_URL)


async def _call(channel: TelegramChannel, method: str, **params: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        bot = channel.make_bot(session)
        for request in bot._request:  # noqa: SLF001
            await request.initialize()
        return await getattr(bot, method)(**params)


@click.group()
def telegram() -> None:
    """Telegram: set the webhook, or poll for updates without a public URL."""


@telegram.command("set-webhook")
@click.argument("url")
@click.option("--drop-pending", is_flag=True, help="Discard updates Telegram queued while no webhook was set.")
@click.pass_context
def set_webhook(ctx: click.Context, url: str, drop_pending: bool) -> None:
    """Tell Telegram to POST updates to URL (normally https://<host>/webhooks/telegram).

    Telegram sends DANGOL_TELEGRAM_WEBHOOK_SECRET with each update, and only
    the kinds Dangol reads (messages, edits, button presses, blocks).
    """
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
        raise click.ClickException("URL must start with https:// (Telegram only calls HTTPS webhooks)")
    if not url.rstrip("/").endswith(WEBHOOK_PATH):
        click.echo(f"note: Dangol receives Telegram updates on {WEBHOOK_PATH}; {url} does not end with it", err=True)
    channel = _channel(ctx, need_secret=True)
    try:
        asyncio.run(_call(channel, "set_webhook", url=url, secret_token=channel.webhook_secret,
                          allowed_updates=list(ALLOWED_UPDATES), drop_pending_updates=drop_pending))
    except Exception as exc:  # noqa: BLE001 - any refusal is reported as such
        raise click.ClickException(f"setWebhook failed: {exc}") from None
    click.echo(f"webhook set to {url}")


@telegram.command("delete-webhook")
@click.pass_context
def delete_webhook(ctx: click.Context) -> None:
    """Stop webhook delivery (Telegram then keeps updates for getUpdates)."""
    try:
        asyncio.run(_call(_channel(ctx, need_secret=False), "delete_webhook"))
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(f"deleteWebhook failed: {exc}") from None
    click.echo("webhook deleted")


@telegram.command()
@click.pass_context
def poll(ctx: click.Context) -> None:
    """Run the service fetching updates with getUpdates (local use, no public URL).

    This is ``dangol serve`` with DANGOL_TELEGRAM_POLLING=true: the webhook is
    deleted, and each update is stored through the same path as the webhook's
    before it is confirmed to Telegram.
    """
    _channel(ctx, need_secret=False)
    root = ctx.find_root()
    serve = root.command.get_command(root, "serve") if isinstance(root.command, click.Group) else None
    if serve is None:
        raise click.ClickException("poll needs the main CLI's serve command")
    os.environ["DANGOL_TELEGRAM_POLLING"] = "true"
    ctx.invoke(serve)
