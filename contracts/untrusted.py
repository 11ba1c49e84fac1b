"""Checks on JSON that came from outside, cheap enough for every message.

A lone surrogate (``"\\ud800"`` in JSON) is a valid JSON string but not
valid Unicode: it cannot be encoded as UTF-8, so SQLite's insert, a log
line or a reply built from it raises.  Deeply nested values make
``json.loads``, ``pickle`` (the pipe to the write child) and ``json.dumps``
(the store's JSON columns) raise ``RecursionError``.  Both are refused at
the edge, naming the field, so they never reach a batch shared with other
customers' messages.

The common case pays a few C-speed scans of the raw bytes: a body with no
surrogate escape and fewer brackets than the depth limit cannot hold
either problem, and is not walked.
"""

from __future__ import annotations

import json
import re
from typing import Any

from contracts.messages import InboundMessage

#: Deepest nesting of objects and arrays accepted from outside (a body is depth 1).
MAX_DEPTH = 32

# A surrogate code point written as a JSON escape, or as its (invalid) UTF-8
# bytes, which json.loads decodes with "surrogatepass".  Valid pairs match
# too (emoji escaped by ensure_ascii clients); the walk then tells them apart.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


class Untrusted(ValueError):
    """What is wrong with an outside value, and where (a dotted path such as ``metadata.tags.0``)."""

    def __init__(self, code: str, message: str, field: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def loads_checked(raw: bytes | str) -> Any:
    """``json.loads(raw)``, refusing invalid Unicode and nesting deeper than :data:`MAX_DEPTH` with :class:`Untrusted`.

    Raises ``ValueError`` (including ``json.JSONDecodeError``) for text that is not JSON.
    """
    data_bytes = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        data = json.loads(raw)
    except RecursionError:
        raise Untrusted("too_deep", f"JSON nests deeper than {MAX_DEPTH} levels", None) from None
    maybe_surrogate = (b"\\ud" in data_bytes or b"\\uD" in data_bytes or b"\xed" in data_bytes) and _SURROGATE.search(data_bytes)
    if maybe_surrogate or data_bytes.count(b"[") + data_bytes.count(b"{") > MAX_DEPTH:
        check_value(data)
    return data


def check_value(value: Any, field: str | None = None) -> None:
    """Raise :class:`Untrusted` naming the first string with a lone surrogate, or the first value nested too deep."""
    problem = _walk(value, field, 1)
    if problem is not None:
        raise problem


def check_text(value: str | None, field: str) -> None:
    """One string field (an id, a text): valid Unicode or :class:`Untrusted`."""
    if value is not None and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Untrusted("invalid_unicode", f"{field} holds a lone surrogate (invalid Unicode)", field) from None


def _walk(value: Any, path: str | None, depth: int) -> Untrusted | None:
    if isinstance(value, str):
        try:
            check_text(value, path or "body")
        except Untrusted as exc:
            return exc
        return None
    if isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            return Untrusted("too_deep", f"{path or 'body'} nests deeper than {MAX_DEPTH} levels", path)
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
            name = key.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(key, str) else str(key)
            child = f"{path}.{name}" if path else name
            if isinstance(key, str) and name != key:
                return Untrusted("invalid_unicode", f"{child} is a key with a lone surrogate (invalid Unicode)", child)
            problem = _walk(item, child, depth + 1)
            if problem is not None:
                return problem
    return None


def check_inbound(message: InboundMessage) -> None:
    """An inbound message built by any channel: its strings valid Unicode and its metadata shallow enough, or :class:`Untrusted`.

    Channels check their bodies as they parse them; this second look, where
    every channel's messages meet, keeps what a platform library parsed for
    us (Slack's bolt) from reaching a shared batch unchecked.
    """
    check_text(message.text, "text")
    check_text(message.sender_id, "sender")
    check_text(message.external_id, "message_id")
    check_text(message.payload, "payload")
    check_text(message.thread, "thread")
    metadata = message.metadata
    flat_ascii = all(isinstance(v, str) and v.isascii() and isinstance(k, str) and k.isascii() for k, v in metadata.items())
    if metadata and not flat_ascii:
        check_value(metadata, "metadata")  # a flat map of ASCII strings (the common case) needs no walk
