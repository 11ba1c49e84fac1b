"""The dangol command line: version, config errors, accounts, migrations."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from dangol.cli import main
from bot.config import ConfigError, load_settings
from bot.logs import Redactor


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_version_is_printed() -> None:
    code, out = run("--version")
    assert code == 0 and out.startswith("dangol, version ")


@pytest.mark.parametrize("command", [[], ["serve"], ["worker"], ["db", "upgrade"], ["agent", "create"], ["nlu", "train"]])
def test_every_command_has_help(command: list[str]) -> None:
    code, out = run(*command, "--help")
    assert code == 0 and "Usage:" in out


def test_an_agent_is_created_with_a_token_as_json(sqlite_url: str) -> None:
    code, out = run("agent", "create", "--email", "Kim@Example.com", "--name", "김 상담", "--role", "agent", "--json",
                    env={"DANGOL_DATABASE_URL": sqlite_url})
    assert code == 0
    created = json.loads(out)
    assert created["email"] == "kim@example.com" and created["name"] == "김 상담"
    assert created["id"] and created["token"].startswith("dgl_")


def test_a_duplicate_agent_email_is_a_clear_error(sqlite_url: str) -> None:
    env = {"DANGOL_DATABASE_URL": sqlite_url}
    run("agent", "create", "--email", "a@example.com", "--name", "A", "--role", "admin", env=env)
    code, out = run("agent", "create", "--email", "a@example.com", "--name", "A", "--role", "admin", env=env)
    assert code != 0 and "already exists" in out


def test_a_bad_role_is_refused(sqlite_url: str) -> None:
    code, out = run("agent", "create", "--email", "a@example.com", "--name", "A", "--role", "owner",
                    env={"DANGOL_DATABASE_URL": sqlite_url})
    assert code == 2 and "role" in out


def test_db_upgrade_reports_the_revision(tmp_path: Path) -> None:
    code, out = run("db", "upgrade", env={"DANGOL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/new.db"})
    assert code == 0 and "database at revision" in out


def test_an_unknown_toml_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "dangol.toml"
    config.write_text('database_url = "sqlite+aiosqlite:///x.db"\nprot = 8080\n', encoding="utf-8")
    code, out = run("--config", str(config), "db", "upgrade")
    assert code == 1 and "prot" in out and "unknown key" in out


def test_a_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANGOL_PORT", "eighty")
    with pytest.raises(ConfigError, match="port .*DANGOL_PORT"):
        load_settings()


def test_environment_overrides_the_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "dangol.toml"
    config.write_text("port = 9000\nlog_level = \"debug\"\n", encoding="utf-8")
    monkeypatch.setenv("DANGOL_PORT", "9100")
    settings = load_settings(config)
    assert settings.port == 9100 and settings.log_level == "debug"


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("DANGOL_")]:
        monkeypatch.delenv(key)
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./dangol.db"
    assert settings.webchat_enabled and settings.rest_enabled


def test_an_unreadable_toml_file_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "dangol.toml"
    config.write_text("port = = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)


def test_logs_never_carry_tokens_or_configured_secrets() -> None:
    redactor = Redactor(["s3cr3t-value"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "auth %s with %s and secret=%s", (
        "Bearer dgl_abcdefghijklmnopqrstuvwxyz0123", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0", "s3cr3t-value"), None)
    redactor.filter(record)
    line = record.getMessage()
    assert "dgl_abc" not in line and "AAHdq" not in line and "s3cr3t" not in line
    assert line.count("[redacted]") == 3



def test_the_worker_alone_drains_the_outbox(sqlite_url: str) -> None:
    import asyncio

    from crm_store.database import Database
    from contracts.messages import InboundMessage
    from tests.helpers import count, sample_engine

    async def queue() -> None:
        db = Database(sqlite_url)
        engine = await sample_engine(db)
        for i in range(3):
            await engine.handle(InboundMessage(channel="webchat", sender_id=f"v{i}", text="hello", external_id=f"m{i}"))
        await engine.close()
        await db.dispose()

    async def sent() -> int:
        db = Database(sqlite_url)
        try:
            return await count(db, "outbox", status="sent")
        finally:
            await db.dispose()

    asyncio.run(queue())
    code, out = run("worker", "--once", env={"DANGOL_DATABASE_URL": sqlite_url})
    assert code == 0 and "processed 3 outbox rows" in out
    assert asyncio.run(sent()) == 3
