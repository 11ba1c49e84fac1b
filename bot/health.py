"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.forwarded import is_local_caller
from bot.services import SERVICES
from contracts.http_errors import json_error
from crm_store.write_probe import write_probe

#: How long /readyz waits for the write lock: a load balancer's probe must answer well within its own timeout.
WRITE_PROBE_SECONDS = 1.0


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers, its schema is the code's, a write could start now (the write lock is
    free within a second) and the write child, where there is one, is not stuck on a batch."""
    services = request.app[SERVICES]
    checks: dict[str, str] = {}
    if services.db is None:
        return web.json_response({"status": "starting", "checks": {"database": "not connected"}}, status=503)
    try:
        await services.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        checks["database"] = f"unreachable: {type(exc).__name__}"
    else:
        try:
            await services.db.check_current()
            checks["migrations"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["migrations"] = str(exc)
    try:
        await write_probe(services.db, WRITE_PROBE_SECONDS)
        checks["writes"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        checks["writes"] = f"blocked: {type(exc).__name__}: {exc}"[:200]
    checks["engine"] = "ok" if services.engine is not None else "not running"
    details: dict[str, str] = {}
    writer = services.engine.write_child if services.engine is not None else None
    if writer is not None:
        healthy, details["write_child"] = writer.health()
        if not healthy:
            checks["write_child"] = details["write_child"]
    ok = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks, **details}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics: with ``metrics_token`` set, for its Bearer holder; without, for callers on this machine only."""
    services = request.app[SERVICES]
    token = services.settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"),
                                                                 token.get_secret_value().encode("utf-8")):
            raise json_error(401, "unauthorized", "/metrics needs the metrics token as 'Authorization: Bearer <token>'",
                             headers={"WWW-Authenticate": 'Bearer realm="dangol-metrics"'})
    elif not is_local_caller(request):
        raise json_error(403, "forbidden", "/metrics answers callers on this machine only; set metrics_token to read it from elsewhere")
    if services.outbox is not None:
        try:
            depth = await services.outbox.depth()
        except Exception:  # noqa: BLE001 - metrics must answer even when the store does not
            depth = {}
        for status in ("queued", "sending"):
            services.metrics.outbox_depth.labels(status).set(depth.get(status, 0))
    body = services.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
