"""What a kubelet writes about its node, shared by every provider's node agent.

The sim provider's simulated kubelet (a controller in the management plane) and the netns
provider's node agent (a process inside a machine's namespace) must describe their nodes the same
way: Cluster API and the lifecycle controllers read the same labels, annotations, conditions and
Lease from both. So the rules live here once: how a Node is registered (labels, Cluster API's
annotations, ``spec.providerID``), what its status says (addresses, capacity, ``nodeInfo``, the
kubelet's conditions and their transition times), when the CNI counts as configured (Cilium's
DaemonSet exists), and how the node Lease in ``kube-node-lease`` is renewed.

Why Cilium's DaemonSet: a real kubelet reports ``NetworkReady=false`` until a CNI plugin writes
its configuration on the node, which Cilium's agent (run by that DaemonSet) does; nothing else in
these clusters would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import time
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.controllers.conditions import READY
from anywhere.controllers.machine import CLUSTER_NAMESPACE_ANNOTATION, MACHINE_ANNOTATION
from anywhere.controllers.resources import DAEMONSETS, LEASES, NODES
from anywhere.runtime import AlreadyExistsError, Client, NotFoundError

__all__ = [
    "CAPACITY",
    "CLUSTER_NAMESPACE_ANNOTATION",
    "CLUSTER_NAME_ANNOTATION",
    "CNI_DAEMONSET",
    "CNI_NAMESPACE",
    "CONTROL_PLANE_ROLE_LABEL",
    "HEARTBEAT_PERIOD",
    "KUBELET_NOT_READY_MESSAGE",
    "LEASE_DURATION_SECONDS",
    "MACHINE_ANNOTATION",
    "NODE_LEASE_NAMESPACE",
    "NOT_READY_POLL",
    "UNKNOWN_MESSAGE",
    "cni_configured",
    "create_or_adopt_node",
    "internal_ip",
    "node_addresses",
    "node_annotations",
    "node_conditions",
    "node_info",
    "node_labels",
    "not_ready_poll",
    "renew_node_lease",
    "rfc3339",
    "uuid_of",
    "write_node_status",
]

log = logging.getLogger("anywhere.providers.kubelet")
Obj = dict[str, Any]

# The kubelet renews its node Lease this often (kubelet's default: a quarter of the 40 s lease).
HEARTBEAT_PERIOD: Final = 10.0
LEASE_DURATION_SECONDS: Final = 40
# Until its node is Ready, a kubelet updates the node's status every 100 ms (kubelet's
# fastStatusUpdateOnce), so a node notices its CNI about as soon as it is installed. Our kubelets
# look for the CNI after this, then after half the time they have waited so far (a busy API is not
# asked a question per second per machine), and at least once per heartbeat: see not_ready_poll.
NOT_READY_POLL: Final = 1.0
NODE_LEASE_NAMESPACE: Final = "kube-node-lease"
CNI_NAMESPACE: Final = "kube-system"
CNI_DAEMONSET: Final = "cilium"

CLUSTER_NAME_ANNOTATION: Final = CLUSTER_NAME_LABEL  # the same key, as an annotation on Nodes
CONTROL_PLANE_ROLE_LABEL: Final = "node-role.kubernetes.io/control-plane"

KUBELET_NOT_READY_MESSAGE: Final = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)
UNKNOWN_MESSAGE: Final = "Kubelet stopped posting node status."
_PRESSURE = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)
CAPACITY: Final = {"cpu": "2", "memory": "4025424Ki", "pods": "110", "ephemeral-storage": "20134592Ki"}


def rfc3339(seconds: float, *, micro: bool = False) -> str:
    """``seconds`` since the epoch as the API writes times (``MicroTime`` when ``micro``)."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def uuid_of(seed: str) -> str:
    """A stable UUID-shaped id derived from ``seed`` (machine ids, boot ids)."""
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def not_ready_poll(waited: float, heartbeat: float = HEARTBEAT_PERIOD) -> float:
    """How long a not-Ready kubelet waits before it looks for the CNI again, having waited
    ``waited`` seconds so far: soon at first, then backing off, never longer than a heartbeat."""
    return min(heartbeat, max(NOT_READY_POLL, waited / 2))


# -- what a Node says ------------------------------------------------------------------------------------


def node_labels(name: str, *, control_plane: bool, arch: str = "amd64") -> dict[str, str]:
    """The labels a kubelet sets on its Node (kubeadm adds the control plane role)."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
    }
    if control_plane:
        labels[CONTROL_PLANE_ROLE_LABEL] = ""
    return labels


def node_annotations(machine: str, cluster: str, namespace: str) -> dict[str, str]:
    """Cluster API's annotations linking a Node to its Machine (what the Machine controller sets)."""
    return {
        MACHINE_ANNOTATION: machine,
        CLUSTER_NAME_ANNOTATION: cluster,
        CLUSTER_NAMESPACE_ANNOTATION: namespace,
    }


def node_addresses(address: str, hostname: str) -> list[Obj]:
    return [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": hostname}]


def internal_ip(machine: Obj) -> str | None:
    """The InternalIP an infrastructure machine reports in ``status.addresses`` (as
    :func:`node_addresses` writes them), or None before it has one."""
    for address in (machine.get("status") or {}).get("addresses") or ():
        if address.get("type") == "InternalIP" and address.get("address"):
            return str(address["address"])
    return None


def node_info(
    *,
    machine_seed: str,
    boot_seed: str,
    version: str,
    kernel_version: str,
    os_image: str,
    container_runtime: str,
    architecture: str = "amd64",
) -> Obj:
    """``status.nodeInfo``: ids derived from the seeds (a new boot, a new ``boot_seed``)."""
    machine = uuid_of(machine_seed)
    return {
        "architecture": architecture,
        "bootID": uuid_of(boot_seed),
        "containerRuntimeVersion": container_runtime,
        "kernelVersion": kernel_version,
        "kubeProxyVersion": version,
        "kubeletVersion": version,
        "machineID": machine.replace("-", ""),
        "operatingSystem": "linux",
        "osImage": os_image,
        "systemUUID": machine,
    }


def node_conditions(previous: list[Obj], *, failing: bool, ready: bool, now: str) -> tuple[list[Obj], bool]:
    """The Node's conditions as its kubelet (or, when ``failing``, the node lifecycle controller)
    would write them, and whether they differ from ``previous`` in anything but heartbeat times.

    ``lastTransitionTime`` moves only when a condition's status changes; ``lastHeartbeatTime`` is
    ``now`` for a live kubelet and stays what it was once the kubelet has stopped.
    """
    wanted: list[tuple[str, str, str, str]] = []
    for type_, reason, message in _PRESSURE:
        wanted.append(
            (type_, "Unknown", "NodeStatusUnknown", UNKNOWN_MESSAGE)
            if failing
            else (type_, "False", reason, message)
        )
    if failing:
        wanted.append((READY, "Unknown", "NodeStatusUnknown", UNKNOWN_MESSAGE))
    elif ready:
        wanted.append((READY, "True", "KubeletReady", "kubelet is posting ready status"))
    else:
        wanted.append((READY, "False", "KubeletNotReady", KUBELET_NOT_READY_MESSAGE))
    old = {c.get("type"): c for c in previous}
    conditions: list[Obj] = []
    changed = len(previous) != len(wanted)
    for type_, status, reason, message in wanted:
        before = old.get(type_) or {}
        same = (before.get("status"), before.get("reason"), before.get("message")) == (
            status,
            reason,
            message,
        )
        changed = changed or not same
        conditions.append(
            {
                "type": type_,
                "status": status,
                "lastHeartbeatTime": before.get("lastHeartbeatTime", now) if failing else now,
                "lastTransitionTime": before.get("lastTransitionTime", now)
                if before.get("status") == status
                else now,
                "reason": reason,
                "message": message,
            }
        )
    return conditions, changed


# -- talking to the cluster's API ------------------------------------------------------------------------


async def create_or_adopt_node(
    client: Client,
    node: Obj | None,
    name: str,
    *,
    labels: dict[str, str],
    annotations: dict[str, str],
    provider_id: str,
) -> tuple[Obj, bool]:
    """Register Node ``name`` (``node`` is what the caller knows of it: None if it does not exist)
    or bring the labels and annotations of the existing one up to date. Returns the Node and
    whether this call created it."""
    created = False
    if node is None:
        try:
            node = await client.create(
                NODES,
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": labels, "annotations": annotations},
                    "spec": {"providerID": provider_id},
                },
            )
            created = True
        except AlreadyExistsError:
            node = await client.get(NODES, name)
    meta = node.get("metadata") or {}
    if not (
        all((meta.get("labels") or {}).get(k) == v for k, v in labels.items())
        and all((meta.get("annotations") or {}).get(k) == v for k, v in annotations.items())
    ):
        node = await client.patch(
            NODES,
            name,
            {
                "metadata": {
                    "labels": labels,
                    "annotations": annotations,
                    "resourceVersion": meta.get("resourceVersion"),
                }
            },
        )
    return node, created


async def write_node_status(
    client: Client,
    node: Obj,
    *,
    address: str,
    hostname: str,
    info: Obj,
    failing: bool,
    ready: bool,
) -> Obj:
    """Write the Node's status if anything but heartbeat times changed (as a kubelet does between
    its status reports: the node Lease is the heartbeat). Returns the Node as it is now."""
    current = node.get("status") or {}
    conditions, changed = node_conditions(
        list(current.get("conditions") or []), failing=failing, ready=ready, now=rfc3339(_now())
    )
    status = {
        **current,
        "addresses": node_addresses(address, hostname),
        "capacity": dict(CAPACITY),
        "allocatable": dict(CAPACITY),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": info,
    }
    changed = changed or any(status[k] != current.get(k) for k in status)
    if not changed:
        return node
    status["conditions"] = conditions
    return await client.update_status(NODES, {**node, "status": status})


async def cni_configured(client: Client) -> bool:
    """Whether the CNI is installed in the cluster: Cilium's DaemonSet exists."""
    try:
        await client.get(DAEMONSETS, CNI_DAEMONSET, CNI_NAMESPACE)
    except NotFoundError:
        return False
    return True


async def renew_node_lease(client: Client, node: Obj) -> None:
    """Renew the node's Lease ``kube-node-lease/<node>`` (create it, owned by the Node, if missing)."""
    name = str(node["metadata"]["name"])
    now = rfc3339(_now(), micro=True)
    try:
        await client.patch(
            LEASES, name, {"spec": {"renewTime": now, "holderIdentity": name}}, NODE_LEASE_NAMESPACE
        )
    except NotFoundError:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": NODE_LEASE_NAMESPACE,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
                ],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": now,
            },
        }
        with contextlib.suppress(AlreadyExistsError):
            await client.create(LEASES, lease)


def _now() -> float:
    return time.time()
