"""Which channels this process sends for, and the proof that its sender is alive.

Every serving process may run a delivery worker, and on one PostgreSQL
database several hosts do.  A platform's rate limit (Telegram's 30 messages a
second per bot) is counted in the memory of the process that sends, so for
each channel (one platform account: one token per channel) exactly one
process at a time sends: the one leading the duty ``delivery:<channel>``
(``crm_store.leadership``: a session advisory lock, lost when the session
dies).  The others keep taking messages in, serving the API and the console;
each retries the lead every ``every`` seconds, so when the leader dies another
takes over within about that long.

The sender's liveness is a lock too: each process holds one of its own
(``sender_key``), and every outbox row it claims records that key.  When this
process starts leading a channel it reclaims at once the rows of senders whose
lock nobody holds any more (``Outbox.reclaim_held``): a killed leader's
replies go out seconds after it died, not a lease later.  On SQLite there is
one serving process: it always leads, and everything held at its start was
held by a predecessor that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable

from crm_store.leadership import Leadership
from crm_store.outbox import Outbox

log = logging.getLogger(__name__)

#: Seconds between tries to take (or confirm) each channel's lead: the failover time.
LEAD_RETRY_SECONDS = 1.0


class DeliveryLeads:
    def __init__(self, database_url: str, outbox: Outbox, channels: Iterable[str], *,
                 every: float = LEAD_RETRY_SECONDS) -> None:
        self.sender = Leadership(database_url, f"delivery-sender:{uuid.uuid4()}")
        self._duties = {name: Leadership(database_url, f"delivery:{name}") for name in sorted(set(channels))}
        self._outbox = outbox
        self.every = every
        self._led: frozenset[str] = frozenset()
        #: Called when this process starts leading a channel (the worker looks for due rows at once).
        self.on_gain: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def sender_key(self) -> int:
        """What this process's claims record in ``outbox.claimed_by``: the key of its liveness lock."""
        return self.sender.key

    def leading(self) -> frozenset[str]:
        """The channels this process sends for now (as of the last refresh)."""
        return self._led

    async def refresh(self) -> frozenset[str]:
        """Confirm or take each channel's lead; rows of dead senders on newly led channels come back now."""
        if not await self.sender.try_lead():
            # Its own liveness lock not held, this process's rows would look like a dead sender's: claim nothing.
            led: frozenset[str] = frozenset()
        else:
            led = frozenset([name for name, duty in self._duties.items() if await duty.try_lead()])
        gained = led - self._led
        if gained:
            try:
                reclaimed = await self._outbox.reclaim_held(sorted(gained))
            except Exception:  # noqa: BLE001 - the store is briefly away: the next refresh tries the reclaim again
                log.exception("reclaiming the rows of stopped senders on %s failed", ", ".join(sorted(gained)))
                led -= gained
            else:
                log.info("sending for %s", ", ".join(sorted(gained)))
                if reclaimed:
                    log.warning("%d replies were held by a process that stopped without settling them; sending them now",
                                reclaimed)
        lost = self._led - led
        if lost:
            log.warning("no longer sending for %s: another process leads it", ", ".join(sorted(lost)))
        self._led = led
        if gained and led and self.on_gain is not None:
            self.on_gain()
        return led

    async def start(self) -> None:
        """Lead what can be led now (so the first claim knows), then keep trying every ``every`` seconds."""
        await self.refresh()
        self._task = asyncio.create_task(self._forever(), name="delivery-leads")

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - keep trying: a process that stops trying can never take over
                log.exception("refreshing the delivery leads failed")

    async def close(self) -> None:
        """Give every lead up, and the liveness lock last (call it once the worker has settled its rows)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._led = frozenset()
        for duty in self._duties.values():
            await duty.close()
        await self.sender.close()
