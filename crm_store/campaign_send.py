"""The last check of a campaign row, in the transaction that claims it for sending.

Consent can be withdrawn after a run was materialized (a customer writes
수신거부 while the broadcast drains), and a backlog can drag a row into the
customer's quiet hours.  So each claimed campaign row is checked again:
without consent it ends ``skipped`` with the reason and is not sent; in a
quiet window it goes back to wait for the window's end.  Rows carry what
the check needs in their payload's ``campaign`` key (purpose, time zone,
quiet windows), which no channel reads.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection

from crm_store.consents import MARKETING, load_standing, standing
from crm_store.models import OutboxRow
from crm_store.statements import Executemany

outbox_t = OutboxRow.__table__
_o = outbox_t.c

SKIP = Executemany(update(outbox_t).where(_o.id == bindparam("b_id"))
                   .values(status="skipped", claimed_until=None, last_error=bindparam("b_reason")))
WAIT = Executemany(update(outbox_t).where(_o.id == bindparam("b_id"))
                   .values(status="campaign", claimed_until=None, attempts=_o.attempts - 1, next_attempt_at=bindparam("b_next")))


def quiet_until(at: dt.datetime, tz_name: str, windows: list[list[str]]) -> dt.datetime | None:
    """The end of the quiet window ``at`` falls in (local ``[start, end)``, across midnight when end < start), or None."""
    try:
        tz = zoneinfo.ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    latest: dt.datetime | None = None
    local = at.astimezone(tz)
    for start_s, end_s in windows:
        start, end = dt.time.fromisoformat(start_s), dt.time.fromisoformat(end_s)
        now_t = local.time()
        inside = (start <= now_t < end) if start < end else (now_t >= start or now_t < end)
        if not inside:
            continue
        day = local.date() if (start < end or now_t < end) else local.date() + dt.timedelta(days=1)
        until = dt.datetime.combine(day, end, tzinfo=tz).astimezone(dt.UTC)
        latest = until if latest is None or until > latest else latest
    return latest


def screen(conn: Connection, claimed: list[Any], now: dt.datetime) -> list[Any]:
    """Claimed rows (id, channel, recipient, payload, ...) less the campaign rows that must not go out now."""
    campaign_rows = [row for row in claimed if "campaign" in row[3]]
    if not campaign_rows:
        return claimed
    marketing_ids = [row[6] for row in campaign_rows if row[3]["campaign"].get("purpose") == MARKETING and row[6] is not None]
    records = load_standing(conn, list(set(marketing_ids)), (MARKETING,)) if marketing_ids else {}
    skip: list[dict[str, Any]] = []
    wait: list[dict[str, Any]] = []
    dropped: set[uuid.UUID] = set()
    for row in campaign_rows:
        info = row[3]["campaign"]
        if info.get("purpose") == MARKETING:
            state = standing(records.get((row[6], MARKETING), []), row[1])
            if state is not True:
                skip.append({"b_id": row[0], "b_reason": "opted_out" if state is False else "no_consent"})
                dropped.add(row[0])
                continue
        if info.get("quiet") and (until := quiet_until(now, info.get("tz") or "UTC", info["quiet"])) is not None:
            wait.append({"b_id": row[0], "b_next": until})
            dropped.add(row[0])
    if skip:
        SKIP(conn, sorted(skip, key=lambda r: r["b_id"]))
    if wait:
        WAIT(conn, sorted(wait, key=lambda r: r["b_id"]))
    return [row for row in claimed if row[0] not in dropped]
