"""Insights end to end on Online Retail, beside the analyst's usual tools.

1. Online Retail (541,909 invoice lines) on a SQLite file and on PostgreSQL:
   import (parse, group into purchases and returns, store), then score every
   customer (RFM, BG/NBD, Gamma-Gamma, CLV, clusters, recommendations).  The
   import is printed as a ratio to a raw bulk insert of the same event rows
   into a table of the same columns without keys or indexes, in the same run.
2. BG/NBD and Gamma-Gamma fits on CDNOW (sample, 39-week calibration) and on
   Online Retail (calibration to 2011-09-09): Dangol's maximum likelihood
   against pymc-marketing's maximum a posteriori fit (its default priors):
   parameters and fit time.  pymc-marketing is a benchmark peer only.
3. Recommendations on Online Retail split at 2011-11-01: Dangol's
   item-to-item, the most popular items, and implicit's ALS (64 factors,
   15 iterations), hit rate@10 and recall@10 on items new to each customer.
4. ``--synthetic N``: N customers with 1-39 purchases each (20 on average)
   generated inside PostgreSQL, then summarized in the database and scored
   without recommendations, in a child process whose peak memory is reported
   (1,000,000 customers: about 20,000,000 purchases), with the load average
   around it, since the machine is shared.

    python bench/insights.py [--runs 3] [--only sqlite|postgresql] [--no-peers] [--end-to-end-only]
                             [--synthetic 1000000 [--synthetic-only]]

PostgreSQL is 127.0.0.1:5432 (``DANGOL_BENCH_PG``); each run makes and drops
a throwaway database.  Results go to bench/results/insights.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sqlalchemy import Column, MetaData, Table, insert  # noqa: E402

from crm_store.database import Database  # noqa: E402
from crm_store.events import EventIn, customers_by_key, store_events  # noqa: E402
from crm_store.models import CustomerEvent  # noqa: E402
from insights.models import fit_bgnbd, fit_gamma_gamma  # noqa: E402
from insights.recommend import Basket, evaluate  # noqa: E402
from insights.scoring import score_customers  # noqa: E402
from insights.sources import read_online_retail, transactions  # noqa: E402
from insights.summary import summarize  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SHARED = Path(os.environ.get("DANGOL_SHARED", ROOT.parent / "shared"))
RETAIL = SHARED / "datasets" / "online_retail" / "online_retail.csv.gz"
CDNOW = SHARED / "datasets" / "cdnow" / "CDNOW_sample.txt"
PG_ADMIN = os.environ.get("DANGOL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 2000
EPOCH = dt.date(1970, 1, 1)


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fresh_store(kind: str, folder: Path) -> tuple[Database, str | None]:
    if kind == "sqlite":
        path = folder / f"bench-{secrets.token_hex(4)}.db"
        db = Database(f"sqlite+aiosqlite:///{path}", sqlite_synchronous="NORMAL")
        await db.upgrade()
        return db, None
    name = f"dangol_bench_{secrets.token_hex(5)}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    db = Database(f"{base}/{name}")
    await db.upgrade()
    return db, name


async def drop(db: Database, name: str | None) -> None:
    await db.dispose()
    if name:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def raw_table() -> Table:
    """customer_events' columns without keys, constraints or indexes: the ceiling of inserting these rows."""
    source = CustomerEvent.__table__
    return Table("bench_raw_events", MetaData(), *[Column(c.name, c.type) for c in source.columns])


async def raw_insert(db: Database, events: list[EventIn]) -> float:
    """Insert the same events as plain rows (customers already resolved), in the same batches."""
    table = raw_table()
    async with db.write() as conn:
        await conn.run_sync(lambda c: table.create(c))

    def rows_of(conn: Any, part: list[EventIn]) -> list[dict[str, Any]]:
        keys = customers_by_key(conn, {e.customer_key for e in part if e.customer_key})
        from crm_store.columns import new_id, utcnow

        now = utcnow()
        return [{"id": new_id(), "customer_id": keys[e.customer_key], "type": e.type, "properties": e.properties, "amount": e.amount,
                 "currency": e.currency, "occurred_at": e.occurred_at, "created_at": now, "external_id": e.external_id, "items": e.items}
                for e in part]

    batches = []
    async with db.read() as conn:
        for start in range(0, len(events), BATCH):
            batches.append(await conn.run_sync(rows_of, events[start:start + BATCH]))
    started = time.perf_counter()
    for rows in batches:
        await db.run_in_transaction(lambda c, r=rows: c.execute(insert(table), r))
    return time.perf_counter() - started


async def end_to_end(kind: str, folder: Path) -> dict[str, Any]:
    db, name = await fresh_store(kind, folder)
    try:
        started = time.perf_counter()
        parsed = list(read_online_retail(RETAIL))
        events = [e for _, e in parsed if isinstance(e, EventIn)]
        parse_s = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(0, len(events), BATCH):
            await db.run_in_transaction(store_events, events[start:start + BATCH])
        store_s = time.perf_counter() - started
        run = await score_customers(db, dt.datetime(2011, 12, 10, tzinfo=dt.UTC))
        score_s = sum(run.seconds.values())
        raw_s = await raw_insert(db, events)
        return {"events": len(events), "rejected_lines": len(parsed) - len(events), "customers": run.customers,
                "parse_s": round(parse_s, 2), "store_s": round(store_s, 2), "raw_insert_s": round(raw_s, 2),
                "store_vs_raw_insert": round(raw_s / store_s, 3), "import_vs_raw_insert": round(raw_s / (parse_s + store_s), 3),
                "score_s": round(score_s, 2), "score_parts_s": run.seconds, "total_s": round(parse_s + store_s + score_s, 2),
                "bgnbd": run.bgnbd, "recommendations": run.recommendations}
    finally:
        await drop(db, name)


def dangol_fit(path: Path, calibration_end: dt.date) -> dict[str, Any]:
    tx = transactions(path)
    s = summarize(tx, (calibration_end - EPOCH).days)
    started = time.perf_counter()
    bg = fit_bgnbd(s.x, s.t_x, s.T)
    gg = fit_gamma_gamma(s.x, s.m)
    return {"customers": len(s.x), "seconds": round(time.perf_counter() - started, 3), "bgnbd": bg.params(), "gamma_gamma": gg.params()}


def pymc_fit(path: Path, calibration_end: dt.date) -> dict[str, Any]:
    import pandas as pd  # benchmark-only peer, loaded only here
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    tx = transactions(path)
    s = summarize(tx, (calibration_end - EPOCH).days)
    started = time.perf_counter()
    bg = BetaGeoModel(data=pd.DataFrame({"customer_id": np.arange(len(s.x)), "frequency": s.x, "recency": s.t_x, "T": s.T}))
    bg.fit(method="map", progressbar=False)
    repeat = (s.x > 0) & (s.m > 0)
    gg = GammaGammaModel(data=pd.DataFrame({"customer_id": np.arange(int(repeat.sum())), "frequency": s.x[repeat],
                                            "monetary_value": s.m[repeat]}))
    gg.fit(method="map", progressbar=False)
    seconds = time.perf_counter() - started
    b, g = bg.fit_summary(), gg.fit_summary()
    return {"seconds": round(seconds, 3), "bgnbd": {k: float(b[k]) for k in ("r", "alpha", "a", "b")},
            "gamma_gamma": {"p": float(g["p"]), "q": float(g["q"]), "gamma": float(g["v"])}}


def als_scorer() -> Any:
    from implicit.als import AlternatingLeastSquares  # benchmark-only peer, loaded only here

    model: dict[str, Any] = {}

    def scores(data: Basket, rows: np.ndarray) -> np.ndarray:
        if "als" not in model:
            als = AlternatingLeastSquares(factors=64, iterations=15, regularization=0.05, random_state=0)
            started = time.perf_counter()
            als.fit(data.matrix.tocsr())
            model["seconds"] = time.perf_counter() - started
            model["als"] = als
        als = model["als"]
        users = np.asarray(als.user_factors)
        items = np.asarray(als.item_factors)
        return users[rows] @ items.T

    return scores, model


def recommenders() -> dict[str, Any]:
    tx = transactions(RETAIL)
    cut = (dt.date(2011, 11, 1) - EPOCH).days
    before: list[tuple[str, str]] = []
    after: list[tuple[str, str]] = []
    for c, day, items in zip(tx.customer.tolist(), tx.day.tolist(), tx.items, strict=True):
        (before if day < cut else after).extend((tx.customers[c], sku) for sku in items)
    others: dict[str, Any] = {}
    als_info: dict[str, Any] = {}
    try:
        scorer, als_info = als_scorer()
        others["implicit_als"] = scorer
    except ImportError:
        pass
    started = time.perf_counter()
    result = evaluate(before, after, k=10, others=others).as_json()
    result["seconds_all"] = round(time.perf_counter() - started, 2)
    if "seconds" in als_info:
        result["implicit_als_fit_s"] = round(als_info["seconds"], 2)
    return result


#: Ids are time-ordered like Dangol's own (uuid7-shaped, customer number then purchase number), so the
#: indexes grow at their right edge as they do in service, not at random places as with gen_random_uuid().
SYNTHETIC_SQL = (
    """INSERT INTO customers (id, lifecycle_stage, attributes, created_at, updated_at)
       SELECT (lpad(to_hex(i), 8, '0') || '-0000-7000-8000-000000000000')::uuid, 'customer', '{}'::jsonb, now(), now()
       FROM generate_series(1, :n) AS i""",
    """INSERT INTO customer_events (id, customer_id, type, properties, amount, occurred_at, created_at)
       SELECT (lpad(to_hex(i), 8, '0') || '-' || lpad(to_hex(g), 4, '0') || '-7000-8000-000000000000')::uuid,
              (lpad(to_hex(i), 8, '0') || '-0000-7000-8000-000000000000')::uuid, 'purchase', '{}'::jsonb,
              round((5 + random() * 95)::numeric, 2), timestamptz '2023-01-01 00:00+00' + random() * interval '730 days', now()
       -- "+ i * 0" ties the series to each customer, so each draws its own count
       FROM generate_series(1, :n) AS i CROSS JOIN LATERAL generate_series(1, 1 + (floor(random() * 39))::int + i * 0) AS g""",
)


def synthetic_child(url: str, out: Any) -> None:
    async def main() -> dict[str, Any]:
        db = Database(url)
        try:
            run = await score_customers(db, dt.datetime(2025, 1, 1, tzinfo=dt.UTC), recommendations=0)
            return {"customers": run.customers, "buyers": run.buyers, "seconds": run.seconds, "bgnbd": run.bgnbd,
                    "gamma_gamma": run.gamma_gamma, "notes": run.notes}
        finally:
            await db.dispose()

    result = asyncio.run(main())
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.send(result)


async def synthetic(n: int, folder: Path) -> dict[str, Any]:
    from sqlalchemy import text

    db, name = await fresh_store("postgresql", folder)
    try:
        started = time.perf_counter()
        async with db.write() as conn:
            for sql in SYNTHETIC_SQL:
                await conn.execute(text(sql), {"n": n} if ":n" in sql else {})
            events = (await conn.execute(text("SELECT count(*) FROM customer_events"))).scalar_one()
        async with db.write() as conn:
            await conn.execute(text("ANALYZE customer_events"))
        generate_s = time.perf_counter() - started
        load_before = [round(v, 1) for v in os.getloadavg()]  # the machine is shared: say how busy it was
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.get_context("spawn").Process(target=synthetic_child, args=(db.url, child))
        started = time.perf_counter()
        process.start()
        result = parent.recv()
        process.join()
        result.update(events=int(events), generate_s=round(generate_s, 1), wall_s=round(time.perf_counter() - started, 1),
                      load_average_before=load_before, load_average_after=[round(v, 1) for v in os.getloadavg()],
                      nice=os.nice(0))
        return result
    finally:
        await drop(db, name)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"cores": os.cpu_count(), "runs": args.runs, "date": dt.date.today().isoformat(), "end_to_end": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.synthetic_only:
            results["synthetic_postgresql"] = await synthetic(args.synthetic, folder)
            print("synthetic: " + json.dumps(results["synthetic_postgresql"]), flush=True)
            return results
        results["load_average_before"] = [round(v, 1) for v in os.getloadavg()]  # the machine is shared
        for kind in [k for k in ("sqlite", "postgresql") if args.only in (None, k)]:
            runs = [await end_to_end(kind, folder) for _ in range(args.runs)]
            median = {key: statistics.median(r[key] for r in runs) for key in
                      ("parse_s", "store_s", "raw_insert_s", "store_vs_raw_insert", "import_vs_raw_insert", "score_s", "total_s")}
            results["end_to_end"][kind] = {"median": median, "runs": runs, "load_average_after": [round(v, 1) for v in os.getloadavg()]}
            print(f"{kind:10s} import {median['parse_s'] + median['store_s']:.1f} s (parse {median['parse_s']:.1f}, store "
                  f"{median['store_s']:.1f}; raw insert of the same rows {median['raw_insert_s']:.1f} s: store at "
                  f"{median['store_vs_raw_insert']:.2f} of raw, whole import {median['import_vs_raw_insert']:.2f}), "
                  f"scoring {median['score_s']:.1f} s, end to end {median['total_s']:.1f} s", flush=True)
        if args.end_to_end_only:
            return results
        fits: dict[str, Any] = {}
        for label, path, end in (("cdnow_sample", CDNOW, dt.date(1997, 9, 30)), ("online_retail", RETAIL, dt.date(2011, 9, 9))):
            fits[label] = {"dangol": dangol_fit(path, end)}
            if not args.no_peers:
                try:
                    fits[label]["pymc_marketing_map"] = pymc_fit(path, end)
                except ImportError as exc:
                    fits[label]["pymc_marketing_map"] = {"skipped": str(exc)}
            print(f"fit {label}: " + json.dumps(fits[label]), flush=True)
        results["fits"] = fits
        results["recommendations"] = recommenders() if not args.no_peers else None
        print("recommendations: " + json.dumps(results["recommendations"]), flush=True)
        if args.synthetic:
            results["synthetic_postgresql"] = await synthetic(args.synthetic, folder)
            print("synthetic: " + json.dumps(results["synthetic_postgresql"]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--no-peers", action="store_true", help="Skip pymc-marketing and implicit.")
    parser.add_argument("--synthetic", type=int, default=0, help="Customers of the synthetic PostgreSQL history (0: skip).")
    parser.add_argument("--synthetic-only", action="store_true", help="Run only the synthetic part; the other results are kept.")
    parser.add_argument("--end-to-end-only", action="store_true", help="Run only the Online Retail end to end; the other results are kept.")
    args = parser.parse_args()
    if args.synthetic_only and not args.synthetic:
        parser.error("--synthetic-only needs --synthetic N")
    print(f"cores: {os.cpu_count()}  runs: {args.runs}", flush=True)
    results = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / "insights.json"
    previous = json.loads(target.read_text()) if target.exists() else {}
    if args.synthetic_only:  # the 20M-row part runs once, on its own: the rest stays as measured
        results = {**previous, "synthetic_postgresql": results["synthetic_postgresql"]}
    elif args.end_to_end_only:
        results = {**previous, **results, "end_to_end": {**previous.get("end_to_end", {}), **results["end_to_end"]}}
    elif not args.synthetic and "synthetic_postgresql" in previous:
        results["synthetic_postgresql"] = previous["synthetic_postgresql"]
    target.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
