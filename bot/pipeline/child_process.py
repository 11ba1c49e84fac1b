"""A batch of work done in a process of its own, over a pipe, with the serving process as the fallback.

Python runs one thread at a time per process, so on a machine with cores to
spare the service moves its pure-Python stages (parsing, the store's
writer) into child processes; each batch costs one pickle round trip.  The
child's answer is awaited on the event loop itself (the pipe's file
descriptor), with no helper thread competing for the GIL.

While a child starts, and for ``restart_after`` seconds after one failed,
the serving process does the work itself, so a child never stops the
message path; a failed child is then started again.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import multiprocessing
import pickle
import signal
import sys
import time
import types
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from bot import logs

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

READY = "ready"
#: Seconds to work in the serving process after a child failed, before starting another.
RESTART_AFTER = 30.0
#: A batch the child has not answered in this long counts as a failure.
ANSWER_TIMEOUT = 10.0
#: Seconds a closing child may take to finish its batch and exit.
SHUTDOWN_WAIT = 5.0


PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """In a child (a serve process before exec, a pipeline child at start): SIGTERM from Linux when its parent dies.

    Without it a first process killed with SIGKILL would leave the others
    serving on the port with nobody to stop them.  Elsewhere it does nothing.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):
        pass


@contextmanager
def _without_main_module() -> Iterator[None]:
    """Start a spawned child that imports only what its target needs, not the command line's module.

    ``spawn`` imports the parent's ``__main__`` again in the child (as
    ``__mp_main__``), so that functions defined there can be unpickled.  Ours
    never are (targets live in ``bot.pipeline``), but ``__main__`` is
    ``dangol.cli``, which imports every command's dependencies: the writer
    child then took 4-5 s and 256 MB to start instead of 2 s, and the serving
    process wrote every batch itself meanwhile (the inbound bench's first
    seconds after start-up: p99 180 ms against 50 ms once the child answered).
    Hiding ``__main__`` while the child's preparation data is taken leaves
    nothing for it to import.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class ChildFailed(Exception):
    """The child said something other than an answer, or nothing."""


def _bootstrap(conn: Connection, log_config: dict[str, Any] | None, target: Callable[..., None], args: tuple[Any, ...]) -> None:
    """Every child starts here: it logs as its parent does (one line per event, JSON if asked), then runs ``target``."""
    if log_config is not None:
        logs.configure(**log_config)
    target(conn, *args)


def serve_batches(conn: Connection, load: Callable[[], Callable[[list[Any]], list[Any]]]) -> None:
    """The child's side: ``load()`` the handler, say ready, then answer batches until the pipe closes."""
    stop_with_parent()
    try:
        handle = load()
        failure = None
    except Exception as exc:  # noqa: BLE001 - the parent hears why and works itself
        failure = f"cannot start: {type(exc).__name__}: {exc}"
    try:
        conn.send(failure or READY)
    except OSError:  # the parent stopped while this one was starting
        return
    if failure:
        return
    gc.collect()
    gc.freeze()  # what load() built is never garbage: keep full collections short (see bot.app.settle_heap)
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answers = handle(batch)
        except Exception as exc:  # noqa: BLE001 - say why instead of dying; the parent retries what is safe to retry
            answers = f"the batch failed: {type(exc).__name__}: {exc}"
        try:
            try:
                conn.send(answers)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                conn.send(f"cannot send the answer: {exc}")
        except OSError:  # the parent is gone
            return


class ChildBatches(Generic[T, R]):
    """Runs ``local(batch)``'s work in a child started with ``target(conn, *args)`` (see ``serve_batches``).

    ``retry_here`` says whether a batch the child failed on may be done
    again here: true for work without side effects (parsing), false for
    work that may have committed before the child died (writing).  For the
    latter, ``retry_safe(item)`` says which items may be done again anyway
    (a message with an external id is deduplicated by it: done twice, it is
    stored once and answered as the first time); the others fail alone
    with :class:`ChildFailed`, so one poisoned item costs nobody else.
    """

    def __init__(
        self,
        name: str,
        target: Callable[..., None],
        args: tuple[Any, ...],
        local: Callable[[Sequence[T]], Awaitable[list[R]]],
        *,
        retry_here: bool,
        retry_safe: Callable[[T], bool] | None = None,
    ) -> None:
        self.name = name
        self._target = target
        self._args = args
        self._local = local
        self._retry_here = retry_here
        self._retry_safe = retry_safe
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._restart_at = 0.0
        self._sent_at: float | None = None
        self._answered_at: float | None = None
        self._failed_at: float | None = None
        self._failure = ""

    def start(self) -> None:
        """Start the child now, so that it has loaded by the time the first batch comes."""
        if self._conn is None:
            self._spawn()

    @property
    def child_pid(self) -> int | None:
        """The child's pid once it answers (for operators and tests)."""
        return self._process.pid if self._process is not None and self._ready else None

    async def run(self, batch: Sequence[T]) -> list[R]:
        if self._conn is None:
            if time.monotonic() < self._restart_at:
                return await self._local(batch)
            self._spawn()
        assert self._conn is not None
        sent = False
        try:
            if not self._ready:
                if not self._conn.poll():
                    return await self._local(batch)  # still starting: work here rather than keep callers waiting
                hello = self._conn.recv()
                if hello != READY:
                    raise ChildFailed(str(hello))
                self._ready = True
                log.info("%s process %s answers", self.name, self._process.pid if self._process else "?")
            try:
                payload = pickle.dumps(list(batch), protocol=pickle.HIGHEST_PROTOCOL)
            except (pickle.PicklingError, RecursionError, TypeError, AttributeError) as exc:
                log.warning("a batch of %d cannot cross to the %s process (%s); doing it here", len(batch), self.name, exc)
                return await self._local(batch)
            self._sent_at = time.monotonic()
            self._conn.send_bytes(payload)
            sent = True
            answers = await asyncio.wait_for(self._answer(self._conn, len(batch)), ANSWER_TIMEOUT)
            self._sent_at, self._answered_at = None, time.monotonic()
            return answers
        except (EOFError, OSError, ChildFailed, asyncio.TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            log.warning("the %s process failed (%s); working in the serving process for %.0f s", self.name, reason, RESTART_AFTER)
            self._stop_child(graceful=False)
            self._sent_at, self._failed_at, self._failure = None, time.monotonic(), reason
            self._restart_at = self._failed_at + RESTART_AFTER
            if sent and not self._retry_here:
                return await self._retry_safe_items(batch, f"the {self.name} process failed mid-batch: {reason}")
            return await self._local(batch)

    def health(self, stuck_after: float = 5.0) -> tuple[bool, str]:
        """Whether the child keeps up, and what an operator should read: its pid, how long ago it last
        answered or failed, or for how long it has been writing a batch.

        A batch unanswered for ``stuck_after`` seconds means messages wait
        (a held lock, a hung child); a failed child is not an outage, since
        the serving process works meanwhile, but it is reported with its age.
        """
        now = time.monotonic()
        if self._sent_at is not None and now - self._sent_at > stuck_after:
            return False, f"busy on one batch for {now - self._sent_at:.1f} s (pid {self.child_pid})"
        if self._failed_at is not None and self._conn is None:
            return True, (f"failed {now - self._failed_at:.1f} s ago ({self._failure}); the serving process writes "
                          f"until it restarts in {max(0.0, self._restart_at - now):.0f} s")
        if self.child_pid is None:
            return True, "starting; the serving process writes meanwhile"
        age = f"{now - self._answered_at:.1f} s ago" if self._answered_at is not None else "not yet"
        return True, f"ok (pid {self.child_pid}, last answered {age})"

    async def _retry_safe_items(self, batch: Sequence[T], reason: str) -> list[R]:
        """After a failure mid-batch: the items safe to do twice are done here; the others' results are :class:`ChildFailed`."""
        if self._retry_safe is None:
            raise ChildFailed(reason)
        safe = [i for i, item in enumerate(batch) if self._retry_safe(item)]
        results: list[Any] = [ChildFailed(reason) for _ in batch]
        if safe:
            done = await self._local([batch[i] for i in safe])
            for i, result in zip(safe, done, strict=True):
                results[i] = result
        return results

    async def _answer(self, conn: Connection, expected: int) -> list[R]:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        fd = conn.fileno()
        loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        answers = conn.recv()
        if not isinstance(answers, list) or len(answers) != expected:
            raise ChildFailed(str(answers) if isinstance(answers, str) else
                              f"expected {expected} answers, got {type(answers).__name__} of "
                              f"{len(answers) if isinstance(answers, list) else '?'}")
        return answers

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_bootstrap, args=(child_end, logs.current(), self._target, self._args),
                                  name=f"dangol-{self.name}", daemon=True)
        with _without_main_module():
            process.start()
        child_end.close()
        self._process, self._conn, self._ready = process, parent_end, False

    def _stop_child(self, *, graceful: bool) -> None:
        """A closed pipe ends a healthy child after the batch it may be finishing; a failed one is terminated."""
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            if graceful:
                self._process.join(SHUTDOWN_WAIT)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(2)
        self._process, self._conn, self._ready = None, None, False

    async def close(self) -> None:
        if self._process is not None:
            await asyncio.to_thread(self._stop_child, graceful=True)
