"""Campaign throughput: materializing a run into the outbox, and delivering campaign rows.

1. Materialization: N customers (default 1,000,000), each reachable on one
   channel with marketing consent, in a segment; a campaign run writes one
   personalized outbox row per customer through ``campaigns.runner.materialize``
   (one statement a chunk for the segment, identities, consents and caps, a
   field-only template filled without Jinja, chunked writes with the run's
   cursor), the seeded tables ANALYZEd first as a running service's are.  The ceiling is a raw bulk insert of the same
   rows into a copy of the outbox (same columns and indexes), in the same run:
   COPY on PostgreSQL, one executemany in one transaction on SQLite.  Figure:
   raw time / materialize time (target >= 0.5), and the seconds for N.
2. Delivery: campaign rows drained by the delivery worker through
   python-telegram-bot into the loopback fake (limits off), as a ratio to the
   outbound bench's raw aiohttp channel on the same rows.

3. Support traffic during a broadcast: a real ``dangol serve`` sends a
   ``--broadcast``-recipient (default 100,000) Telegram campaign into the
   loopback fake with the platform limits off (it drains as fast as the
   worker goes; ``--broadcast-limits`` keeps them on), while a steady stream of customers (``--rest-rate`` a second,
   each a new message from one of many senders) writes to the REST channel;
   the figure is those requests' p50/p99 (target p99 < 50 ms), beside the
   same stream's before the broadcast, and the campaign messages sent
   during the window.  The service paces campaign sends while support
   traffic flows (``delivery_support_lag_ms``, channels/delivery_pacing.py);
   ``--support-lag-ms 0`` measures it without that cap, ``--support-busy 1`` without its busy-share part.

    python bench/campaign.py [--customers 1000000] [--only sqlite|postgresql] [--deliver 5000] [--runs 1]
                             [--broadcast 100000] [--rest-rate 20] [--rest-seconds 20] [--support-lag-ms MS]
                             [--support-busy SHARE]

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
from bench.outbound import CONCURRENCY, TOKEN, FakeProcess, drop_postgres, make_channel, postgres_url  # noqa: E402

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
    from sqlalchemy import text

    from crm_store.database import Database

    db = Database(url)
    try:
        t0 = time.perf_counter()
        await seed(db, args.customers, "webchat")
        print(f"{kind}: seeded {args.customers:,} customers in {time.perf_counter() - t0:.1f} s", flush=True)
        # A running service's tables have planner statistics (autovacuum's ANALYZE on PostgreSQL; this server runs
        # without autovacuum): measure that steady state.  The run's own reads do not depend on them
        # (crm_store/campaign_members.py CHUNK_SETTINGS).
        async with db.write() as conn:
            await conn.execute(text("ANALYZE"))
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


async def fresh_database(kind: str, sqlite_path: Path, *, replacing: str | None = None) -> tuple[str, str | None] | None:
    """(url, PostgreSQL database name or None) of an empty, upgraded store; ``replacing``: a PostgreSQL database of this
    run dropped first.  None when PostgreSQL is not there."""
    if kind == "sqlite":
        from crm_store.database import Database

        url = f"sqlite+aiosqlite:///{sqlite_path}"
        db = Database(url)
        await db.upgrade()
        await db.dispose()
        return url, None
    if replacing:
        await drop_postgres(replacing)
    return await postgres_url()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"cores": os.cpu_count(), "customers": args.customers, "materialize": {}, "delivery": {},
                               "rest_during_broadcast": {}}
    with tempfile.TemporaryDirectory() as tmp:
        kinds = [k for k in ("sqlite", "postgresql") if args.only in (None, k)]
        for kind in kinds:
            for attempt in range(args.runs):
                made = await fresh_database(kind, Path(tmp) / f"campaign-{attempt}.db")
                if made is None:
                    break
                url, name = made
                try:
                    if args.customers:
                        results["materialize"].setdefault(kind, []).append(await one_store(kind, url, args))
                    if args.deliver and attempt == 0:
                        url, name = await fresh_database(kind, Path(tmp) / "deliver.db", replacing=name) or ("", None)
                        rates = await delivery_rates(url, args.deliver)
                        results["delivery"][kind] = {**{k: round(v) for k, v in rates.items()},
                                                     "ratio": round(rates["worker"] / rates["raw_channel"], 3)}
                        print(f"{kind}: delivery of {args.deliver:,} campaign rows {rates['worker']:,.0f}/s; raw channel "
                              f"{rates['raw_channel']:,.0f}/s; ratio {rates['worker'] / rates['raw_channel']:.3f}", flush=True)
                    if args.broadcast and attempt == 0:
                        url, name = await fresh_database(kind, Path(tmp) / "broadcast.db", replacing=name) or ("", None)
                        results["rest_during_broadcast"][kind] = await rest_during_broadcast(kind, url, args, Path(tmp))
                finally:
                    if name:
                        await drop_postgres(name)
    for kind, runs in results["materialize"].items():
        results["materialize"][kind] = {"runs": runs, "median_ratio": statistics.median(r["ratio"] for r in runs),
                                        "median_seconds": statistics.median(r["materialize_seconds"] for r in runs)}
    return results


async def rest_latencies(url: str, rate: float, seconds: float, tag: str) -> dict[str, float]:
    """``rate`` REST messages a second for ``seconds`` (open loop: one starts on time whatever the others do); latencies."""
    import aiohttp

    from bench.inbound import bench_texts

    texts = bench_texts()
    latencies: list[float] = []
    failures = 0

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal failures
        body = {"sender": f"support-{tag}-{i % 400}", "message": texts[i % len(texts)], "message_id": f"{tag}-{i}"}
        started = time.perf_counter()
        try:
            async with session.post(f"{url}/webhooks/rest/webhook", json=body) as response:
                await response.read()
                ok = response.status < 300
        except aiohttp.ClientError:
            ok = False
        if ok:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            failures += 1

    tasks: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(session, i)))
        await asyncio.gather(*tasks)
    latencies.sort()
    def pick(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else 0.0
    return {"requests": len(latencies), "failures": failures, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": pick(1.0)}


async def rest_during_broadcast(kind: str, url: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """REST latency of a real ``dangol serve`` before and while it drains a broadcast into the Telegram fake."""
    from sqlalchemy import func, select

    from bench.inbound import free_port
    from crm_store.campaign_tables import CampaignRun
    from crm_store.database import Database
    from crm_store.models import OutboxRow
    from tests.service.processes import ServeProcess

    db = Database(url)
    outbox, runs = OutboxRow.__table__, CampaignRun.__table__

    async def sent() -> int:
        async with db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "sent",
                                                                                          outbox.c.campaign_run_id.isnot(None)))).scalar_one())

    try:
        await seed(db, args.broadcast, "telegram", first=5_000_000)
        with FakeProcess("telegram") as fake:
            env = {"DANGOL_TELEGRAM_TOKEN": TOKEN, "DANGOL_TELEGRAM_WEBHOOK_SECRET": "s3cret", "DANGOL_TELEGRAM_API_URL": fake,
                   "DANGOL_DELIVERY_RATE_LIMITS": str(args.broadcast_limits).lower(), "DANGOL_LOG_LEVEL": "warning", "DANGOL_WORKERS": "1",
                   **({} if args.support_lag_ms is None else {"DANGOL_DELIVERY_SUPPORT_LAG_MS": str(args.support_lag_ms)}),
                   **({} if args.support_busy is None else {"DANGOL_DELIVERY_SUPPORT_BUSY": str(args.support_busy)})}
            server = ServeProcess(url, folder, port=free_port(), extra_env=env)
            try:
                await server.wait_ready(60)
                quiet = await rest_latencies(server.url, args.rest_rate, args.rest_seconds, f"quiet-{kind}")
                started = time.perf_counter()
                _, run_id = await campaign_run(db, "telegram")  # the service's scheduler materializes it, then it drains
                while True:
                    async with db.read() as conn:
                        status = (await conn.execute(select(runs.c.status).where(runs.c.id == run_id))).scalar_one()
                    if status != "materializing":
                        break
                    await asyncio.sleep(0.2)
                materialized = time.perf_counter() - started
                before = await sent()
                busy = await rest_latencies(server.url, args.rest_rate, args.rest_seconds, f"busy-{kind}")
                during = await sent() - before
            finally:
                code = server.terminate()
        if code != 0:
            raise RuntimeError(f"dangol serve exited with {code}:\n{server.log()}")
    finally:
        await db.dispose()
    out = {"broadcast": args.broadcast, "platform_limits": args.broadcast_limits,
           "support_lag_ms": "default" if args.support_lag_ms is None else args.support_lag_ms,
           "support_busy": "default" if args.support_busy is None else args.support_busy, "rest_rate": args.rest_rate, "seconds": args.rest_seconds, "quiet": quiet, "during_broadcast": busy,
           "serve_materialize_seconds": round(materialized, 1), "campaign_sent_during": during,
           "campaign_sent_per_second": round(during / args.rest_seconds), "backlog_left": args.broadcast - before - during}
    print(f"{kind}: REST p50 {busy['p50_ms']} ms p99 {busy['p99_ms']} ms at {args.rest_rate}/s while {during:,} campaign messages went out "
          f"({during / args.rest_seconds:,.0f}/s, {out['backlog_left']:,} left); quiet p99 {quiet['p99_ms']} ms (target p99 < 50 ms)",
          flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--deliver", type=int, default=5_000, help="campaign rows for the delivery figure (0: skip)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--broadcast", type=int, default=100_000, help="recipients of the broadcast the REST figure is taken during (0: skip)")
    parser.add_argument("--rest-rate", type=float, default=20.0, help="REST messages a second during the broadcast")
    parser.add_argument("--rest-seconds", type=float, default=20.0)
    parser.add_argument("--broadcast-limits", action="store_true", help="keep Telegram's published limits on while the broadcast drains")
    parser.add_argument("--support-lag-ms", type=float, help="the service's delivery_support_lag_ms (default: its own; 0: campaign sends "
                        "uncapped while support traffic flows)")
    parser.add_argument("--support-busy", type=float, help="the service's delivery_support_busy (default: its own; 1: the loop's busy "
                        "share not watched)")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "campaign.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
