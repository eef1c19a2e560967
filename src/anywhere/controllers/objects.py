"""Small, shared operations on unstructured objects: ownership, finalizers, hashes, and writes that
happen only when something would change.

Controllers hold objects as the dicts their informers cache. The helpers here keep the common
steps identical in every controller: who owns what (``ownerReferences``), what holds deletion
(finalizers), when an object is paused, and how a desired object is made real without a write in
the steady state (a level-triggered controller reconciles often; a write each time would be the
whole load of the API server).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import secrets
import string
from collections.abc import Mapping
from typing import Any

import orjson

from anywhere.api.capi import CLUSTER_NAME_LABEL, PAUSED_ANNOTATION
from anywhere.runtime import AlreadyExistsError, Client, Informer, NotFoundError, Resource

__all__ = [
    "ANYWHERE_PAUSED_ANNOTATION",
    "FIELD_MANAGER",
    "add_finalizer",
    "annotations_of",
    "cluster_paused",
    "contains",
    "controlled_by",
    "controller_of",
    "controlling",
    "create_or_patch",
    "deleting",
    "flag_is_true",
    "has_finalizer",
    "is_paused",
    "labelled",
    "labels_of",
    "name_of",
    "namespace_of",
    "of_cluster",
    "owned_by",
    "owner_reference",
    "parse_time",
    "patch_at_version",
    "random_suffix",
    "referenced_infrastructure",
    "remove_finalizer",
    "short_hash",
    "write_status",
]

Obj = dict[str, Any]
FIELD_MANAGER = "anywhere-controllers"
ANYWHERE_PAUSED_ANNOTATION = "anywhere.eks.amazonaws.com/paused"


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def namespace_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def labels_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_paused(obj: Obj) -> bool:
    """Paused by Cluster API's annotation or anywhere's (either, with any value but "false")."""
    meta = annotations_of(obj)
    return any(
        meta.get(a, "false").lower() != "false" for a in (PAUSED_ANNOTATION, ANYWHERE_PAUSED_ANNOTATION)
    )


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp, or None."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def random_suffix(length: int = 5) -> str:
    """What Kubernetes appends to a generated name: lower-case consonants and digits."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def short_hash(value: Any, length: int = 8) -> str:
    """A stable hash of JSON-able data (key order does not matter), for template names and labels."""
    digest = hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "".join(c for c in digest if c in string.hexdigits)[:length]


# -- ownership ---------------------------------------------------------------------------------------


def owner_reference(owner: Obj, *, controller: bool = False) -> Obj:
    """A reference to ``owner``; ``controller`` marks the one owner that manages the object."""
    ref: Obj = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": name_of(owner),
        "uid": owner["metadata"]["uid"],
    }
    if controller:
        ref["controller"] = True
        ref["blockOwnerDeletion"] = True
    return ref


def cluster_paused(cluster: Obj | None) -> bool:
    """Whether a Cluster API Cluster pauses everything of it: paused by annotation or ``spec.paused``
    (some controllers honour one, some the other, so every controller honours both)."""
    return cluster is not None and (is_paused(cluster) or bool((cluster.get("spec") or {}).get("paused")))


def flag_is_true(value: str | None) -> bool:
    """Whether an annotation used as a flag says "true" (any case, spaces ignored)."""
    return (value or "").strip().lower() == "true"


def controller_of(obj: Obj) -> Obj | None:
    """The owner reference with ``controller: true``, or None."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def owned_by(obj: Obj, owner: Obj) -> bool:
    """Whether ``obj`` lists ``owner`` (by uid) among its owners."""
    uid = (owner.get("metadata") or {}).get("uid")
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or ())


# -- cache look-ups by index -------------------------------------------------------------------------
# Each adds its index to the informer the first time it is used on it (a no-op after that).


def controlling(informer: Informer, obj: Obj, kind: str) -> Obj | None:
    """The cached object of ``kind`` that controls ``obj`` (its controller reference), or None."""
    ref = controller_of(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    return informer.get(f"{namespace_of(obj)}/{ref['name']}")


def referenced_infrastructure(machine: Obj, kind: str) -> list[str]:
    """The key of the infrastructure object of ``kind`` a Machine's ``infrastructureRef`` names
    (none when it names another kind): how a provider's controller hears of its machines' Machines."""
    ref = (machine.get("spec") or {}).get("infrastructureRef") or {}
    if ref.get("kind") != kind or not ref.get("name"):
        return []
    return [f"{ref.get('namespace') or namespace_of(machine)}/{ref['name']}"]


def of_cluster(informer: Informer, namespace: str, cluster: str) -> list[Obj]:
    """The cached objects of a Cluster API cluster: labelled ``cluster.x-k8s.io/cluster-name`` with
    it, or naming it in ``spec.clusterName`` (callers needing both check the other themselves)."""
    informer.add_index("cluster", _cluster_values)
    return informer.by_index("cluster", f"{namespace}/{cluster}")


def _cluster_values(obj: Obj) -> set[str]:
    namespace = namespace_of(obj)
    names = (labels_of(obj).get(CLUSTER_NAME_LABEL), (obj.get("spec") or {}).get("clusterName"))
    return {f"{namespace}/{name}" for name in names if isinstance(name, str) and name}


def controlled_by(informer: Informer, owner: Obj) -> list[Obj]:
    """The cached objects whose controller reference is ``owner`` (by uid, in its namespace)."""
    informer.add_index("controller", _controller_values)
    uid = (owner.get("metadata") or {}).get("uid")
    return informer.by_index("controller", f"{namespace_of(owner)}/{uid}") if uid else []


def _controller_values(obj: Obj) -> list[str]:
    ref = controller_of(obj)
    return [f"{namespace_of(obj)}/{ref['uid']}"] if ref is not None and ref.get("uid") else []


def labelled(informer: Informer, label: str, namespace: str, value: str) -> list[Obj]:
    """The cached objects of ``namespace`` whose label ``label`` is ``value``."""

    def values(obj: Obj) -> list[str]:
        found = labels_of(obj).get(label)
        return [f"{namespace_of(obj)}/{found}"] if found is not None else []

    informer.add_index(f"label:{label}", values)
    return informer.by_index(f"label:{label}", f"{namespace}/{value}")


# -- finalizers -------------------------------------------------------------------------------------


def has_finalizer(obj: Obj, finalizer: str) -> bool:
    return finalizer in ((obj.get("metadata") or {}).get("finalizers") or ())


async def add_finalizer(client: Client, resource: Resource, obj: Obj, finalizer: str) -> Obj:
    """Add ``finalizer`` (a compare-and-swap on the object's resourceVersion: a conflict raises and the
    reconcile is retried with fresh data). Returns the object as written."""
    if has_finalizer(obj, finalizer):
        return obj
    finalizers = [*((obj["metadata"].get("finalizers")) or ()), finalizer]
    return await client.patch(
        resource,
        name_of(obj),
        {"metadata": {"finalizers": finalizers, "resourceVersion": obj["metadata"]["resourceVersion"]}},
        namespace_of(obj) or None,
    )


async def remove_finalizer(client: Client, resource: Resource, obj: Obj, finalizer: str) -> None:
    """Remove ``finalizer`` (compare-and-swap, as :func:`add_finalizer`); gone already is fine."""
    if not has_finalizer(obj, finalizer):
        return
    finalizers = [f for f in obj["metadata"].get("finalizers") or () if f != finalizer]
    with contextlib.suppress(NotFoundError):
        await client.patch(
            resource,
            name_of(obj),
            {"metadata": {"finalizers": finalizers, "resourceVersion": obj["metadata"]["resourceVersion"]}},
            namespace_of(obj) or None,
        )


# -- writes only when needed -------------------------------------------------------------------------


def contains(actual: Any, wanted: Any) -> bool:
    """Whether ``actual`` holds everything ``wanted`` says (maps recursively; lists and scalars must be
    equal). An object that contains its desired form needs no write."""
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            contains(actual.get(key), value) for key, value in wanted.items()
        )
    return bool(actual == wanted)


async def create_or_patch(
    client: Client,
    resource: Resource,
    desired: Obj,
    current: Obj | None,
    *,
    field_manager: str = FIELD_MANAGER,
) -> Obj:
    """Make ``desired`` real: create it when ``current`` is None, apply it (server-side apply,
    taking the fields over) when ``current`` lacks some of it, and do nothing when it already
    holds it. ``current`` is normally the informer's cached copy, so the steady state costs no
    request at all."""
    if current is None:
        try:
            return await client.create(resource, desired, field_manager=field_manager)
        except AlreadyExistsError:
            current = await client.get(resource, name_of(desired), namespace_of(desired) or None)
    if contains(current, {k: v for k, v in desired.items() if k != "status"}):
        return current
    return await client.patch(
        resource,
        name_of(desired),
        desired,
        namespace_of(desired) or None,
        type="apply",
        field_manager=field_manager,
        force=True,
    )


async def patch_at_version(client: Client, resource: Resource, obj: Obj, patch: Obj) -> Obj:
    """Merge ``patch`` into ``obj`` only if it is still the version read (a 409 otherwise, so that a
    decision made on a stale copy is made again); the object as stored."""
    metadata = {**(patch.get("metadata") or {}), "resourceVersion": obj["metadata"]["resourceVersion"]}
    return await client.patch(resource, name_of(obj), {**patch, "metadata": metadata}, namespace_of(obj))


async def write_status(client: Client, resource: Resource, obj: Obj, status: Obj) -> Obj:
    """Replace ``obj``'s status with ``status`` if it differs (compare-and-swap on the object's
    resourceVersion: a conflict raises, and the reconcile runs again on fresh data). An object
    gone meanwhile has no status to write: that is not an error."""
    if obj.get("status") == status:
        return obj
    try:
        return await client.update_status(resource, {**obj, "status": status})
    except NotFoundError:
        return obj
