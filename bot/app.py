"""The one aiohttp application: webhooks, widget, API, health and metrics.

Routes are mounted when the app is created; the store, the engine, the
channels' sessions and the delivery worker start with the event loop and
stop in reverse order, so a SIGTERM finishes in-flight work before exit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import DBAPIError

from bot import health
from bot.bot_loader import load_bot
from bot.config import CoreSettings
from bot.delivery_leads import DeliveryLeads
from bot.engine.conversation import ConversationEngine
from bot.engine.opt_out import OptOutCatcher
from bot.forwarded import forwarded_middleware, parse_networks
from bot.http_metrics import counting_middleware
from bot.metrics import Metrics
from bot.pipeline.write_child import WriteChildSpec
from bot.services import SERVICES, Services
from campaigns.scheduler import CampaignScheduler
from channels.base import ChannelServices
from channels.delivery import DeliveryWorker
from channels.registry import enabled_channels
from contracts.http_errors import error_body, json_error
from contracts.messages import HandleResult, InboundMessage
from contracts.untrusted import Untrusted, check_inbound
from crm_store import assignment
from crm_store.columns import utcnow
from crm_store.database import Database, SchemaNotCurrent, StoreUnavailable
from crm_store.error_kinds import classify
from crm_store.live import LiveHub
from crm_store.outbox import Outbox

log = logging.getLogger(__name__)


#: How often snoozes that ran out are woken.
SNOOZE_CHECK_SECONDS = 15.0

Extension = Callable[[web.Application], None]


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every error leaves as the shared JSON body; nothing leaks a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status, "http_error")
        message = {404: f"no route for {request.method} {request.path}", 405: f"{request.method} is not allowed on {request.path}",
                   413: "request body is too large"}.get(exc.status, exc.reason)
        raise json_error(exc.status, code, message, method=request.method, allowed=getattr(exc, "allowed_methods", ()),
                         max_size=request.app._client_max_size, actual_size=request.content_length or 0) from None  # noqa: SLF001
    except asyncio.CancelledError:
        raise
    except DBAPIError as exc:
        kind = classify(exc)
        if kind.kind == "unavailable":
            return _store_unavailable(request, exc)
        if kind.kind == "internal":
            log.exception("unexpected store error on %s %s", request.method, request.path)
            return web.json_response(error_body("internal", kind.message), status=500)
        status, code = (409, "conflict") if kind.kind == "conflict" else (422, "invalid_field")
        return web.json_response(error_body(code, kind.message, kind.field), status=status)
    except (OSError, StoreUnavailable) as exc:
        return _store_unavailable(request, exc)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response(error_body("internal", "internal error; it has been logged"), status=500)


def _store_unavailable(request: web.Request, exc: Exception) -> web.Response:
    # Nothing was acknowledged: the platform (or client) should try again.
    log.error("store unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
    return web.json_response(error_body("store_unavailable", "the message store is unavailable; retry later"), status=503,
                             headers={"Retry-After": "5"})


def create_app(settings: CoreSettings, *, extensions: list[Extension] | None = None) -> web.Application:
    metrics = Metrics()
    proxies = parse_networks(settings.trusted_proxies)
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[counting_middleware(metrics), *([forwarded_middleware(proxies)] if proxies else []),
                                       error_middleware])
    channels = {channel.name: channel for channel in enabled_channels(settings)}
    services = Services(settings=settings, metrics=metrics, channels=channels)
    app[SERVICES] = services

    async def handle_inbound(message: InboundMessage) -> HandleResult:
        if services.engine is None:
            raise json_error(503, "starting", "the service is starting or stopping")
        try:
            check_inbound(message)
        except Untrusted as exc:
            raise json_error(400, exc.code, str(exc), exc.field) from None
        if services.delivery is not None:
            # on arrival, not only once handled: the campaign's cap starts before this customer waits behind its sends
            services.delivery.note_support()
        return await services.engine.handle(message)

    for channel in channels.values():
        channel.count_notice = _notice_counter(metrics, channel.name)
        channel.setup(app, handle_inbound)
    health.setup(app)
    for extend in extensions or []:
        extend(app)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    settings = services.settings
    db = Database(settings.database_url, pool_size=settings.db_pool_size, sqlite_synchronous=settings.sqlite_synchronous)
    services.db = db
    if db.is_sqlite:
        await db.upgrade()
    else:
        try:
            await db.check_current()
        except SchemaNotCurrent as exc:
            # Stay up but not ready: /readyz says why, webhooks answer 503.
            log.error("%s; run `dangol db upgrade` and restart", exc)
            try:
                yield
            finally:
                await db.dispose()
            return
    decide, parser = await load_bot(
        settings.bot_path, nlu_model=settings.nlu_model, rasa_url=settings.rasa_url, rasa_timeout=settings.rasa_timeout,
        parse_in_child=settings.parse_in_child,
    )
    services.outbox = Outbox(db)
    live = LiveHub(settings.database_url)
    await live.start()
    services.live = live
    if settings.delivery_enabled:
        services.delivery = build_delivery(services)
        await services.delivery_leads.start()  # type: ignore[union-attr]  # set by build_delivery
    engine = ConversationEngine(
        db, decide, parser,
        inline_channels={name for name, ch in services.channels.items() if ch.inline_replies},
        on_outbox=services.delivery.wake if services.delivery else None,
        max_batch=settings.group_commit_max,
        on_handled=lambda msg, result, seconds: _handled(services, msg, result, seconds),
        write_child=WriteChildSpec(settings.database_url, settings.sqlite_synchronous, settings.bot_path, settings.event_loop)
        if settings.write_in_child else None,
        opt_out=OptOutCatcher.for_bot(settings.bot_path),
    )
    engine.start()
    settle_heap()
    channel_services = ChannelServices.over(db, live)
    for channel in services.channels.values():
        channel.services = channel_services
        await channel.start()
    services.engine = engine
    if services.delivery:
        services.delivery.start()
    services.campaigns = CampaignScheduler(db, on_rows=services.delivery.wake if services.delivery else None)
    services.campaigns.start()
    waker = asyncio.create_task(_wake_snoozed_forever(db, live), name="snooze-waker")
    log.info("dangol started: channels %s, store %s", ", ".join(sorted(services.channels)) or "none", "sqlite" if db.is_sqlite else "postgresql")
    try:
        yield
    finally:
        log.info("stopping: finishing in-flight work")
        services.engine = None
        waker.cancel()
        await asyncio.gather(waker, return_exceptions=True)
        await services.campaigns.stop()
        await engine.close()
        if services.delivery:
            await services.delivery.stop(settings.shutdown_timeout)
        if services.delivery_leads:  # after the worker settled its rows: until then they are held by a live sender
            await services.delivery_leads.close()
        for channel in services.channels.values():
            await channel.stop()
        closer = getattr(parser, "close", None)
        if closer is not None:
            await closer()
        await live.close()
        await db.dispose()
        log.info("stopped cleanly")


def settle_heap() -> None:
    """Take what start-up loaded (the NLU model's vocabularies, the store's compiled
    statements, the bot's templates) out of the garbage collector's sight.

    None of it is ever garbage, yet every full collection walked it all and
    stalled the message path: measured on the REST channel, p99 latency went
    from 40-150 ms (varying run to run) to about 40 ms with it frozen.
    """
    gc.collect()
    gc.freeze()


async def _wake_snoozed_forever(db: Database, live: LiveHub, every: float = SNOOZE_CHECK_SECONDS) -> None:
    """Snoozed conversations come back to the inbox when their time is up, not only when someone looks."""
    while True:
        await asyncio.sleep(every)
        try:
            changes = await db.run_in_transaction(assignment.wake_snoozed, utcnow())
        except Exception:  # noqa: BLE001 - a busy or briefly absent database is tried again next round
            log.exception("waking snoozed conversations failed")
            continue
        if changes:
            live.publish(*[change.event() for change in changes])


def build_delivery(services: Services) -> DeliveryWorker:
    """The delivery worker, sending only for the channels this process leads (``services.delivery_leads``,
    whose ``start`` takes the leads no other process holds and reclaims the rows a stopped sender held)."""
    settings = services.settings
    assert services.outbox is not None
    metrics = services.metrics
    sending = {name: ch for name, ch in services.channels.items() if ch.sends_outbox}
    leads = DeliveryLeads(settings.database_url, services.outbox, sending)
    services.delivery_leads = leads
    worker = DeliveryWorker(
        services.outbox,
        sending,
        batch=settings.delivery_batch,
        concurrency=settings.delivery_concurrency,
        max_attempts=settings.delivery_max_attempts,
        backoff_base=settings.delivery_backoff_base,
        backoff_cap=settings.delivery_backoff_cap,
        lease_seconds=settings.delivery_lease_seconds,
        rate_limits=getattr(settings, "delivery_rate_limits", True),
        on_result=lambda message, outcome: metrics.messages_out.labels(message.channel, outcome).inc(),
        leading=leads.leading,
        sender_key=leads.sender_key,
        support_lag=settings.delivery_support_lag_ms / 1000,
        support_busy=settings.delivery_support_busy,
    )
    leads.on_gain = worker.wake
    return worker


def _notice_counter(metrics: Metrics, channel: str) -> Callable[[str], None]:
    return lambda kind: metrics.platform_notices.labels(channel, kind).inc()


def _handled(services: Services, message: InboundMessage, result: HandleResult, seconds: float) -> None:
    # replies that leave in the HTTP answer are counted here; the others as the delivery worker sends them
    channel = services.channels.get(message.channel)
    services.metrics.count_inbound(message.channel, result.duplicate, seconds,
                                   len(result.replies) if channel is not None and channel.inline_replies else 0)
    if services.live is not None and not result.duplicate and result.conversation_id:
        services.live.publish({"type": "message", "conversation_id": result.conversation_id,
                               "customer_id": result.customer_id, "message_id": result.message_id, "channel": message.channel})

