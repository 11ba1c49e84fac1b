"""Outbound throughput of the delivery worker through the real platform clients.

The delivery worker (claim from the outbox, send, settle in batches) pushes
outbox rows through ``channels.telegram`` (python-telegram-bot on the shared
aiohttp session) and ``channels.slack`` (slack-sdk's AsyncWebClient) into
the loopback fakes of tests/fakes, with rate limits off; the ceiling is a
raw aiohttp client posting the same requests to the same fake, with the same
concurrency, in the same run.  Figures are ratios to that ceiling (target
>= 0.5).  The fakes run in a child process so that client and server do not
share one core.  Then, with limits on, a broadcast to distinct Telegram chats
must stay within Telegram's 30 messages/s: the fake answers 429 above that
and reports the busiest one-second window.

Runs on a SQLite file and on PostgreSQL (127.0.0.1:5432, a throwaway
database) unless told otherwise, talks only to 127.0.0.1 and stops by itself.

    python bench/outbound.py [--messages 3000] [--runs 3] [--broadcast 300 | --full-broadcast] [--only sqlite|postgresql]

``--full-broadcast`` sends the 3,000-message broadcast (about 100 s); by
default the broadcast is 300 messages (about 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("DANGOL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
TOKEN = "123456:BENCH"
SLACK_TOKEN = "xoxb-bench"
CONCURRENCY = 32


# -- the fakes, in their own process ------------------------------------------

def _serve_fake(kind: str, per_second: int | None, ports: Any) -> None:
    async def main() -> None:
        from tests.fakes.slack import FakeSlack
        from tests.fakes.telegram import FakeTelegram

        fake = FakeTelegram(TOKEN, per_second=per_second, record=False) if kind == "telegram" else FakeSlack(SLACK_TOKEN, record=False)
        await fake.start()
        ports.put(fake.port)
        await asyncio.Event().wait()

    asyncio.run(main())


class FakeProcess:
    def __init__(self, kind: str, per_second: int | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()
        self.process = ctx.Process(target=_serve_fake, args=(kind, per_second, self.queue), daemon=True)

    def __enter__(self) -> str:
        self.process.start()
        return f"http://127.0.0.1:{self.queue.get(timeout=30)}"

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(5)


async def stats(url: str, reset: bool = False) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{url}/_fake/stats", params={"reset": "1"} if reset else {}) as r:
        return await r.json()


# -- the ceiling: raw aiohttp ---------------------------------------------------

async def raw_rate(kind: str, url: str, n: int) -> float:
    """The same requests the clients make, straight from one aiohttp session."""
    import aiohttp

    if kind == "telegram":
        endpoint, headers = f"{url}/bot{TOKEN}/sendMessage", {}
        body = lambda i: {"chat_id": str(100000 + i), "text": "Your order has shipped"}  # noqa: E731
    else:
        endpoint, headers = f"{url}/api/chat.postMessage", {"Authorization": f"Bearer {SLACK_TOKEN}"}
        body = lambda i: {"channel": f"D{i:08d}", "text": "Your order has shipped"}  # noqa: E731
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                async with session.post(endpoint, data=body(i), headers=headers) as response:
                    data = await response.json()
                    assert data["ok"], data

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - started)


# -- the channel alone: the real client, no store ---------------------------------

class RawChannel:
    """The worker's ceiling: a channel that posts with bare aiohttp, no client library."""

    inline_replies = False

    def __init__(self, kind: str, url: str) -> None:
        self.name, self.url, self.session = kind, url, None

    async def start(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

    async def stop(self) -> None:
        await self.session.close()

    def rate_limits(self, message: Any) -> tuple[()]:
        return ()

    async def send(self, message: Any) -> Any:
        from channels.base import SendResult

        if self.name == "telegram":
            endpoint, headers, body = f"{self.url}/bot{TOKEN}/sendMessage", {}, {"chat_id": message.recipient, "text": message.text}
        else:
            endpoint, headers = f"{self.url}/api/chat.postMessage", {"Authorization": f"Bearer {SLACK_TOKEN}"}
            body = {"channel": message.recipient, "text": message.text}
        async with self.session.post(endpoint, data=body, headers=headers) as response:
            data = await response.json()
        return SendResult(external_id=str(data.get("ts") or data["result"]["message_id"]))


def make_channel(kind: str, url: str, raw: bool = False) -> Any:
    from channels.slack import SlackChannel
    from channels.telegram import TelegramChannel

    if raw:
        return RawChannel(kind, url)
    return TelegramChannel(TOKEN, "bench", url) if kind == "telegram" else SlackChannel(SLACK_TOKEN, "bench", api_url=f"{url}/api/")


async def client_rate(kind: str, url: str, n: int) -> float:
    """channel.send() with the worker's concurrency and no database: what the client library costs."""
    from contracts.messages import OutboundMessage

    channel = make_channel(kind, url)
    await channel.start()
    pending = list(range(n))

    async def worker() -> None:
        while pending:
            i = pending.pop()
            recipient = str(100000 + i) if kind == "telegram" else f"D{i:08d}"
            await channel.send(OutboundMessage(kind, recipient, text="Your order has shipped"))

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - started)
    finally:
        await channel.stop()


# -- the delivery worker through the real clients ---------------------------------

async def queue_rows(db: Any, channel: str, n: int) -> None:
    from sqlalchemy import insert

    from crm_store.models import OutboxRow
    from crm_store.columns import utcnow

    now = utcnow()
    run = secrets.token_hex(3)
    rows = [{"id": uuid.uuid4(), "channel": channel, "status": "queued", "attempts": 0, "next_attempt_at": now, "created_at": now,
             "recipient": str(100000 + i) if channel == "telegram" else f"D{run}{i:06d}",
             "payload": {"text": "Your order has shipped"}} for i in range(n)]
    async with db.write() as conn:
        for start in range(0, n, 1000):
            await conn.execute(insert(OutboxRow.__table__), rows[start:start + 1000])


async def warm_up_store(db: Any, kind: str) -> None:
    """Claim and settle one row before the clock starts, as a running service's worker has.

    Its store connections are open and its statements compiled and prepared;
    here they would be done inside the timed run (the first claim on
    PostgreSQL took 75-100 ms, 5-8% of a 3,000-message run).
    """
    from crm_store.outbox import Outbox, Settlement

    outbox = Outbox(db)
    await queue_rows(db, kind, 1)
    (message,) = await outbox.claim(1, 60, channels=[kind])
    await outbox.settle([Settlement(outbox_id=message.outbox_id or "", message_id=None, outcome="sent", external_id="warm-up")])


async def worker_rate(db_url: str, kind: str, url: str, n: int, *, rate_limits: bool, raw: bool = False) -> tuple[float, dict[str, int]]:
    from channels.delivery import DeliveryWorker
    from crm_store.database import Database
    from crm_store.outbox import Outbox

    db = Database(db_url)
    await warm_up_store(db, kind)
    channel = make_channel(kind, url, raw)
    await channel.start()
    await queue_rows(db, kind, n)
    outcomes: dict[str, int] = {}
    done = asyncio.Event()

    def on_result(message: Any, outcome: str) -> None:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcomes.get("sent", 0) + outcomes.get("failed", 0) >= n:
            done.set()

    worker = DeliveryWorker(Outbox(db), {kind: channel}, rate_limits=rate_limits, concurrency=CONCURRENCY, on_result=on_result,
                            poll_seconds=0.05)
    started = time.perf_counter()
    worker.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=max(120.0, n / 20))
    finally:
        elapsed = time.perf_counter() - started
        await worker.stop()
        await channel.stop()
        await db.dispose()
    return n / elapsed, outcomes


# -- databases --------------------------------------------------------------------

async def sqlite_url(folder: Path) -> str:
    from crm_store.database import Database

    url = f"sqlite+aiosqlite:///{folder / 'outbound.db'}"
    db = Database(url)
    await db.upgrade()
    await db.dispose()
    return url


async def postgres_url() -> tuple[str, str] | None:
    import asyncpg

    from crm_store.database import Database

    name = f"dangol_bench_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except Exception as exc:  # noqa: BLE001
        print(f"postgresql: skipped ({exc})")
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    db = Database(url)
    await db.upgrade()
    await db.dispose()
    return url, name


async def drop_postgres(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# -- the run ----------------------------------------------------------------------

async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"cores": os.cpu_count(), "messages": args.messages, "runs": args.runs, "concurrency": CONCURRENCY,
                               "throughput": {}, "broadcast": None}
    with tempfile.TemporaryDirectory() as tmp:
        stores: list[tuple[str, str]] = []
        pg_name = None
        if args.only in (None, "sqlite"):
            stores.append(("sqlite", await sqlite_url(Path(tmp))))
        if args.only in (None, "postgresql"):
            pg = await postgres_url()
            if pg:
                stores.append(("postgresql", pg[0]))
                pg_name = pg[1]
        try:
            for kind in ("telegram", "slack"):
                with FakeProcess(kind) as url:
                    await raw_rate(kind, url, 500)  # warm-up: connections, the fake's first requests
                    raws, clients = [], []
                    for _ in range(args.runs):
                        raws.append(await raw_rate(kind, url, args.messages))
                        clients.append(await client_rate(kind, url, args.messages) / raws[-1])
                    entry = {"raw_aiohttp_per_s": round(statistics.median(raws)), "ratio": round(statistics.median(clients), 3),
                             "ratios": [round(r, 3) for r in clients]}
                    results["throughput"][f"{kind}/client-only"] = entry
                    print(f"{kind:8} {'client':10}  raw aiohttp {entry['raw_aiohttp_per_s']:6}/s  channel.send alone, ratio"
                          f" {entry['ratio']:.2f}  (runs {entry['ratios']})", flush=True)
                    for store, db_url in stores:
                        raws, workers, ratios, ceilings = [], [], [], []
                        for _ in range(args.runs):
                            raw = await raw_rate(kind, url, args.messages)
                            rate, outcomes = await worker_rate(db_url, kind, url, args.messages, rate_limits=False)
                            assert outcomes.get("sent") == args.messages, outcomes
                            ceiling, _ = await worker_rate(db_url, kind, url, args.messages, rate_limits=False, raw=True)
                            raws.append(raw)
                            workers.append(rate)
                            ratios.append(rate / raw)
                            ceilings.append(ceiling)
                        entry = {"raw_aiohttp_per_s": round(statistics.median(raws)), "worker_per_s": round(statistics.median(workers)),
                                 "ratio": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
                                 "worker_with_raw_aiohttp_channel_per_s": round(statistics.median(ceilings)),
                                 "ratio_to_worker_with_raw_channel": round(statistics.median(workers) / statistics.median(ceilings), 3)}
                        results["throughput"][f"{kind}/{store}"] = entry
                        print(f"{kind:8} {store:10}  raw aiohttp {entry['raw_aiohttp_per_s']:6}/s  worker {entry['worker_per_s']:6}/s"
                              f"  ratio {entry['ratio']:.2f}  (runs {entry['ratios']});  same worker with a bare-aiohttp channel"
                              f" {entry['worker_with_raw_aiohttp_channel_per_s']}/s -> client share"
                              f" {entry['ratio_to_worker_with_raw_channel']:.2f}", flush=True)
            if args.broadcast > 0:
                results["broadcast"] = await broadcast(stores[0], args.broadcast)
        finally:
            if pg_name:
                await drop_postgres(pg_name)
    return results


async def broadcast(store: tuple[str, str], n: int) -> dict[str, Any]:
    """Limits on: a broadcast to n distinct chats against a fake that enforces 30/s."""
    with FakeProcess("telegram", per_second=30) as url:
        await stats(url, reset=True)
        rate, outcomes = await worker_rate(store[1], "telegram", url, n, rate_limits=True)
        seen = await stats(url)
    result = {"messages": n, "store": store[0], "per_s": round(rate, 2), "max_in_any_1s": seen["max_in_1s"],
              "http_429": seen["rejected_429"], "sent": outcomes.get("sent", 0), "within_limit": seen["max_in_1s"] <= 30}
    print(f"broadcast {n} chats with limits on ({store[0]}): {result['per_s']}/s, busiest second {result['max_in_any_1s']},"
          f" 429s {result['http_429']}, sent {result['sent']}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000, help="messages per throughput measurement")
    parser.add_argument("--runs", type=int, default=3, help="measurements per case; medians are reported")
    parser.add_argument("--broadcast", type=int, default=300, help="size of the rate-limited broadcast (0: none)")
    parser.add_argument("--full-broadcast", action="store_true", help="the 3,000-chat broadcast (about 100 s)")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    if args.full_broadcast:
        args.broadcast = 3000
    import logging

    logging.basicConfig(level=logging.ERROR)
    print(f"cores: {os.cpu_count()}  concurrency: {CONCURRENCY}  messages: {args.messages}  runs: {args.runs}", flush=True)
    from bot.event_loop import new_event_loop

    # the loop `dangol serve` runs on; the raw-aiohttp ceiling shares it, so the ratio compares like with like
    loop = new_event_loop()
    try:
        results = loop.run_until_complete(run(args))
    finally:
        loop.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "outbound.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS / 'outbound.json'}")


if __name__ == "__main__":
    main()
