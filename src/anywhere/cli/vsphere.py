"""vSphere in the CLI: the user's credentials, and preflight against vCenter before anything is made.

As with EKS Anywhere, ``anywhere create cluster`` and ``upgrade cluster`` of a vSphere cluster read
the vCenter credentials from ``EKSA_VSPHERE_USERNAME`` and ``EKSA_VSPHERE_PASSWORD``, check the live
inventory (every problem listed at once, before a management plane or a VM exists) and store the
credentials in Secret ``eksa-system/vsphere-credentials`` of the management cluster, where the
controllers read them. They are never printed, logged or written anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any, Final

from anywhere.api.infra._machine import versioned_machines
from anywhere.api.infra.vsphere import default_datacenter
from anywhere.api.v1alpha1.vsphere import FailureDomain, VSphereDatacenterConfig, VSphereMachineConfig
from anywhere.cli.cluster import CommandError, Spec, out
from anywhere.controllers.objects import create_or_patch
from anywhere.controllers.resources import NAMESPACES, SECRETS, SYSTEM_NAMESPACE
from anywhere.providers.vsphere._vcenter import Credentials, Server, VCenter, VCenterError
from anywhere.providers.vsphere.inventory import MachineCheck, placement_names
from anywhere.providers.vsphere.inventory import preflight as check_inventory
from anywhere.providers.vsphere.provider import PROVIDER
from anywhere.providers.vsphere.session import CREDENTIALS_SECRET, credentials_secret
from anywhere.runtime import AlreadyExistsError, Client, NotFoundError

__all__ = ["PASSWORD_ENV", "USERNAME_ENV", "preflight", "store_credentials"]

USERNAME_ENV: Final = "EKSA_VSPHERE_USERNAME"
PASSWORD_ENV: Final = "EKSA_VSPHERE_PASSWORD"


def _datacenter(spec: Spec) -> VSphereDatacenterConfig | None:
    datacenter = spec.config.datacenter
    return datacenter if isinstance(datacenter, VSphereDatacenterConfig) else None


def _credentials() -> Credentials:
    username, password = os.environ.get(USERNAME_ENV, ""), os.environ.get(PASSWORD_ENV, "")
    missing = [name for name, value in ((USERNAME_ENV, username), (PASSWORD_ENV, password)) if not value]
    if missing:
        raise CommandError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: a vSphere cluster needs the "
            "vCenter user name and password in the environment"
        )
    return Credentials(username, password)


def _machine_checks(spec: Spec, datacenter: VSphereDatacenterConfig) -> list[MachineCheck]:
    """One check per machine config the cluster uses with each Kubernetes version (and per failure
    domain it may land in)."""
    dc = datacenter.spec
    cluster_spec = {"datacenter": dc.datacenter, "network": dc.network}
    domains: list[FailureDomain | None] = list(dc.failure_domains or ()) or [None]
    checks: list[MachineCheck] = []
    for machine, version in versioned_machines(spec.config, VSphereMachineConfig):
        template = PROVIDER.machine_template_spec(machine)  # what its VSphereMachines get
        for domain in domains:
            where = f"VSphereMachineConfig {machine.name}"
            if domain is not None:
                where += f" (failure domain {domain.name})"
            checks.append(
                MachineCheck(
                    kind_name=where,
                    names=placement_names(cluster_spec, template, domain.to_dict() if domain else None),
                    kubernetes_version=version,
                    clone_mode=str(template.get("cloneMode") or ""),
                    disk_gib=template.get("diskGiB"),
                    storage_policy=str(template.get("storagePolicyName") or ""),
                    tags=tuple(template.get("tags") or ()),
                )
            )
    return checks


def preflight(spec: Spec) -> None:
    """Check the vSphere inventory a cluster spec needs; CommandError listing every problem. Does
    nothing for another provider's spec."""
    datacenter = _datacenter(spec)
    if datacenter is None:
        return
    credentials = _credentials()
    config = datacenter.model_copy(deep=True)
    default_datacenter(config)
    server = Server(
        str(config.spec.server or ""), str(config.spec.thumbprint or ""), bool(config.spec.insecure)
    )
    where = f"VSphereDatacenterConfig {config.name}"
    checks = _machine_checks(spec, config)
    vcenter = VCenter(server, credentials)

    async def run() -> list[Any]:
        return await vcenter.call(
            lambda si: check_inventory(vcenter, si, where, str(config.spec.datacenter or ""), checks)
        )

    try:
        problems = asyncio.run(run())
    except VCenterError as exc:
        raise CommandError(f"vSphere preflight failed: {exc.message}") from None
    finally:
        vcenter.close()
    if problems:
        raise CommandError(
            f"{spec.path}: {len(problems)} vSphere preflight error(s) in vCenter {server.display}; fix them and run again",
            details=[str(p) for p in problems],
        )
    out.print(
        f"vSphere preflight passed: vCenter {server.display}, datacenter {config.spec.datacenter}, "
        f"{len(checks)} machine placement(s) checked"
    )


async def store_credentials(client: Client, spec: Spec) -> None:
    """Write the credentials Secret the controllers read (for a vSphere spec; else nothing)."""
    if _datacenter(spec) is None:
        return
    # A new plane's controllers make the namespace too, but the Secret may come first.
    with contextlib.suppress(AlreadyExistsError):
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
        )
    desired = credentials_secret(_credentials(), SYSTEM_NAMESPACE)
    try:
        current = await client.get(SECRETS, CREDENTIALS_SECRET, SYSTEM_NAMESPACE)
    except NotFoundError:
        current = None
    await create_or_patch(client, SECRETS, desired, current)
