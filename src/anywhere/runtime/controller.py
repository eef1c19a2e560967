"""Controllers: informers feed keys into a work queue, workers call ``reconcile(key)``.

A controller is level-triggered: an event only says *which* object to look at again, and
``reconcile`` reads the current state (from an informer's cache or the API) and makes the world
match it. Nothing but the key crosses the queue, so a burst of events costs one reconcile, a
restart loses nothing (every object is listed again), and missed or reordered events cannot put a
controller in a wrong state.

Which key an event means is the job of the event mappers given to :meth:`Controller.watch`:

- :func:`enqueue_self`: the object's own key (the kind the controller reconciles);
- :func:`enqueue_owner`: the key of the object's controlling owner (``metadata.ownerReferences``
  with ``controller: true``), so a change to something a controller made brings it back;
- :func:`enqueue_mapped`: any keys a function derives from the object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from anywhere.runtime.client import ConflictError, Resource
from anywhere.runtime.informer import EventHandler, Informer, InformerFactory, object_key
from anywhere.runtime.workqueue import RateLimiter, ShutDown, WorkQueue

__all__ = ["Controller", "EventMapper", "Result", "enqueue_mapped", "enqueue_owner", "enqueue_self"]

Obj = dict[str, Any]
EventMapper = Callable[[Obj], Iterable[str]]


@dataclass(frozen=True, slots=True)
class Result:
    """What a reconcile asks for next: nothing, or another look after ``requeue_after`` seconds
    (for state that changes without an event, such as a timeout expiring)."""

    requeue_after: float | None = None


Reconciler = Callable[[str], Awaitable[Result | None]]


def enqueue_self(obj: Obj) -> Iterable[str]:
    """The object's own key."""
    return (object_key(obj),)


def enqueue_owner(kind: str, api_version: str, *, namespaced: bool = True) -> EventMapper:
    """The key of the object's controlling owner of this kind (the group must match, the version
    need not, as owner references survive version changes). ``namespaced=False`` for a
    cluster-scoped owner, whose key has no namespace."""
    group = api_version.rpartition("/")[0]

    def owner_keys(obj: Obj) -> Iterable[str]:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if not ref.get("controller") or ref.get("kind") != kind:
                continue
            if str(ref.get("apiVersion", "")).rpartition("/")[0] != group:
                continue
            namespace = meta.get("namespace") if namespaced else None
            return (f"{namespace}/{ref['name']}" if namespace else str(ref["name"]),)
        return ()

    return owner_keys


def enqueue_mapped(fn: Callable[[Obj], Iterable[str]]) -> EventMapper:
    """The keys ``fn`` returns for the object (e.g. every Cluster that references a changed config)."""
    return fn


@dataclass(frozen=True)
class _Watch:
    resource: Resource
    mapper: EventMapper
    namespace: str | None
    label_selector: str | None


class Controller:
    """``reconcile(key)`` for every key the watched resources map to, ``workers`` at a time.

    A reconcile that raises is retried with the queue's rate limiter (per-key exponential backoff);
    one that returns ``Result(requeue_after=s)`` is looked at again after ``s`` seconds; any other
    outcome forgets the key's backoff. The same key is never reconciled twice at once.
    """

    def __init__(
        self,
        name: str,
        reconcile: Reconciler,
        *,
        workers: int = 1,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self._rate_limiter = rate_limiter
        self._watches: list[_Watch] = []
        self.log = logging.getLogger(f"anywhere.runtime.controller.{name}")
        self.queue: WorkQueue[str] | None = None  # exists while running

    def watch(
        self,
        resource: Resource,
        handler: EventMapper = enqueue_self,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> Controller:
        """Reconcile the keys ``handler`` maps each add, update and delete of ``resource`` to.

        Call before the controller runs. Returns the controller, so watches can be chained.
        """
        self._watches.append(_Watch(resource, handler, namespace, label_selector))
        return self

    def enqueue(self, key: str) -> None:
        """Reconcile ``key`` soon, for events from a source the controller does not watch itself
        (such as a workload cluster's Nodes). Ignored while the controller is not running: when it
        starts, its informers list every object anyway."""
        if self.queue is not None:
            self.queue.add(key)

    def informers(self, factory: InformerFactory) -> list[Informer]:
        return [
            factory.informer(w.resource, namespace=w.namespace, label_selector=w.label_selector)
            for w in self._watches
        ]

    async def run(self, factory: InformerFactory) -> None:
        """Run until cancelled: start the informers, wait for their caches, then reconcile."""
        if not self._watches:
            raise ValueError(f"controller {self.name!r} watches nothing")
        queue: WorkQueue[str] = WorkQueue(self._rate_limiter, name=self.name)
        self.queue = queue
        registrations: list[tuple[Informer, EventHandler]] = []
        workers: list[asyncio.Task[None]] = []
        try:
            for spec, informer in zip(self._watches, self.informers(factory), strict=True):
                registrations.append((informer, informer.add_handler(*_handlers(queue, spec.mapper))))
                informer.start()
            await asyncio.gather(*(informer.wait_synced() for informer, _ in registrations))
            self.log.info("controller %s: caches synced; starting %d workers", self.name, self.workers)
            workers = [
                asyncio.create_task(self._work(queue), name=f"{self.name} worker {n}")
                for n in range(self.workers)
            ]
            await asyncio.gather(*workers)
        finally:
            for informer, registration in registrations:
                informer.remove_handler(registration)
            queue.shutdown()
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            self.queue = None

    async def _work(self, queue: WorkQueue[str]) -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                result = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except ConflictError as exc:
                # Someone wrote the object since the cache saw it: normal under concurrency; the
                # retry reads the new version.
                self.log.debug("controller %s: %s changed meanwhile (%s); retrying", self.name, key, exc)
                queue.add_rate_limited(key)
            except Exception:
                self.log.exception(
                    "controller %s: reconciling %s failed (retry %d)",
                    self.name,
                    key,
                    queue.num_requeues(key) + 1,
                )
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
                if result is not None and result.requeue_after is not None:
                    queue.add_after(key, result.requeue_after)
            finally:
                queue.done(key)


def _handlers(
    queue: WorkQueue[str], mapper: EventMapper
) -> tuple[Callable[[Obj], None], Callable[[Obj, Obj], None], Callable[[Obj], None]]:
    def enqueue(obj: Obj) -> None:
        for key in mapper(obj):
            queue.add(key)

    def on_update(old: Obj, new: Obj) -> None:
        # Both: an update can move an object from one owner (or mapped key) to another.
        enqueue(old)
        enqueue(new)

    return enqueue, on_update, enqueue
