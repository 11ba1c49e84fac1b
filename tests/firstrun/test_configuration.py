"""Configuration as the README documents it: an unknown DANGOL_* variable or a SQLite file in a missing folder stops the start."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.config import ConfigError, load_settings
from dangol.cli import main


def test_a_misspelled_variable_stops_the_start_naming_it_and_the_closest_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANGOL_PROT", "9999")
    with pytest.raises(ConfigError, match="DANGOL_PROT: unknown environment variable; did you mean DANGOL_PORT"):
        load_settings()


def test_a_misspelled_channel_variable_is_caught_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANGOL_TELEGRAM_TOKN", "x")
    with pytest.raises(ConfigError, match="did you mean DANGOL_TELEGRAM_TOKEN"):
        load_settings()


def test_variables_read_outside_the_settings_are_allowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("DANGOL_CONFIG", "DANGOL_SHARED", "DANGOL_NLU_CACHE", "DANGOL_TEST_PG", "DANGOL_BENCH_PG"):
        monkeypatch.setenv(key, str(tmp_path))
    monkeypatch.setenv("DANGOL_PORT", "9001")
    assert load_settings().port == 9001


def test_serve_exits_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["serve"], env={"DANGOL_PROT": "9999"})
    assert result.exit_code == 1 and "DANGOL_PROT" in result.output and "DANGOL_PORT" in result.output


def test_a_sqlite_file_in_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"database_url .*folder .*nowhere of the SQLite file does not exist"):
        load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/nowhere/d.db")
    assert not (tmp_path / "nowhere").exists()
    assert load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/d.db").database_url.endswith("/d.db")
    assert load_settings(database_url="sqlite+aiosqlite:///./dangol.db").is_sqlite
