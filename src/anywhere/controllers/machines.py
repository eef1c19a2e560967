"""How owners (KubeadmControlPlane, MachineSet) make machines, so that a crash never leaks a part.

A Machine has two parts made from templates: an infrastructure machine (``SimMachine``, ...) and a
bootstrap config (``KubeadmConfig``). Cluster API creates the parts first and the Machine last; a
crash in between leaves parts nobody owns. Here the Machine comes first, naming its parts (both
take the Machine's name), and the owner's every reconcile makes whatever parts of its machines are
missing, owned by their Machine. A crash at any point leaves either nothing or a Machine whose
missing parts the next reconcile makes; deleting a Machine deletes its parts with it.
"""

from __future__ import annotations

from typing import Any

from anywhere.api.capi import (
    BOOTSTRAP_API_VERSION,
    CLUSTER_API_VERSION,
    CLUSTER_NAME_LABEL,
)
from anywhere.controllers.objects import (
    FIELD_MANAGER,
    name_of,
    namespace_of,
    owner_reference,
    random_suffix,
)
from anywhere.controllers.resources import KUBEADM_CONFIGS, resource_of
from anywhere.runtime import AlreadyExistsError, Client, Informer, Resource

__all__ = [
    "CLONED_FROM_GROUPKIND_ANNOTATION",
    "CLONED_FROM_NAME_ANNOTATION",
    "ensure_machine_parts",
    "infra_machine_resource",
    "new_machine",
]

Obj = dict[str, Any]
CLONED_FROM_NAME_ANNOTATION = "cluster.x-k8s.io/cloned-from-name"
CLONED_FROM_GROUPKIND_ANNOTATION = "cluster.x-k8s.io/cloned-from-groupkind"


def infra_machine_resource(template_ref: Obj) -> Resource:
    """The infrastructure machine kind a template reference makes (``SimMachineTemplate`` ->
    ``simmachines``)."""
    return resource_of(
        {"apiVersion": template_ref["apiVersion"], "kind": str(template_ref["kind"]).removesuffix("Template")}
    )


def new_machine(
    owner: Obj,
    *,
    cluster: str,
    version: str,
    infrastructure_template: Obj,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    name_prefix: str | None = None,
    failure_domain: str | None = None,
) -> Obj:
    """A Machine owned (as controller) by ``owner``, whose parts take its name.

    ``infrastructure_template`` is the owner's reference to its machine template
    (``apiVersion``, ``kind``, ``name``).
    """
    name = f"{name_prefix or name_of(owner)}-{random_suffix()}"
    namespace = namespace_of(owner)
    infra = infra_machine_resource(infrastructure_template)
    spec: Obj = {
        "clusterName": cluster,
        "version": version,
        "bootstrap": {
            "configRef": {
                "apiVersion": BOOTSTRAP_API_VERSION,
                "kind": KUBEADM_CONFIGS.kind,
                "name": name,
                "namespace": namespace,
            }
        },
        "infrastructureRef": {
            "apiVersion": infra.api_version,
            "kind": infra.kind,
            "name": name,
            "namespace": namespace,
        },
    }
    if failure_domain:
        spec["failureDomain"] = failure_domain
    metadata: Obj = {
        "name": name,
        "namespace": namespace,
        "labels": {**labels, CLUSTER_NAME_LABEL: cluster},
        "ownerReferences": [owner_reference(owner, controller=True)],
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": CLUSTER_API_VERSION, "kind": "Machine", "metadata": metadata, "spec": spec}


async def ensure_machine_parts(
    client: Client,
    machine: Obj,
    *,
    infrastructure_template: Obj,
    bootstrap_spec: Obj,
    infra_machines: Informer,
    bootstrap_configs: Informer,
) -> bool:
    """Create the machine's infrastructure machine (a copy of ``infrastructure_template``'s
    ``spec.template``) and its KubeadmConfig (``bootstrap_spec``) where the caches show them
    missing. Returns whether anything was created. ``infrastructure_template`` is the template
    object itself."""
    created = False
    name, namespace = name_of(machine), namespace_of(machine)
    key = f"{namespace}/{name}"
    cluster = str(machine["spec"]["clusterName"])
    owner = [owner_reference(machine, controller=True)]
    base_labels = {**(machine["metadata"].get("labels") or {}), CLUSTER_NAME_LABEL: cluster}
    if infra_machines.get(key) is None:
        template = (infrastructure_template.get("spec") or {}).get("template") or {}
        template_meta = template.get("metadata") or {}
        resource = infra_machine_resource(infrastructure_template)
        group = resource.group
        infra: Obj = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {**(template_meta.get("labels") or {}), **base_labels},
                "annotations": {
                    **(template_meta.get("annotations") or {}),
                    CLONED_FROM_NAME_ANNOTATION: name_of(infrastructure_template),
                    CLONED_FROM_GROUPKIND_ANNOTATION: f"{infrastructure_template['kind']}.{group}",
                },
                "ownerReferences": owner,
            },
            "spec": dict(template.get("spec") or {}),
        }
        created |= await _create(client, resource, infra)
    if bootstrap_configs.get(key) is None:
        config: Obj = {
            "apiVersion": BOOTSTRAP_API_VERSION,
            "kind": KUBEADM_CONFIGS.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": base_labels,
                "ownerReferences": owner,
            },
            "spec": bootstrap_spec,
        }
        created |= await _create(client, KUBEADM_CONFIGS, config)
    return created


async def _create(client: Client, resource: Resource, obj: Obj) -> bool:
    try:
        await client.create(resource, obj, field_manager=FIELD_MANAGER)
    except AlreadyExistsError:  # the cache had not seen it yet
        return False
    return True
