"""The whole app: the engine's (webhooks, widget, health) with the API and the console mounted on it."""

from __future__ import annotations

from aiohttp import web

import console
from bot import api
from bot.app import create_app
from bot.config import CoreSettings


def build_app(settings: CoreSettings) -> web.Application:
    """What ``dangol serve`` serves."""
    return create_app(settings, extensions=[api.setup, console.setup])
