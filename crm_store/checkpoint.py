"""SQLite's WAL copied back into the database file on a thread of its own.

Left to itself SQLite checkpoints inside the commit that takes the WAL past
1,000 pages: that commit copies every page back and flushes the database
file before it returns, and every message waiting on it waits too.
Measured on the REST channel, those batches took 120-220 ms against a
median of 7 ms, and they alone set the p99 latency.  The service's
connections therefore never checkpoint (``wal_autocheckpoint=0``); this
thread runs passive checkpoints, which never block a writer or a reader and
run outside the GIL, so the copy overlaps the message path instead of
stalling it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

#: How often the WAL is copied back (a pass over an empty WAL costs next to
#: nothing).  Small and frequent keeps each copy short and the WAL file small;
#: on this project's 2-core machine no interval from 0.05 to 5 s gave a lower p99.
INTERVAL_SECONDS = 0.25
#: Pages in the WAL past which a checkpoint that cannot catch up (a long
#: reader holds old pages) is worth a warning.
LARGE_WAL_PAGES = 50_000


class WalCheckpointer:
    """Background checkpoints of one SQLite file; ``close`` runs a last one."""

    def __init__(self, path: str, *, interval: float | None = None) -> None:
        self.path = path
        self.interval = INTERVAL_SECONDS if interval is None else interval
        self._wake = threading.Event()
        self._stop = False
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Checkpoint now rather than at the next interval."""
        self._wake.set()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._stop = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            while not self._stop:
                self._wake.wait(self.interval)
                self._wake.clear()
                if self._stop:
                    break
                self._checkpoint(conn, "PASSIVE")
            # What the last writes left; closing the last connection of the
            # file then removes the WAL, as SQLite always does.
            self._checkpoint(conn, "PASSIVE")
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection, mode: str) -> None:
        try:
            _busy, wal_pages, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # a locked or briefly unreadable file is tried again next round
            log.info("WAL checkpoint (%s) of %s failed: %s", mode, self.path, exc)
            return
        if wal_pages - copied > LARGE_WAL_PAGES and not self._warned:
            self._warned = True
            log.warning("the WAL of %s holds %d pages not yet copied back: a long-running reader keeps them", self.path, wal_pages - copied)
        elif wal_pages - copied <= LARGE_WAL_PAGES:
            self._warned = False
