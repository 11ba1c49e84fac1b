"""Running ``dangol serve`` as a real process for crash and shutdown tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """``python -m dangol.cli serve`` with its log in a file; stopped by signal, never left running."""

    def __init__(self, database_url: str, workdir: Path, port: int | None = None, extra_env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"serve-{self.port}-{time.monotonic_ns()}.log"
        # as a user's would run: the test session turns the NLU child off for in-process apps only
        env = {**os.environ, "DANGOL_OFFLOAD": "auto", "DANGOL_DATABASE_URL": database_url,
               "DANGOL_PORT": str(self.port), "DANGOL_HOST": "127.0.0.1", **(extra_env or {})}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "dangol.cli", *args, "serve"], cwd=workdir, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dangol serve exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    async with session.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await _sleep(0.1)
        raise TimeoutError(f"dangol serve not ready after {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def __del__(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
