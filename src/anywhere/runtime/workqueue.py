"""A rate-limited work queue of keys, with client-go's workqueue semantics.

Controllers are level-triggered: what crosses the queue is only *which* object to look at, never
what happened to it. That lets the queue collapse: a key added ten times before a worker gets to
it is processed once. And it must never be processed by two workers at once (they would race on
the same object), so a key re-added while being processed waits until :meth:`WorkQueue.done`,
then goes around again, since the change that re-added it may have come too late for the running
pass.

Failures are retried with per-key exponential backoff (5 ms doubling up to 1000 s, like
client-go's default controller rate limiter) combined with an overall token bucket (10 per second,
bursts of 100), so one broken object backs off on its own and a failing dependency cannot turn
every key into a retry storm.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

__all__ = [
    "ExponentialRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "ShutDown",
    "TokenBucketRateLimiter",
    "WorkQueue",
    "default_rate_limiter",
]

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down: the worker asking for the next key should return."""


class RateLimiter(Protocol):
    def when(self, item: Hashable) -> float:
        """How long ``item`` should wait before its next try (and count this try)."""
        ...

    def forget(self, item: Hashable) -> None:
        """``item`` succeeded: start its backoff from the beginning next time."""
        ...

    def retries(self, item: Hashable) -> int: ...


class ExponentialRateLimiter:
    """``base * 2**failures`` per item, at most ``maximum`` seconds."""

    def __init__(self, base: float = 0.005, maximum: float = 1000.0) -> None:
        self.base = base
        self.maximum = maximum
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exponent = self._failures.get(item, 0)
        self._failures[item] = exponent + 1
        if exponent > 64:  # 2**64 * base overflows any sane maximum; do not compute it
            return self.maximum
        return min(self.base * 2.0**exponent, self.maximum)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def retries(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class TokenBucketRateLimiter:
    """An overall budget: ``rate`` tries per second, in bursts of at most ``burst``.

    Each call takes a token, possibly one not yet earned (the answer then is the wait until it
    is), as Go's ``rate.Limiter.Reserve`` does.
    """

    def __init__(
        self, rate: float = 10.0, burst: int = 100, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self, item: Hashable) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def forget(self, item: Hashable) -> None:
        pass

    def retries(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest wait any of several limiters asks for."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def retries(self, item: Hashable) -> int:
        return max(limiter.retries(item) for limiter in self.limiters)


def default_rate_limiter() -> MaxOfRateLimiter:
    """client-go's ``DefaultControllerRateLimiter``: per-item 5 ms..1000 s, overall 10/s burst 100."""
    return MaxOfRateLimiter(ExponentialRateLimiter(0.005, 1000.0), TokenBucketRateLimiter(10.0, 100))


class WorkQueue(Generic[K]):
    """Keys waiting for a worker: deduplicated, never handed out twice at once, delayable.

    A worker loops ``key = await queue.get()`` ... ``queue.done(key)``. After :meth:`shutdown`,
    ``get`` raises :class:`ShutDown` at once and keys still queued are dropped: they name state
    that a controller lists again when it next starts.
    """

    def __init__(self, rate_limiter: RateLimiter | None = None, *, name: str = "") -> None:
        self.name = name
        self.rate_limiter = rate_limiter if rate_limiter is not None else default_rate_limiter()
        self._queue: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()  # queued, or to be queued again when processing ends
        self._processing: set[K] = set()
        self._waiting: dict[K, tuple[float, asyncio.TimerHandle]] = {}  # delayed adds
        self._wakeup = asyncio.Event()
        self._shutting_down = False

    def __len__(self) -> int:
        """Keys ready for a worker (not those being processed or waiting out a delay)."""
        return len(self._queue)

    @property
    def delayed(self) -> int:
        """Keys waiting out a delay before they are added."""
        return len(self._waiting)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, item: K) -> None:
        """Queue ``item`` unless it is queued already; if being processed, once it is done."""
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return
        self._queue.append(item)
        self._wakeup.set()

    def add_after(self, item: K, delay: float) -> None:
        """Add ``item`` after ``delay`` seconds; an earlier pending delay for it wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        loop = asyncio.get_running_loop()
        ready = loop.time() + delay
        pending = self._waiting.get(item)
        if pending is not None:
            if pending[0] <= ready:
                return
            pending[1].cancel()
        self._waiting[item] = (ready, loop.call_at(ready, self._ready, item))

    def _ready(self, item: K) -> None:
        self._waiting.pop(item, None)
        self.add(item)

    def add_rate_limited(self, item: K) -> None:
        """Add ``item`` when the rate limiter allows (its backoff grows with each call)."""
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: K) -> None:
        """``item`` is done for good: reset its backoff (a pending delayed add still happens)."""
        self.rate_limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        return self.rate_limiter.retries(item)

    async def get(self) -> K:
        """The next key; it is being processed until :meth:`done` is called for it."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._shutting_down:
            raise ShutDown
        item = self._queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        return item

    def done(self, item: K) -> None:
        """Processing ``item`` has ended; if it was added meanwhile, it is queued again now."""
        self._processing.discard(item)
        if item in self._dirty and not self._shutting_down:
            self._queue.append(item)
            self._wakeup.set()

    def shutdown(self) -> None:
        """Refuse new keys, drop the queued and delayed ones, and wake every waiting worker."""
        self._shutting_down = True
        for _, timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        self._queue.clear()
        self._dirty.clear()
        self._wakeup.set()
