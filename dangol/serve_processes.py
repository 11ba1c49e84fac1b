"""Several ``dangol serve`` processes on one port.

Python runs one core per process; on a machine with more cores the service
takes more messages by running more processes behind one listening port
(SO_REUSEPORT lets the kernel spread connections).  Each process has its
own engine and group committer; the database keeps them consistent (unique
keys, leases on outbox rows).  The first process alone runs the delivery
worker, so a platform's rate limit is counted in one place.  The first process starts
the others, migrates the store once before they start, forwards SIGTERM to
them and waits for them to finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys

from aiohttp import web

from bot.pipeline.child_process import stop_with_parent

log = logging.getLogger(__name__)


class WorkerProcesses:
    def __init__(self, count: int, argv: list[str]) -> None:
        self.count = count
        self.argv = _without_option(argv, "--workers")
        self.children: list[subprocess.Popen[bytes]] = []

    def attach(self, app: web.Application) -> None:
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._stop)

    async def _start(self, app: web.Application) -> None:
        # Only this process runs the delivery worker, so each platform's rate
        # limit is kept by one limiter; the others hand web chat pushes over
        # through the live-event hub.
        env = {**os.environ, "DANGOL_WORKERS": "1", "DANGOL_REUSE_PORT": "true", "DANGOL_DELIVERY_ENABLED": "false",
               # every process already has a core of its own to parse and write on
               "DANGOL_OFFLOAD": "off"}
        for _ in range(self.count):
            self.children.append(subprocess.Popen([sys.executable, "-m", "dangol.cli", *self.argv], env=env,
                                                  preexec_fn=stop_with_parent))
        log.info("started %d more serve processes", self.count)

    async def _stop(self, app: web.Application) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            code = await asyncio.to_thread(child.wait)
            if code != 0:
                log.warning("serve process %d exited with %d", child.pid, code)


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` less ``name VALUE`` and ``name=VALUE``: children run one process each."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            kept.append(arg)
    return kept
