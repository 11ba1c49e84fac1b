"""The tables of the customer record, its conversations and the outbox.

Declared with the ORM for clarity; the message hot path (``inbound.py``,
``outbox.py``) issues Core statements against these same tables.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (BigInteger, Boolean, ForeignKey, Index, Integer, MetaData, Numeric, String, Text, UniqueConstraint,
                        Uuid)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_store.columns import JSONType, UTCDateTime, new_id, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

LIFECYCLE_STAGES = ("lead", "prospect", "customer", "churned")
CONVERSATION_STATUSES = ("bot", "pending", "open", "snoozed", "resolved")
PRIORITIES = ("low", "medium", "high", "urgent")
SENDER_KINDS = ("customer", "bot", "agent", "system")
ROLES = ("admin", "agent", "marketer")
OUTBOX_STATUSES = ("queued", "sending", "sent", "failed")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=new_id)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str | None] = mapped_column(String(200))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="lead", nullable=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class CustomerTag(Base):
    __tablename__ = "customer_tags"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_customer_tags_tag", "tag"),)


class ChannelIdentity(Base):
    """Who a customer is on one platform; unique per (channel, external id)."""

    __tablename__ = "channel_identities"

    id: Mapped[uuid.UUID] = _id()
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    profile: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    reachable: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[dt.datetime] = _created()

    __table_args__ = (UniqueConstraint("channel", "external_id"),)


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[uuid.UUID] = _id()
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    granted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    source: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = _created()

    __table_args__ = (UniqueConstraint("customer_id", "channel", "purpose"),)


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = _id()
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    password_must_change: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sql_text("false"), nullable=False)  # one-time (0005)


class ApiToken(Base):
    """Only a SHA-256 of each token is kept: a stolen database yields no token."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = _id()
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(100), default="cli", nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = _id()
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    thread: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="bot", nullable=False)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    team: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(16), default="medium", nullable=False)
    bot_state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    snoozed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()
    last_message_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_response_seconds: Mapped[float | None] = mapped_column(Numeric(12, 3))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolution_seconds: Mapped[float | None] = mapped_column(Numeric(12, 3))

    __table_args__ = (
        Index("ix_conversations_status_updated", "status", "updated_at"),
        # At most one unresolved conversation per customer and channel: a
        # second process racing to open one fails and retries.
        Index(
            "uq_conversations_open_per_channel",
            "customer_id",
            "channel",
            unique=True,
            sqlite_where=sql_text("status != 'resolved'"),
            postgresql_where=sql_text("status != 'resolved'"),
        ),
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = _id()
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    direction: Mapped[str] = mapped_column(String(3), nullable=False)  # in | out
    sender_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    sender_agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    text: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, nullable=False)
    buttons: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(255))
    in_reply_to: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    intent: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(16))  # outbound: queued/sent/failed
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict, nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    edited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_messages_conversation_id", "conversation_id", "id"),
        Index(
            "uq_messages_inbound_external",
            "channel",
            "external_id",
            unique=True,
            sqlite_where=sql_text("direction = 'in' AND external_id IS NOT NULL"),
            postgresql_where=sql_text("direction = 'in' AND external_id IS NOT NULL"),
        ),
        Index("ix_messages_in_reply_to", "in_reply_to"),
    )


class CustomerEvent(Base):
    __tablename__ = "customer_events"

    id: Mapped[uuid.UUID] = _id()
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    created_at: Mapped[dt.datetime] = _created()

    __table_args__ = (Index("ix_customer_events_customer_time", "customer_id", "occurred_at"),)


class OutboxRow(Base):
    """A message waiting to leave, written in the transaction that decided it."""

    __tablename__ = "outbox"

    id: Mapped[uuid.UUID] = _id()
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    recipient: Mapped[str] = mapped_column(String(255), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="queued", nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[int | None] = mapped_column(BigInteger)  # the sender's liveness lock key (0006, crm_store.outbox)
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = _created()
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    campaign_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    campaign_variant: Mapped[str | None] = mapped_column(String(32))  # campaign rows (0004): see the indexes below

    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_channel_recipient", "channel", "recipient", "status"),  # an inline channel's queued replies (0005)
        *(Index(name, *columns, unique=name.startswith("uq_"), sqlite_where=sql_text("campaign_run_id IS NOT NULL"),
                postgresql_where=sql_text("campaign_run_id IS NOT NULL"))  # one row per run and customer: a restarted run
          for name, columns in (("uq_outbox_campaign_run_customer", ("campaign_run_id", "customer_id")),  # sends no one twice;
                                ("ix_outbox_campaign_customer", ("customer_id", "created_at")))),  # frequency caps read these
    )


class AppSetting(Base):
    """Process-wide values every process must share, such as the signing key."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


# -- agents' console: routing, SLAs, audit, sessions (migration 0002) --------

AGENT_PRESENCE = ("online", "away", "offline")


class AgentSettings(Base):
    """Routing settings of an agent, kept apart so the accounts table stays as it was."""

    __tablename__ = "agent_settings"

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    presence: Mapped[str] = mapped_column(String(16), default="offline", nullable=False)
    max_chats: Mapped[int] = mapped_column(Integer, default=5, nullable=False)
    updated_at: Mapped[dt.datetime] = _created()


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[dt.datetime] = _created()


class TeamMember(Base):
    """``last_assigned_at`` is the round-robin pointer: the longest-waiting member goes next."""

    __tablename__ = "team_members"

    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    last_assigned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_team_members_agent_id", "agent_id"),)


class SlaPolicy(Base):
    """Targets in seconds; a policy with no team applies to every team without its own."""

    __tablename__ = "sla_policies"

    id: Mapped[uuid.UUID] = _id()
    team: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(16), nullable=False)
    first_response_seconds: Mapped[int | None] = mapped_column(Integer)
    resolution_seconds: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("team", "priority"),)


class ConversationSla(Base):
    """When a conversation reached people, and by when it must be answered and resolved."""

    __tablename__ = "conversation_sla"

    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    handed_off_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    first_response_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ConversationLabel(Base):
    __tablename__ = "conversation_labels"

    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_conversation_labels_label", "label"),)


class CannedResponse(Base):
    __tablename__ = "canned_responses"

    id: Mapped[uuid.UUID] = _id()
    shortcut: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = _created()


class AuditEvent(Base):
    """Who changed what and when; ``agent_id`` is null when routing did it."""

    __tablename__ = "audit_events"

    id: Mapped[uuid.UUID] = _id()
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    created_at: Mapped[dt.datetime] = _created()

    __table_args__ = (Index("ix_audit_events_conversation_id", "conversation_id", "id"),)


class ConsoleSession(Base):
    """A console login; only a SHA-256 of the cookie is kept, like API tokens."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class LoginFailure(Base):
    """Failed logins, counted per e-mail and per address for rate limiting across processes."""

    __tablename__ = "login_failures"

    id: Mapped[uuid.UUID] = _id()
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    address: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = _created()

    __table_args__ = (Index("ix_login_failures_email", "email", "created_at"), Index("ix_login_failures_address", "address", "created_at"))
