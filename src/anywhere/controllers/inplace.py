"""In-place upgrades (``InPlace`` rollouts): machines upgraded where they stand, one at a time,
cordoned and drained first, as EKS Anywhere does on bare metal.

Why: replacing a machine needs a spare one. On bare metal that is a whole server, which a user may
not have (a single-node cluster, racks without slack) or may not want to re-provision (hand-made OS
customizations). EKS Anywhere's answer (``upgradeRolloutStrategy.type: InPlace``, Ubuntu on
Tinkerbell) is to upgrade the Kubernetes components of the running node instead. Here it is done
the Cluster API way: small level-triggered steps, every step derived from the objects, the
contract between controllers being annotations and conditions, so that a controller killed at any
point and started again continues the machine it was on.

The contract, on a Machine:

- :data:`UPGRADE_NEEDED_ANNOTATION` ``anywhere.eks.amazonaws.com/in-place-upgrade-needed: <version>``
  — written by the machine's owner (the KubeadmControlPlane or MachineDeployment controller): "upgrade
  this machine in place to <version>". At most one machine of an owner carries it at a time.
- :data:`UPGRADE_TO_ANNOTATION` ``anywhere.eks.amazonaws.com/in-place-upgrade-to: <version>`` —
  written by the Machine controller once the Node is cordoned and drained: the request to the node
  agent to run the kubelet of ``<version>``. A node agent reports ``nodeInfo.kubeletVersion`` from
  it when present, else from the Machine's ``spec.version`` (:func:`kubelet_version`).
- the condition :data:`IN_PLACE_UPGRADED` (``InPlaceUpgraded``) — written by the Machine
  controller: False with reason :data:`CORDONING`, :data:`DRAINING`, :data:`UPGRADING` or
  :data:`UNCORDONING` while it works, True once the Node runs the requested version, is Ready and
  schedulable again (:func:`next_step`).
- the owner then records the machine as up to date, in ONE write of the Machine: ``spec.version``,
  whatever the owner compares (the KubeadmControlPlane's spec-hash annotation; for a
  MachineDeployment, the move to its current MachineSet), and both annotations removed. Before
  that write the machine's parts are brought to the new templates (:func:`adopt_templates`), as
  EKS Anywhere's ControlPlaneUpgrade controller does, so ``kubectl get`` shows what the node runs.

The owner decides which machine goes and when (:func:`upgraded` tells it a machine is done); the
Machine controller does the node work. The Machine's ``Ready`` stays that of its Node: a cordoned
node is still a running one.

Limits, for now: the Node is uncordoned at the end even if someone had cordoned it before; the
drain deletes pods (no eviction API, so no PodDisruptionBudget) and waits as long as it takes
(``nodeDrainTimeout`` bounds only a deletion's drain). A machine being upgraded is no
MachineHealthCheck's target (EKS Anywhere pauses the checks), so an upgrade that does not finish
shows in :data:`IN_PLACE_UPGRADED` and is not undone by a replacement.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from anywhere.api.capi.machinedeployment import StrategyType
from anywhere.controllers import conditions
from anywhere.controllers.machines import CLONED_FROM_NAME_ANNOTATION
from anywhere.controllers.objects import annotations_of, name_of, namespace_of, patch_at_version
from anywhere.controllers.resources import KUBEADM_CONFIGS, MACHINES, resource_of
from anywhere.runtime import Client, Informer, NotFoundError

__all__ = [
    "CORDONING",
    "DRAINING",
    "HOLD_ANNOTATION",
    "IN_PLACE",
    "IN_PLACE_UPGRADED",
    "IN_PROGRESS_REASON",
    "UNCORDONING",
    "UPGRADE_NEEDED_ANNOTATION",
    "UPGRADE_TO_ANNOTATION",
    "UPGRADING",
    "Step",
    "adopt_templates",
    "ended",
    "in_flight",
    "kubelet_version",
    "next_step",
    "node_version",
    "request",
    "requested",
    "upgraded",
    "upgrading",
    "version_key",
    "version_matches",
]

log = logging.getLogger("anywhere.controllers.inplace")
Obj = dict[str, Any]

# The strategy type (KubeadmControlPlane spec.rolloutStrategy.type, MachineDeployment
# spec.strategy.type), as EKS Anywhere renders it.
IN_PLACE: Final = StrategyType.IN_PLACE
UPGRADE_NEEDED_ANNOTATION: Final = "anywhere.eks.amazonaws.com/in-place-upgrade-needed"
UPGRADE_TO_ANNOTATION: Final = "anywhere.eks.amazonaws.com/in-place-upgrade-to"
# On a MachineSet, set by its MachineDeployment while it moves an upgraded machine from an old set to
# the current one: the set neither creates nor deletes machines until the deployment removes it
# (in the same write as the set's new replica count).
HOLD_ANNOTATION: Final = "anywhere.eks.amazonaws.com/in-place-hold"

IN_PLACE_UPGRADED: Final = "InPlaceUpgraded"
CORDONING: Final = "Cordoning"
DRAINING: Final = "Draining"
UPGRADING: Final = "Upgrading"
UNCORDONING: Final = "Uncordoning"
# The reason owners give while some of their machines are upgraded in place (EKS Anywhere's).
IN_PROGRESS_REASON: Final = "InPlaceUpgradeInProgress"


# -- what the annotations say --------------------------------------------------------------------------


def requested(machine: Obj) -> str:
    """The version the machine's owner asked it to be upgraded to in place ("" for none)."""
    return annotations_of(machine).get(UPGRADE_NEEDED_ANNOTATION, "").strip()


def in_flight(machine: Obj) -> bool:
    """Whether an in-place upgrade of the machine was asked for and not yet recorded."""
    return bool(requested(machine))


def upgraded(machine: Obj) -> bool:
    """Whether the in-place upgrade asked for is done: the node agent was asked for that version
    and the Machine controller has seen the Node run it, Ready and uncordoned. (The condition alone
    could be left True by an earlier upgrade: the agent's annotation ties it to this one, as the
    Machine controller never writes that annotation while the condition is True.)"""
    wanted = requested(machine)
    return (
        bool(wanted)
        and annotations_of(machine).get(UPGRADE_TO_ANNOTATION, "").strip() == wanted
        and conditions.is_true(machine, IN_PLACE_UPGRADED)
    )


def kubelet_version(machine: Obj) -> str:
    """The kubelet version a node agent runs for ``machine``: the in-place upgrade it was asked for,
    else the Machine's ``spec.version``."""
    return (
        annotations_of(machine).get(UPGRADE_TO_ANNOTATION, "").strip()
        or str((machine.get("spec") or {}).get("version") or "").strip()
    )


def version_key(version: str) -> tuple[int, ...]:
    """``v1.33.1-eks-1-33-5`` -> ``(1, 33, 1)``: for ordering versions."""
    numbers = version.strip().lstrip("v").split("-", 1)[0].split("+", 1)[0].split(".")
    return tuple(int(n) if n.isdigit() else 0 for n in numbers)


def version_matches(reported: str, wanted: str) -> bool:
    """Whether a kubelet reporting ``reported`` runs ``wanted`` (a leading ``v`` and a build suffix
    such as EKS Distro's ``-eks-1-33-5`` do not matter)."""
    if not reported or not wanted:
        return False
    plain_reported, plain_wanted = reported.strip().lstrip("v"), wanted.strip().lstrip("v")
    return plain_reported == plain_wanted or plain_reported.startswith(
        (plain_wanted + "-", plain_wanted + "+")
    )


def node_version(node: Obj) -> str:
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")


# -- the Machine controller's steps ---------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What the Machine controller does next for an in-place upgrade: ``drain`` (cordon the Node,
    delete its pods, then ask the node agent for the version by writing
    :data:`UPGRADE_TO_ANNOTATION`), ``wait`` (for the Node), ``uncordon`` or ``done``. ``reason``
    and ``message`` are the condition's while it is not done."""

    action: str
    reason: str
    message: str


def next_step(machine: Obj, node: Obj | None) -> Step | None:
    """The next step of ``machine``'s in-place upgrade given its Node (None: none asked for).

    In order: cordon and drain the Node and ask the node agent for the version, wait until the
    Node reports it and is Ready, uncordon, done. Every step is read from the objects alone.
    """
    wanted = requested(machine)
    if not wanted:
        return None
    if node is None:
        return Step("wait", CORDONING, f"Waiting for the machine's Node, to upgrade it in place to {wanted}")
    name = name_of(node)
    if annotations_of(machine).get(UPGRADE_TO_ANNOTATION, "").strip() != wanted:
        if not (node.get("spec") or {}).get("unschedulable"):
            return Step("drain", CORDONING, f"Cordoning Node {name} to upgrade it in place to {wanted}")
        return Step("drain", DRAINING, f"Draining Node {name} to upgrade it in place to {wanted}")
    running = node_version(node)
    ready = conditions.is_true(node, conditions.READY)
    if not version_matches(running, wanted) or not ready:
        now = f"kubelet {running}" if running else "no kubelet version yet"
        state = "" if ready else ", not Ready"
        return Step("wait", UPGRADING, f"Waiting for Node {name} to run kubelet {wanted} ({now}{state})")
    if (node.get("spec") or {}).get("unschedulable"):
        return Step("uncordon", UNCORDONING, f"Uncordoning Node {name}, upgraded to {wanted}")
    return Step("done", "", "")


# -- the owners' bookkeeping ---------------------------------------------------------------------------


async def request(client: Client, machine: Obj, version: str) -> None:
    """Ask ``machine`` to be upgraded in place to ``version`` (a machine gone meanwhile needs nothing)."""
    with contextlib.suppress(NotFoundError):
        await patch_at_version(
            client, MACHINES, machine, {"metadata": {"annotations": {UPGRADE_NEEDED_ANNOTATION: version}}}
        )


def ended() -> dict[str, None]:
    """The annotations patch that ends a machine's in-place upgrade, for the owner's one write."""
    return {UPGRADE_NEEDED_ANNOTATION: None, UPGRADE_TO_ANNOTATION: None}


def upgrading(machines: Iterable[Obj]) -> list[str]:
    """``name (version)`` of each machine being upgraded in place, sorted: for progress messages."""
    return sorted(f"{name_of(m)} ({requested(m)})" for m in machines if in_flight(m))


async def adopt_templates(
    client: Client,
    machine: Obj,
    *,
    infrastructure_template: str,
    bootstrap_spec: Obj | None,
    bootstrap_configs: Informer,
) -> None:
    """Bring an upgraded machine's parts to its owner's current templates, as EKS Anywhere does
    after an in-place upgrade: the infrastructure machine's ``cloned-from-name`` annotation names
    the new template, and the KubeadmConfig gets the new spec (its bootstrap data is not rendered
    again: a ready config never is). Idempotent; missing parts are left to the owner's usual
    making of parts."""
    namespace = namespace_of(machine)
    spec = machine.get("spec") or {}
    infra_ref = spec.get("infrastructureRef") or {}
    if infra_ref.get("name") and infra_ref.get("kind") and infrastructure_template:
        resource = resource_of(infra_ref)
        try:
            infra = await client.get(resource, str(infra_ref["name"]), namespace)
        except NotFoundError:
            infra = None
        if (
            infra is not None
            and annotations_of(infra).get(CLONED_FROM_NAME_ANNOTATION) != infrastructure_template
        ):
            await patch_at_version(
                client,
                resource,
                infra,
                {"metadata": {"annotations": {CLONED_FROM_NAME_ANNOTATION: infrastructure_template}}},
            )
    config_ref = (spec.get("bootstrap") or {}).get("configRef") or {}
    if bootstrap_spec is None or config_ref.get("kind") != KUBEADM_CONFIGS.kind or not config_ref.get("name"):
        return
    config = bootstrap_configs.get(f"{namespace}/{config_ref['name']}")
    if config is None or (config.get("spec") or {}) == bootstrap_spec:
        return
    try:
        await client.update(KUBEADM_CONFIGS, {**config, "spec": bootstrap_spec})
    except NotFoundError:
        return
    log.info(
        "machine %s/%s: KubeadmConfig %s takes the upgraded spec",
        namespace,
        name_of(machine),
        config_ref["name"],
    )
