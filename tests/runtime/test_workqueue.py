"""The work queue and its rate limiters: pure asyncio, no server. Delays are small and only ever
awaited through the queue itself; nothing asserts how long anything took."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from anywhere.runtime import (
    ExponentialRateLimiter,
    MaxOfRateLimiter,
    ShutDown,
    TokenBucketRateLimiter,
    WorkQueue,
    default_rate_limiter,
)
from tests.runtime.conftest import within


async def test_a_key_added_many_times_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a", "b", "c"):
        queue.add(key)
    assert len(queue) == 3
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(queue) == 0


async def test_a_key_added_while_processing_waits_until_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0  # not handed to a second worker while the first has it
    second_worker = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not second_worker.done()
    queue.done(key)
    assert await within(second_worker) == "a"  # once more, for the change that came during the first pass
    queue.done("a")
    assert len(queue) == 0


async def test_done_without_a_readd_does_not_requeue() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.done(await queue.get())
    assert len(queue) == 0


async def test_add_after_delays_and_orders_by_readiness() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("late", 0.06)
    queue.add_after("soon", 0.02)
    queue.add_after("now", 0)
    assert len(queue) == 1
    assert queue.delayed == 2
    assert [await within(queue.get()) for _ in range(3)] == ["now", "soon", "late"]
    assert queue.delayed == 0


async def test_an_earlier_add_after_replaces_a_later_one() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 3600)
    queue.add_after("a", 0.01)
    queue.add_after("a", 7200)  # later than the pending one: ignored
    assert queue.delayed == 1
    assert await within(queue.get()) == "a"
    assert queue.delayed == 0  # the hour-long wait is gone, not merely overtaken


async def test_rate_limited_adds_back_off_per_key_until_forgotten() -> None:
    limiter = ExponentialRateLimiter(base=0.001, maximum=1.0)
    queue: WorkQueue[str] = WorkQueue(limiter)
    for expected in range(1, 4):
        queue.add_rate_limited("a")
        assert await within(queue.get()) == "a"
        queue.done("a")
        assert queue.num_requeues("a") == expected
    queue.forget("a")
    assert queue.num_requeues("a") == 0


def test_exponential_backoff_doubles_from_5ms_to_1000s() -> None:
    limiter = ExponentialRateLimiter()
    delays = [limiter.when("k") for _ in range(20)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[-1] == 1000.0
    assert all(b == min(2 * a, 1000.0) for a, b in itertools.pairwise(delays))
    assert limiter.when("other") == 0.005  # per key
    for _ in range(200):
        limiter.when("k")
    assert limiter.when("k") == 1000.0  # no overflow
    limiter.forget("k")
    assert limiter.when("k") == 0.005


def test_token_bucket_allows_a_burst_then_paces() -> None:
    now = [0.0]
    bucket = TokenBucketRateLimiter(rate=10.0, burst=3, clock=lambda: now[0])
    assert [bucket.when(i) for i in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.when(3) == pytest.approx(0.1)
    assert bucket.when(4) == pytest.approx(0.2)  # each caller reserves the next token
    now[0] = 10.0  # long idle: the bucket refills, but only up to the burst
    assert [bucket.when(i) for i in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.when(9) > 0


def test_default_limiter_is_the_slower_of_both() -> None:
    limiter = default_rate_limiter()
    assert isinstance(limiter, MaxOfRateLimiter)
    assert limiter.when("k") == 0.005
    assert limiter.retries("k") == 1
    now = [0.0]
    combined = MaxOfRateLimiter(
        ExponentialRateLimiter(0.005, 1000.0), TokenBucketRateLimiter(1.0, 1, lambda: now[0])
    )
    assert combined.when("a") == 0.005  # per-key backoff dominates
    assert combined.when("b") == pytest.approx(1.0)  # the overall budget dominates
    combined.forget("a")
    assert combined.retries("a") == 0


async def test_shutdown_wakes_waiting_workers_and_refuses_new_keys() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiting = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    queue.add_after("later", 3600)
    queue.shutdown()
    for worker in waiting:
        with pytest.raises(ShutDown):
            await within(worker)
    assert queue.delayed == 0
    queue.add("x")
    queue.add_after("y", 0.001)
    assert len(queue) == 0
    with pytest.raises(ShutDown):
        await queue.get()


async def test_many_workers_never_share_a_key() -> None:
    queue: WorkQueue[int] = WorkQueue()
    active: set[int] = set()
    passes: dict[int, int] = {}

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            assert key not in active
            active.add(key)
            passes[key] = passes.get(key, 0) + 1
            if passes[key] < 3:
                queue.add(key)  # re-added while processing
            await asyncio.sleep(0)
            active.discard(key)
            queue.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for key in range(10):
        queue.add(key)
        queue.add(key)

    async def drained() -> None:
        while len(passes) < 10 or any(count < 3 for count in passes.values()) or len(queue):
            await asyncio.sleep(0)

    await within(drained())
    queue.shutdown()
    await within(asyncio.gather(*workers))
    assert passes == dict.fromkeys(range(10), 3)
