"""Customer profiles with scores as CSV, for ``dangol export customers`` and the console's download."""

from __future__ import annotations

import csv
import json
from typing import IO, Any

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


async def write_customers_csv(db: Any, out: IO[str]) -> int:
    """Stream every customer to ``out``; returns how many were written."""
    def write(conn: Any) -> int:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        count = 0
        for row in export_customers(conn):
            row["attributes"] = json.dumps(row["attributes"] or {}, ensure_ascii=False, sort_keys=True)
            writer.writerow([_cell(row[h]) for h in HEADER])
            count += 1
        return count

    async with db.read() as conn:
        return int(await conn.run_sync(write))
