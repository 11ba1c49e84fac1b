"""The ``dangol`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click
from aiohttp import web
from pydantic import SecretStr

from bot import logs
from bot.app import build_delivery, reclaim_if_sole_sender
from bot.bot_folder import BotFolderError, load_bot_folder
from bot.config import ConfigError, CoreSettings, load_settings
from bot.event_loop import new_event_loop
from bot.metrics import Metrics
from bot.services import Services
from campaigns.cli import campaign_group
from channels.base import ChannelServices
from channels.registry import channel_commands, enabled_channels
from crm_store import agents
from crm_store.database import Database
from crm_store.outbox import Outbox
from crm_store.teams import add_agent_to_teams, check_name
from dangol import insights_cli as insights_commands
from dangol.app import build_app
from dangol.serve_processes import WorkerProcesses, prepare_store
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
        load_bot_folder(settings.bot_path)
    except BotFolderError as exc:
        raise click.ClickException(str(exc)) from None
    app = build_app(settings)
    reuse_port = settings.workers > 1 or settings.reuse_port
    if settings.workers > 1:
        asyncio.run(prepare_store(settings))
        WorkerProcesses(settings.workers - 1, sys.argv[1:]).attach(app)
    log.info("listening on http://%s:%d (%d process%s)", settings.host, settings.port, settings.workers,
             "es" if settings.workers > 1 else "")
    web.run_app(
        app, host=settings.host, port=settings.port, print=None, access_log=None, reuse_port=reuse_port or None,
        shutdown_timeout=settings.shutdown_timeout, handle_signals=True, loop=new_event_loop(settings.event_loop),
    )


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
    await reclaim_if_sole_sender(db, services.outbox)
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
        raise click.ClickException(f"upgrade failed: {type(exc).__name__}: {exc}") from None
    click.echo(f"database at revision {current}")


@main.group()
def agent() -> None:
    """Agent accounts."""


@agent.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["admin", "agent", "marketer"]), required=True)
@click.option("--password", default=None, help="Console password (prompted for with --password-prompt).")
@click.option("--password-prompt", is_flag=True, help="Ask for a console password.")
@click.option("--team", "teams", multiple=True, help="A team to join (repeatable); created if new.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def agent_create(ctx: click.Context, email: str, name: str, role: str, password: str | None, password_prompt: bool, as_json: bool,
                 teams: tuple[str, ...] = ()) -> None:
    """Create an account and print its API token (shown once)."""
    settings = _settings(ctx)
    if password_prompt:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        for team in teams:  # checked before anything is written
            check_name(team, "--team")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> tuple[agents.AgentRecord, str]:
        database = Database(settings.database_url)
        try:
            if database.is_sqlite:
                await database.upgrade()
            created = await agents.create_agent(database, email=email, name=name, role=role, password=password)
            if teams:
                await add_agent_to_teams(database, created[0].id, list(teams))
            return created
        finally:
            await database.dispose()

    try:
        record, token = asyncio.run(run())
    except (agents.AgentError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({**record.to_dict(), "token": token}, ensure_ascii=False))
    else:
        click.echo(f"created {record.role} {record.email} ({record.id})")
        click.echo(f"API token (shown once): {token}")


# Command groups owned by other packages: the NLU's, and each channel's (channels.registry).
main.add_command(nlu_commands)
insights_commands.register(main, _settings)
for _group in channel_commands():
    main.add_command(_group)
main.add_command(campaign_group(lambda ctx: _settings(ctx).database_url))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
