"""Inbound throughput and latency of the REST channel, end to end.

Drives ``POST /webhooks/rest/webhook`` of a real ``dangol serve`` with wrk
(32 connections by default), each request a new message from one of many
senders, so every request is stored, deduplicated, answered by the sample
bot and committed before its answer.  The ceiling is the plainest aiohttp
JSON echo measured with the same wrk settings in the same run; figures are
printed as ratios to it.  Runs on a SQLite file and on PostgreSQL
(127.0.0.1:5432) unless told otherwise, talks only to 127.0.0.1, and stops
by itself.

Beside the rates it prints the CPU time each message cost, per process of
the service (the serving processes and their children) and in PostgreSQL's
server processes, read from /proc over the measured run.  On a shared
machine whose speed drifts from minute to minute these show where the time
goes even when the rates move.

With ``--pipeline accurate`` the service runs the sample bot with its NLU
pipeline switched to ``accurate`` (a copy of the bot folder whose
config.yml says so; needs ``pip install 'dangol[embed]'``), so the figures
show what the sentence embedding costs the message path; results then go to
``inbound_accurate.json``.

    python bench/inbound.py [--seconds 10] [--connections 32] [--runs 3] [--only sqlite|postgresql]
                            [--pipeline fast|accurate]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("DANGOL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")

LUA = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
request = function()
  counter = counter + 1
  local sender = "bench-" .. tid .. "-" .. (counter % 500)
  local text = TEXTS[(counter % #TEXTS) + 1]
  local body = '{"sender":"' .. sender .. '","message":' .. text .. ',"message_id":"' .. RUN .. "-" .. tid .. "-" .. counter .. '"}'
  return wrk.format("POST", "/webhooks/rest/webhook", {["Content-Type"] = "application/json"}, body)
end
"""


def bench_texts() -> list[str]:
    """What customers write: the sample bot's own examples, plus real banking
    questions (BANKING77's test texts) when the shared data sets are present,
    so the classifier and the bot work as hard as they would in service."""
    import yaml

    texts: list[str] = []
    nlu = yaml.safe_load((ROOT / "examples" / "support-bot" / "nlu.yml").read_text(encoding="utf-8"))
    for item in nlu.get("nlu", []):
        if isinstance(item.get("examples"), str):
            texts += [line.strip()[1:].strip() for line in item["examples"].splitlines() if line.strip().startswith("-")]
    shared = Path(os.environ.get("DANGOL_SHARED", ROOT.parent / "shared")) / "datasets" / "banking77" / "test.csv"
    if shared.is_file():
        import csv

        with shared.open(encoding="utf-8") as fh:
            texts += [row["text"] for row in csv.DictReader(fh)][:2000]
    return [t for t in texts if t]


def bot_folder(pipeline: str, folder: Path) -> Path:
    """The sample bot, or a copy of it whose config.yml picks ``pipeline``."""
    sample = ROOT / "examples" / "support-bot"
    if pipeline == "fast":
        return sample
    import yaml

    copy = folder / f"bot-{pipeline}"
    if not copy.exists():
        shutil.copytree(sample, copy)
        config = yaml.safe_load((sample / "config.yml").read_text(encoding="utf-8")) or {}
        (copy / "config.yml").write_text(yaml.safe_dump({**config, "pipeline": pipeline}), encoding="utf-8")
    return copy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            time.sleep(0.2)
        except OSError:  # not listening yet
            time.sleep(0.2)
    raise TimeoutError(url)


def parse_wrk(output: str) -> dict[str, float]:
    def to_ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latency = {p: to_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {"rps": rps, "p50_ms": latency.get("50", 0.0), "p99_ms": latency.get("99", 0.0),
            "non_2xx": int(errors.group(1)) if errors else 0, "socket_errors": socket_errors.group(1) if socket_errors else ""}


def run_wrk(port: int, seconds: int, connections: int, threads: int, lua: Path) -> dict[str, float]:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua), f"http://127.0.0.1:{port}/webhooks/rest/webhook"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    return parse_wrk(out)


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, user plus system CPU seconds so far) of every process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                head, rest = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:  # gone meanwhile
                continue
            fields = rest.split()
            table[int(entry.name)] = (int(fields[1]), head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / tick)
    return table


class CpuMeter:
    """CPU the service's processes (``root`` and all below it), and PostgreSQL's if asked, spent between ``start`` and ``stop``."""

    def __init__(self, root: int, *, postgres: bool) -> None:
        self.root = root
        self.postgres = postgres
        self._before: tuple[dict[int, float], dict[int, float]] | None = None

    def _read(self) -> tuple[dict[int, float], dict[int, float]]:
        table = _processes()
        service = [self.root]
        for pid in service:
            service += [child for child, (parent, _, _) in table.items() if parent == pid]
        postgres = [pid for pid, (_, name, _) in table.items() if self.postgres and name == "postgres"]
        return {pid: table[pid][2] for pid in service if pid in table}, {pid: table[pid][2] for pid in postgres}

    def start(self) -> None:
        self._before = self._read() if Path("/proc/self/stat").exists() else None

    def stop(self, messages: float) -> dict[str, Any]:
        """Milliseconds of CPU per message: each service process (largest first), PostgreSQL's, and all of it."""
        if self._before is None or messages <= 0:
            return {}
        spent = [{pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()} for after, before in zip(self._read(), self._before)]

        def per_message(seconds: float) -> float:
            return round(seconds / messages * 1000, 3)

        service, postgres = (sum(part.values()) for part in spent)
        return {"service_processes": sorted((per_message(v) for v in spent[0].values()), reverse=True),
                "postgres": per_message(postgres), "total": per_message(service + postgres)}


def lua_script(folder: Path, run_id: str) -> Path:
    path = folder / f"bench-{run_id}.lua"
    # each text as a JSON string literal inside a Lua long string
    texts = ",\n".join("[==[" + json.dumps(t, ensure_ascii=False) + "]==]" for t in bench_texts())
    path.write_text(f'RUN = "{run_id}"\nTEXTS = {{\n{texts}\n}}\n' + LUA, encoding="utf-8")
    return path


def measure_echo(seconds: int, connections: int, threads: int, folder: Path) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_server.py"), str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/", 20)
        return run_wrk(port, seconds, connections, threads, lua_script(folder, "echo-" + secrets.token_hex(3)))
    finally:
        proc.terminate()
        proc.wait(10)


async def _pg(sql: str, database: str | None = None) -> None:
    import asyncpg

    url = PG_ADMIN if database is None else PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def measure_dangol(kind: str, seconds: int, connections: int, threads: int, folder: Path, warmup: int, extra_env: dict[str, str]) -> dict[str, Any]:
    pg_name = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{folder}/bench-{secrets.token_hex(3)}.db"
    else:
        pg_name = f"dangol_bench_{secrets.token_hex(4)}"
        asyncio.run(_pg(f'CREATE DATABASE "{pg_name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{pg_name}"
        subprocess.run([sys.executable, "-m", "dangol.cli", "db", "upgrade"], env={**os.environ, "DANGOL_DATABASE_URL": url},
                       check=True, capture_output=True, cwd=folder)
    port = free_port()
    workers = "1" if kind == "sqlite" else str(extra_env.get("workers", 1))
    env = {**os.environ, "DANGOL_DATABASE_URL": url, "DANGOL_PORT": str(port), "DANGOL_LOG_LEVEL": "warning",
           "DANGOL_WORKERS": workers, **{k: v for k, v in extra_env.items() if k.startswith("DANGOL_")}}
    proc = subprocess.Popen([sys.executable, "-m", "dangol.cli", "serve"], env=env, cwd=folder)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 60)
        time.sleep(4 if workers != "1" else 0)  # the other processes start after the first
        if warmup:
            run_wrk(port, warmup, connections, threads, lua_script(folder, "warm-" + secrets.token_hex(3)))
        if pg_name:
            # A new database has no planner statistics until autovacuum's first
            # ANALYZE (a minute or more in), and without them PostgreSQL scans
            # instead of using the unique indexes.  Measure the steady state a
            # running service has.
            asyncio.run(_pg("ANALYZE", pg_name))
        lua = lua_script(folder, "run-" + secrets.token_hex(3))
        meter = CpuMeter(proc.pid, postgres=pg_name is not None)
        meter.start()
        result: dict[str, Any] = run_wrk(port, seconds, connections, threads, lua)
        result["cpu_ms_per_message"] = meter.stop(result["rps"] * seconds)
        return result
    finally:
        proc.terminate()
        proc.wait(30)
        if pg_name:
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--sqlite-synchronous", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="dangol serve processes on PostgreSQL (default: one per core); SQLite always runs one")
    parser.add_argument("--pipeline", choices=["fast", "accurate"], default="fast",
                        help="the sample bot's NLU pipeline (accurate needs the dangol[embed] extra)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/inbound.py needs wrk (apt-get install wrk)")
    kinds = [args.only] if args.only else ["sqlite", "postgresql"]
    extra_env = {"DANGOL_SQLITE_SYNCHRONOUS": args.sqlite_synchronous, "workers": str(args.workers)}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dangol-bench-") as tmp:
        folder = Path(tmp)
        extra_env["DANGOL_BOT_PATH"] = str(bot_folder(args.pipeline, folder))
        for run in range(args.runs):
            echo = measure_echo(args.seconds, args.connections, args.threads, folder)
            entry: dict[str, Any] = {"run": run + 1, "echo": echo}
            for kind in kinds:
                result = measure_dangol(kind, args.seconds, args.connections, args.threads, folder, args.warmup, extra_env)
                result["ratio_to_echo"] = result["rps"] / echo["rps"]
                entry[kind] = result
                cpu = result["cpu_ms_per_message"]
                cpu_text = (f"  cpu ms/msg: service {' + '.join(f'{v:.2f}' for v in cpu['service_processes'] if v >= 0.01)}"
                            + (f", postgres {cpu['postgres']:.2f}" if kind == "postgresql" else "")) if cpu else ""
                print(f"run {run + 1} {kind:10s} {result['rps']:8.0f} msg/s  p50 {result['p50_ms']:6.2f} ms  "
                      f"p99 {result['p99_ms']:6.2f} ms  ratio {result['ratio_to_echo']:.3f}  (echo {echo['rps']:.0f}/s, "
                      f"non-2xx {result['non_2xx']}){cpu_text}", flush=True)
            runs.append(entry)
    summary: dict[str, Any] = {"cores": os.cpu_count(), "pipeline": args.pipeline, "connections": args.connections, "seconds": args.seconds,
                               "sqlite_synchronous": args.sqlite_synchronous, "workers": args.workers,
                               "distinct_texts": len(bench_texts()), "runs": runs, "median": {}}
    summary["median"]["echo_rps"] = statistics.median(r["echo"]["rps"] for r in runs)
    for kind in kinds:
        summary["median"][kind] = {key: statistics.median(r[kind][key] for r in runs) for key in ("rps", "p50_ms", "p99_ms", "ratio_to_echo")}
        if all(r[kind]["cpu_ms_per_message"] for r in runs):
            summary["median"][kind]["cpu_ms_per_message"] = statistics.median(r[kind]["cpu_ms_per_message"]["total"] for r in runs)
    print(f"\ncores: {summary['cores']}  workers: {args.workers}  connections: {args.connections}  echo ceiling (median): {summary['median']['echo_rps']:.0f} req/s")
    for kind in kinds:
        m = summary["median"][kind]
        cpu_text = f"  cpu {m['cpu_ms_per_message']:.2f} ms/msg in all" if "cpu_ms_per_message" in m else ""
        print(f"median {kind:10s} {m['rps']:8.0f} msg/s  p50 {m['p50_ms']:.2f} ms  p99 {m['p99_ms']:.2f} ms  ratio to echo {m['ratio_to_echo']:.3f}{cpu_text}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "inbound.json" if args.pipeline == "fast" else f"inbound_{args.pipeline}.json"
    (RESULTS / name).write_text(json.dumps(summary, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
