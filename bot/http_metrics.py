"""``dangol_http_requests_total``: every HTTP answer counted by route template and status.

The route is the template (``/api/v1/customers/{customer_id}``), never the
path, so the number of series stays bounded whatever clients send; requests
that match no route count as ``unmatched``.  Each (route, status) series is
kept once made: ``labels()`` takes a lock and builds a key on every call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.metrics import Metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_template(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


def counting_middleware(metrics: Metrics) -> Any:
    series: dict[tuple[str, int], Any] = {}

    def count(request: web.Request, status: int) -> None:
        key = (route_template(request), status)
        counter = series.get(key)
        if counter is None:
            counter = series[key] = metrics.http_requests.labels(key[0], str(status))
        counter.inc()

    @web.middleware
    async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            count(request, exc.status)
            raise
        count(request, response.status)
        return response

    return count_requests
