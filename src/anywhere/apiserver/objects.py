"""Object metadata rules shared by every kind: names, system fields, generation, encoding."""

from __future__ import annotations

import datetime
import re
import secrets
import uuid
from typing import Any

import orjson

from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.resources import ResourceType

Obj = dict[str, Any]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PATH_SEGMENT_FORBIDDEN = ("/", "%")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Kinds whose names must be DNS labels rather than subdomains.
_LABEL_NAMED = {("", "Namespace"), ("", "Service")}
# Kinds whose names are path segments only (RBAC allows ':' and capitals).
_PATH_NAMED = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
SYSTEM_METADATA = ("uid", "creationTimestamp", "selfLink", "generation", "resourceVersion", "managedFields")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode(data: bytes) -> Any:
    return orjson.loads(data)


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj)


def name_problem(rt: ResourceType, name: str) -> str | None:
    """Why ``name`` cannot name an object of ``rt``, in Kubernetes' words, or ``None``."""
    if not name:
        return "name or generateName is required"
    if rt.kind in _PATH_NAMED and rt.group == "rbac.authorization.k8s.io":
        if name in (".", "..") or any(c in name for c in _PATH_SEGMENT_FORBIDDEN):
            return f'"{name}": may not contain "/" or "%" and may not be "." or ".."'
        return None
    if (rt.group, rt.kind) in _LABEL_NAMED:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                "start and end with an alphanumeric character (e.g. 'my-name', or '123-abc', regex used for "
                "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
        return None
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
            "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return None


def generate_name(base: str) -> str:
    return base[:58] + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))


def prepare_create(rt: ResourceType, obj: Obj, namespace: str | None) -> Obj:
    """Set the system fields of a new object (uid, timestamps, generation); checks its name."""
    metadata = obj.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise StatusError(400, "metadata must be an object")
    if not metadata.get("name"):
        base = metadata.get("generateName")
        if not base:
            raise _invalid_name(rt, "", "name or generateName is required")
        metadata["name"] = generate_name(base)
    problem = name_problem(rt, metadata["name"])
    if problem:
        raise _invalid_name(rt, metadata["name"], problem)
    if rt.namespaced:
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)
    for key in ("resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"):
        metadata.pop(key, None)
    metadata["uid"] = str(uuid.uuid4())
    metadata["creationTimestamp"] = now()
    metadata["generation"] = 1
    if rt.builtin and rt.reset_status_on_create:
        obj.pop("status", None)
    if not rt.builtin and "status" in rt.subresources:
        obj.pop("status", None)
    return obj


def _invalid_name(rt: ResourceType, name: str, problem: str) -> StatusError:
    from anywhere.apiserver.errors import invalid

    return invalid(
        rt.kind,
        rt.group,
        name,
        [
            {
                "type": "FieldValueInvalid",
                "field": "metadata.name",
                "message": f"Invalid value: {name!r}: {problem}",
            }
        ],
    )


def spec_changed(old: Obj, new: Obj) -> bool:
    """Whether anything but metadata and status changed: what bumps ``metadata.generation``."""
    keys = (set(old) | set(new)) - {"metadata", "status", "apiVersion", "kind"}
    return any(old.get(k) != new.get(k) for k in keys)


def carry_system_fields(old: Obj, new: Obj) -> None:
    """An update may not change uid, creation time, or deletion state; generation follows the spec."""
    old_meta, new_meta = old["metadata"], new.setdefault("metadata", {})
    for key in (
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
    ):
        if key in old_meta:
            new_meta[key] = old_meta[key]
        else:
            new_meta.pop(key, None)
    generation = int(old_meta.get("generation") or 1)
    new_meta["generation"] = generation + 1 if spec_changed(old, new) else generation
    new_meta.pop("selfLink", None)


def with_version(obj: Obj, rv: int) -> Obj:
    obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
    return obj


def stored(obj: Obj) -> bytes:
    """The bytes kept in storage: the object without its resourceVersion (the store assigns it)."""
    metadata = obj.get("metadata") or {}
    rv = metadata.pop("resourceVersion", None)
    try:
        return encode(obj)
    finally:
        if rv is not None:
            metadata["resourceVersion"] = rv
