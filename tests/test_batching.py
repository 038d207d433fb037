"""ThreadBatcher: groups of blocking calls in worker threads, each caller with its own outcome."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hfscraper.batching import ThreadBatcher


def _run(coro):
    return asyncio.run(coro)


def test_max_in_flight_folds_waiting_calls_into_the_next_group() -> None:
    release = threading.Event()
    groups: list[list[int]] = []
    running = 0
    most = 0
    lock = threading.Lock()

    def batch(args: list[int]) -> list[tuple[bool, object]]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        groups.append(list(args))
        if len(groups) == 1:
            release.wait(5)  # the first group blocks until every other call was made
        with lock:
            running -= 1
        return [(True, a * 10) if a != 7 else (False, ValueError("seven")) for a in args]

    async def main() -> list[object]:
        batcher: ThreadBatcher[int, int] = ThreadBatcher(None, max_size=4, batch_func=batch, max_in_flight=1)
        first = asyncio.ensure_future(batcher(0))
        await asyncio.sleep(0.05)  # the first group is running in its thread now
        rest = [asyncio.ensure_future(batcher(i)) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        assert len(groups) == 1  # nothing else started while one group runs
        release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = _run(main())
    assert most == 1
    assert groups[0] == [0]
    # The ten waiting calls went in groups of at most max_size, in order, after the first one ended.
    assert [a for g in groups[1:] for a in g] == list(range(1, 11))
    assert all(len(g) <= 4 for g in groups) and len(groups) == 4
    assert results[:7] == [0, 10, 20, 30, 40, 50, 60]
    assert isinstance(results[7], ValueError) and results[8:] == [80, 90, 100]


def test_without_a_limit_groups_run_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def batch(args: list[int]) -> list[tuple[bool, object]]:
        barrier.wait()  # only returns if two groups are running at once
        return [(True, a) for a in args]

    async def main() -> list[int]:
        batcher: ThreadBatcher[int, int] = ThreadBatcher(None, max_size=1, batch_func=batch)
        return await asyncio.gather(batcher(1), batcher(2))

    assert _run(main()) == [1, 2]


def test_a_group_that_cannot_be_handed_over_fails_every_caller() -> None:
    def submit(run, args):  # noqa: ANN001, ANN202 - the executor refuses work, as a shut-down one does
        raise RuntimeError("cannot schedule new futures after shutdown")

    async def main() -> list[object]:
        batcher: ThreadBatcher[int, int] = ThreadBatcher(lambda a: a, submit=submit, max_in_flight=1)
        return await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)

    results = _run(main())
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(TypeError):
        ThreadBatcher(None)
