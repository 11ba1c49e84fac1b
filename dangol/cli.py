"""The ``dangol`` command line."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

from bot import logs
from bot.app import build_delivery
from bot.bot_folder import BotFolder, BotFolderError, load_bot_folder
from bot.config import ConfigError, CoreSettings, load_settings
from bot.event_loop import new_event_loop
from bot.metrics import Metrics
from bot.services import Services
from campaigns.cli import campaign_group
from channels.base import ChannelServices
from channels.registry import channel_commands, enabled_channels
from crm_store import agents
from crm_store.database import Database
from crm_store.first_run import admit_first_admin
from crm_store.outbox import Outbox
from crm_store.teams import add_agent_to_teams, check_name
from dangol import insights_cli as insights_commands
from dangol.app import build_app
from dangol.first_run import prepare_database
from dangol.serve_processes import WorkerProcesses
from dangol.startup_errors import masked_url, one_line
from nlu.cli import nlu as nlu_commands

log = logging.getLogger("dangol")


def _version() -> str:
    try:
        return version("dangol")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def _settings(ctx: click.Context, **overrides: Any) -> CoreSettings:
    try:
        settings = load_settings(ctx.obj.get("config"), **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    secrets = [s.get_secret_value() for s in _secret_values(settings)]
    logs.configure(settings.log_level, json_lines=ctx.obj.get("log_json") or settings.log_json, secrets=secrets)
    return settings


def _secret_values(settings: CoreSettings) -> list[Any]:
    values = [getattr(settings, name) for name in type(settings).model_fields]
    return [v for v in values if isinstance(v, SecretStr)]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="dangol")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="DANGOL_CONFIG", help="TOML settings file.")
@click.option("--log-json", is_flag=True, default=False, help="Log one JSON object per line.")
@click.pass_context
def main(ctx: click.Context, config: str | None, log_json: bool) -> None:
    """Dangol: omnichannel chatbot and messaging with a CRM at its core."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    ctx.obj["log_json"] = log_json


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), help="TOML settings file.")
@click.option("--host", default=None, help="Address to listen on (DANGOL_HOST).")
@click.option("--port", type=int, default=None, help="Port to listen on (DANGOL_PORT).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Processes sharing the port (DANGOL_WORKERS).")
@click.option("--log-json", is_flag=True, default=False, help="Log one JSON object per line.")
@click.pass_context
def serve(ctx: click.Context, config: str | None, host: str | None, port: int | None, workers: int | None, log_json: bool) -> None:
    """Run the service: webhooks, web chat, API and the delivery worker."""
    if config:
        ctx.obj["config"] = config
    if log_json:
        ctx.obj["log_json"] = True
    settings = _settings(ctx, host=host, port=port, workers=workers)
    try:
        bot = load_bot_folder(settings.bot_path)
    except BotFolderError as exc:
        raise click.ClickException(str(exc)) from None
    _prepare_database(settings, bot)
    app = build_app(settings)
    reuse_port = settings.workers > 1 or settings.reuse_port
    if settings.workers > 1:
        WorkerProcesses(settings.workers - 1, sys.argv[1:]).attach(app)

    def listening(_banner: str) -> None:  # aiohttp calls this once the port is bound
        log.info("listening on http://%s:%d (%d process%s)", settings.host, settings.port, settings.workers,
                 "es" if settings.workers > 1 else "")

    try:
        web.run_app(
            app, host=settings.host, port=settings.port, print=listening, access_log=None, reuse_port=reuse_port or None,
            shutdown_timeout=settings.shutdown_timeout, handle_signals=True, loop=new_event_loop(settings.event_loop),
        )
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise click.ClickException(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
        raise click.ClickException(f"cannot start: {one_line(exc)}") from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot start: the database failed: {one_line(exc)}") from None


def _prepare_database(settings: CoreSettings, bot: BotFolder | None, *, announce: bool = True) -> None:
    """Migrate SQLite and seed a fresh database; an unreachable one is one line and exit 1, not a traceback."""
    try:
        created = asyncio.run(prepare_database(settings.database_url, bot))
    except (OSError, SQLAlchemyError) as exc:
        raise click.ClickException(f"cannot open the database at {masked_url(settings.database_url)}: {one_line(exc)}") from None
    if created and announce:
        log.info("fresh database: created teams %s with default SLA targets", ", ".join(created))


@main.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.pass_context
def worker(ctx: click.Context, once: bool) -> None:
    """Run only the delivery worker that drains the outbox."""
    settings = _settings(ctx)
    asyncio.run(_worker(settings, once))


async def _worker(settings: CoreSettings, once: bool) -> None:
    db = Database(settings.database_url, pool_size=settings.db_pool_size, sqlite_synchronous=settings.sqlite_synchronous)
    if db.is_sqlite:
        await db.upgrade()
    channels = {c.name: c for c in enabled_channels(settings)}
    services = Services(settings=settings, metrics=Metrics(), channels=channels, db=db, outbox=Outbox(db))
    channel_services = ChannelServices.over(db, None)
    for channel in channels.values():
        channel.services = channel_services
        await channel.start()
    delivery = build_delivery(services)
    leads = services.delivery_leads
    assert leads is not None
    await leads.start()
    try:
        if once:
            sent = 0
            while True:
                n = await delivery.run_once()
                sent += n
                if n == 0:
                    break
            click.echo(f"processed {sent} outbox rows")
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        delivery.start()
        log.info("worker running for channels %s", ", ".join(sorted(channels)) or "none")
        await stop.wait()
        log.info("stopping: finishing in-flight sends")
        await delivery.stop(settings.shutdown_timeout)
    finally:
        await leads.close()  # after the worker settled its rows: until then they are held by a live sender
        for channel in channels.values():
            await channel.stop()
        await db.dispose()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply migrations up to REVISION."""
    settings = _settings(ctx)

    async def run() -> str | None:
        database = Database(settings.database_url)
        try:
            await database.upgrade(revision)
            return await database.current_revision()
        finally:
            await database.dispose()

    try:
        current = asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - shown to the operator as one line
        raise click.ClickException(f"upgrade failed: {one_line(exc)}") from None
    _prepare_database(settings, _bot_or_none(settings))
    click.echo(f"database at revision {current}")


@main.group()
def agent() -> None:
    """Agent accounts."""


@agent.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["admin", "agent", "marketer"]), required=True)
@click.option("--password", default=None, help="Console password; without it a one-time password is generated and printed.")
@click.option("--password-prompt", is_flag=True, help="Ask for a console password.")
@click.option("--team", "teams", multiple=True, help="A team to join (repeatable); created if new.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def agent_create(ctx: click.Context, email: str, name: str, role: str, password: str | None, password_prompt: bool, as_json: bool,
                 teams: tuple[str, ...] = ()) -> None:
    """Create an account and print its API token and, unless one was given, a one-time console password (shown once).

    A generated password must be changed at the first console login.  The
    install's first admin joins every team, so handoffs reach someone.
    """
    settings = _settings(ctx)
    if password_prompt:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    one_time = password is None
    if one_time:
        password = agents.generate_password()
    try:
        for team in teams:  # checked before anything is written
            check_name(team, "--team")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _prepare_database(settings, _bot_or_none(settings), announce=False)  # stdout stays one JSON object with --json

    async def run() -> tuple[agents.AgentRecord, str]:
        database = Database(settings.database_url)
        try:
            created = await agents.create_agent(database, email=email, name=name, role=role, password=password,
                                                must_change_password=one_time)
            if teams:
                await add_agent_to_teams(database, created[0].id, list(teams))
            if role == "admin":
                await admit_first_admin(database, created[0].id)
            return created
        finally:
            await database.dispose()

    try:
        record, token = asyncio.run(run())
    except (agents.AgentError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        shown = {**record.to_dict(), "token": token}
        if one_time:
            shown["password"] = password
        click.echo(json.dumps(shown, ensure_ascii=False))
    else:
        click.echo(f"created {record.role} {record.email} ({record.id})")
        click.echo(f"API token (shown once): {token}")
        if one_time:
            click.echo(f"one-time console password (shown once; to be changed at the first login): {password}")


@agent.command("set-password")
@click.option("--email", required=True, help="The account's e-mail.")
@click.option("--password", default=None, help="The new password; asked for when absent.")
@click.option("--one-time", is_flag=True, help="Ask for a new password at the next console login.")
@click.pass_context
def agent_set_password(ctx: click.Context, email: str, password: str | None, one_time: bool) -> None:
    """Set an account's console password (a forgotten one, or an account made without one)."""
    settings = _settings(ctx)
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)

    async def run() -> agents.AgentRecord:
        database = Database(settings.database_url)
        try:
            if database.is_sqlite:
                await database.upgrade()
            return await agents.set_password(database, email, password, must_change=one_time)
        finally:
            await database.dispose()

    try:
        record = asyncio.run(run())
    except agents.AgentError as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, SQLAlchemyError) as exc:
        raise click.ClickException(f"cannot open the database at {masked_url(settings.database_url)}: {one_line(exc)}") from None
    click.echo(f"password set for {record.email}")


def _bot_or_none(settings: CoreSettings) -> BotFolder | None:
    """The configured bot, to seed its teams; a broken one is reported by ``dangol serve``, not here."""
    try:
        return load_bot_folder(settings.bot_path)
    except BotFolderError:
        return None


# Command groups owned by other packages: the NLU's, and each channel's (channels.registry).
main.add_command(nlu_commands)
insights_commands.register(main, _settings)
for _group in channel_commands():
    main.add_command(_group)
main.add_command(campaign_group(lambda ctx: _settings(ctx).database_url))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
