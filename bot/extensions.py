"""What ``dangol serve`` mounts beside the channels: the API and the console."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


def default_extensions() -> list[Callable[[web.Application], None]]:
    from bot.api import setup as api_setup
    from bot.insights_jobs import setup as insights_jobs_setup
    from console import setup as console_setup

    return [api_setup, console_setup, insights_jobs_setup]
