"""The tables of triggered sequences (migration 0006): which campaigns start from an event or a tag, and who is enrolled.

A triggered campaign keeps its trigger and goal here, in columns the write
paths can match cheaply (an event batch, a tag added); its steps are
:class:`crm_store.campaign_tables.CampaignRun` rows (``fire_key`` ``step-1``,
``step-2``, …), so each step's outbox rows and skips are unique per
(step, customer) and are counted per step by the campaign report.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_store.columns import JSONType, UTCDateTime
from crm_store.models import Base, _created, _id  # the same id and creation-time columns as every table

#: How an enrolment ended: every step went out, the goal was reached, the customer wrote back, or the campaign was cancelled.
ENROLMENT_STATUSES = ("active", "done", "converted", "replied", "cancelled")


class CampaignSequence(Base):
    """What starts a triggered campaign, and what ends it early for one customer."""

    __tablename__ = "campaign_sequences"

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    #: ``event`` (a customer event of type ``trigger_value``) or ``tag`` (tag ``trigger_value`` added).
    trigger_kind: Mapped[str] = mapped_column(String(8), nullable=False)
    trigger_value: Mapped[str] = mapped_column(String(100), nullable=False)
    #: Only the customer's first event of that type enrols them (a first purchase).
    first_only: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    #: An event older than this when it is stored enrols no one (an import of last year's orders is no trigger).
    max_age_hours: Mapped[int] = mapped_column(Integer, default=24, nullable=False)
    #: A customer event of this type ends the customer's enrolment as converted.
    goal_event: Mapped[str | None] = mapped_column(String(100))
    #: Seconds before each step: the first after enrolment, each next after the step before it.
    delays: Mapped[list[float]] = mapped_column(JSONType, nullable=False)

    __table_args__ = (Index("ix_campaign_sequences_trigger", "trigger_kind", "trigger_value"),)


class SequenceEnrolment(Base):
    """One customer going through one triggered campaign; at most one per (campaign, customer)."""

    __tablename__ = "sequence_enrolments"

    id: Mapped[uuid.UUID] = _id()
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)
    #: The step due next (1-based); past the last when done.
    step: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    #: When that step is due (null once the enrolment ended).
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: What enrolled the customer (``event:signup``, ``tag:vip``).
    source: Mapped[str] = mapped_column(String(120), nullable=False)
    enrolled_at: Mapped[dt.datetime] = _created()
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("campaign_id", "customer_id"),
        Index("ix_sequence_enrolments_due", "status", "due_at"),
        Index("ix_sequence_enrolments_customer", "customer_id", "status"),
    )
