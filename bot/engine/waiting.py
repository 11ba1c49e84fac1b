"""A customer waiting for a person is never met with silence.

While a conversation waits for a person (``pending``, or ``open`` before
anyone has answered), each customer message gets a short acknowledgement
with the expected wait from the team's SLA, at most once per
:data:`ACK_INTERVAL` (a repeated explicit request for a person is
acknowledged anyway; the bot's rules decide that, see
:meth:`bot.policy.RuleBot.decide`).  Never the bot's normal answers: a
person holds the conversation.  When the last acknowledgement went out is
kept in the conversation's ``bot_state``, written with the batch anyway.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from crm_store.message_batch import ConversationRecord

#: At most one acknowledgement per this long, however many messages the customer sends.
ACK_INTERVAL = dt.timedelta(minutes=3)
#: The bot_state key holding when the last acknowledgement was sent (ISO 8601, UTC).
STATE_KEY = "waiting_ack_at"


@dataclass(frozen=True, slots=True)
class Waiting:
    """What the bot is told of a message that arrived while the customer waits for a person."""

    #: Seconds until the team's SLA wants a first answer; None when there is no target or it has passed.
    wait_seconds: int | None
    #: An acknowledgement went out less than ACK_INTERVAL ago: only an explicit request is answered.
    recent: bool


def waiting_for(conv: ConversationRecord, now: dt.datetime) -> Waiting | None:
    """Whether the customer of ``conv`` is waiting for a person, and for how long; None if a person is talking."""
    if conv.status == "open" and conv.answered_by_person:
        return None
    last = conv.bot_state.get(STATE_KEY)
    recent = False
    if isinstance(last, str):
        try:
            recent = now - dt.datetime.fromisoformat(last) < ACK_INTERVAL
        except ValueError:
            recent = False
    due = conv.first_response_due
    wait = int((due - now).total_seconds()) if due is not None and due > now else None
    return Waiting(wait, recent)


def acknowledged(conv: ConversationRecord, now: dt.datetime) -> None:
    conv.bot_state = {**conv.bot_state, STATE_KEY: now.isoformat()}


def wait_phrase(seconds: int, lang: str) -> str:
    """``seconds`` as a rounded duration a customer reads: "about 5 minutes", "약 2시간"."""
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"약 {minutes}분" if lang == "ko" else f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = max(1, round(minutes / 60))
    return f"약 {hours}시간" if lang == "ko" else f"about {hours} hour{'s' if hours != 1 else ''}"
