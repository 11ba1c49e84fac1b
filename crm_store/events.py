"""Customer events in bulk: purchases, returns, sign-ups, page views and custom types.

Imports and the events API hand over batches of thousands of events; each
batch is one transaction of a few statements (a lookup of customers by their
external key, one insert of the customers that are new, one bulk insert of
the events: COPY on PostgreSQL, one executemany on SQLite, crm_store/bulk.py),
never one ORM object per row: Online Retail's 26,000 invoices go in within
seconds.  An event with an ``external_id`` is stored once, whatever
the number of times it is sent (``ON CONFLICT DO NOTHING`` on the unique
column), so a second import of the same file changes nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crm_store import sequences
from crm_store.bulk import insert_rows
from crm_store.columns import new_id, utcnow
from crm_store.insight_tables import CatalogueItem, CustomerKey
from crm_store.models import Customer, CustomerEvent

customers_t = Customer.__table__
events_t = CustomerEvent.__table__
keys_t = CustomerKey.__table__
catalogue_t = CatalogueItem.__table__

EVENT_COLUMNS = ("id", "customer_id", "type", "properties", "amount", "currency", "occurred_at", "created_at", "external_id", "items")
#: Rows per statement parameter list: under SQLite's limit of 32,766 bound values.
CHUNK = 5000
#: Stages an event moves a customer out of, and where to (never backwards: a
#: customer who bought stays a customer when they sign up again).
STAGE_MOVES = {"purchase": ("customer", ("lead", "prospect", "churned")), "signup": ("prospect", ("lead",))}


@dataclass(slots=True)
class EventIn:
    """One event as an importer or the API hands it over (already checked)."""

    type: str
    occurred_at: dt.datetime
    customer_key: str | None = None
    customer_id: uuid.UUID | None = None
    external_id: str | None = None
    amount: float | None = None
    currency: str | None = None
    items: list[dict[str, Any]] | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    #: attributes given to the customer when this event creates it (e.g. country)
    customer_attributes: dict[str, Any] | None = None


@dataclass(slots=True)
class BatchResult:
    inserted: int = 0
    duplicates: int = 0
    customers_created: int = 0
    #: index in the batch -> why it was not stored
    rejected: dict[int, str] = field(default_factory=dict)

    def add(self, other: BatchResult, offset: int = 0) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.customers_created += other.customers_created
        self.rejected.update({offset + i: why for i, why in other.rejected.items()})


def insert_ignoring(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, skipping those whose ``keys`` already exist (a concurrent import's)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for start in range(0, len(rows), CHUNK):
        conn.execute(dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys)), rows[start:start + CHUNK])


def chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def customers_by_key(conn: Connection, keys: Iterable[str]) -> dict[str, uuid.UUID]:
    found: dict[str, uuid.UUID] = {}
    for part in chunks(sorted(set(keys))):
        found.update({r.external_id: r.customer_id for r in conn.execute(
            select(keys_t.c.external_id, keys_t.c.customer_id).where(keys_t.c.external_id.in_(part)))})
    return found


def ensure_customers(conn: Connection, wanted: dict[str, dict[str, Any]], stage: str = "lead") -> tuple[dict[str, uuid.UUID], int]:
    """The customer of each external key, creating those that are new with the given attributes.

    Two imports creating the same key at once: both insert a customer, one key
    row wins, and the loser's customer (never referenced) is deleted again.
    """
    found = customers_by_key(conn, wanted)
    missing = [k for k in wanted if k not in found]
    if not missing:
        return found, 0
    now = utcnow()
    made = {k: new_id() for k in missing}
    conn.execute(insert(customers_t), [
        {"id": made[k], "lifecycle_stage": stage, "attributes": wanted[k] or {}, "created_at": now, "updated_at": now} for k in missing])
    insert_ignoring(conn, keys_t, [{"external_id": k, "customer_id": made[k]} for k in missing], ["external_id"])
    found.update(customers_by_key(conn, missing))
    lost = [made[k] for k in missing if found[k] != made[k]]
    for part in chunks(lost):
        conn.execute(delete(customers_t).where(customers_t.c.id.in_(part)))
    return found, len(missing) - len(lost)


def existing_customer_ids(conn: Connection, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    present: set[uuid.UUID] = set()
    for part in chunks(sorted(set(ids))):
        present.update(r[0] for r in conn.execute(select(customers_t.c.id).where(customers_t.c.id.in_(part))))
    return present


def _existing_event_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    present: set[str] = set()
    for part in chunks(sorted(set(ids))):
        present.update(r[0] for r in conn.execute(select(events_t.c.external_id).where(events_t.c.external_id.in_(part))))
    return present


def store_events(conn: Connection, events: Sequence[EventIn]) -> BatchResult:
    """Store one batch in the caller's transaction; see the module docstring."""
    result = BatchResult()
    wanted: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.customer_id is None and e.customer_key is not None and e.customer_key not in wanted:
            wanted[e.customer_key] = e.customer_attributes or {}
    by_key, result.customers_created = ensure_customers(conn, wanted)
    known_ids = existing_customer_ids(conn, [e.customer_id for e in events if e.customer_id is not None])
    seen = _existing_event_ids(conn, [e.external_id for e in events if e.external_id])
    now = utcnow()
    rows: list[tuple[Any, ...]] = []
    moves: dict[str, set[uuid.UUID]] = {}
    names: dict[str, str | None] = {}
    for index, e in enumerate(events):
        customer = e.customer_id if e.customer_id is not None else by_key.get(e.customer_key or "")
        if customer is None or (e.customer_id is not None and customer not in known_ids):
            result.rejected[index] = f"customer {e.customer_id or e.customer_key} does not exist"
            continue
        if e.external_id:
            if e.external_id in seen:
                result.duplicates += 1
                continue
            seen.add(e.external_id)
        rows.append((new_id(), customer, e.type, e.properties, e.amount, e.currency, e.occurred_at, now, e.external_id, e.items))
        if e.type in STAGE_MOVES:
            moves.setdefault(e.type, set()).add(customer)
        for line in e.items or ():
            if not line.get("fee") and (line["sku"] not in names or not names[line["sku"]]):
                names[line["sku"]] = (line.get("name") or None)
    insert_rows(conn, events_t, EVENT_COLUMNS, rows, skip_conflicts_on=["external_id"])
    result.inserted = len(rows)
    insert_ignoring(conn, catalogue_t, [{"sku": sku, "name": name} for sku, name in names.items()], ["sku"])
    for kind, customers in moves.items():
        stage, from_stages = STAGE_MOVES[kind]
        for part in chunks(sorted(customers)):
            conn.execute(update(customers_t).where(customers_t.c.id.in_(part), customers_t.c.lifecycle_stage.in_(from_stages))
                         .values(lifecycle_stage=stage, updated_at=now))
    # triggered campaigns: enrolment and goals in the events' own transaction
    sequences.on_events(conn, [(row[1], row[2], row[6]) for row in rows], now)  # customer, type, occurred_at
    return result


def count_events(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(events_t)).scalar_one())


def check_items(items: Any) -> list[dict[str, Any]]:
    """A purchase's lines: a list of objects with a sku, and a numeric quantity and price when given;
    ``"fee": true`` marks a line that is not a product (postage, a charge)."""
    if not isinstance(items, list) or len(items) > 1000:
        raise ValueError("items must be a list of at most 1000 objects")
    out = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not str(item.get("sku", "")).strip():
            raise ValueError(f"items[{n}] must be an object with a sku")
        for key in ("quantity", "price"):
            if key in item and (not isinstance(item[key], int | float) or isinstance(item[key], bool) or not math.isfinite(item[key])):
                raise ValueError(f"items[{n}].{key} must be a number")
        if "fee" in item and not isinstance(item["fee"], bool):
            raise ValueError(f"items[{n}].fee must be true or false")
        line = {"sku": str(item["sku"])[:64], "name": str(item.get("name") or "")[:255],
                "quantity": item.get("quantity", 1), "price": item.get("price")}
        if item.get("fee"):
            line["fee"] = True
        out.append(line)
    return out
