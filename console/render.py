"""Templates and the headers every console answer carries.

Jinja2 autoescapes everything (customers write names, messages and
attributes); the Content-Security-Policy allows scripts and styles from the
console's own files only, so even a missed escape could not run code.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s" if seconds < 600 else f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _when(value: str | dt.datetime | None) -> str:
    """Short local-looking time: today shows the clock, older days the date (UTC, labelled)."""
    if not value:
        return ""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    now = dt.datetime.now(dt.UTC)
    if moment.date() == now.date():
        return moment.strftime("%H:%M")
    if moment.year == now.year:
        return moment.strftime("%b %d, %H:%M")
    return moment.strftime("%Y-%m-%d")


def _ago(value: str | None) -> str:
    if not value:
        return ""
    seconds = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(value)).total_seconds()
    if seconds < 60:
        return "just now"
    return _duration(seconds).split(" ")[0] + " ago"


def _safe_url(value: str | None) -> str | None:
    """Only web links become links: a ``javascript:`` URL from a platform is shown as text."""
    if isinstance(value, str) and value.lower().startswith(("https://", "http://")):
        return value
    return None


def _initials(name: str | None) -> str:
    parts = [p for p in (name or "").split() if p]
    if not parts:
        return "?"
    return (parts[0][0] + (parts[1][0] if len(parts) > 1 else "")).upper()


env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
                  trim_blocks=True, lstrip_blocks=True)
env.filters.update(duration=_duration, when=_when, ago=_ago, safe_url=_safe_url, initials=_initials)


def render(template: str, status: int = 200, /, **context: Any) -> web.Response:
    html = env.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


def harden(response: web.StreamResponse) -> web.StreamResponse:
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response
