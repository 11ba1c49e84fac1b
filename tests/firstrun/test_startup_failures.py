"""Start-up failures are one clear line and a non-zero exit; "listening" only once the port is bound."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.processes import free_port

pytestmark = pytest.mark.slow


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DANGOL_HOST": "127.0.0.1", "DANGOL_OFFLOAD": "off", **env}
    return subprocess.run([sys.executable, "-m", "dangol.cli", "serve"], cwd=tmp_path, env=full, capture_output=True, text=True,
                          timeout=120)


def test_an_unreachable_postgresql_is_one_line_and_exit_1(tmp_path: Path) -> None:
    closed = free_port()
    done = serve(tmp_path, DANGOL_DATABASE_URL=f"postgresql://dangol:hunter2@127.0.0.1:{closed}/dangol", DANGOL_PORT=str(free_port()))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: cannot open the database at postgresql+asyncpg://dangol:***@127.0.0.1:")
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr
    assert "listening" not in done.stdout + done.stderr


def test_a_busy_port_is_one_line_and_exit_1_and_listening_is_never_logged(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve(tmp_path, DANGOL_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/d.db", DANGOL_PORT=str(port))
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "listening" not in output
    assert f"Error: cannot listen on 127.0.0.1:{port}: " in output and output.count("Error:") == 1
