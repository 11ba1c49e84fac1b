"""Fixtures shared by the whole suite.

Store tests run on SQLite always and on PostgreSQL too: ``db_url`` is
parametrised over both.  Each test run creates its own PostgreSQL database
with a random name and drops it at the end; each test starts from empty
tables.  With ``CI=true`` a missing PostgreSQL or a missing ``../shared``
fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.config import CoreSettings, load_settings
from crm_store.database import Database
from crm_store.models import Base

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
# Apps built inside the test process parse and write in it: a child interpreter per
# app would double the suite's time.  Real `dangol serve` processes
# (tests/service/processes.py) run as configured by default, and
# tests/pipeline/test_parse_child.py and test_write_child.py cover the children.
os.environ.setdefault("DANGOL_OFFLOAD", "off")
PG_ADMIN_URL = os.environ.get("DANGOL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def need(reason: str) -> None:
    """Skip for a developer; fail in CI, where nothing may be silently left out."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


CHROMIUM = os.environ.get("DANGOL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Screenshots the browser tests leave for a person to look at.
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's chromium, headless, through Playwright (never a downloaded browser)."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        need(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("DANGOL_SHARED", ROOT.parent / "shared"))
    if not path.is_dir():
        need(f"shared fixtures folder {path} is absent (set DANGOL_SHARED)")
    return path


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run, dropped at the end."""
    name = f"dangol_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach PostgreSQL means the same
        need(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"

    async def migrate() -> None:
        db = Database(url)
        await db.upgrade()
        await db.dispose()

    asyncio.run(migrate())
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file copied for each test: migrating once is much faster."""
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await db.upgrade()
        await db.dispose()  # closing the last connection checkpoints the WAL into the file

    asyncio.run(migrate())
    return path


async def _truncate(url: str) -> None:
    db = Database(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.write() as conn:
        await conn.execute(text(f"TRUNCATE {names} CASCADE"))
    await db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        return _copy_sqlite(template, tmp_path)
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_truncate(url))
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """For tests about behaviour that does not depend on the database kind."""
    return _copy_sqlite(sqlite_template, tmp_path)


def _copy_sqlite(template: Path, folder: Path) -> str:
    path = folder / "dangol.db"
    shutil.copyfile(template, path)
    for suffix in ("-wal", "-shm"):
        extra = template.with_name(template.name + suffix)
        if extra.exists():
            shutil.copyfile(extra, path.with_name(path.name + suffix))
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def make_settings(db_url: str) -> Callable[..., CoreSettings]:
    def build(**overrides: Any) -> CoreSettings:
        overrides.setdefault("database_url", db_url)
        return load_settings(**overrides)

    return build
