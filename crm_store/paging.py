"""Cursor paging: lists ordered by time-ordered ids (UUIDv7) continue after the last id a page gave out."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


#: What :func:`encode_cursor` gives out: 16 bytes in URL-safe base64 without padding.
CURSOR = re.compile(r"^[A-Za-z0-9_\-]{22}$")


def encode_cursor(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise ValueError("cursor: is not one this API gave out") from None
