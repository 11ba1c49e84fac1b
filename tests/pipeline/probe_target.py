"""The target of tests.pipeline.main_probe's child: it answers each item with what the child process imported."""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection
from typing import Any

from bot.pipeline.child_process import serve_batches


def _imports(batch: list[Any]) -> list[dict[str, bool]]:
    main = sys.modules.get("__mp_main__")  # the child's own __main__, or the parent's program run again under this name
    return [{"main_again": hasattr(main, "PROBE_MAIN"), "probe": "tests.pipeline.main_probe" in sys.modules} for _ in batch]


def probe_child(conn: Connection) -> None:
    serve_batches(conn, lambda: _imports)
