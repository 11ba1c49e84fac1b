"""Telegram, through python-telegram-bot 22.

Updates arrive on ``POST /webhooks/telegram`` (checked against the secret
token given to setWebhook) or, for local use without a public URL, from a
getUpdates long-poll started with the app (``telegram_polling``).  Both feed
:func:`channels.telegram.parse.parse_update` and acknowledge Telegram only
after the engine has stored the message, so a retried update is deduped by
the store and never lost.  Sending goes through ``telegram.Bot`` on the
channel's one aiohttp session (:mod:`channels.telegram.request`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, SecretStr
from telegram import Bot, Update

from channels.base import Channel, InboundHandler, RateLimit, SendResult
from channels.telegram.parse import Parsed, fill_old_fields, parse_update
from channels.telegram.request import AiohttpRequest
from channels.telegram.send import deliver
from contracts.http_errors import json_error, read_json_object
from contracts.messages import OutboundMessage

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: What Dangol reads; everything else is not even sent to us.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
#: Seconds per 30 sends bot-wide: Telegram's 1 s plus slack for network jitter.
BOT_WINDOW = 1.1
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramSettings(BaseModel):
    """``DANGOL_TELEGRAM_*``: the channel is on when the token is set."""

    telegram_token: SecretStr | None = None
    #: Sent by Telegram in X-Telegram-Bot-Api-Secret-Token; required for the webhook.
    telegram_webhook_secret: SecretStr | None = None
    #: Bot API server root, e.g. a self-hosted telegram-bot-api or a test fake.
    telegram_api_url: str = DEFAULT_API_URL
    #: Long-poll getUpdates instead of receiving the webhook (local use, no public URL).
    telegram_polling: bool = False


class TelegramChannel(Channel):
    name = "telegram"
    Settings = TelegramSettings
    commands = "channels.telegram.cli:telegram"

    def __init__(self, token: str, webhook_secret: str | None, api_url: str = DEFAULT_API_URL, *, polling: bool = False) -> None:
        super().__init__()
        self.token = token
        self.webhook_secret = webhook_secret
        self.api_url = api_url.rstrip("/")
        self.polling = polling
        self.session: aiohttp.ClientSession | None = None
        self.bot: Bot | None = None
        self._poller: asyncio.Task[None] | None = None

    # -- configuration ----------------------------------------------------

    @staticmethod
    def check_settings(settings: Any) -> list[str]:
        token, secret = settings.telegram_token, settings.telegram_webhook_secret
        problems = []
        if token is None and secret is not None:
            problems.append("telegram: DANGOL_TELEGRAM_TOKEN is required when DANGOL_TELEGRAM_WEBHOOK_SECRET is set")
        if token is None and settings.telegram_polling:
            problems.append("telegram: DANGOL_TELEGRAM_TOKEN is required when DANGOL_TELEGRAM_POLLING is set")
        if token is not None and not token.get_secret_value().strip():
            problems.append("telegram: DANGOL_TELEGRAM_TOKEN is empty")
        if token is not None and secret is None and not settings.telegram_polling:
            problems.append("telegram: DANGOL_TELEGRAM_WEBHOOK_SECRET is required when DANGOL_TELEGRAM_TOKEN is set "
                            "(or set DANGOL_TELEGRAM_POLLING=true to poll without a webhook)")
        if secret is not None and not _SECRET_RE.match(secret.get_secret_value()):
            problems.append("telegram: DANGOL_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        if not settings.telegram_api_url.startswith(("http://", "https://")):
            problems.append("telegram: DANGOL_TELEGRAM_API_URL must start with http:// or https://")
        return problems

    @classmethod
    def from_settings(cls, settings: Any) -> TelegramChannel | None:
        if getattr(settings, "telegram_token", None) is None:
            return None
        secret = settings.telegram_webhook_secret
        return cls(settings.telegram_token.get_secret_value(), secret.get_secret_value() if secret else None,
                   settings.telegram_api_url, polling=settings.telegram_polling)

    # -- lifecycle --------------------------------------------------------

    def setup(self, app: web.Application, handle_inbound: InboundHandler) -> None:
        super().setup(app, handle_inbound)
        app.router.add_post(WEBHOOK_PATH, self.webhook)

    def make_bot(self, session: aiohttp.ClientSession) -> Bot:
        """A Bot on ``session``: the long-poll gets its own timeouts, not its own connection pool."""
        return Bot(
            self.token,
            base_url=f"{self.api_url}/bot",
            base_file_url=f"{self.api_url}/file/bot",
            request=AiohttpRequest(session),
            get_updates_request=AiohttpRequest(session, read_timeout=10.0),
        )

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        self.bot = self.make_bot(self.session)
        # Not bot.initialize(): that calls getMe, and the service should start
        # (and keep its outbox) even while Telegram is unreachable.
        for request in self.bot._request:  # noqa: SLF001
            await request.initialize()
        if self.polling:
            self._poller = asyncio.create_task(self._poll(), name="telegram-poll")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self.session is not None:
            await self.session.close()
            self.session = None

    # -- inbound ----------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if self.webhook_secret is None or not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            raise json_error(401, "unauthorized", f"{SECRET_HEADER} is missing or wrong")
        data = await read_json_object(request)
        # Only the kinds Dangol reads are parsed: an update of another kind (or
        # one newer than this PTB knows) is acknowledged so Telegram moves on.
        wanted = {key: data[key] for key in ALLOWED_UPDATES if key in data}
        if not wanted:
            return web.json_response({"ok": True})
        try:
            update = Update.de_json(fill_old_fields({"update_id": data.get("update_id"), **wanted}), self.bot)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise json_error(400, "invalid_update", f"not a Telegram Update: {exc}") from None
        await self.process(update)
        return web.json_response({"ok": True})

    async def process(self, update: Update) -> Parsed:
        """Store what the update means; return only once it is durable."""
        parsed = parse_update(update)
        if parsed.blocked_user is not None:
            await self._mark_blocked(parsed.blocked_user)
        if parsed.inbound is not None:
            assert self.handle_inbound is not None
            await self.handle_inbound(parsed.inbound)
        if parsed.callback_query_id is not None:
            await self._answer_callback(parsed.callback_query_id)
        return parsed

    async def _mark_blocked(self, user_id: str) -> None:
        if self.services is None:
            return
        await self.services.mark_unreachable(self.name, user_id)
        log.info("telegram user %s blocked the bot; identity marked unreachable", user_id)

    async def _answer_callback(self, query_id: str) -> None:
        """Stop the button's spinner; the answer itself is the bot's next message."""
        if self.bot is None:
            return
        try:
            await self.bot.answer_callback_query(query_id, read_timeout=2.0, connect_timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - the press is stored; a spinner is cosmetic
            log.warning("answerCallbackQuery %s failed: %s", query_id, exc)

    async def _poll(self) -> None:
        """getUpdates long-polling; an update is confirmed (offset) only after it is stored."""
        assert self.bot is not None
        bot = self.bot
        await self._retrying(lambda: bot.delete_webhook(drop_pending_updates=False))
        offset: int | None = None
        while True:
            try:
                updates = await bot.get_updates(offset=offset, timeout=5, allowed_updates=list(ALLOWED_UPDATES))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep polling through outages
                log.warning("telegram getUpdates failed: %s; retrying", exc)
                await asyncio.sleep(2.0)
                continue
            for update in updates:
                try:
                    await self.process(update)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001
                    log.exception("telegram update %s failed; it will be fetched again", update.update_id)
                    await asyncio.sleep(1.0)
                    break
                offset = update.update_id + 1

    async def _retrying(self, call: Any) -> None:
        while True:
            try:
                await call()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("telegram: %s; retrying", exc)
                await asyncio.sleep(2.0)

    # -- outbound ---------------------------------------------------------

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.bot is None:
            raise RuntimeError("telegram channel is not started")
        return await deliver(self.bot, message)

    def rate_limits(self, message: OutboundMessage) -> Sequence[RateLimit]:
        """Telegram's published limits: ~30/s per bot, 1/s per chat, 20/min per group.

        The limiter spaces the *starts* of sends; their arrival at Telegram
        jitters by a few milliseconds, so sends spaced exactly 1/30 s apart
        put 31 into some one-second window (the broadcast bench saw 429s).
        The bot bucket keeps 100 ms of slack: 30 per 1.1 s.
        """
        chat = message.recipient.split(":", 1)[0]
        limits = [RateLimit("telegram:bot", 30, BOT_WINDOW), RateLimit(f"telegram:chat:{chat}", 1, 1.0)]
        if chat.startswith("-"):
            limits.append(RateLimit(f"telegram:group:{chat}", 20, 60.0))
        return limits


__all__ = ["ALLOWED_UPDATES", "TelegramChannel", "TelegramSettings"]
