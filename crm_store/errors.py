"""What the store's functions raise when a request cannot be done as asked; the API turns them into 404 and 409."""

from __future__ import annotations


class NotFound(Exception):
    """No such record; ``field`` names what pointed at it."""

    def __init__(self, what: str, field: str | None = None) -> None:
        super().__init__(what)
        self.field = field


class Conflict(Exception):
    """The record exists but its state refuses the change (a resolved conversation, a taken e-mail ...)."""

    def __init__(self, what: str, field: str | None = None) -> None:
        super().__init__(what)
        self.field = field
