"""``dangol campaign list|show|send|pause|resume|cancel|report|reconfirm``.

Attached to the main CLI with one line (``main.add_command(campaign_group(database_url))``):
the main CLI resolves the settings and hands this group a function that
gives the database URL, so the settings are read in one place.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from campaigns import service
from crm_store import campaigns as store
from crm_store.consents import due_for_reconfirmation
from crm_store.database import Database
from crm_store.errors import Conflict, NotFound

T = TypeVar("T")


def _run(ctx: click.Context, work: Callable[[Database], Awaitable[T]]) -> T:
    url = ctx.obj["campaign_database_url"](ctx)

    async def go() -> T:
        db = Database(url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except (NotFound, Conflict) as exc:
        raise click.ClickException(str(exc)) from None


def _id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a campaign id") from None


def _print(data: Any, as_json: bool, line: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(line(data))


def campaign_group(database_url: Callable[[click.Context], str]) -> click.Group:
    """The ``campaign`` command group; ``database_url(ctx)`` reads the settings as the service does."""

    @click.group("campaign")
    @click.pass_context
    def campaign(ctx: click.Context) -> None:
        """Marketing campaigns: list, inspect, send, pause, resume, cancel, report."""
        ctx.ensure_object(dict)
        ctx.obj["campaign_database_url"] = database_url

    @campaign.command("list")
    @click.option("--json", "as_json", is_flag=True, help="One JSON document.")
    @click.pass_context
    def list_(ctx: click.Context, as_json: bool) -> None:
        """Campaigns, newest first."""
        items = _run(ctx, store.list_campaigns)
        _print(items, as_json, lambda rows: "\n".join(f"{c['id']}  {c['status']:<9}  {c['name']}" for c in rows) or "no campaigns")

    @campaign.command()
    @click.argument("campaign_id")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def show(ctx: click.Context, campaign_id: str, as_json: bool) -> None:
        """One campaign as stored."""
        data = _run(ctx, lambda db: store.get_campaign(db, _id(campaign_id)))
        _print(data, as_json, lambda c: "\n".join(f"{k}: {json.dumps(v, ensure_ascii=False, default=str)}" for k, v in c.items()))

    @campaign.command()
    @click.argument("campaign_id")
    @click.option("--materialize", is_flag=True,
                  help="Write its recipients into the outbox now, in this process (otherwise the serving process's scheduler does).")
    @click.pass_context
    def send(ctx: click.Context, campaign_id: str, materialize: bool) -> None:
        """Send a draft now, or start its schedule."""
        async def go(db: Database) -> dict[str, Any]:
            data = await service.send(db, _id(campaign_id))
            if materialize and data["status"] == "running":
                await service.tick(db)
            return data

        data = _run(ctx, go)
        click.echo(f"{data['id']}: {data['status']}" + (f", next firing {data['next_fire_at']}" if data.get("next_fire_at") else ""))

    def _action(name: str) -> None:
        @campaign.command(name, help=f"{name.title()} a campaign.")
        @click.argument("campaign_id")
        @click.pass_context
        def act(ctx: click.Context, campaign_id: str) -> None:
            data = _run(ctx, lambda db: service.change(db, _id(campaign_id), name))
            click.echo(f"{data['id']}: {data['status']}")

    for action in ("pause", "resume", "cancel"):
        _action(action)

    @campaign.command()
    @click.argument("campaign_id")
    @click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text")
    @click.pass_context
    def report(ctx: click.Context, campaign_id: str, fmt: str) -> None:
        """What a campaign did: targeted, skipped by reason, sent, failed, replied, converted, revenue, cost."""
        data = _run(ctx, lambda db: service.report(db, _id(campaign_id)))
        if fmt == "json":
            _print(data, True, str)
        elif fmt == "csv":
            writer = csv.writer(sys.stdout)
            writer.writerow(service.REPORT_CSV_FIELDS)
            writer.writerows(service.report_csv_rows(data))
        else:
            skipped = ", ".join(f"{k} {v}" for k, v in data["skipped"].items() if v) or "none"
            click.echo(f"{data['name']} ({data['status']}): targeted {data['targeted']}, sent {data['sent']}, failed {data['failed']}, "
                       f"queued {data['queued']}, skipped: {skipped}; replied {data['replied']}, converted {data['converted']}, "
                       f"revenue {data['revenue']:.2f}, cost {data['cost']:.2f}")
            if "enrolments" in data:
                click.echo("enrolments: " + ", ".join(f"{k} {v}" for k, v in data["enrolments"].items()))
                for step in data["steps"]:
                    click.echo(f"  step {step['step']} (after {step['delay_seconds']:g} s): sent {step['sent']}, failed {step['failed']}, "
                               f"queued {step['queued']}, skipped {sum(step['skipped'].values())}, replied {step['replied']}, "
                               f"converted {step['converted']}")

    @campaign.command()
    @click.option("--limit", type=click.IntRange(1, 100000), default=1000)
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def reconfirm(ctx: click.Context, limit: int, as_json: bool) -> None:
        """Marketing consents older than two years, to ask again (Korea requires it)."""
        items = _run(ctx, lambda db: due_for_reconfirmation(db, limit=limit))
        _print(items, as_json, lambda rows: "\n".join(f"{r['customer_id']}  {r['channel']:<10} {r['purpose']:<16} {r['granted_at']}"
                                                      for r in rows) or "none due")

    return campaign
