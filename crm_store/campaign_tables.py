"""The campaign tables (migration 0004): consent history, segments, campaigns, their runs and skips.

Kept beside ``crm_store.models`` (same ``Base``, same naming) so that file
stays the core record; the campaign columns of the outbox are on
``OutboxRow`` itself, since the delivery worker's claim reads them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from crm_store.columns import JSONType, UTCDateTime
from crm_store.models import Base, _created, _id  # the same id and creation-time columns as every table

CAMPAIGN_STATUSES = ("draft", "scheduled", "running", "paused", "done", "cancelled")
#: Outbox statuses of campaign rows beside OUTBOX_STATUSES: ``campaign`` waits behind every
#: reply (picked only when no reply is due), ``held`` belongs to a paused run, ``skipped``
#: was found without consent at send time, ``cancelled`` belongs to a cancelled run.
CAMPAIGN_OUTBOX_STATUSES = ("campaign", "held", "skipped", "cancelled")
SKIP_REASONS = ("opted_out", "no_consent", "unreachable", "capped", "render_error")


class ConsentEvent(Base):
    """Every grant and withdrawal, with when and where it came from (the audit trail of ``consents``)."""

    __tablename__ = "consent_events"

    id: Mapped[uuid.UUID] = _id()
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    granted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    source: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = _created()

    __table_args__ = (Index("ix_consent_events_customer_id", "customer_id", "created_at"),)


class Segment(Base):
    """A saved rule (evaluated as SQL when used) or a static list of members."""

    __tablename__ = "segments"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), default="rule", nullable=False)  # rule | static
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = _created()


class SegmentMember(Base):
    __tablename__ = "segment_members"

    segment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)


class Campaign(Base):
    """What to send to whom, when; ``spec`` holds the message, variants, caps and settings as given."""

    __tablename__ = "campaigns"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    segment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("segments.id", ondelete="RESTRICT"), nullable=False)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="draft", nullable=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    #: When the scheduler fires it next (null: not scheduled).
    next_fire_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()

    __table_args__ = (Index("ix_campaigns_next_fire_at", "next_fire_at"),)


class CampaignRun(Base):
    """One firing of a campaign; unique per (campaign, firing time) so two processes cannot both start it."""

    __tablename__ = "campaign_runs"

    id: Mapped[uuid.UUID] = _id()
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    fire_key: Mapped[str] = mapped_column(String(40), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="materializing", nullable=False)
    #: Materialization goes in customer id order; the last id done, so a restart resumes after it.
    cursor: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    started_at: Mapped[dt.datetime] = _created()
    materialized_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("campaign_id", "fire_key"),)


class CampaignSkip(Base):
    """A segment member a run did not message, and why."""

    __tablename__ = "campaign_skips"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaign_runs.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    reason: Mapped[str] = mapped_column(String(16), nullable=False)
    variant: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
