"""Start-up failures as one line an operator can act on, not a hundred lines of traceback."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def one_line(exc: BaseException) -> str:
    """The root cause of ``exc`` (SQLAlchemy wraps the driver's error, which wraps the socket's), on one line."""
    root = exc
    seen = {id(root)}
    while True:
        inner = getattr(root, "orig", None) or root.__cause__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        root = inner
    text = (str(root).strip().splitlines() or [""])[0]
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


def masked_url(url: str) -> str:
    """A database URL with its password hidden, fit for a log line."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"
