"""Segment sizes over time (migration 0007): each segment's member count, one row per segment and UTC day.

A rule segment's members change as customers buy, write and are scored
again, and nothing else remembers how many there were yesterday.  Every
scoring run (scheduled or on demand) records each segment's count for the
day it runs; a second run on the same day replaces that day's count, so the
history holds the day's last state.  The dashboards read it back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from crm_store.campaign_tables import Segment
from crm_store.columns import UTCDateTime, utcnow
from crm_store.models import Base, Customer
from crm_store.segments import members_condition

customers_t = Customer.__table__
segments_t = Segment.__table__


class SegmentSize(Base):
    __tablename__ = "segment_sizes"

    segment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    customers: Mapped[int] = mapped_column(Integer, nullable=False)
    counted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


sizes_t = SegmentSize.__table__


def record_sizes(conn: Connection, now: dt.datetime | None = None) -> int:
    """Count every segment now and keep it as the count of today (UTC); how many segments were counted."""
    now = now or utcnow()
    rows: list[dict[str, Any]] = []
    for seg in conn.execute(select(segments_t.c.id, segments_t.c.kind, segments_t.c.rule)).all():
        segment = {"id": str(seg.id), "kind": seg.kind, "rule": seg.rule}
        try:
            condition = members_condition(segment, now)
        except ValueError:  # a rule saved before a field it names was withdrawn: nothing to count
            continue
        n = conn.execute(select(func.count()).select_from(customers_t).where(condition)).scalar_one()
        rows.append({"segment_id": seg.id, "day": now.astimezone(dt.UTC).date(), "customers": int(n), "counted_at": now})
    if rows:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(sizes_t)
        conn.execute(stmt.on_conflict_do_update(index_elements=["segment_id", "day"],
                                                set_={"customers": stmt.excluded.customers, "counted_at": stmt.excluded.counted_at}),
                     rows)
    return len(rows)


def sizes_over_time(conn: Connection, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    """Per recorded day and segment: its member count (the dashboard's segment sizes over time)."""
    stmt = (select(sizes_t.c.day, sizes_t.c.segment_id, segments_t.c.name, sizes_t.c.customers)
            .join(segments_t, segments_t.c.id == sizes_t.c.segment_id)
            .where(sizes_t.c.day >= since.astimezone(dt.UTC).date(), sizes_t.c.day < until.astimezone(dt.UTC).date() + dt.timedelta(days=1))
            .order_by(sizes_t.c.day, segments_t.c.name))
    return [{"day": r.day.isoformat(), "segment_id": str(r.segment_id), "segment": r.name, "customers": int(r.customers)}
            for r in conn.execute(stmt)]
