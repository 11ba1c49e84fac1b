"""The insights tables (migration 0003): customers' keys in other systems, their
scores (one column per score, so a segment rule ``scores.<name>`` is a column
comparison), recommendations and the behavioural clusters of the last run.

Kept beside crm_store.models (same ``Base``) so that module stays small;
crm_store/migrations/env.py imports both.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_store.columns import JSONType
from crm_store.models import Base, CustomerEvent, _created

# Two columns migration 0003 adds to customer_events, declared here so crm_store.models
# stays small: the sender's event id makes imports idempotent, and a purchase's (or
# return's) lines are [{sku, name, quantity, price, fee}].
CustomerEvent.external_id = mapped_column(String(255), unique=True)  # type: ignore[attr-defined]
CustomerEvent.items = mapped_column(JSONType)  # type: ignore[attr-defined]



class CustomerKey(Base):
    """A customer's id in another system (a shop, a CSV file): how imports find the record again."""

    __tablename__ = "customer_keys"

    external_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True)


class CustomerScores(Base):
    """One row of scores per customer, one column per score, so that a segment rule
    ``scores.<name>`` is a plain column comparison."""

    __tablename__ = "customer_scores"

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    recency_days: Mapped[float | None] = mapped_column(Float)
    frequency: Mapped[int | None] = mapped_column(Integer)
    monetary: Mapped[float | None] = mapped_column(Float)
    rfm_r: Mapped[int | None] = mapped_column(Integer)
    rfm_f: Mapped[int | None] = mapped_column(Integer)
    rfm_m: Mapped[int | None] = mapped_column(Integer)
    rfm_cell: Mapped[str | None] = mapped_column(String(32), index=True)
    p_alive: Mapped[float | None] = mapped_column(Float)
    expected_purchases_90d: Mapped[float | None] = mapped_column(Float)
    expected_spend: Mapped[float | None] = mapped_column(Float)
    clv: Mapped[float | None] = mapped_column(Float)
    churn_risk: Mapped[float | None] = mapped_column(Float)
    cluster: Mapped[int | None] = mapped_column(Integer)
    lead_score: Mapped[float | None] = mapped_column(Float)
    informational_value: Mapped[float | None] = mapped_column(Float)
    growth_value: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = _created()


#: Every score, by column name: what a segment rule names as ``scores.<name>``, a template as ``customer.scores.<name>``.
SCORE_COLUMNS = tuple(c.name for c in CustomerScores.__table__.columns if c.name not in ("customer_id", "updated_at"))


class CustomerRecommendation(Base):
    __tablename__ = "customer_recommendations"

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str | None] = mapped_column(String(255))
    score: Mapped[float] = mapped_column(Float, nullable=False)


class CustomerCluster(Base):
    """A behavioural segment learned by the last scoring run, with its generated description."""

    __tablename__ = "customer_clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[dt.datetime] = _created()


class CatalogueItem(Base):
    """Every SKU seen in a purchase, with its name: recommendations are named without reading purchases again."""

    __tablename__ = "catalogue_items"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
