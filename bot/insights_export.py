"""Customer profiles with scores as CSV, for ``dangol export customers`` and the console's download."""

from __future__ import annotations

import csv
import json
import uuid
from typing import IO, Any

from crm_store import segments
from crm_store.scores import EXPORT_FIELDS, SCORE_COLUMNS, export_customers

HEADER = (*EXPORT_FIELDS, "tags", "attributes", *SCORE_COLUMNS)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    return value


async def write_customers_csv(db: Any, out: IO[str], segment_id: uuid.UUID | None = None) -> int:
    """Stream every customer, or a segment's members as they are now, to ``out``; returns how many were written.
    ``NotFound`` (naming ``segment_id``) before anything is written when there is no such segment."""
    members = None
    if segment_id is not None:
        members = segments.members_condition(await segments.get_segment(db, segment_id))

    def write(conn: Any) -> int:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        count = 0
        for row in export_customers(conn, members=members):
            row["attributes"] = json.dumps(row["attributes"] or {}, ensure_ascii=False, sort_keys=True)
            writer.writerow([_cell(row[h]) for h in HEADER])
            count += 1
        return count

    async with db.read() as conn:
        return int(await conn.run_sync(write))
