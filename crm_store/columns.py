"""Column types and ids that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")

_lock = threading.Lock()
_last_ms = 0
_seq = 0


_RANDOM_BATCH = 10 * 1024
_random = b""
_random_at = 0


def _random_bits() -> int:
    """80 random bits from the system's generator, read 1,024 ids' worth at a time (under ``_lock``).

    A system call an id released the GIL every time: with another thread busy (SQLite's writer) each
    took the GIL back only after that thread's switch interval, 70 µs an id measured in a campaign run."""
    global _random, _random_at
    if _random_at >= len(_random):
        _random, _random_at = os.urandom(_RANDOM_BATCH), 0
    bits = int.from_bytes(_random[_random_at:_random_at + 10], "big")
    _random_at += 10
    return bits


def _forget_random_bits() -> None:
    """A forked child must not hand out the parent's unread random bits (the same ids in the same millisecond)."""
    global _random, _random_at
    _random, _random_at = b"", 0


os.register_at_fork(after_in_child=_forget_random_bits)


def new_id() -> uuid.UUID:
    """A UUIDv7: time-ordered, so ids sort by creation and serve as cursors.

    Generated here rather than by the database so that a batch of rows can
    reference each other before one round trip is made.
    """
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _seq += 1
            if _seq > 0xFFF:
                _last_ms += 1
                _seq = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _seq = -1  # drawn below with the random bits (one system call an id)
        random = _random_bits()
        if _seq < 0:
            _seq = random >> 70  # 10 bits
        rand = random & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _seq << 64 | 0b10 << 62 | rand
    return uuid.UUID(int=value)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out; SQLite would otherwise hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
