"""The sample bot and every runtime file ship in the package: a wheel installed into a fresh venv
serves from an empty folder, and the REST channel answers "hello".

The wheel is built and installed as ``pip install .`` does (non-editable).  A
literal ``pip install .`` downloads 466 MB of dependencies (2.5 minutes here, a
quarter of the suite), so the fresh venv gets its third-party packages another
way that proves the same thing: it sees *exactly* the distributions that the
wheel's ``Requires-Dist`` asks for, transitively, with their markers and no
extras, linked from the test venv (where pip resolved them from the same
``pyproject.toml``).  A module the service imports without declaring it is
absent there and the start fails, as it would after ``pip install .``.  Every
Dangol module comes from the wheel, which the test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import aiohttp
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT
from tests.service.processes import free_port

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def declared_closure(requires: list[str]) -> set[str]:
    """The installed distributions that ``requires`` pulls in, transitively, as pip would pick them
    (environment markers evaluated, no extras unless a requirement names one)."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requires]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        wanted = [(name, "")] + [(name, e) for e in req.extras]
        for dist_name, dist_extra in wanted:
            key = f"{dist_name}[{dist_extra}]"
            if key in seen:
                continue
            seen.add(key)
            todo += [(Requirement(r), dist_extra) for r in metadata.requires(dist_name) or []]
    return {key.split("[")[0] for key in seen}


def link_distributions(names: set[str], into: Path) -> None:
    """A folder holding only these distributions' top-level files (packages, modules, .libs, dist-info)."""
    into.mkdir()
    for name in names:
        dist = metadata.distribution(name)
        tops = {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}
        for top in tops:
            target = Path(str(dist.locate_file(top)))
            if target.exists() and not (into / top).exists():
                (into / top).symlink_to(target)


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
    requires = json.loads(_run(python, "-c", "import importlib.metadata as m, json; print(json.dumps(m.requires('dangol')))"))
    declared = tmp_path / "declared"
    link_distributions(declared_closure(requires), declared)
    (site / "declared_dependencies.pth").write_text(f"{declared}\n", encoding="utf-8")
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


def test_the_fresh_venv_sees_only_declared_dependencies() -> None:
    """What the check above rests on: a test-only package is outside the service's declared closure."""
    closure = declared_closure(metadata.requires("dangol") or [])
    assert {"aiohttp", "yarl", "multidict", "sqlalchemy", "greenlet", "asyncpg", "numpy"} <= closure
    assert not {"pytest", "schemathesis", "playwright", "hypothesis", "onnxruntime"} & closure
