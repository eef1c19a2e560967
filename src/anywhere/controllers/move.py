"""Move one anywhere cluster's objects from one management API to another (``clusterctl move``).

Why: EKS Anywhere's self-managed flow creates a cluster from a temporary bootstrap plane, then
moves the cluster's objects into the new cluster's own API, where its controllers take over; a
delete moves them back. What moves: the anywhere Cluster and the datacenter and machine configs it
references (in its namespace), and in ``eksa-system`` every Cluster API object of the cluster —
found by the ``cluster.x-k8s.io/cluster-name`` label (or ``spec.clusterName``) the controllers put
on them, and by owner references from those (Machines, infrastructure machines, KubeadmConfigs,
their Secrets). The infrastructure kinds come from the provider registry and from the references
the objects hold, so nothing here is provider-specific.

The steps, in clusterctl's order:

1. pause the source: the Cluster API Cluster gets ``spec.paused`` and the ``cluster.x-k8s.io/paused``
   annotation (some controllers honour one, some the other), the anywhere Cluster the
   ``anywhere.eks.amazonaws.com/paused`` annotation, so no controller there changes anything;
2. read everything, and create it in the target owner-first (a graph of ``ownerReferences``), the
   owners' uids remapped to their new uids in the target, and the status written through the
   ``/status`` subresource (a create drops it). The copies keep the pause marks, so the target's
   controllers (if any run) leave them alone meanwhile. Once all are there the source is read again:
   if it changed in between (a controller that had not yet seen the pause), the copy is repeated;
3. delete from the source, dependents first, each after its finalizers are removed: the object
   goes at once, and no deletion logic runs there (which would tear down the machines the target
   now owns);
4. unpause the target.

Finalizers are copied as they are (clusterctl does the same): nothing deletes the copies during
the move, and the target's controllers then hold the same guarantees on deletion as the source's
did. Owner references to objects that are not moved are dropped: the target's garbage collector
would otherwise delete the copy at once, since its owner is not there.

A move that fails after the pause leaves the source paused, on purpose: a re-run may have found it
half-deleted, and unpausing half a cluster would let its controllers "repair" it. Running the
move again (after fixing what the error names) finishes it.

Crash-safe and idempotent: the target is unpaused only after the source is empty of the cluster,
and the source is emptied only after the target holds all of it, so running :func:`move` again
after a crash at any point converges. Objects already in the target are matched by kind, namespace
and name and updated (never duplicated); a source already emptied with the target holding the
cluster only needs the last step.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL, PAUSED_ANNOTATION
from anywhere.controllers.objects import ANYWHERE_PAUSED_ANNOTATION, labels_of, name_of, namespace_of
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    CONFIGMAPS,
    EKSA_CLUSTERS,
    KUBEADM_CONFIG_TEMPLATES,
    KUBEADM_CONFIGS,
    KUBEADM_CONTROL_PLANES,
    MACHINE_DEPLOYMENTS,
    MACHINE_HEALTH_CHECKS,
    MACHINE_SETS,
    MACHINES,
    NAMESPACES,
    SECRETS,
    SYSTEM_NAMESPACE,
    anywhere_resource,
    resource_of,
)
from anywhere.runtime import (
    AlreadyExistsError,
    APIError,
    Client,
    ConflictError,
    NotFoundError,
    Resource,
    TransportError,
)

__all__ = ["MoveError", "Moved", "move"]

log = logging.getLogger("anywhere.controllers.move")
Obj = dict[str, Any]
# (apiVersion group, kind, namespace, name): what matches an object across the two APIs.
Key = tuple[str, str, str, str]

# The Cluster API kinds of a cluster, besides the provider's (which come from the registry and
# from references).
_CAPI_KINDS: Final = (
    CAPI_CLUSTERS,
    KUBEADM_CONTROL_PLANES,
    MACHINE_DEPLOYMENTS,
    MACHINE_SETS,
    MACHINES,
    KUBEADM_CONFIGS,
    KUBEADM_CONFIG_TEMPLATES,
    MACHINE_HEALTH_CHECKS,
    SECRETS,
    CONFIGMAPS,
)
# Metadata the API server owns: never copied.
_SERVER_METADATA: Final = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# How many times the copy is repeated when the source keeps changing under it.
_COPY_ROUNDS: Final = 5
# How many times one write (an update in the target, a deletion in the source) is retried when it
# races another writer.
_TRIES: Final = 5


class MoveError(Exception):
    """The move cannot go on; the message names the object and what to do. Running the move
    again after fixing the cause continues where it stopped."""


@dataclass
class Moved:
    """What a move did: the objects now in the target (``kind namespace/name``), in creation order."""

    objects: list[str] = field(default_factory=list)


@dataclass
class _Item:
    resource: Resource
    obj: Obj

    @property
    def key(self) -> Key:
        return _key_of(self.obj)

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"].get("uid") or "")

    def __str__(self) -> str:
        return _describe(self.obj)


def _key_of(obj: Mapping[str, Any]) -> Key:
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    return (group, str(obj.get("kind") or ""), namespace_of(dict(obj)), name_of(dict(obj)))


def _describe(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')} {namespace_of(dict(obj))}/{name_of(dict(obj))}"


def _what(exc: Exception) -> str:
    if isinstance(exc, APIError):
        return exc.message or str(exc)
    return str(exc)


async def move(
    source: Client,
    target: Client,
    cluster: str,
    namespace: str = "default",
    *,
    infra_kinds: Iterable[Resource] | None = None,
) -> Moved:
    """Move the anywhere Cluster ``namespace/cluster`` and everything of it from ``source``'s API to
    ``target``'s (see the module doc). ``infra_kinds``: the provider kinds to look for (default:
    every registered provider's cluster, machine and machine template kinds). Raises
    :class:`MoveError` naming what could not be moved and why."""
    try:
        return await _move(source, target, cluster, namespace, _infra_kinds(infra_kinds))
    except MoveError:
        raise
    except TransportError as exc:
        raise MoveError(f"moving cluster {namespace}/{cluster}: an API could not be reached: {exc}") from None
    except APIError as exc:
        raise MoveError(f"moving cluster {namespace}/{cluster}: {_what(exc)}") from None


def _infra_kinds(given: Iterable[Resource] | None) -> list[Resource]:
    if given is not None:
        return list(given)
    from anywhere.providers.registry import all_providers

    kinds: list[Resource] = []
    for provider in all_providers():
        kinds += [provider.infra_cluster, provider.infra_machine_template, provider.infra_machine]
    return kinds


async def _move(source: Client, target: Client, cluster: str, namespace: str, infra: list[Resource]) -> Moved:
    anywhere_cluster = await _get(source, EKSA_CLUSTERS, cluster, namespace)
    if anywhere_cluster is None:
        if await _get(target, EKSA_CLUSTERS, cluster, namespace) is not None:
            # An earlier run emptied the source and stopped before the end: finish it.
            await _delete_remnants(source, cluster, namespace, infra)
            await _unpause(target, cluster, namespace)
            return Moved()
        raise MoveError(
            f"cluster {namespace}/{cluster} is in neither API: check its name and namespace "
            "(`kubectl get clusters.anywhere.eks.amazonaws.com -A`)"
        )
    # What can be refused is refused before the source is paused; so is a target that cannot be
    # written.
    await _refuse_shared_configs(source, anywhere_cluster)
    await _ensure_namespaces(target, {namespace, SYSTEM_NAMESPACE})
    await _pause(source, cluster, namespace)
    items = await _discover(source, cluster, namespace, infra)
    for _ in range(_COPY_ROUNDS):
        moved = await _copy(target, items)
        again = await _discover(source, cluster, namespace, infra)
        if _versions(again) == _versions(items):
            break
        items = again
    else:
        raise MoveError(
            f"cluster {namespace}/{cluster}: its objects in the source kept changing while being "
            "copied; stop the source's controllers (or check they honour the paused annotations) "
            "and run the move again"
        )
    await _delete_source(source, items)
    await _unpause(target, cluster, namespace)
    return moved


def _versions(items: list[_Item]) -> dict[Key, str]:
    return {item.key: str(item.obj["metadata"].get("resourceVersion") or "") for item in items}


async def _get(client: Client, resource: Resource, name: str, namespace: str) -> Obj | None:
    try:
        return await client.get(resource, name, namespace)
    except NotFoundError:
        return None


# -- 1. pause and unpause ---------------------------------------------------------------------------


async def _pause(client: Client, cluster: str, namespace: str) -> None:
    await _patch_if_there(
        client,
        EKSA_CLUSTERS,
        cluster,
        namespace,
        {"metadata": {"annotations": {ANYWHERE_PAUSED_ANNOTATION: "true"}}},
    )
    await _patch_if_there(
        client,
        CAPI_CLUSTERS,
        cluster,
        SYSTEM_NAMESPACE,
        {"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}, "spec": {"paused": True}},
    )


async def _unpause(client: Client, cluster: str, namespace: str) -> None:
    await _patch_if_there(
        client,
        CAPI_CLUSTERS,
        cluster,
        SYSTEM_NAMESPACE,
        {"metadata": {"annotations": {PAUSED_ANNOTATION: None}}, "spec": {"paused": None}},
    )
    await _patch_if_there(
        client,
        EKSA_CLUSTERS,
        cluster,
        namespace,
        {"metadata": {"annotations": {ANYWHERE_PAUSED_ANNOTATION: None}}},
    )


async def _patch_if_there(client: Client, resource: Resource, name: str, namespace: str, patch: Obj) -> None:
    # Not there: nothing to pause (a cluster whose Cluster API objects are not rendered yet).
    with contextlib.suppress(NotFoundError):
        await client.patch(resource, name, patch, namespace)


async def _ensure_namespaces(client: Client, names: set[str]) -> None:
    for name in sorted(names):
        with contextlib.suppress(AlreadyExistsError):
            await client.create(
                NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )


# -- 2. discovery ------------------------------------------------------------------------------------


async def _discover(source: Client, cluster: str, namespace: str, infra: list[Resource]) -> list[_Item]:
    """Every object of the cluster in ``source``, in creation order (owners first). The kinds
    looked for are Cluster API's, ``infra`` (the providers'), and any kind an object found refers
    to; the registry's kinds matter for a re-run after a crash, when the objects that referred to
    some kind may already be gone from the source."""
    found: list[_Item] = []
    anywhere_cluster = await _get(source, EKSA_CLUSTERS, cluster, namespace)
    configs: list[_Item] = []
    if anywhere_cluster is not None:
        for ref in _config_refs(anywhere_cluster):
            resource = anywhere_resource(ref["kind"].lower() + "s", ref["kind"])
            obj = await _get(source, resource, ref["name"], namespace)
            if obj is not None and all(_key_of(obj) != c.key for c in configs):
                configs.append(_Item(resource, obj))
        # The Cluster first: the source's copy is deleted last (in reverse), so a re-run after a crash
        # while deleting still finds the configs through it.
        found += [_Item(EKSA_CLUSTERS, anywhere_cluster), *configs]

    kinds = {(r.group, r.kind): r for r in (*_CAPI_KINDS, *infra)}
    candidates: dict[Key, _Item] = {}
    pending = list(kinds.values())
    seen: set[tuple[str, str]] = set()
    while pending:
        resource = pending.pop()
        if (resource.group, resource.kind) in seen:
            continue
        seen.add((resource.group, resource.kind))
        try:
            listing = await source.list_all(resource, SYSTEM_NAMESPACE)
        except NotFoundError:
            continue  # a kind this API does not serve
        for obj in listing.get("items") or ():
            obj.setdefault("apiVersion", resource.api_version)
            obj.setdefault("kind", resource.kind)
            item = _Item(resource, obj)
            candidates[item.key] = item
            for reference in _object_refs(obj):
                referenced = resource_of(reference)
                if (referenced.group, referenced.kind) not in kinds:
                    kinds[(referenced.group, referenced.kind)] = referenced
                    pending.append(referenced)

    # The cluster's own: labelled with it (or naming it), and whatever those own, transitively.
    chosen: dict[str, _Item] = {}
    for item in candidates.values():
        spec = item.obj.get("spec") or {}
        if (
            labels_of(item.obj).get(CLUSTER_NAME_LABEL) == cluster
            or (item.resource.kind != "Secret" and spec.get("clusterName") == cluster)
            or (item.resource == CAPI_CLUSTERS and name_of(item.obj) == cluster)
        ):
            chosen[item.uid] = item
    grew = True
    while grew:
        grew = False
        for item in candidates.values():
            if item.uid in chosen:
                continue
            if any(ref.get("uid") in chosen for ref in _owner_refs(item.obj)):
                chosen[item.uid] = item
                grew = True
    return found + _owners_first(list(chosen.values()))


async def _refuse_shared_configs(source: Client, anywhere_cluster: Obj) -> None:
    """A config another Cluster of the source also uses cannot move (that cluster would lose it)."""
    mine = {(r["kind"], r["name"]) for r in _config_refs(anywhere_cluster)}
    listing = await source.list_all(EKSA_CLUSTERS, namespace_of(anywhere_cluster))
    for other in listing.get("items") or ():
        if name_of(other) == name_of(anywhere_cluster):
            continue
        for kind, name in sorted(mine & {(r["kind"], r["name"]) for r in _config_refs(other)}):
            raise MoveError(
                f"{kind} {namespace_of(other)}/{name} is used by cluster {name_of(other)} too: give "
                f"cluster {name_of(anywhere_cluster)} configs of its own before moving it"
            )


def _config_refs(anywhere_cluster: Obj) -> list[dict[str, str]]:
    """The datacenter and machine configs an anywhere Cluster references."""
    spec = anywhere_cluster.get("spec") or {}
    refs: list[Any] = [spec.get("datacenterRef")]
    refs.append((spec.get("controlPlaneConfiguration") or {}).get("machineGroupRef"))
    refs.append((spec.get("externalEtcdConfiguration") or {}).get("machineGroupRef"))
    refs += [
        (group or {}).get("machineGroupRef") for group in spec.get("workerNodeGroupConfigurations") or ()
    ]
    out: list[dict[str, str]] = []
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("kind") and ref.get("name"):
            out.append({"kind": str(ref["kind"]), "name": str(ref["name"])})
    return out


def _object_refs(obj: Obj) -> list[Mapping[str, Any]]:
    """The typed references an object holds to others of its namespace (infrastructure, bootstrap,
    control plane, templates): how kinds no registry lists are still found."""
    out: list[Mapping[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            if (
                isinstance(value.get("apiVersion"), str)
                and "/" in value["apiVersion"]
                and value.get("kind")
                and value.get("name")
            ):
                out.append(value)
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(obj.get("spec"))
    return out


def _owner_refs(obj: Obj) -> list[Obj]:
    return list((obj.get("metadata") or {}).get("ownerReferences") or ())


def _owners_first(items: list[_Item]) -> list[_Item]:
    """``items`` ordered so that every owner (among them) comes before what it owns; a cycle of
    ownership cannot be created anywhere and is an error."""
    by_uid = {item.uid: item for item in items}
    # A stable order among equals: the kinds' own order, then names.
    rank = {(r.group, r.kind): i for i, r in enumerate(_CAPI_KINDS)}
    items = sorted(items, key=lambda i: (rank.get((i.resource.group, i.resource.kind), -1), i.key))
    done: set[str] = set()
    out: list[_Item] = []
    visiting: set[str] = set()

    def visit(item: _Item) -> None:
        if item.uid in done:
            return
        if item.uid in visiting:
            raise MoveError(f"{item} is its own owner through its ownerReferences: fix them, then move again")
        visiting.add(item.uid)
        for ref in _owner_refs(item.obj):
            owner = by_uid.get(str(ref.get("uid") or ""))
            if owner is not None:
                visit(owner)
        visiting.discard(item.uid)
        done.add(item.uid)
        out.append(item)

    for item in items:
        visit(item)
    return out


# -- 3. copy -----------------------------------------------------------------------------------------


async def _copy(target: Client, items: list[_Item]) -> Moved:
    """Create or update every item in ``target``, in order, remapping owner uids."""
    source_uid_to_key = {item.uid: item.key for item in items}
    target_uids: dict[Key, str] = {}
    moved = Moved()
    for item in items:
        try:
            made = await _copy_one(target, item, source_uid_to_key, target_uids)
        except (APIError, TransportError) as exc:
            raise MoveError(f"{item} could not be created in the target: {_what(exc)}") from None
        target_uids[item.key] = str(made["metadata"]["uid"])
        moved.objects.append(str(item))
    return moved


def _desired(item: _Item, source_uid_to_key: Mapping[str, Key], target_uids: Mapping[Key, str]) -> Obj:
    obj = copy.deepcopy(item.obj)
    obj.pop("status", None)
    meta = obj.setdefault("metadata", {})
    for name in _SERVER_METADATA:
        meta.pop(name, None)
    refs: list[Obj] = []
    for ref in _owner_refs(item.obj):
        owner_key = source_uid_to_key.get(str(ref.get("uid") or ""))
        if owner_key is None:
            log.info(
                "%s: owner %s %s is not moved: its reference is dropped",
                item,
                ref.get("kind"),
                ref.get("name"),
            )
            continue
        refs.append({**ref, "uid": target_uids[owner_key]})
    if refs:
        meta["ownerReferences"] = refs
    else:
        meta.pop("ownerReferences", None)
    return obj


async def _copy_one(
    target: Client, item: _Item, source_uid_to_key: Mapping[str, Key], target_uids: Mapping[Key, str]
) -> Obj:
    desired = _desired(item, source_uid_to_key, target_uids)
    namespace = namespace_of(item.obj)
    try:
        made = await target.create(item.resource, desired, namespace)
    except AlreadyExistsError:
        made = await _update(target, item, desired)
    status = item.obj.get("status")
    if status is not None and made.get("status") != status:
        try:
            made = await target.update_status(item.resource, {**made, "status": status})
        except NotFoundError:
            # No status subresource for this kind: the object as written already holds it.
            made = await target.update(item.resource, {**made, "status": status})
    return made


async def _update(target: Client, item: _Item, desired: Obj) -> Obj:
    """The object is in the target already (an earlier run): make it the source's copy."""
    for _ in range(_TRIES):
        current = await target.get(item.resource, name_of(item.obj), namespace_of(item.obj))
        wanted = copy.deepcopy(desired)
        wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if "status" in current:
            wanted["status"] = current["status"]
        same = {k: v for k, v in current.items() if k != "metadata"} == {
            k: v for k, v in wanted.items() if k != "metadata"
        } and all(
            current["metadata"].get(f) == wanted["metadata"].get(f)
            for f in ("labels", "annotations", "finalizers", "ownerReferences")
        )
        if same:
            return current
        try:
            return await target.update(item.resource, wanted)
        except ConflictError:
            continue
    raise MoveError(f"{item} kept changing in the target while being updated: is something else writing it?")


# -- 4. delete from the source -----------------------------------------------------------------------


async def _delete_source(source: Client, items: list[_Item]) -> None:
    """Delete every item from ``source``, dependents first, finalizers removed first (so no
    deletion logic runs there)."""
    order = [item for item in reversed(items) if item.resource != EKSA_CLUSTERS]
    order += [item for item in items if item.resource == EKSA_CLUSTERS]  # last: see _discover
    for item in order:
        try:
            await _delete_one(source, item)
        except (APIError, TransportError) as exc:
            raise MoveError(
                f"{item} is in the target now but could not be deleted from the source: {_what(exc)}; "
                "run the move again"
            ) from None


async def _delete_one(source: Client, item: _Item) -> None:
    name, namespace = name_of(item.obj), namespace_of(item.obj)
    for _ in range(_TRIES):
        current = await _get(source, item.resource, name, namespace)
        if current is None:
            return
        version = current["metadata"]["resourceVersion"]
        if current["metadata"].get("finalizers"):
            try:
                current = await source.patch(
                    item.resource,
                    name,
                    {"metadata": {"finalizers": None, "resourceVersion": version}},
                    namespace,
                )
            except NotFoundError:
                return
            except ConflictError:
                continue
            version = current["metadata"]["resourceVersion"]
        try:
            await source.delete(item.resource, name, namespace, resource_version=version)
            return
        except NotFoundError:
            return
        except ConflictError:
            continue  # written in between (a finalizer back?): look again
    raise MoveError(f"{item} kept changing in the source while being deleted: are its controllers paused?")


async def _delete_remnants(source: Client, cluster: str, namespace: str, infra: list[Resource]) -> None:
    """An earlier run deleted the anywhere Cluster from the source last, so nothing should be left;
    anything that is (of this cluster) goes the same way."""
    items = await _discover(source, cluster, namespace, infra)
    if items:
        await _delete_source(source, items)
