"""The sample bot and every runtime file ship in the package: ``pip install .`` into a fresh venv
(non-editable, with every dependency resolved by pip from ``pyproject.toml``) serves from an empty
folder, and the REST channel answers "hello".

Nothing is borrowed from the test venv: a module the service imports without
declaring it, or a file it reads at run time that the package does not ship,
fails the start here as it would for a user.  The install takes 30-45 s on
this machine (pip reads the registries' packages from the local index and its
cache; about 470 MB land in the venv).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT
from tests.service.processes import free_port

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def pip_install_dot(tmp_path: Path) -> Path:
    """A fresh venv with pip, and ``pip install .`` run in a copy of the source tree (the copy keeps the
    build's ``build/`` and ``*.egg-info`` out of the working tree)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "test-artifacts",
                                                                  "__pycache__", "bench"))
    venv = tmp_path / "fresh"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", ".", cwd=source)
    return venv


async def test_pip_install_dot_serves_the_sample_bot_from_an_empty_folder(tmp_path: Path) -> None:
    venv = pip_install_dot(tmp_path)
    where = _run(venv / "bin" / "python", "-c", "import bot.config, console, crm_store; print(bot.config.DEFAULT_BOT)", cwd=tmp_path)
    assert where.startswith(str(venv)) and where.strip().endswith("bot/examples/support-bot")
    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGOL_")}
    env.update(DANGOL_PORT=str(port), DANGOL_HOST="127.0.0.1")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([venv / "bin" / "dangol", "serve"], cwd=empty, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            async with session.post(f"http://127.0.0.1:{port}/webhooks/rest/webhook", json={"sender": "me", "message": "hello"}) as r:
                assert r.status == 200
                replies = await r.json()
            for page in ("/console/login", "/webchat", "/webchat/widget.js", "/console/static/console.css"):
                async with session.get(f"http://127.0.0.1:{port}{page}") as r:
                    assert r.status == 200, page
        assert replies and replies[0]["recipient_id"] == "me" and "hello" in replies[0]["text"].lower()
        assert (empty / "dangol.db").exists()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()

