"""Logging: one line per event, JSON on request, and never a secret.

Secrets are scrubbed twice: values the settings mark secret are replaced
wherever they appear, and anything shaped like a bearer token, a Telegram
bot token or a Slack token is masked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

PATTERNS = [
    re.compile(r"(?i)(?P<keep>bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?P<keep>)\b\d{6,12}:[A-Za-z0-9_-]{30,}\b"),  # Telegram bot token
    re.compile(r"(?P<keep>)\bx(?:oxb|oxp|oxa|oxe|app)-[A-Za-z0-9-]{10,}\b"),  # Slack tokens
    re.compile(r"(?P<keep>)\bdgl_[A-Za-z0-9_-]{20,}\b"),  # Dangol API tokens
    re.compile(r"(?i)(?P<keep>(?:password|secret|token)\"?\s*[:=]\s*\"?)[^\s\",]+"),
]


class Redactor(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        for pattern in PATTERNS:
            text = pattern.sub(r"\g<keep>[redacted]", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = self.scrub(message)
        record.args = ()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        return json.dumps(entry, ensure_ascii=False)


class LineFormatter(logging.Formatter):
    """Plain text that stays one line: a traceback's newlines are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\\n")


#: The arguments of the last ``configure``, for child processes to log the same way.
_configured: dict[str, Any] | None = None


def configure(level: str = "info", *, json_lines: bool = False, secrets: Iterable[str] = ()) -> None:
    global _configured
    _configured = {"level": level, "json_lines": json_lines, "secrets": tuple(secrets)}
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else LineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redactor(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def current() -> dict[str, Any] | None:
    """How this process was configured (``configure``'s keyword arguments), or None."""
    return _configured
