"""Settings: ``DANGOL_*`` environment variables over an optional TOML file.

pydantic-settings does the layering and the validation, so a bad value is
reported with the key that holds it, before anything starts.  Channels add
their own keys through mixins listed in :mod:`channels.registry`; a channel
whose keys are absent is off.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from bot.forwarded import parse_networks
from channels.registry import channel_setting_problems, settings_mixins


def _default_bot() -> Path:
    """The sample bot: the installed package's copy (see setup.py), else the source tree's ``examples/``."""
    here = Path(__file__).resolve().parent
    packaged = here / "examples" / "support-bot"
    return packaged if packaged.is_dir() else here.parent / "examples" / "support-bot"


DEFAULT_BOT = _default_bot()


class ConfigError(Exception):
    """Raised with a message that names every bad key; the CLI prints it and exits 2."""


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DANGOL_", extra="forbid", validate_default=True)

    database_url: str = "sqlite+aiosqlite:///./dangol.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: Processes of ``dangol serve`` sharing the port (SO_REUSEPORT); one core each.
    workers: int = Field(default=1, ge=1, le=64)
    reuse_port: bool = False
    bot_path: Path = DEFAULT_BOT
    secret_key: SecretStr | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
    #: Largest accepted text of one message, in characters.
    max_message_chars: int = Field(default=4096, ge=1, le=1_000_000)
    #: Largest accepted request body, in bytes.
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    db_pool_size: int = Field(default=8, ge=1, le=200)
    #: Group commit: largest number of messages written in one transaction.
    group_commit_max: int = Field(default=128, ge=1, le=10_000)
    #: SQLite ``synchronous``: FULL survives power loss, NORMAL only a process crash.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    #: uvloop where it is installed (not on Windows); "asyncio" forces the standard loop.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    #: Pure-Python stages of the message path in child processes when a core is spare (see bot.pipeline); "off" keeps all in one.
    offload: Literal["auto", "off"] = "auto"
    delivery_enabled: bool = True
    delivery_batch: int = Field(default=256, ge=1, le=1000)
    delivery_concurrency: int = Field(default=32, ge=1, le=1000)
    delivery_max_attempts: int = Field(default=8, ge=1, le=100)
    delivery_backoff_base: float = Field(default=2.0, gt=0)
    delivery_backoff_cap: float = Field(default=600.0, gt=0)
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    #: Each platform's published send limits (Telegram's 30/s per bot ...); off only for loopback fakes and benchmarks.
    delivery_rate_limits: bool = True
    #: While customers are being served, campaign sends are held to this event-loop lag (ms); 0 turns the cap off
    #: (channels/delivery_pacing.py).
    delivery_support_lag_ms: float = Field(default=5.0, ge=0)
    #: While customers are being served, campaign sends are also held so that the event loop runs callbacks at most
    #: this share of its time (the rest is the queue-free room support traffic gets); 1 leaves it unwatched
    #: (channels/delivery_pacing.py).
    delivery_support_busy: float = Field(default=0.5, gt=0, le=1)
    rasa_url: str | None = None
    rasa_timeout: float = Field(default=2.0, gt=0)
    nlu_model: Path | None = None
    shutdown_timeout: float = Field(default=20.0, gt=0)
    #: Seconds between scoring runs of every customer (RFM, CLV, clusters, recommendations); 0 turns them off.
    insights_score_interval: float = Field(default=3600.0, ge=0)
    #: Where a phone number written without its country code is read (ISO 3166 code, e.g. KR); stored as E.164.
    default_region: str | None = "KR"

    @field_validator("default_region")
    @classmethod
    def _phone_region(cls, value: str | None) -> str | None:
        if not value:
            return None
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("must be a two-letter country code that has phone numbers, such as KR or US")
        return region
    #: Reverse proxies (CIDRs, comma-separated) whose X-Forwarded-For/-Proto/-Host are believed (see bot.forwarded).
    trusted_proxies: Annotated[list[str], NoDecode] = []
    #: Bearer token that opens /metrics to any address; without one only callers on this machine may read it.
    metrics_token: SecretStr | None = None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        items = [v for v in re.split(r"[,\s]+", value) if v] if isinstance(value, str) else value
        if isinstance(items, list):
            parse_networks([str(v) for v in items])
        return items

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        if value.startswith(("postgresql://", "postgres://")):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        folder = sqlite_folder(value)
        if folder is not None and not folder.is_dir():
            raise ValueError(f"the folder {folder} of the SQLite file does not exist (create it, or fix the path)")
        return value

    @model_validator(mode="after")
    def _one_sqlite_writer(self) -> CoreSettings:
        if self.workers > 1 and self.database_url.startswith("sqlite"):
            raise ValueError("workers > 1 needs PostgreSQL: SQLite has a single writer, and processes would queue on its lock")
        return self

    @property
    def write_in_child(self) -> bool:
        """Whether the message path writes in a process of its own (see bot.pipeline.write_child).

        On PostgreSQL ``--workers`` already gives each core a process that
        writes; SQLite has one serving process, whose writer would share its GIL.
        """
        return self.offload == "auto" and self.is_sqlite and self.workers == 1 and (os.cpu_count() or 1) > 1

    @property
    def parse_in_child(self) -> bool:
        """Whether the built-in NLU parses in a process of its own (see bot.pipeline.parse_child).

        The spare core goes to the writer first: on 2 cores with SQLite, the
        writer in a child and parsing here measured 2,177 msg/s (median of 5)
        against 1,769 with both in children and 1,649 with parsing alone in
        one (bench/inbound.py, REST channel).
        """
        return self.offload == "auto" and self.workers == 1 and (os.cpu_count() or 1) > 1 and not self.write_in_child

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def sqlite_folder(url: str) -> Path | None:
    """The folder a SQLite URL's file goes in; None for other databases and in-memory ones."""
    if not url.startswith("sqlite"):
        return None
    database = url.split("://", 1)[1].split("?", 1)[0]
    database = database[1:] if database.startswith("/") else database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().parent


#: ``DANGOL_*`` variables read outside the settings: the CLI's --config, the NLU cache, the tests' and benchmarks' own.
OTHER_VARIABLES = frozenset({"DANGOL_CONFIG", "DANGOL_NLU_CACHE", "DANGOL_SHARED", "DANGOL_TEST_PG", "DANGOL_BENCH_PG",
                             "DANGOL_CHROMIUM"})


def unknown_variables(settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> list[str]:
    """A message for each ``DANGOL_*`` variable no setting reads, naming the closest known one.

    pydantic-settings ignores them, so a misspelling (``DANGOL_PROT``) would
    silently leave the default in place.
    """
    known = {f"DANGOL_{name.upper()}" for name in settings_cls.model_fields} | OTHER_VARIABLES
    problems = []
    for key in sorted(environ):
        name = key.upper()
        if name.startswith("DANGOL_") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            problems.append(f"{key}: unknown environment variable" + (f"; did you mean {close[0]}?" if close else ""))
    return problems


def _settings_class(toml_path: Path | None) -> type[CoreSettings]:
    class Settings(CoreSettings, *settings_mixins()):  # type: ignore[misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if toml_path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
            return tuple(sources)

    return Settings


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> CoreSettings:
    """Read and validate the settings, or raise :class:`ConfigError` naming the bad keys."""
    path = Path(config_file) if config_file else None
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            with path.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    cls = _settings_class(path)
    unknown = unknown_variables(cls, os.environ)
    if unknown:
        raise ConfigError("invalid configuration: " + "; ".join(unknown))
    try:
        settings = cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path)) from None
    problems = channel_setting_problems(settings)
    if problems:
        raise ConfigError("; ".join(problems))
    return settings


def format_validation_error(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path} or the environment" if path else ""
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        parts.append(f"{key} (DANGOL_{key.upper()}): {message}" if key else message)
    return f"invalid configuration{where}: " + "; ".join(parts)
