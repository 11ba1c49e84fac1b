"""The insights' reads and writes besides the facts (crm_store.customer_facts): the scores and
recommendations of a run written back in bulk, what a customer's panel and a template show, the export."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Integer, delete, func, insert, select, text, update
from sqlalchemy.sql import ColumnElement

from crm_store.bulk import PAGE, insert_rows
from crm_store.columns import utcnow
from crm_store.events import chunks
from crm_store.insight_tables import (SCORE_COLUMNS, CatalogueItem, CustomerCluster, CustomerKey, CustomerRecommendation,
                                     CustomerScores)
from crm_store.models import Customer, CustomerTag

customers_t = Customer.__table__
scores_t = CustomerScores.__table__
recommendations_t = CustomerRecommendation.__table__
clusters_t = CustomerCluster.__table__
keys_t = CustomerKey.__table__
tags_t = CustomerTag.__table__
catalogue_t = CatalogueItem.__table__

#: Between the SKUs of one customer in ``purchased_items`` (the ASCII unit separator: in no SKU).
SKU_SEPARATOR = "\x1f"


def purchased_items(conn: Connection) -> list[tuple[Any, list[str]]]:
    """Each buyer's distinct SKUs over every purchase, unnested and grouped in the database (fee lines left out):
    one row per customer rather than per (customer, item) keeps the transfer a sixtieth of the rows on Online Retail.
    Ids stay as the driver gives them (SQLite: hex text); the bulk writer takes them back as they are."""
    if conn.dialect.name == "postgresql":
        sql = text("""SELECT customer_id, string_agg(DISTINCT sku, E'\\x1f') FROM (
                          SELECT e.customer_id, i.value ->> 'sku' AS sku FROM customer_events e,
                          jsonb_array_elements(CASE WHEN jsonb_typeof(e.items) = 'array' THEN e.items ELSE '[]'::jsonb END) AS i(value)
                          WHERE e.type = 'purchase' AND (i.value ->> 'fee') IS DISTINCT FROM 'true') AS lines
                      WHERE sku IS NOT NULL GROUP BY customer_id""")
    else:
        sql = text("""SELECT customer_id, group_concat(sku, char(31)) FROM (
                          SELECT DISTINCT e.customer_id, json_extract(i.value, '$.sku') AS sku FROM customer_events e, json_each(e.items) AS i
                          WHERE e.type = 'purchase' AND e.items IS NOT NULL AND COALESCE(json_extract(i.value, '$.fee'), 0) != 1) AS lines
                      WHERE sku IS NOT NULL GROUP BY customer_id""")
    return [(cid, str(skus).split(SKU_SEPARATOR)) for cid, skus in conn.execute(sql)]


def item_names(conn: Connection, skus: Sequence[str]) -> dict[str, str]:
    """A name for each SKU, from the catalogue the imports fill."""
    names: dict[str, str] = {}
    for part in chunks(sorted(set(skus))):
        names.update({sku: name for sku, name in conn.execute(
            select(catalogue_t.c.sku, catalogue_t.c.name).where(catalogue_t.c.sku.in_(part))) if name})
    return names


def _python(values: np.ndarray, integer: bool) -> list[Any]:
    """A numpy column as driver values: NaN becomes NULL, integer columns get ints."""
    if values.dtype == object:
        return [None if v is None or (isinstance(v, float) and v != v) else v for v in values.tolist()]
    if integer:
        return [None if v != v else int(v) for v in values.tolist()]
    return [None if v != v else v for v in values.tolist()]


def replace_scores(conn: Connection, ids: Sequence[Any], columns: dict[str, np.ndarray], clusters: Sequence[dict[str, Any]]) -> None:
    """All scores of one run (one entry per customer in every column) replace the last run's, in the caller's transaction."""
    now = utcnow()
    conn.execute(delete(scores_t))
    names = [c for c in SCORE_COLUMNS if c in columns]
    integer = {c: isinstance(scores_t.c[c].type, Integer) for c in names}

    def rows() -> Iterator[tuple[Any, ...]]:
        for start in range(0, len(ids), PAGE):
            part = [_python(columns[c][start:start + PAGE], integer[c]) for c in names]
            yield from zip(ids[start:start + PAGE], *part, itertools.repeat(now), strict=False)

    insert_rows(conn, scores_t, ["customer_id", *names, "updated_at"], rows())
    conn.execute(delete(clusters_t))
    if clusters:
        conn.execute(insert(clusters_t), [{**c, "updated_at": now} for c in clusters])


def set_stages(conn: Connection, customer_ids: Sequence[Any], stage: str, from_stages: Sequence[str]) -> None:
    """Move customers (ids as UUIDs or as the driver returned them) from ``from_stages`` to ``stage``."""
    now = utcnow()
    for part in chunks([c if isinstance(c, uuid.UUID) else uuid.UUID(str(c)) for c in customer_ids]):
        conn.execute(update(customers_t).where(customers_t.c.id.in_(part), customers_t.c.lifecycle_stage.in_(from_stages))
                     .values(lifecycle_stage=stage, updated_at=now))


def replace_recommendations(conn: Connection, rows: Sequence[tuple[Any, int, str, str | None, float]]) -> None:
    """Every customer's recommendations, (customer id, rank, sku, name, score) each, replace the last run's."""
    conn.execute(delete(recommendations_t))
    insert_rows(conn, recommendations_t, ["customer_id", "rank", "sku", "name", "score"], rows)


def customer_insights(conn: Connection, customer_id: uuid.UUID) -> dict[str, Any]:
    """A customer's scores (empty before the first run) and recommendations, for the API, console and templates."""
    row = conn.execute(select(scores_t).where(scores_t.c.customer_id == customer_id)).mappings().first()
    scores = {k: v for k, v in dict(row).items() if k != "customer_id"} if row else {}
    if row and row["cluster"] is not None:
        cluster = conn.execute(select(clusters_t.c.name, clusters_t.c.description).where(clusters_t.c.id == row["cluster"])).first()
        if cluster is not None:
            scores["cluster_name"], scores["cluster_description"] = cluster
    recommendations = [dict(r) for r in conn.execute(
        select(recommendations_t.c.sku, recommendations_t.c.name, recommendations_t.c.score)
        .where(recommendations_t.c.customer_id == customer_id).order_by(recommendations_t.c.rank)).mappings()]
    return {"scores": scores, "recommendations": recommendations}


EXPORT_FIELDS = ("id", "external_id", "name", "first_name", "last_name", "email", "phone", "locale", "timezone",
                 "lifecycle_stage", "created_at")


def export_customers(conn: Connection, batch: int = 2000, members: ColumnElement[bool] | None = None) -> Iterator[dict[str, Any]]:
    """Every customer (or those meeting ``members``, a segment's condition on ``customers``) with profile, tags,
    attributes and scores, in id order, a page at a time."""
    last: uuid.UUID | None = None
    while True:
        stmt = (select(customers_t, keys_t.c.external_id, *[scores_t.c[c] for c in SCORE_COLUMNS])
                .outerjoin(keys_t, keys_t.c.customer_id == customers_t.c.id)
                .outerjoin(scores_t, scores_t.c.customer_id == customers_t.c.id).order_by(customers_t.c.id).limit(batch))
        if members is not None:
            stmt = stmt.where(members)
        if last is not None:
            stmt = stmt.where(customers_t.c.id > last)
        rows = conn.execute(stmt).mappings().all()
        if not rows:
            return
        ids = [r["id"] for r in rows]
        tags: dict[uuid.UUID, list[str]] = {}
        for cid, tag in conn.execute(select(tags_t.c.customer_id, tags_t.c.tag).where(tags_t.c.customer_id.in_(ids)).order_by(tags_t.c.tag)):
            tags.setdefault(cid, []).append(tag)
        for r in rows:
            if r["id"] == last:
                continue  # a second external key of the same customer
            yield {**{f: r[f] for f in EXPORT_FIELDS}, "tags": ";".join(tags.get(r["id"], [])), "attributes": r["attributes"],
                   **{c: r[c] for c in SCORE_COLUMNS}}
            last = r["id"]


def score_counts(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(scores_t)).scalar_one())
