"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Several replicas of a controller process may run for availability, but only one may act: two
leaders would fight over every object. The replicas agree through one Lease object: its holder
renews it every ``retry_period``; the others may take it over only when it has not changed for
``lease_duration`` *as they observed it* (measured on their own monotonic clock from the moment
they saw the last change, so clock differences between machines do not matter). Every write is a
compare-and-swap on ``resourceVersion``, so two candidates cannot both win a race.

The safety rule is on the leader's side: if it cannot renew within ``renew_deadline`` (shorter
than ``lease_duration``) of its last successful renewal, it stops leading and cancels its work,
before anyone else can have taken over. A leader shutting down cleanly releases the lease (empties
the holder) so a successor need not wait for it to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from anywhere.runtime.client import LEASES, Client, ConflictError, NotFoundError

__all__ = ["LeaderElector", "LeadershipLost", "default_identity", "elect"]

log = logging.getLogger("anywhere.runtime.leaderelection")

Obj = dict[str, Any]
JITTER = 1.2  # client-go's: retries wait retry_period * (1 + random * 1.2)


class LeadershipLost(Exception):
    """The lease could not be renewed in time (or another holder took it): stop acting."""


def default_identity() -> str:
    """``hostname_uuid``: unique per process, readable in ``kubectl get lease``."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(lease: Obj) -> tuple[Any, ...]:
    spec = lease.get("spec") or {}
    return tuple(
        spec.get(field)
        for field in (
            "holderIdentity",
            "leaseDurationSeconds",
            "acquireTime",
            "renewTime",
            "leaseTransitions",
        )
    )


class LeaderElector:
    """One candidate for the lease ``namespace/name``; ``identity`` must be unique per candidate."""

    def __init__(
        self,
        client: Client,
        namespace: str,
        name: str,
        identity: str | None = None,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = True,
    ) -> None:
        if not lease_duration > renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if not renew_deadline > JITTER * retry_period:
            raise ValueError(f"renew_deadline must be greater than {JITTER} * retry_period")
        if retry_period <= 0:
            raise ValueError("retry_period must be positive")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self._lease: Obj | None = None  # the last version we read or wrote
        self._observed_record: tuple[Any, ...] | None = None
        self._observed_at = 0.0  # monotonic time we first saw _observed_record
        self._renewed_at = 0.0  # monotonic time the last successful acquire/renew attempt began
        self._leading = False

    def __repr__(self) -> str:
        return f"<LeaderElector {self.identity} for lease {self.namespace}/{self.name}>"

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def last_renewal(self) -> float:
        """The event loop time (``loop.time()``) at which the last successful acquire or renewal
        began: a health check can tell a leader that is about to give up."""
        return self._renewed_at

    @property
    def holder(self) -> str:
        """The holder as last observed ("" for none)."""
        return str(((self._lease or {}).get("spec") or {}).get("holderIdentity") or "")

    # ---- one attempt -----------------------------------------------------------------------------

    def _observe(self, lease: Obj) -> None:
        self._lease = lease
        record = _record(lease)
        if record != self._observed_record:
            self._observed_record = record
            self._observed_at = asyncio.get_running_loop().time()

    def _held_by_other(self) -> bool:
        holder = self.holder
        if not holder or holder == self.identity:
            return False
        duration = ((self._lease or {}).get("spec") or {}).get("leaseDurationSeconds") or self.lease_duration
        return self._observed_at + float(duration) > asyncio.get_running_loop().time()

    async def _try_acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except NotFoundError:
            fresh: Obj = {
                "apiVersion": LEASES.api_version,
                "kind": LEASES.kind,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": max(1, round(self.lease_duration)),
                    "acquireTime": _micro_time(now),
                    "renewTime": _micro_time(now),
                    "leaseTransitions": 0,
                },
            }
            try:
                self._observe(await self.client.create(LEASES, fresh))
            except ConflictError:
                return False
            return True
        self._observe(lease)
        if self._held_by_other():
            return False
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = _micro_time(now)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1  # as client-go counts
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = max(1, round(self.lease_duration))
        spec["renewTime"] = _micro_time(now)
        spec.setdefault("acquireTime", _micro_time(now))
        try:
            self._observe(await self.client.update(LEASES, {**lease, "spec": spec}))
        except ConflictError:
            return False
        return True

    # ---- the phases ------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait until this candidate holds the lease."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                acquired = await self._try_acquire_or_renew()
            except Exception as exc:
                log.warning("%r: cannot read or write the lease: %s", self, exc)
                acquired = False
            if acquired:
                self._renewed_at = started
                self._leading = True
                log.info("%r: became leader", self)
                return
            await asyncio.sleep(self.retry_period * (1 + random.random() * JITTER))

    async def hold(self) -> None:
        """Renew every ``retry_period`` while leading; return when leadership is lost."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(self.retry_period)
                while True:
                    remaining = self._renewed_at + self.renew_deadline - loop.time()
                    if remaining <= 0:
                        log.warning("%r: could not renew within %g s; stopping", self, self.renew_deadline)
                        return
                    started = loop.time()
                    try:
                        async with asyncio.timeout(remaining):
                            renewed = await self._try_acquire_or_renew()
                    except Exception as exc:  # TimeoutError included: the deadline passed mid-request
                        log.warning("%r: renewing failed: %s", self, exc)
                        renewed = False
                    if renewed:
                        self._renewed_at = started
                        break
                    if self._held_by_other():
                        log.warning("%r: the lease is held by %s now; stopping", self, self.holder)
                        return
                    await asyncio.sleep(min(self.retry_period, max(0.0, remaining - (loop.time() - started))))
        finally:
            self._leading = False

    async def release(self) -> None:
        """Give the lease up (if we hold it) so a successor need not wait for it to expire."""
        lease = self._lease
        if lease is None or self.holder != self.identity:
            return
        self._leading = False
        now = _micro_time(datetime.now(UTC))
        spec = {
            **(lease.get("spec") or {}),
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
        }
        try:
            async with asyncio.timeout(self.renew_deadline):
                self._observe(await self.client.update(LEASES, {**lease, "spec": spec}))
        except Exception as exc:  # it expires anyway; a successor only waits longer
            log.warning("%r: could not release the lease: %s", self, exc)
        else:
            log.info("%r: released the lease", self)

    async def run(
        self,
        on_started_leading: Callable[[], Coroutine[Any, Any, None]],
        on_stopped_leading: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        """Wait for the lease, then run ``on_started_leading()`` while holding it.

        Returns when the work ends (the lease is released) or when leadership is lost (the work
        is cancelled and awaited first). Cancelling ``run`` cancels the work and releases the
        lease if ``release_on_cancel``. ``on_stopped_leading`` is called after the work ended, if
        leading began. An exception from the work propagates after the release.
        """
        await self.acquire()
        work = asyncio.create_task(on_started_leading(), name=f"leading {self.name}")
        renewing = asyncio.create_task(self.hold(), name=f"renewing {self.name}")
        finished = lost = False
        try:
            await asyncio.wait({work, renewing}, return_when=asyncio.FIRST_COMPLETED)
            finished = work.done()
            lost = not finished
        finally:
            await _cancel(work)
            await _cancel(renewing)
            self._leading = False
            if finished or (not lost and self.release_on_cancel):
                await self.release()
            if on_stopped_leading is not None:
                result = on_stopped_leading()
                if inspect.isawaitable(result):
                    await result
        error = None if work.cancelled() else work.exception()
        if error is not None:
            raise error


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class _Election:
    """``async with elect(...)``: the body runs as leader and is cancelled if leadership is lost."""

    def __init__(self, elector: LeaderElector) -> None:
        self._elector = elector
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._renewing: asyncio.Task[None] | None = None
        self._lost = False

    async def __aenter__(self) -> LeaderElector:
        await self._elector.acquire()
        self._task = asyncio.current_task()
        assert self._task is not None
        self._cancelling = self._task.cancelling()
        self._renewing = asyncio.create_task(self._hold())
        return self._elector

    async def _hold(self) -> None:
        await self._elector.hold()
        self._lost = True
        assert self._task is not None
        self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._renewing is not None
        assert self._task is not None
        await _cancel(self._renewing)
        if self._lost:
            if self._task.uncancel() <= self._cancelling and exc_type in (None, asyncio.CancelledError):
                raise LeadershipLost(
                    f"lease {self._elector.namespace}/{self._elector.name}: leadership lost"
                ) from exc
            return
        if exc_type is not asyncio.CancelledError or self._elector.release_on_cancel:
            await self._elector.release()


def elect(
    client: Client,
    namespace: str,
    name: str,
    identity: str | None = None,
    **options: Any,
) -> _Election:
    """``async with elect(client, ns, name, identity) as elector:`` waits to lead, then runs the
    body as leader, releasing the lease at its end. If leadership is lost, the body is cancelled
    and :class:`LeadershipLost` raised in its place. ``options`` are :class:`LeaderElector`'s."""
    return _Election(LeaderElector(client, namespace, name, identity, **options))
