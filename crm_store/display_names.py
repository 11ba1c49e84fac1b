"""One name to show for every customer, so no list is a column of "Anonymous visitor".

The profile's name, else the e-mail, the phone number, the platform's
username, and last "Visitor #" with the end of the customer's id (ids are
UUIDv7, whose first characters are a timestamp shared by customers made
around the same time; the end is random).
"""

from __future__ import annotations

import uuid
from typing import Any


def display_name(customer_id: uuid.UUID | str, *, name: str | None = None, first_name: str | None = None,
                 last_name: str | None = None, email: str | None = None, phone: str | None = None,
                 attributes: dict[str, Any] | None = None) -> str:
    full = " ".join(part for part in (first_name, last_name) if part)
    username = (attributes or {}).get("username")
    for candidate in (name, full, email, phone, f"@{username}" if isinstance(username, str) and username else None):
        if candidate and str(candidate).strip():
            return str(candidate).strip()
    return f"Visitor #{str(customer_id).replace('-', '')[-6:]}"


def display_name_of(row: Any, customer_id: uuid.UUID | str | None = None) -> str:
    """:func:`display_name` of a customers row (or a row holding its columns under the same names)."""
    return display_name(customer_id if customer_id is not None else row.id, name=row.name, first_name=row.first_name,
                        last_name=row.last_name, email=row.email, phone=row.phone, attributes=row.attributes)
