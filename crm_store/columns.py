"""Column types and ids that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import struct
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


def new_ids(n: int) -> list[uuid.UUID]:
    """``n`` UUIDv7s in order, as ``n`` calls of :func:`new_id` would make them, for a fraction of the cost: one lock,
    one clock read and one read of random bits for them all (a campaign run makes an id per recipient, and
    :func:`new_id` was a fifth of planning one)."""
    global _last_ms, _seq
    if n <= 0:
        return []
    randoms = struct.unpack(f">{n}Q", os.urandom(8 * n))
    out: list[uuid.UUID] = []
    make = _uuid
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _seq = ms, randoms[0] >> 54  # 10 bits: room to count up within the millisecond
        else:
            _seq += 1
        head = (_last_ms & _MS_BITS) << 80 | _VERSION_VARIANT
        for rand in randoms:
            if _seq > 0xFFF:
                _last_ms += 1
                _seq = 0
                head = (_last_ms & _MS_BITS) << 80 | _VERSION_VARIANT
            out.append(make(head | _seq << 64 | rand & _RAND_BITS))
            _seq += 1
        _seq -= 1  # the last id's: new_id counts on from it
    return out


_MS_BITS = (1 << 48) - 1
_VERSION_VARIANT = 0x7 << 76 | 0b10 << 62
_RAND_BITS = (1 << 62) - 1


def _uuid(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` as that constructor sets itself up (its two attributes) without checking its arguments,
    which cost more than the rest of making an id: ``value`` is a 128-bit version 7 id by construction."""
    made = uuid.UUID.__new__(uuid.UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", uuid.SafeUUID.unknown)
    return made


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
