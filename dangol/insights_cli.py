"""``dangol import``, ``dangol export`` and ``dangol insights``: events in, profiles out, models on files."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from pydantic import ValidationError

from bot.api.schemas import CustomerFields, check_tags
from bot.config import CoreSettings
from bot.insights_export import write_customers_csv
from crm_store.customer_import import FIELDS, CustomerBatchResult, CustomerIn, upsert_customers
from crm_store.database import Database
from crm_store.errors import NotFound
from crm_store.segments import get_segment
from crm_store.events import BatchResult, EventIn, store_events
from insights.analyst import clv_report, recommend_report
from insights.models import FitError
from insights.scoring import score_customers
from insights.sources import SourceError, open_text, read_any

T = TypeVar("T")
R = TypeVar("R")
BATCH = 2000
#: Rejected rows listed by line number per reason before "and N more".
SHOWN_LINES = 5


#: How the ``dangol`` group loads its settings from a click context (given by register()).
_load_settings: Callable[[click.Context], CoreSettings] | None = None


def register(group: click.Group, load_settings: Callable[[click.Context], CoreSettings]) -> None:
    """Add ``import``, ``export`` and ``insights`` to ``group``, loading settings as it does."""
    global _load_settings
    _load_settings = load_settings
    for command in (import_group, export_group, insights_group):
        group.add_command(command)


def _database(ctx: click.Context) -> Database:
    assert _load_settings is not None, "register() first"
    return Database(_load_settings(ctx).database_url)


def _run(ctx: click.Context, work: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        db = _database(ctx)
        try:
            if db.is_sqlite:
                await db.upgrade()
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _report_rejected(rejected: Sequence[tuple[int, str]]) -> None:
    if not rejected:
        return
    by_reason: dict[str, list[int]] = {}
    for line, reason in rejected:
        by_reason.setdefault(reason, []).append(line)
    click.echo(f"rejected {len(rejected)} rows:", err=True)
    for reason, lines in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(str(n) for n in lines[:SHOWN_LINES]) + (f" and {len(lines) - SHOWN_LINES} more" if len(lines) > SHOWN_LINES else "")
        click.echo(f"  {len(lines)} x {reason} (line {shown})", err=True)


async def _store_in_batches(db: Database, label: str, rows: Sequence[tuple[int, T]], store: Callable[[Any, list[T]], R],
                            rejected: list[tuple[int, str]], fold: Callable[[R], None]) -> None:
    """Store parsed rows a batch per transaction with a progress bar; ``fold`` adds each batch's counts, and the
    rows a batch refused join ``rejected`` under their line numbers (every store result has ``rejected``)."""
    with click.progressbar(length=len(rows), label=label, file=sys.stderr) as bar:
        for part in _batches(rows, BATCH):
            result = await db.run_in_transaction(store, [r for _, r in part])
            fold(result)
            rejected.extend((part[i][0], why) for i, why in result.rejected.items())  # type: ignore[attr-defined]
            bar.update(len(part))


def _batches(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@click.group("import")
def import_group() -> None:
    """Bring customers and their events in from files (idempotent: a second import changes nothing)."""


@import_group.command("events")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--timezone", "zone", default="UTC", show_default=True, help="For times without an offset (Online Retail is read as UK time).")
@click.pass_context
def import_events(ctx: click.Context, path: str, zone: str) -> None:
    """Import purchases, returns, sign-ups, page views and custom events.

    PATH is a CSV with a header (event_id, customer_id, type, occurred_at,
    amount, currency, items as JSON, any other column kept as a property),
    CDNOW's text format, or Online Retail's invoice lines (gzip or not).
    """
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.ClickException(f"--timezone: {zone} is not an IANA time zone such as Asia/Seoul") from None
    events: list[tuple[int, EventIn]] = []
    rejected: list[tuple[int, str]] = []
    try:
        for line, parsed in read_any(path, tz):
            if isinstance(parsed, str):
                rejected.append((line, parsed))
            else:
                events.append((line, parsed))
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not UTF-8 text") from None

    async def work(db: Database) -> BatchResult:
        total = BatchResult()
        await _store_in_batches(db, "importing events", events, store_events, rejected, total.add)
        return total

    total = _run(ctx, work)
    click.echo(f"{total.inserted} events stored, {total.duplicates} already there, {total.customers_created} new customers")
    _report_rejected(sorted(rejected))
    if rejected and not events:
        raise click.ClickException("no row of the file could be imported")


CUSTOMER_KEYS = ("external_id", "customer_id", "id")


def parse_customer(row: dict[str, str], default_region: str | None = None) -> CustomerIn:
    """A CSV row as a profile: the known fields checked as the API checks them (a national phone number
    read in ``default_region``, as the API and the bot read it), other columns kept as attributes."""
    key = next((row[k].strip() for k in CUSTOMER_KEYS if (row.get(k) or "").strip()), None)
    fields = {k: row[k].strip() for k in FIELDS if (row.get(k) or "").strip()}
    if key is None and "email" not in fields:
        raise ValueError("needs an external_id (or customer_id) or an email")
    try:
        checked = CustomerFields.model_validate(fields, context={"default_region": default_region}).model_dump(exclude_none=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}") from None
    tags = [t.strip() for t in (row.get("tags") or "").replace(",", ";").split(";") if t.strip()]
    check_tags(tags)
    attributes = {k: v for k, v in row.items() if k and k not in FIELDS and k not in CUSTOMER_KEYS and k != "tags" and v not in (None, "")}
    return CustomerIn(key=key[:255] if key else None, fields=checked, attributes=attributes, tags=tags)


@import_group.command("customers")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def import_customers(ctx: click.Context, path: str) -> None:
    """Create or update customers from a CSV (external_id, name, email, phone, ..., tags; other columns become attributes)."""
    assert _load_settings is not None, "register() first"
    default_region = _load_settings(ctx).default_region
    rows: list[tuple[int, CustomerIn]] = []
    rejected: list[tuple[int, str]] = []
    try:
        with open_text(path) as stream:
            reader = csv.DictReader(stream)
            if not reader.fieldnames or not ({"email", *CUSTOMER_KEYS} & set(reader.fieldnames)):
                raise click.ClickException(f"{path}: the header needs an external_id (or customer_id) or email column")
            for number, row in enumerate(reader, 2):
                if None in row:
                    rejected.append((number, "more fields than the header has"))
                    continue
                try:
                    rows.append((number, parse_customer(row, default_region)))
                except ValueError as exc:
                    rejected.append((number, str(exc)))
    except (SourceError, UnicodeDecodeError, csv.Error) as exc:
        raise click.ClickException(f"{path}: {exc}") from None

    async def work(db: Database) -> CustomerBatchResult:
        total = CustomerBatchResult()

        def fold(result: CustomerBatchResult) -> None:
            total.created += result.created
            total.updated += result.updated
            total.unchanged += result.unchanged

        await _store_in_batches(db, "importing customers", rows, upsert_customers, rejected, fold)
        return total

    total = _run(ctx, work)
    click.echo(f"{total.created} customers created, {total.updated} updated, {total.unchanged} unchanged")
    _report_rejected(sorted(rejected))
    if rejected and not rows:
        raise click.ClickException("no row of the file could be imported")


@click.group("export")
def export_group() -> None:
    """Write customer profiles with their scores to files."""


@export_group.command("customers")
@click.option("--segment", "segment", default=None, help="Only this segment's members (its id), as they are now.")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.pass_context
def export_customers(ctx: click.Context, segment: str | None, path: str) -> None:
    """Every customer's (or a segment's members') profile, tags, attributes (JSON) and scores as CSV (UTF-8)."""
    segment_id = None
    if segment is not None:
        try:
            segment_id = uuid.UUID(segment)
        except ValueError:
            raise click.BadParameter(f"{segment!r} is not a segment id", param_hint="--segment") from None

    async def work(db: Any) -> int:
        if segment_id is not None:
            await get_segment(db, segment_id)  # no such segment: fail before the file is created
        with open(path, "w", encoding="utf-8", newline="") as out:
            return await write_customers_csv(db, out, segment_id)

    try:
        count = _run(ctx, work)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{count} customers written to {path}")


def _day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date such as 1997-09-30", param_hint=option) from None


@click.group("insights")
def insights_group() -> None:
    """Customer value, prediction, segments and recommendations."""


@insights_group.command("clv")
@click.option("--transactions", "path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CDNOW text, Online Retail invoice lines, or CSV with customer, date, amount.")
@click.option("--calibration-end", required=True, help="Last day of the calibration period (YYYY-MM-DD).")
@click.option("--holdout-weeks", type=click.IntRange(0, 520), default=None, help="Weeks after calibration to check forecasts against (default: to the file's end).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def clv_command(path: str, calibration_end: str, holdout_weeks: int | None, as_json: bool) -> None:
    """Fit BG/NBD and Gamma-Gamma on a file and check forecasts on the period after calibration."""
    end = _day(calibration_end, "--calibration-end")
    try:
        report = clv_report(path, end, holdout_weeks)
    except (SourceError, FitError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report))
        return
    bg, gg, hold = report["bgnbd"], report["gamma_gamma"], report["holdout"]
    click.echo(f"customers {report['customers']}, repeat buyers {report['repeat_buyers']}")
    click.echo(f"BG/NBD      r={bg['r']:.4f} alpha={bg['alpha']:.4f} a={bg['a']:.4f} b={bg['b']:.4f} (log-likelihood {bg['log_likelihood']:.1f})")
    click.echo(f"Gamma-Gamma p={gg['p']:.4f} q={gg['q']:.4f} gamma={gg['gamma']:.4f}")
    if hold["weeks"]:
        click.echo(f"holdout {hold['weeks']} weeks: predicted {hold['predicted']:.1f} purchases, actual {hold['actual']:.0f} "
                   f"(error {hold['total_error'] * 100:+.1f}%), per-customer correlation {hold['correlation']:.3f}")
    click.echo(f"mean CLV {report['mean_clv']:.2f} ({report['clv_months']} months, {report['monthly_discount'] * 100:.1f}% a month)")


@insights_group.command("recommend")
@click.option("--transactions", "path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--split", required=True, help="Train on purchases before this day (YYYY-MM-DD), test on the rest.")
@click.option("--k", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def recommend_command(path: str, split: str, k: int, as_json: bool) -> None:
    """Offline evaluation: hit rate@k and recall@k on items new to each customer, against the most popular items."""
    day = _day(split, "--split")
    try:
        report = recommend_report(path, day, k)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{report['customers']} customers bought on both sides of {split}; k={k}")
    for name in ("model", "popular"):
        click.echo(f"{name:8s} hit rate@{k} {report[name]['hit_rate']:.3f}  recall@{k} {report[name]['recall']:.3f}")


@insights_group.command("score")
@click.option("--as-of", "as_of", default=None, help="Score as of this day (YYYY-MM-DD, end of day UTC); default now.")
@click.option("--no-recommendations", is_flag=True, help="Skip the recommendations.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def score_command(ctx: click.Context, as_of: str | None, no_recommendations: bool, as_json: bool) -> None:
    """Recompute every customer's scores (RFM, prediction, CLV, clusters, lead score) and recommendations."""
    when = None
    if as_of:
        day = _day(as_of, "--as-of")
        when = dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC)
    run = _run(ctx, lambda db: score_customers(db, when, recommendations=0 if no_recommendations else 10))
    if as_json:
        click.echo(json.dumps(run.as_json(), default=str))
        return
    click.echo(f"scored {run.customers} customers ({run.buyers} buyers), {run.recommendations} recommendations, "
               f"{run.churned} moved to churned")
    for note in run.notes:
        click.echo(note)

