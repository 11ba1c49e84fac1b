"""Run as a program (``python -m tests.pipeline.main_probe``): starts a pipeline child and prints what the child
says of its imports, one JSON object.  A module of its own because what is tested is what a child of a
``__main__`` imports."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.pipeline.child_process import ChildBatches
from tests.pipeline.probe_target import probe_child

#: What the child finds if spawn ran this program again in it.
PROBE_MAIN = True


async def _local(batch: list[Any]) -> list[None]:
    return [None for _ in batch]


async def main() -> None:
    child: ChildBatches[int, Any] = ChildBatches("probe", probe_child, (), _local, retry_here=True)
    child.start()
    try:
        for _ in range(600):  # until the child answers (it may take seconds to start on a busy machine)
            answer = (await child.run([1]))[0]
            if answer is not None:
                print(json.dumps(answer))
                return
            await asyncio.sleep(0.05)
        print(json.dumps({"error": "the child never answered"}))
    finally:
        await child.close()


if __name__ == "__main__":
    asyncio.run(main())
