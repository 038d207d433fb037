"""Run many small blocking calls in worker threads with few thread hops.

`asyncio.to_thread` costs tens of microseconds of CPU per call (and a GIL hand-over each way), which is
more than the work itself when the work is "check that this 1.6 KB file is unchanged". `ThreadBatcher`
groups the calls made during one event-loop turn into one worker-thread call (and, given a function that
runs a whole group, into one transaction). With `max_in_flight`, calls made while that many groups run wait
and go together in the next group: fewer, larger hops, and fewer threads fighting the reactor for the GIL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, Generic, TypeVar

_A = TypeVar("_A")
_R = TypeVar("_R")


class ThreadBatcher(Generic[_A, _R]):
    """`await batcher(arg)` runs the blocking `func(arg)` in a worker thread, many calls per thread hop.

    Calls made during one event-loop turn are grouped (at most *max_size* per group); each group is one
    `asyncio.to_thread` call, and up to *max_in_flight* groups run concurrently (None: no limit); calls made
    while that many run wait for the next group. Each caller gets its own result or exception.
    Needs a running asyncio loop (Scrapy's default asyncio reactor).
    """

    def __init__(
        self,
        func: Callable[[_A], _R] | None,
        max_size: int = 64,
        *,
        batch_func: Callable[[list[_A]], list[tuple[bool, Any]]] | None = None,
        submit: Callable[[Callable[[list[_A]], list[tuple[bool, Any]]], list[_A]], concurrent.futures.Future[Any]]
        | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        """*batch_func* runs a whole group and returns `(True, result)` or `(False, exception)` per argument
        (default: *func* on each argument); *submit* runs it somewhere and returns a future (default: asyncio's
        default executor), e.g. the one thread that owns a SQLite connection."""
        if func is None and batch_func is None:
            raise TypeError("ThreadBatcher needs func or batch_func")
        self.func = func
        self.max_size = max_size
        self.max_in_flight = max_in_flight
        self._run_batch = batch_func or self._run
        self._submit = submit
        self._pending: list[tuple[_A, asyncio.Future[_R]]] = []
        self._scheduled = False
        self._running: set[asyncio.Future[Any]] = set()

    async def __call__(self, arg: _A) -> _R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_R] = loop.create_future()
        self._pending.append((arg, future))
        if len(self._pending) >= self.max_size:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending:
            if self.max_in_flight is not None and len(self._running) >= self.max_in_flight:
                return  # the group that finishes next flushes what waits
            batch, self._pending = self._pending[: self.max_size], self._pending[self.max_size :]
            self._start(batch)

    def _start(self, batch: list[tuple[_A, asyncio.Future[_R]]]) -> None:
        args = [arg for arg, _ in batch]
        try:
            if self._submit is None:
                task = asyncio.ensure_future(asyncio.to_thread(self._run_batch, args))
            else:
                task = asyncio.wrap_future(self._submit(self._run_batch, args))
        except Exception as exc:  # could not even be handed over: every caller gets the error (none waits forever)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self._running.add(task)
        task.add_done_callback(lambda t: self._done(t, batch))

    def _run(self, args: list[_A]) -> list[tuple[bool, Any]]:
        assert self.func is not None
        results: list[tuple[bool, Any]] = []
        for arg in args:
            try:
                results.append((True, self.func(arg)))
            except Exception as exc:  # handed to the caller that submitted this argument
                results.append((False, exc))
        return results

    def _done(self, task: asyncio.Future[list[tuple[bool, Any]]], batch: list[tuple[_A, asyncio.Future[_R]]]) -> None:
        self._running.discard(task)
        if self._pending:
            self._flush()
        futures = [future for _, future in batch]
        if task.cancelled():
            for future in futures:
                future.cancel()
            return
        error = task.exception()
        if error is not None:
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for (ok, value), future in zip(task.result(), futures, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
