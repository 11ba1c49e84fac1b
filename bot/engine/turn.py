"""The types of a turn: what the bot looks at to decide on one message, and what it decides.

The bot's rules (:class:`bot.policy.RuleBot`) are a :data:`Decider`: a plain
synchronous function from a :class:`Turn` to a :class:`Decision`, with no
I/O, so the engine can call it inside the batch's transaction, in arrival
order, and apply what it decides in the same transaction as the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contracts.messages import Attachment, Button, InboundMessage, pickled_by_fields
from crm_store.message_batch import ConversationRecord, CustomerRecord

#: Conversation states in which a person, not the bot, answers.
HUMAN_STATES = frozenset({"pending", "open"})


@dataclass(slots=True)
class Turn:
    """Everything the bot may look at to decide on one message."""

    message: InboundMessage
    parse: dict[str, Any] | None
    customer: CustomerRecord
    conversation: ConversationRecord
    #: Set when the customer waits for a person (see bot.engine.waiting): the bot acknowledges, never answers.
    waiting: Any = None


@dataclass(slots=True)
class Reply:
    text: str | None = None
    buttons: list[Button] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Handoff:
    team: str
    priority: str = "medium"
    reason: str = "handoff"


@dataclass(slots=True)
class Decision:
    """What the bot wants done; applied in the same transaction as the message."""

    replies: list[Reply] = field(default_factory=list)
    bot_state: dict[str, Any] | None = None
    handoff: Handoff | None = None
    customer_updates: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    consents: list[tuple[str, str, bool]] = field(default_factory=list)
    add_tags: set[str] = field(default_factory=set)
    intent: str | None = None


Decider = Callable[[Turn], Decision]


@pickled_by_fields
@dataclass(slots=True)
class InboundItem:
    """One message on its way to the store, with what the NLU understood of it (None: nothing to parse)."""

    message: InboundMessage
    parse: dict[str, Any] | None = None
