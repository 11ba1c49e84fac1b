"""Slack, through slack-bolt's AsyncApp and slack-sdk's AsyncWebClient.

``POST /webhooks/slack/events`` and ``/webhooks/slack/interactions`` go
through bolt (signature and 5-minute timestamp check, url_verification) via
its aiohttp adapter; with ``DANGOL_SLACK_APP_TOKEN`` the same listeners also
run over Socket Mode.  bolt runs with ``process_before_response=True``: a
listener stores the message through ``handle_inbound`` and only then does
Slack get its 200, so a retry (``X-Slack-Retry-Num``) after a lost answer
finds the message stored and is deduped by the store, never lost.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, SecretStr
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from channels.base import Channel, InboundHandler, RateLimit, SendResult
from channels.slack.parse import parse_action, parse_message, profile_from_user
from channels.slack.send import deliver, split_recipient
from contracts.http_errors import json_error
from contracts.messages import InboundMessage, OutboundMessage, Profile

log = logging.getLogger(__name__)


def client_logger() -> logging.Logger:
    """The logger slack-sdk's web client writes to, with a level of its own.

    slack-sdk decides whether to format a debug line for every request and
    response from ``logger.level``, not the effective level; its default
    logger's level is NOTSET (0), so every call built those lines (with the
    whole payload) only for logging to drop them.  Here the level follows
    the service's own, set at start.  (On the outbound benchmark the saving
    was within the run-to-run spread: 0.67-0.78 of raw aiohttp either way.)
    """
    logger = logging.getLogger("channels.slack.web_client")
    logger.setLevel(log.getEffectiveLevel())
    return logger

DEFAULT_API_URL = "https://slack.com/api/"
EVENTS_PATH = "/webhooks/slack/events"
INTERACTIONS_PATH = "/webhooks/slack/interactions"
#: A failed users.info is not asked again for this long (missing scope, deleted user).
PROFILE_RETRY_SECONDS = 600.0


class SlackUnavailable(Exception):
    """Slack could not confirm who we are; the request is refused so Slack retries it."""


class SlackSettings(BaseModel):
    """``DANGOL_SLACK_*``: the channel is on when the bot token is set."""

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    #: An ``xapp-`` token turns on Socket Mode (no public URL needed).
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_API_URL


class SlackChannel(Channel):
    name = "slack"
    Settings = SlackSettings

    def __init__(self, bot_token: str, signing_secret: str | None, *, app_token: str | None = None,
                 api_url: str = DEFAULT_API_URL, timeout: float = 10.0) -> None:
        super().__init__()
        self.timeout = timeout
        self.bot_token = bot_token
        self.signing_secret = signing_secret
        self.app_token = app_token
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.session: aiohttp.ClientSession | None = None
        self.client: AsyncWebClient | None = None
        self.bolt: AsyncApp | None = None
        self._socket: Any = None
        self._profiles: dict[str, tuple[float, Profile]] = {}
        self._auth: AuthorizeResult | None = None

    # -- configuration ----------------------------------------------------

    @staticmethod
    def check_settings(settings: Any) -> list[str]:
        token, secret, app_token = settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token
        problems = []
        if token is None:
            for value, key in ((secret, "DANGOL_SLACK_SIGNING_SECRET"), (app_token, "DANGOL_SLACK_APP_TOKEN")):
                if value is not None:
                    problems.append(f"slack: DANGOL_SLACK_BOT_TOKEN is required when {key} is set")
            return problems
        if not token.get_secret_value().startswith("xox"):
            problems.append("slack: DANGOL_SLACK_BOT_TOKEN must be a bot token (xoxb-...)")
        if secret is None and app_token is None:
            problems.append("slack: DANGOL_SLACK_SIGNING_SECRET is required when DANGOL_SLACK_BOT_TOKEN is set "
                            "(or set DANGOL_SLACK_APP_TOKEN to use Socket Mode)")
        if app_token is not None and not app_token.get_secret_value().startswith("xapp-"):
            problems.append("slack: DANGOL_SLACK_APP_TOKEN must be an app-level token (xapp-...)")
        if not settings.slack_api_url.startswith(("http://", "https://")):
            problems.append("slack: DANGOL_SLACK_API_URL must start with http:// or https://")
        return problems

    @classmethod
    def from_settings(cls, settings: Any) -> SlackChannel | None:
        if getattr(settings, "slack_bot_token", None) is None:
            return None
        secret, app_token = settings.slack_signing_secret, settings.slack_app_token
        return cls(settings.slack_bot_token.get_secret_value(), secret.get_secret_value() if secret else None,
                   app_token=app_token.get_secret_value() if app_token else None, api_url=settings.slack_api_url)

    # -- lifecycle --------------------------------------------------------

    def setup(self, app: web.Application, handle_inbound: InboundHandler) -> None:
        super().setup(app, handle_inbound)
        app.router.add_post(EVENTS_PATH, self.webhook)
        app.router.add_post(INTERACTIONS_PATH, self.webhook)

    def make_client(self, session: aiohttp.ClientSession) -> AsyncWebClient:
        # retry_handlers=[]: the delivery worker owns retries (and Retry-After).
        return AsyncWebClient(token=self.bot_token, base_url=self.api_url, session=session, timeout=int(self.timeout) or 1,
                              retry_handlers=[], logger=client_logger())

    async def start(self) -> None:
        # slack-sdk applies its own timeout only to sessions it creates; on a
        # shared session the session's timeout is the one that holds.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256),
                                             timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=5))
        self.client = self.make_client(self.session)
        self.bolt = self.build_bolt(self.client)
        if self.app_token:
            # loaded only when Socket Mode is on: it pulls in a websocket client most deployments never use
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(self.bolt, self.app_token, web_client=self.client)
            await self._socket.connect_async()

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self.session is not None:
            await self.session.close()
            self.session = None

    def build_bolt(self, client: AsyncWebClient) -> AsyncApp:
        # bolt's own single-team authorization answers 200 without calling the
        # listener when auth.test fails (429, 5xx): Slack would not retry and
        # the message would be lost.  Our authorize raises instead, so bolt
        # answers 500 and Slack redelivers.  bolt refuses a token next to
        # authorize, so its client is a token-less twin on the same session.
        bolt_client = AsyncWebClient(base_url=self.api_url, session=client.session, timeout=client.timeout, retry_handlers=[],
                                     logger=client_logger())
        bolt = AsyncApp(
            client=bolt_client,
            authorize=self._bolt_authorize(),
            signing_secret=self.signing_secret or "",
            # Socket Mode requests are not signed; HTTP ones always are.
            request_verification_enabled=True,
            process_before_response=True,
            raise_error_for_unhandled_request=False,
        )
        bolt.event("message")(self._on_message)
        bolt.event("app_mention")(self._on_message)
        bolt.action(re.compile(".*"))(self._on_action)
        # Everything else is acknowledged, so Slack does not retry what we ignore.
        bolt.event(re.compile(".*"))(_ignore)
        bolt.view(re.compile(".*"))(_ack)
        bolt.shortcut(re.compile(".*"))(_ack)
        bolt.options(re.compile(".*"))(_ack)
        return bolt

    def _bolt_authorize(self) -> Any:
        """bolt calls authorize with keyword arguments named after its parameters."""
        async def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
            return await self._authorize()
        return authorize

    async def _authorize(self) -> AuthorizeResult:
        """Our bot's identity (auth.test once), or an error that makes bolt answer 500."""
        if self._auth is None:
            assert self.client is not None
            try:
                response = await self.client.auth_test()
            except Exception as exc:  # noqa: BLE001 - any failure: refuse, Slack retries
                raise SlackUnavailable(f"auth.test failed: {exc}") from None
            self._auth = AuthorizeResult.from_auth_test_response(auth_test_response=response, bot_token=self.bot_token)
        return self._auth

    # -- inbound ----------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        if self.bolt is None:
            raise json_error(503, "starting", "the Slack channel is starting")
        if self.signing_secret is None:
            raise json_error(401, "unauthorized", "this Slack app uses Socket Mode; HTTP requests are not accepted")
        bolt_request = await to_bolt_request(request)
        response = await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))
        if response.status == 401:
            raise json_error(401, "unauthorized", "Slack request signature or timestamp is invalid")
        if response.status == 404:
            # A signed delivery no listener took (bolt answers 404): Slack
            # expects 200 for every Events API delivery, or it retries and
            # may turn the app's events off.
            self._notice(bolt_request.body)
            return web.Response(status=200)
        return response

    def _notice(self, body: dict[str, Any]) -> None:
        """``app_rate_limited``: Slack stopped sending us events for a minute; say so in the log and the metrics."""
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "app_rate_limited":
            log.warning("Slack rate-limits this app's events (team %s, minute %s): events of that minute are not delivered",
                        body.get("team_id"), body.get("minute_rate_limited"))
            if self.count_notice is not None:
                self.count_notice("app_rate_limited")
        else:
            log.info("Slack delivery of type %r acknowledged without a listener", kind)

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
        message = parse_message(event, event_id=body.get("event_id"), bot_user_id=context.get("bot_user_id"))
        if message is not None:
            await self._handle(message)

    async def _on_action(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        message = parse_action(body, action)
        if message is not None:
            await self._handle(message)
        await ack()

    async def _handle(self, message: InboundMessage) -> None:
        message.profile = await self.profile(message.sender_id)
        assert self.handle_inbound is not None
        await self.handle_inbound(message)

    async def profile(self, user_id: str) -> Profile:
        """users.info once per user: Slack's verified e-mail joins this person to
        the same customer on other channels."""
        cached = self._profiles.get(user_id)
        if cached is not None and (cached[1].first_name or cached[1].email or time.monotonic() - cached[0] < PROFILE_RETRY_SECONDS):
            return _copy(cached[1])
        profile = Profile()
        if self.client is not None:
            try:
                response = await self.client.users_info(user=user_id, include_locale=True)
                profile = profile_from_user(response.get("user") or {})
            except Exception as exc:  # noqa: BLE001 - a message without a profile is still a message
                log.warning("slack users.info %s failed: %s", user_id, exc)
        self._profiles[user_id] = (time.monotonic(), profile)
        return _copy(profile)

    # -- outbound ---------------------------------------------------------

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.client is None:
            raise RuntimeError("slack channel is not started")
        return await deliver(self.client, message)

    def rate_limits(self, message: OutboundMessage) -> Sequence[RateLimit]:
        """chat.postMessage: about one message per second per channel (bursts tolerated)."""
        channel, _ = split_recipient(message.recipient)
        return [RateLimit(f"slack:channel:{channel}", 1, 1.0)]


async def _ignore() -> None:
    return None


async def _ack(ack: Any) -> None:
    await ack()


def _copy(profile: Profile) -> Profile:
    return Profile(**{name: getattr(profile, name) for name in Profile.__slots__})  # type: ignore[attr-defined]


__all__ = ["SlackChannel", "SlackSettings"]
