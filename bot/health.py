"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.services import SERVICES


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and its schema is the code's."""
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
    checks["engine"] = "ok" if services.engine is not None else "not running"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if services.outbox is not None:
        try:
            depth = await services.outbox.depth()
        except Exception:  # noqa: BLE001 - metrics must answer even when the store does not
            depth = {}
        for status in ("queued", "sending"):
            services.metrics.outbox_depth.labels(status).set(depth.get(status, 0))
    body = services.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
