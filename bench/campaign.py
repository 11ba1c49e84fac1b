"""Campaign throughput: materializing a run into the outbox, and delivering campaign rows.

1. Materialization: N customers (default 1,000,000), each reachable on one
   channel with marketing consent, in a segment; a campaign run writes one
   personalized outbox row per customer through ``campaigns.runner.materialize``
   (segment SQL, identities, consents, caps, a Jinja2 render each, chunked
   writes with the run's cursor).  The ceiling is a raw bulk insert of the same
   rows into a copy of the outbox (same columns and indexes), in the same run:
   COPY on PostgreSQL, one executemany in one transaction on SQLite.  Figure:
   raw time / materialize time (target >= 0.5), and the seconds for N.
2. Delivery: campaign rows drained by the delivery worker through
   python-telegram-bot into the loopback fake (limits off), as a ratio to the
   outbound bench's raw aiohttp channel on the same rows.

    python bench/campaign.py [--customers 1000000] [--only sqlite|postgresql] [--deliver 5000] [--runs 1]

Writes bench/results/campaign.json.  Talks only to 127.0.0.1; PostgreSQL at
127.0.0.1:5432 in a throwaway database.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.outbound import CONCURRENCY, FakeProcess, drop_postgres, make_channel, postgres_url  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CHUNK = 50_000


async def seed(db: Any, n: int, channel: str, first: int = 1_000_000) -> None:
    """N customers with one reachable identity on ``channel`` and marketing consent, written in bulk (not timed)."""
    from sqlalchemy import insert

    from crm_store.columns import new_id, utcnow
    from crm_store.models import ChannelIdentity, Consent, Customer

    now = utcnow() - dt.timedelta(days=1)
    for start in range(0, n, CHUNK):
        ids = [new_id() for _ in range(min(CHUNK, n - start))]
        customers = [{"id": cid, "name": f"Customer {start + i}", "locale": "en", "timezone": "UTC", "lifecycle_stage": "customer",
                      "attributes": {"code": f"C{start + i}"}, "created_at": now, "updated_at": now} for i, cid in enumerate(ids)]
        identities = [{"id": new_id(), "customer_id": cid, "channel": channel, "external_id": str(first + start + i), "profile": {},
                       "reachable": True, "created_at": now} for i, cid in enumerate(ids)]
        consents = [{"id": new_id(), "customer_id": cid, "channel": "*", "purpose": "marketing", "granted": True, "source": "bench",
                     "updated_at": now} for cid in ids]

        def write(conn: Any) -> None:
            conn.execute(insert(Customer.__table__), customers)
            conn.execute(insert(ChannelIdentity.__table__), identities)
            conn.execute(insert(Consent.__table__), consents)

        await db.run_in_transaction(write)


async def campaign_run(db: Any, channel: str) -> tuple[uuid.UUID, uuid.UUID]:
    from campaigns import service
    from crm_store import campaigns as campaign_store
    from crm_store import segments

    segment = await segments.create_rule_segment(db, "everyone", {"channel": channel})
    campaign = await service.create(db, {"name": "bench", "segment_id": segment["id"], "purpose": "marketing", "channels": [channel],
                                         "message": {"text": "Hello {{ customer.name }}, your code is {{ customer.attributes.code }}"}},
                                    None)
    await service.send(db, uuid.UUID(campaign["id"]))
    runs = await db.run_in_transaction(campaign_store.unfinished_runs)
    return uuid.UUID(campaign["id"]), runs[0]["id"]


async def materialize_seconds(db: Any, run_id: uuid.UUID) -> float:
    from campaigns.runner import materialize
    from crm_store.columns import utcnow

    started = time.perf_counter()
    await materialize(db, run_id, utcnow())
    return time.perf_counter() - started


async def raw_insert_seconds(db: Any, run_id: uuid.UUID) -> tuple[float, int]:
    """The run's own rows, read back (not timed), inserted raw into a copy of the outbox with its indexes."""
    from sqlalchemy import select, text

    from crm_store.models import OutboxRow

    outbox = OutboxRow.__table__
    async with db.read() as conn:
        rows = [dict(r) for r in (await conn.execute(select(outbox).where(outbox.c.campaign_run_id == run_id))).mappings()]
    for row in rows:
        row["id"] = uuid.uuid4()
    columns = [c.name for c in outbox.c]
    if db.is_sqlite:
        async with db.write() as conn:
            ddl = (await conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'outbox'"))).scalar_one()
            await conn.execute(text(ddl.replace('"outbox"', '"outbox_raw"', 1).replace("CREATE TABLE outbox", "CREATE TABLE outbox_raw", 1)))
            for (index_sql,) in (await conn.execute(text("SELECT sql FROM sqlite_master WHERE tbl_name = 'outbox' AND type = 'index' "
                                                          "AND sql IS NOT NULL"))).all():
                await conn.execute(text(index_sql.replace(" ON outbox ", " ON outbox_raw ").replace("INDEX ", "INDEX raw_", 1)))

        def insert_all(conn: Any) -> None:
            raw = conn.connection.dbapi_connection
            params = [tuple(_sqlite_value(row[c]) for c in columns) for row in rows]
            raw.executemany(f"INSERT INTO outbox_raw ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", params)

        started = time.perf_counter()
        await db.run_in_transaction(insert_all)
        return time.perf_counter() - started, len(rows)
    import asyncpg

    url = db.url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE outbox_raw (LIKE outbox INCLUDING ALL)")
        records = [tuple(json.dumps(row[c]) if c == "payload" else row[c] for c in columns) for row in rows]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("outbox_raw", records=records, columns=columns)
        return time.perf_counter() - started, len(rows)
    finally:
        await conn.close()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    return value


async def delivery_rates(db_url: str, n: int) -> dict[str, float]:
    """Campaign rows through the delivery worker (real client, then the raw channel) into the Telegram fake, limits off."""
    from sqlalchemy import text

    from channels.delivery import DeliveryWorker
    from crm_store.database import Database
    from crm_store.outbox import Outbox

    rates: dict[str, float] = {}
    with FakeProcess("telegram") as url:
        for round_, (label, raw) in enumerate((("worker", False), ("raw_channel", True))):
            db = Database(db_url)
            await seed(db, n, "telegram", first=2_000_000 + round_ * n)
            _, run_id = await campaign_run(db, "telegram")
            await materialize_seconds(db, run_id)
            channel = make_channel("telegram", url, raw)
            await channel.start()
            done = asyncio.Event()
            sent = 0

            def on_result(message: Any, outcome: str) -> None:
                nonlocal sent
                sent += 1
                if sent >= n:
                    done.set()

            worker = DeliveryWorker(Outbox(db), {"telegram": channel}, rate_limits=False, concurrency=CONCURRENCY, on_result=on_result,
                                    poll_seconds=0.05)
            started = time.perf_counter()
            worker.start()
            await asyncio.wait_for(done.wait(), timeout=max(120.0, n / 50))
            rates[label] = n / (time.perf_counter() - started)
            await worker.stop()
            await channel.stop()
            async with db.write() as conn:  # the next round starts from no customers and no rows
                await conn.execute(text("DELETE FROM outbox"))
                await conn.execute(text("DELETE FROM campaigns"))
                await conn.execute(text("DELETE FROM customers"))
            await db.dispose()
    return rates


async def one_store(kind: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from crm_store.database import Database

    db = Database(url)
    try:
        t0 = time.perf_counter()
        await seed(db, args.customers, "webchat")
        print(f"{kind}: seeded {args.customers:,} customers in {time.perf_counter() - t0:.1f} s", flush=True)
        _, run_id = await campaign_run(db, "webchat")
        seconds = await materialize_seconds(db, run_id)
        raw, rows = await raw_insert_seconds(db, run_id)
    finally:
        await db.dispose()
    out = {"recipients": rows, "materialize_seconds": round(seconds, 2), "raw_insert_seconds": round(raw, 2),
           "materialize_per_second": round(rows / seconds), "raw_per_second": round(rows / raw), "ratio": round(raw / seconds, 3)}
    print(f"{kind}: materialized {rows:,} recipients in {seconds:.1f} s ({rows / seconds:,.0f}/s); raw bulk insert {raw:.1f} s "
          f"({rows / raw:,.0f}/s); ratio {raw / seconds:.3f} (target >= 0.5)", flush=True)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"cores": os.cpu_count(), "customers": args.customers, "materialize": {}, "delivery": {}}
    with tempfile.TemporaryDirectory() as tmp:
        kinds = [k for k in ("sqlite", "postgresql") if args.only in (None, k)]
        for kind in kinds:
            for attempt in range(args.runs):
                if kind == "sqlite":
                    url, name = f"sqlite+aiosqlite:///{tmp}/campaign-{attempt}.db", None
                    from crm_store.database import Database

                    db = Database(url)
                    await db.upgrade()
                    await db.dispose()
                else:
                    made = await postgres_url()
                    if made is None:
                        break
                    url, name = made
                try:
                    results["materialize"].setdefault(kind, []).append(await one_store(kind, url, args))
                    if args.deliver and attempt == 0:
                        if kind == "sqlite":
                            url = f"sqlite+aiosqlite:///{tmp}/deliver.db"
                            db = Database(url)
                            await db.upgrade()
                            await db.dispose()
                        else:
                            await drop_postgres(name or "")
                            url, name = await postgres_url() or ("", None)
                        rates = await delivery_rates(url, args.deliver)
                        results["delivery"][kind] = {**{k: round(v) for k, v in rates.items()},
                                                     "ratio": round(rates["worker"] / rates["raw_channel"], 3)}
                        print(f"{kind}: delivery of {args.deliver:,} campaign rows {rates['worker']:,.0f}/s; raw channel "
                              f"{rates['raw_channel']:,.0f}/s; ratio {rates['worker'] / rates['raw_channel']:.3f}", flush=True)
                finally:
                    if name:
                        await drop_postgres(name)
    for kind, runs in results["materialize"].items():
        results["materialize"][kind] = {"runs": runs, "median_ratio": statistics.median(r["ratio"] for r in runs),
                                        "median_seconds": statistics.median(r["materialize_seconds"] for r in runs)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--deliver", type=int, default=5_000, help="campaign rows for the delivery figure (0: skip)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    results = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "campaign.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
