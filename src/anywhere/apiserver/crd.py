"""Admission of CustomResourceDefinitions: refuse what could not be served, and mark the rest served.

A CRD is served as soon as it is stored (the registry follows the CRD prefix), so its status says so
right away: ``NamesAccepted`` and ``Established`` are true and ``storedVersions`` lists the storage
version, which is what ``kubectl wait --for=condition=established`` and operators look for.
"""

from __future__ import annotations

import re
from typing import Any

from anywhere.apiserver import structural
from anywhere.apiserver.errors import invalid
from anywhere.apiserver.objects import now

_PLURAL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*$")
GROUP = "apiextensions.k8s.io"


def admit(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD with its status filled in, or a 422 naming every problem."""
    causes = _problems(crd)
    name = str((crd.get("metadata") or {}).get("name") or "")
    if causes:
        raise invalid("CustomResourceDefinition", GROUP, name, causes)
    spec = crd["spec"]
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    spec["names"] = names
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    stamp = now()
    status = crd.get("status") or {}
    stored = list(status.get("storedVersions") or [])
    if storage not in stored:
        stored.append(storage)
    crd["status"] = {
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": stamp,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": stamp,
            },
        ],
    }
    return crd


def _problems(crd: dict[str, Any]) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []

    def add(field: str, message: str) -> None:
        causes.append({"type": "FieldValueInvalid", "field": field, "message": message})

    spec = crd.get("spec")
    if not isinstance(spec, dict):
        add("spec", "Required value")
        return causes
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    plural, kind = names.get("plural") or "", names.get("kind") or ""
    if not group or "." not in group:
        add("spec.group", f'Invalid value: "{group}": should be a domain with at least one dot')
    if not _PLURAL.match(plural):
        add("spec.names.plural", f'Invalid value: "{plural}": a lowercase RFC 1123 label is required')
    if not _KIND.match(kind):
        add("spec.names.kind", f'Invalid value: "{kind}": must be an UpperCamelCase name')
    name = (crd.get("metadata") or {}).get("name")
    if name != f"{plural}.{group}":
        add("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        add(
            "spec.scope",
            f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"',
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        add("spec.versions", "Invalid value: must have exactly one version marked as storage version")
        return causes
    if sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        add("spec.versions", "Invalid value: must have exactly one version marked as storage version")
    seen: set[str] = set()
    for index, version in enumerate(versions):
        path = f"spec.versions[{index}]"
        if not isinstance(version, dict) or not version.get("name"):
            add(f"{path}.name", "Required value")
            continue
        if version["name"] in seen:
            add(f"{path}.name", f'Duplicate value: "{version["name"]}"')
        seen.add(version["name"])
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            add(f"{path}.schema.openAPIV3Schema", "Required value: schemas are required")
            continue
        causes.extend(structural.structural_causes(schema, f"{path}.schema.openAPIV3Schema"))
    return causes
