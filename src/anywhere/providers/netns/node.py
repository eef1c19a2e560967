"""The node agent: what the kubelet is on a netns machine, as far as the cluster's API sees it.

Every machine runs one (inside its network namespace, talking to the cluster's API). Like a
kubelet, it:

- registers its Node once: name = the machine's name, ``spec.providerID``
  ``netns://<namespace>/<cluster>/<machine>``, the kubelet's labels (with
  ``node-role.kubernetes.io/control-plane`` on a control plane machine) and Cluster API's
  annotations linking it to its Machine. An existing Node of that name (an agent restarted) is
  adopted. A Node deleted later is not registered again, as a running kubelet does not: that is
  how Cluster API removes the Node of a machine it is about to delete, and registering it again
  would leave a Node behind that no machine backs;
- keeps its status: ``InternalIP`` (the machine's DHCP address) and ``Hostname`` addresses,
  ``nodeInfo`` with the kubelet version it was given, and the kubelet's conditions, with
  ``Ready=False`` and the kubelet's CNI message until the CNI is configured (DaemonSet
  ``kube-system/cilium`` exists), then ``Ready=True``; looked for soon at first, then with
  backoff up to a heartbeat, as the sim provider's kubelet does;
- renews its Lease ``kube-node-lease/<node>`` every 10 s (the kubelet's default).

The rules of what a Node says are shared with the sim provider (``anywhere.providers.kubelet``).
An unreachable or failing API is retried with backoff, forever: a node agent never exits on its
own, as a kubelet outlives API server restarts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anywhere import __version__
from anywhere.controllers.conditions import READY, is_true
from anywhere.providers.kubelet import (
    CNI_DAEMONSET,
    CNI_NAMESPACE,
    HEARTBEAT_PERIOD,
    create_or_adopt_node,
    node_annotations,
    node_info,
    node_labels,
    not_ready_poll,
    renew_node_lease,
    write_node_status,
)
from anywhere.providers.kubelet import cni_configured as cni_installed
from anywhere.runtime import NODES, APIError, Client, NotFoundError, TransportError
from anywhere.runtime._backoff import Backoff

__all__ = ["NodeAgent", "NodeSettings", "provider_id"]

log = logging.getLogger("anywhere.netns.node")
Obj = dict[str, Any]

_VERSION = re.compile(r"^v\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def provider_id(namespace: str, cluster: str, machine: str) -> str:
    """The provider ID of a netns machine (``spec.providerID`` of its Node and NetnsMachine)."""
    return f"netns://{namespace}/{cluster}/{machine}"


@dataclass(frozen=True)
class NodeSettings:
    """What the node agent is told about its machine."""

    name: str
    address: ipaddress.IPv4Address
    kubelet_version: str
    cluster: str
    cluster_namespace: str = "default"
    machine: str = ""  # the Cluster API Machine (annotation cluster.x-k8s.io/machine); default: name
    provider_id: str = ""  # default: provider_id(cluster_namespace, cluster, name)
    control_plane: bool = False
    heartbeat_period: float = HEARTBEAT_PERIOD

    def __post_init__(self) -> None:
        problems = []
        if not self.name:
            problems.append("the node needs a name")
        if not _VERSION.match(self.kubelet_version):
            problems.append(f"kubelet version {self.kubelet_version!r} is not like v1.33.1")
        if not self.cluster:
            problems.append("the node needs its cluster's name")
        if not self.heartbeat_period > 0:
            problems.append("the heartbeat period must be positive")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def machine_name(self) -> str:
        return self.machine or self.name

    @property
    def node_provider_id(self) -> str:
        return self.provider_id or provider_id(self.cluster_namespace, self.cluster, self.name)


def _os_image() -> str:
    """What the machine runs: the host's OS (a netns machine shares the host's filesystem)."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "Linux"
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?$', text, re.MULTILINE)
    return match.group(1) if match else "Linux"


def _boot_seed(name: str) -> str:
    """A boot of a netns machine is its network namespace: a machine made again is a new boot."""
    try:
        stat = os.stat("/proc/self/ns/net")
    except OSError:
        return name
    return f"{name}:{stat.st_dev}:{stat.st_ino}"


class NodeAgent:
    """The node agent of one machine (see the module doc). :meth:`run` until cancelled."""

    def __init__(self, client: Client, settings: NodeSettings) -> None:
        self.client = client
        self.settings = settings
        self.registered = False
        self.ready: bool | None = None  # None: no status written yet
        self._cni = False  # once the CNI is seen, a node keeps its configuration (as on a real node)
        self._info = node_info(
            machine_seed=f"netns:{settings.cluster_namespace}/{settings.cluster}/{settings.name}",
            boot_seed=_boot_seed(settings.name),
            version=settings.kubelet_version,
            kernel_version=os.uname().release,
            os_image=_os_image(),
            container_runtime=f"anywhere-netns://{__version__}",
            architecture=_ARCH.get(platform.machine(), platform.machine()),
        )
        self._labels = node_labels(
            settings.name, control_plane=settings.control_plane, arch=str(self._info["architecture"])
        )
        self._annotations = node_annotations(
            settings.machine_name, settings.cluster, settings.cluster_namespace
        )
        self._started = time.monotonic()
        self._next_heartbeat = 0.0
        self._deleted = False

    def describe(self) -> str:
        s = self.settings
        role = "control plane" if s.control_plane else "worker"
        return (
            f"node {s.name} ({role}, {s.address}, kubelet {s.kubelet_version}, {s.node_provider_id}) "
            f"at {self.client.config.server}, heartbeat every {s.heartbeat_period:g}s"
        )

    async def run(self) -> None:
        backoff = Backoff(initial=0.5, maximum=5.0)
        failing_since: float | None = None
        last_error = ""
        while True:
            try:
                delay = await self.step()
            except (TransportError, APIError) as exc:
                text = str(exc)
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning(
                        "the cluster's API at %s does not answer: %s; retrying",
                        self.client.config.server,
                        text,
                    )
                elif text != last_error:
                    log.warning("still failing: %s", text)
                last_error = text
                await asyncio.sleep(backoff.next())
                continue
            except Exception:
                # A bug or an answer we do not understand: report it fully, and keep going (a
                # kubelet that exits leaves its node NotReady for good).
                log.exception("unexpected failure; retrying")
                await asyncio.sleep(backoff.next())
                continue
            if failing_since is not None:
                log.info("the cluster's API answers again (after %.1fs)", time.monotonic() - failing_since)
                failing_since, last_error = None, ""
            backoff.reset()
            await asyncio.sleep(delay)

    async def step(self) -> float:
        """One round: register (once) or read the Node, write its status if it changed, renew the
        Lease when due. Returns how long to wait before the next round."""
        s = self.settings
        heartbeat = s.heartbeat_period
        node: Obj | None
        if not self.registered:
            try:
                existing: Obj | None = await self.client.get(NODES, s.name)
            except NotFoundError:
                existing = None
            node, created = await create_or_adopt_node(
                self.client,
                existing,
                s.name,
                labels=self._labels,
                annotations=self._annotations,
                provider_id=s.node_provider_id,
            )
            self.registered = True
            log.info("%s node %s", "registered" if created else "adopted the existing", s.name)
        else:
            try:
                node = await self.client.get(NODES, s.name)
            except NotFoundError:
                if not self._deleted:
                    self._deleted = True
                    log.warning(
                        "node %s was deleted from the API; a running kubelet does not register it again",
                        s.name,
                    )
                return heartbeat
            if self._deleted:
                self._deleted = False
                log.info("node %s exists again", s.name)
        if not self._cni and await cni_installed(self.client):
            self._cni = True
            log.info("the CNI is configured (DaemonSet %s/%s exists)", CNI_NAMESPACE, CNI_DAEMONSET)
        node = await write_node_status(
            self.client,
            node,
            address=str(s.address),
            hostname=s.name,
            info=self._info,
            failing=False,
            ready=self._cni,
        )
        ready = is_true(node, READY)
        if ready != self.ready:
            log.info("node %s is %s", s.name, "Ready" if ready else "not Ready (waiting for the CNI)")
            self.ready = ready
        now = time.monotonic()
        if now >= self._next_heartbeat:
            await renew_node_lease(self.client, node)
            self._next_heartbeat = now + heartbeat
        until_heartbeat = max(0.05, self._next_heartbeat - time.monotonic())
        if self._cni:
            return until_heartbeat
        return min(until_heartbeat, not_ready_poll(time.monotonic() - self._started, heartbeat))
