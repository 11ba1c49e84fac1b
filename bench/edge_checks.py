"""What the edge checks of untrusted input cost a message, against the JSON parse they guard.

Every body from outside is parsed by :func:`contracts.untrusted.loads_checked`
(``json.loads`` plus a refusal of lone surrogates and deep nesting), every
inbound message passes :func:`contracts.untrusted.check_inbound` where the
channels meet, and a REST message's id is scoped to its sender
(:func:`channels.rest.sender_scoped_id`).  The ceiling is the plain
``json.loads`` of the same body in the same run; the figures are the extra
microseconds each check adds, and that extra as a share of the CPU a whole
message costs in ``bench/inbound.py`` (read from its last results), so the
effect the end-to-end bench can show is bounded from below its noise.

The bodies: the inbound bench's own REST body (ASCII), Korean as UTF-8 and as
``\\u`` escapes (clients with ``ensure_ascii``), emoji as escaped surrogate
pairs (the one common case the walk must look into), and a Telegram update
with nested ``message.from.chat`` objects.  Runs in this process only.

    python bench/edge_checks.py [--number 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

from channels.rest import sender_scoped_id  # noqa: E402 - after the path above
from contracts.messages import InboundMessage  # noqa: E402
from contracts.untrusted import check_inbound, loads_checked  # noqa: E402

TELEGRAM_UPDATE = {
    "update_id": 10000,
    "message": {"message_id": 1365, "date": 1441645532, "text": "주문한 물건이 아직 안 왔어요",
                "from": {"id": 1111111, "is_bot": False, "first_name": "민지", "last_name": "김", "username": "minji", "language_code": "ko"},
                "chat": {"id": 1111111, "type": "private", "first_name": "민지", "last_name": "김", "username": "minji"}},
}


def bodies() -> dict[str, bytes]:
    rest = {"sender": "bench-0-17", "message": "where is my order", "message_id": "run-3-12345"}
    korean = {**rest, "message": "주문한 물건이 아직 안 왔어요. 언제 도착하나요?"}
    emoji = {**rest, "message": "thanks 👍🎉 see you"}
    return {
        "rest ascii (the inbound bench's body)": json.dumps(rest).encode(),
        "rest korean, UTF-8": json.dumps(korean, ensure_ascii=False).encode(),
        "rest korean, \\u escapes": json.dumps(korean).encode(),
        "rest emoji, escaped surrogate pairs": json.dumps(emoji).encode(),
        "telegram update, korean, nested": json.dumps(TELEGRAM_UPDATE, ensure_ascii=False).encode(),
    }


def per_call_us(fn: Any, number: int, repeat: int) -> float:
    """The best of ``repeat`` timings of ``number`` calls, in microseconds a call (the least disturbed)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def inbound_cpu_us() -> float | None:
    """CPU a whole message cost in the last ``bench/inbound.py`` run on SQLite (serving process and writer)."""
    try:
        summary = json.loads((RESULTS / "inbound.json").read_text(encoding="utf-8"))
        return float(summary["median"]["sqlite"]["cpu_ms_per_message"]) * 1000
    except (OSError, KeyError, TypeError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    message_us = inbound_cpu_us()
    results: dict[str, Any] = {"cores": os.cpu_count(), "number": args.number, "repeat": args.repeat,
                               "inbound_cpu_us_per_message": message_us, "bodies": {}}
    print(f"cores: {os.cpu_count()}  best of {args.repeat} x {args.number} calls"
          + (f"  a whole message costs {message_us:.0f} us of CPU (bench/inbound.py, SQLite)" if message_us else ""))
    for name, raw in bodies().items():
        data = json.loads(raw)
        parse = per_call_us(lambda raw=raw: json.loads(raw), args.number, args.repeat)
        checked = per_call_us(lambda raw=raw: loads_checked(raw), args.number, args.repeat)
        text = data.get("message") if isinstance(data.get("message"), str) else data["message"]["text"]
        message = InboundMessage(channel="rest", sender_id="bench-0-17", text=text, external_id="x",
                                 metadata={"message_id": "run-3-12345"})
        inbound = per_call_us(lambda message=message: check_inbound(message), args.number, args.repeat)
        scoped = per_call_us(lambda: sender_scoped_id("bench-0-17", "run-3-12345"), args.number, args.repeat)
        extra = max(0.0, checked - parse) + inbound + scoped
        entry = {"json_loads_us": round(parse, 2), "loads_checked_us": round(checked, 2),
                 "ratio_to_json_loads": round(checked / parse, 3), "check_inbound_us": round(inbound, 2),
                 "sender_scoped_id_us": round(scoped, 2), "extra_us_per_message": round(extra, 2)}
        if message_us:
            entry["share_of_message_cpu"] = round(extra / message_us, 4)
        results["bodies"][name] = entry
        share = f"  = {entry['share_of_message_cpu']:.2%} of a message" if message_us else ""
        print(f"{name:40s} json.loads {parse:5.2f} us  checked {checked:5.2f} us ({checked / parse:4.2f}x)  "
              f"check_inbound {inbound:4.2f}  scoped id {scoped:4.2f}  extra {extra:5.2f} us{share}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "edge_checks.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
