"""What kube-controller-manager does for deletion, built into the API server.

- **Garbage collection** by ``ownerReferences``: when an owner is gone, its dependents are deleted
  (background); an owner deleted with ``propagationPolicy=Foreground`` waits, holding the
  ``foregroundDeletion`` finalizer, until its blocking dependents are gone; with ``Orphan`` its
  dependents lose the owner reference and stay.
- **Namespace deletion**: a terminating namespace's objects are deleted, then the namespace.
- **CRD deletion**: a deleted CRD's objects are deleted, then the CRD.

It is level-triggered: it follows the whole store with one watch, and on every change re-examines
the objects concerned, so a restart (or a missed event, after a re-list) converges to the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.objects import decode, stored
from anywhere.storage import Compacted, Conflict, Event, KeyNotFound, Unavailable

if TYPE_CHECKING:
    from anywhere.apiserver.server import APIServer

log = logging.getLogger("anywhere.apiserver.lifecycle")
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
ROOT = "/registry/"


class Lifecycle:
    """Garbage collector, namespace finalizer and CRD cleanup over one API server's store."""

    def __init__(self, server: APIServer) -> None:
        self._server = server
        self._objects: dict[str, dict[str, Any]] = {}  # key -> object (decoded)
        self._by_uid: dict[str, str] = {}  # uid -> key
        self._dependents: dict[str, set[str]] = defaultdict(set)  # owner uid -> dependent keys
        self._pending: set[str] = set()
        self._wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                revision = await self._relist()
                watch = await self._server.storage.watch(ROOT, revision)
                worker = asyncio.create_task(self._work())
                try:
                    async for event in watch:
                        self._observe(event)
                finally:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
            except (Compacted, Unavailable):
                await asyncio.sleep(1)

    async def _relist(self) -> int:
        listed = await self._server.storage.list(ROOT)
        self._objects.clear()
        self._by_uid.clear()
        self._dependents.clear()
        for record in listed.records:
            self._index(record.key, decode(record.value))
        self._pending = set(self._objects)
        self._wake.set()
        return listed.revision

    def _index(self, key: str, obj: dict[str, Any] | None) -> None:
        old = self._objects.pop(key, None)
        if old is not None:
            meta = old.get("metadata") or {}
            self._by_uid.pop(meta.get("uid", ""), None)
            for ref in meta.get("ownerReferences") or []:
                self._dependents[ref.get("uid", "")].discard(key)
        if obj is None:
            return
        meta = obj.get("metadata") or {}
        self._objects[key] = obj
        if meta.get("uid"):
            self._by_uid[meta["uid"]] = key
        for ref in meta.get("ownerReferences") or []:
            self._dependents[ref.get("uid", "")].add(key)

    def _observe(self, event: Event) -> None:
        obj = decode(event.value)
        meta = obj.get("metadata") or {}
        if event.type == "DELETED":
            self._index(event.key, None)
            self._pending.update(self._dependents.pop(meta.get("uid", ""), set()))
            owner = self._owning_terminations(event.key, obj)
            self._pending.update(owner)
        else:
            self._index(event.key, obj)
            self._pending.add(event.key)
            self._pending.update(self._owning_terminations(event.key, obj))
        self._wake.set()

    def _owning_terminations(self, key: str, obj: dict[str, Any]) -> set[str]:
        """Objects whose deletion waits on this one: its owners, its namespace, its CRD."""
        waiting = {
            self._by_uid[ref["uid"]]
            for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
            if ref.get("uid") in self._by_uid
        }
        located = self._server.registry.for_key(key)
        if located is not None:
            rt, namespace, _ = located
            if namespace:
                waiting.add(f"/registry/core/namespaces/{namespace}")
            if not rt.builtin:
                waiting.add(
                    f"/registry/apiextensions.k8s.io/customresourcedefinitions/{rt.plural}.{rt.group}"
                )
        return waiting

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key = self._pending.pop()
                try:
                    await self._reconcile(key)
                except (StatusError, Conflict, KeyNotFound):
                    pass  # the next event about this key brings it back
                except Unavailable:
                    self._pending.add(key)
                    await asyncio.sleep(1)
                except Exception:
                    log.exception("reconciling %s", key)

    async def _reconcile(self, key: str) -> None:
        obj = self._objects.get(key)
        if obj is None:
            return
        meta = obj.get("metadata") or {}
        if self._owner_gone(meta):
            await self._delete(key, "Background")
            return
        if not meta.get("deletionTimestamp"):
            return
        finalizers = list(meta.get("finalizers") or [])
        if ORPHAN in finalizers:
            for dependent in list(self._dependents.get(meta.get("uid", ""), ())):
                await self._drop_owner(dependent, meta["uid"])
            await self._remove_finalizer(key, ORPHAN)
        elif FOREGROUND in finalizers:
            blocking = [d for d in self._dependents.get(meta.get("uid", ""), ()) if d in self._objects]
            for dependent in blocking:
                await self._delete(dependent, "Foreground")
            if not blocking:
                await self._remove_finalizer(key, FOREGROUND)
        elif key.startswith("/registry/core/namespaces/"):
            await self._finish_namespace(key, obj)
        elif CRD_CLEANUP in finalizers:
            await self._finish_crd(key, obj)

    def _owner_gone(self, meta: dict[str, Any]) -> bool:
        refs = meta.get("ownerReferences") or []
        return bool(refs) and all(ref.get("uid") not in self._by_uid for ref in refs)

    async def _delete(self, key: str, policy: str) -> None:
        from anywhere.apiserver._http import Target

        located = self._server.registry.for_key(key)
        if located is None:
            return
        rt, namespace, name = located
        with contextlib.suppress(StatusError):
            await self._server.delete_object(Target(rt, namespace, name, None), policy=policy)

    async def _update(self, key: str, change: Any) -> None:
        record = await self._server.storage.get(key)
        if record is None:
            return
        obj = decode(record.value)
        if change(obj):
            meta = obj["metadata"]
            if (
                meta.get("deletionTimestamp")
                and not meta.get("finalizers")
                and not (obj.get("spec") or {}).get("finalizers")
            ):
                await self._server.storage.delete(key, expected_rv=record.mod_rv)
            else:
                await self._server.storage.update(key, stored(obj), expected_rv=record.mod_rv)

    async def _remove_finalizer(self, key: str, finalizer: str) -> None:
        def change(obj: dict[str, Any]) -> bool:
            finalizers = obj["metadata"].get("finalizers") or []
            if finalizer not in finalizers:
                return False
            obj["metadata"]["finalizers"] = [f for f in finalizers if f != finalizer]
            return True

        await self._update(key, change)

    async def _drop_owner(self, key: str, owner_uid: str) -> None:
        def change(obj: dict[str, Any]) -> bool:
            refs = obj["metadata"].get("ownerReferences") or []
            kept = [r for r in refs if r.get("uid") != owner_uid]
            if len(kept) == len(refs):
                return False
            if kept:
                obj["metadata"]["ownerReferences"] = kept
            else:
                obj["metadata"].pop("ownerReferences", None)
            return True

        await self._update(key, change)

    async def _finish_namespace(self, key: str, obj: dict[str, Any]) -> None:
        namespace = obj["metadata"]["name"]
        contents = [k for k in self._objects if self._in_namespace(k, namespace)]
        for content in contents:
            await self._delete(content, "Background")
        if contents:
            return

        def change(ns: dict[str, Any]) -> bool:
            spec = ns.setdefault("spec", {})
            if not spec.get("finalizers"):
                return False
            spec["finalizers"] = []
            return True

        await self._update(key, change)

    def _in_namespace(self, key: str, namespace: str) -> bool:
        located = self._server.registry.for_key(key)
        return located is not None and located[1] == namespace

    async def _finish_crd(self, key: str, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        prefix = f"/registry/{spec.get('group', '')}/{(spec.get('names') or {}).get('plural', '')}/"
        contents = [k for k in self._objects if k.startswith(prefix)]
        for content in contents:
            await self._delete(content, "Background")
        if not contents:
            await self._remove_finalizer(key, CRD_CLEANUP)
