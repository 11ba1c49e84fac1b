"""Customer profiles in bulk, matched by external key (or e-mail) and written only where they changed.

A second import of the same file finds every profile equal and writes
nothing, not even ``updated_at``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select, update

from crm_store.columns import new_id, utcnow
from crm_store.events import chunks, customers_by_key, insert_ignoring
from crm_store.insight_tables import CustomerKey
from crm_store.models import Customer, CustomerTag

customers_t = Customer.__table__
keys_t = CustomerKey.__table__
tags_t = CustomerTag.__table__

FIELDS = ("name", "first_name", "last_name", "email", "phone", "locale", "timezone", "lifecycle_stage")


@dataclass(slots=True)
class CustomerIn:
    key: str | None
    fields: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CustomerBatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: dict[int, str] = field(default_factory=dict)


def _by_contact(conn: Connection, column: str, values: Sequence[str]) -> dict[str, uuid.UUID]:
    found: dict[str, uuid.UUID] = {}
    for part in chunks(sorted(set(values))):
        found.update({r[0]: r[1] for r in conn.execute(
            select(customers_t.c[column], customers_t.c.id).where(customers_t.c[column].in_(part)))})
    return found


def upsert_customers(conn: Connection, rows: Sequence[CustomerIn]) -> CustomerBatchResult:
    """Create or update one batch of profiles in the caller's transaction."""
    result = CustomerBatchResult()
    by_key = customers_by_key(conn, [r.key for r in rows if r.key])
    emails = _by_contact(conn, "email", [r.fields["email"] for r in rows if r.fields.get("email")])
    phones = _by_contact(conn, "phone", [r.fields["phone"] for r in rows if r.fields.get("phone")])
    targets: list[uuid.UUID | None] = []
    created_ids: dict[int, uuid.UUID] = {}
    seen: set[str] = set()
    for index, row in enumerate(rows):
        ident = row.key or row.fields.get("email")
        if ident in seen:
            result.rejected[index] = f"the same customer ({ident}) is on an earlier row of this batch"
            targets.append(None)
            continue
        seen.add(str(ident))
        target = by_key.get(row.key) if row.key else emails.get(row.fields.get("email", ""))
        for column, taken in (("email", emails), ("phone", phones)):
            owner = taken.get(row.fields.get(column) or "")
            if owner is not None and owner != target:
                result.rejected[index] = f"{column} {row.fields[column]} belongs to another customer"
        if index in result.rejected:
            targets.append(None)
            continue
        planned = target or new_id()
        for column, taken in (("email", emails), ("phone", phones)):
            if row.fields.get(column):  # a later row of this batch may not claim it either
                taken[row.fields[column]] = planned
        targets.append(target)
        if target is None:
            created_ids[index] = planned
    current = {}
    for part in chunks([t for t in targets if t is not None]):
        current.update({r.id: r for r in conn.execute(select(customers_t).where(customers_t.c.id.in_(part)))})
    now = utcnow()
    new_rows: list[dict[str, Any]] = []
    new_keys: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    for index, (row, target) in enumerate(zip(rows, targets, strict=True)):
        if index in result.rejected:
            continue
        if target is None:
            target = created_ids[index]
            values = {k: v for k, v in row.fields.items() if v is not None}
            values.setdefault("lifecycle_stage", "lead")
            new_rows.append({"id": target, "attributes": row.attributes, "created_at": now, "updated_at": now,
                             **{k: values.get(k) for k in FIELDS}})
            if row.key:
                new_keys.append({"external_id": row.key, "customer_id": target})
            result.created += 1
        else:
            old = current[target]
            changes = {k: v for k, v in row.fields.items() if v is not None and getattr(old, k) != v}
            merged = {**(old.attributes or {}), **row.attributes}
            if merged != (old.attributes or {}):
                changes["attributes"] = merged
            if changes:
                conn.execute(update(customers_t).where(customers_t.c.id == target).values(**changes, updated_at=now))
                result.updated += 1
            else:
                result.unchanged += 1
        tag_rows.extend({"customer_id": target, "tag": t} for t in sorted(set(row.tags)))
    if new_rows:
        conn.execute(insert(customers_t), new_rows)
    insert_ignoring(conn, keys_t, new_keys, ["external_id"])
    insert_ignoring(conn, tags_t, tag_rows, ["customer_id", "tag"])
    return result
