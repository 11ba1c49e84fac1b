"""The sample bot and every runtime file ship in the package: a wheel installed into a fresh venv
serves from an empty folder, and the REST channel answers "hello".

The wheel is built and installed as ``pip install .`` does (non-editable); the
fresh venv borrows the test venv's third-party packages through a ``.pth``
line rather than downloading them again (that took 2.5 minutes here).  Paths
added by a ``.pth`` line are not scanned for ``.pth`` files themselves, so the
test venv's editable hook for Dangol stays inert: every Dangol module comes
from the wheel, which the test checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT
from tests.service.processes import free_port

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def install_wheel(tmp_path: Path) -> Path:
    wheels, source = tmp_path / "wheels", tmp_path / "source"
    # a copy, so the build leaves nothing (build/, *.egg-info) in the working tree
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "test-artifacts", "__pycache__",
                                                                  "bench"))
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source)
    (wheel,) = wheels.glob("dangol-*.whl")
    venv = tmp_path / "fresh"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return venv


async def test_an_installed_wheel_serves_the_sample_bot_from_an_empty_folder(tmp_path: Path) -> None:
    venv = install_wheel(tmp_path)
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
                await __import__("asyncio").sleep(0.1)
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
