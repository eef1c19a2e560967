"""The vCenter session and the inventory checks, against the simulator: trust, credentials, look-ups,
the preflight checks the CLI cannot reach (its static checks stop those specs first), and the
pure helpers (placement spreading, guestinfo, thumbprints)."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator

import pytest
import yaml

from anywhere.providers.vsphere._vcenter import (
    CERTIFICATE_NOT_TRUSTED,
    INVALID_CREDENTIALS,
    THUMBPRINT_MISMATCH,
    VCENTER_UNREACHABLE,
    Credentials,
    Server,
    VCenter,
    VCenterError,
    format_thumbprint,
)
from anywhere.providers.vsphere.inventory import (
    LINKED_CLONE,
    MachineCheck,
    PlacementNames,
    preflight,
    storage_policy_names,
)
from anywhere.providers.vsphere.machine import pick_failure_domain
from anywhere.providers.vsphere.session import credentials_from_secret, credentials_secret
from anywhere.providers.vsphere.vm import CLUSTER_KEY, OWNER_KEY, Desired, guest_info
from tests.vcsim import Vcsim


def server(v: Vcsim, **overrides: object) -> Server:
    settings = {"server": f"{v.host}:{v.port}", "thumbprint": v.thumbprint, "insecure": False, **overrides}
    return Server(str(settings["server"]), str(settings["thumbprint"]), bool(settings["insecure"]))


@pytest.fixture
async def vcenter(vcsim: Vcsim) -> AsyncIterator[VCenter]:
    session = VCenter(server(vcsim), Credentials(vcsim.username, vcsim.password))
    yield session
    session.close()


def names(template: str, **overrides: str) -> PlacementNames:
    fields = {
        "datacenter": "DC0",
        "template": template,
        "network": "/DC0/network/VM Network",
        "folder": "/DC0/vm/anywhere",
        "resource_pool": "/DC0/host/DC0_C0/Resources",
        "datastore": "/DC0/datastore/LocalDS_0",
        **overrides,
    }
    return PlacementNames(**fields)  # type: ignore[arg-type]


async def test_a_good_placement_passes_and_live_template_checks_speak_for_themselves(
    vcenter: VCenter,
) -> None:
    ok = MachineCheck("VSphereMachineConfig ok", names("ubuntu-2204-kube-v1-33"), "1.33", disk_gib=25)
    assert await vcenter.call(lambda si: preflight(vcenter, si, "dc", "DC0", [ok])) == []

    checks = [
        MachineCheck("VSphereMachineConfig a", names("ubuntu-2204-kube-v1-34"), "1.33"),
        MachineCheck("VSphereMachineConfig b", names("ubuntu-2204-kube-v1-33"), "1.33", disk_gib=10),
        MachineCheck(
            "VSphereMachineConfig c",
            names("ubuntu-2204-kube-v1-33"),
            "1.33",
            clone_mode=LINKED_CLONE,
            disk_gib=50,
        ),
        MachineCheck("VSphereMachineConfig d", names("DC0_H0_VM0"), ""),
    ]
    problems = [str(p) for p in await vcenter.call(lambda si: preflight(vcenter, si, "dc", "DC0", checks))]
    assert problems == [
        "VSphereMachineConfig a template: template 'ubuntu-2204-kube-v1-34' does not carry Kubernetes version 1.33 "
        "in its name; use the template built for that version",
        "VSphereMachineConfig b diskGiB: 10 GiB is smaller than the disk of template 'ubuntu-2204-kube-v1-33' "
        "(25 GiB); a clone cannot shrink it",
        "VSphereMachineConfig c diskGiB: a linked clone keeps the template's 25 GiB disk; use cloneMode fullClone "
        "for 50 GiB",
        "VSphereMachineConfig d template: DC0_H0_VM0 is a virtual machine, not a template: mark it as a template",
    ]


async def test_storage_policies_come_from_the_policy_service(vcenter: VCenter) -> None:
    found = await vcenter.call(lambda si: storage_policy_names(vcenter, si))
    assert "vSAN Default Storage Policy" in found


async def test_trust_and_credentials_fail_with_their_own_reasons(vcsim: Vcsim) -> None:
    cases = [
        (
            server(vcsim, thumbprint="AA:" * 19 + "AA"),
            Credentials(vcsim.username, vcsim.password),
            THUMBPRINT_MISMATCH,
        ),
        (server(vcsim, thumbprint=""), Credentials(vcsim.username, vcsim.password), CERTIFICATE_NOT_TRUSTED),
        (server(vcsim), Credentials(vcsim.username, "wrong-" + vcsim.password), INVALID_CREDENTIALS),
    ]
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    cases.append(
        (
            server(vcsim, server=f"127.0.0.1:{port}"),
            Credentials(vcsim.username, vcsim.password),
            VCENTER_UNREACHABLE,
        )
    )
    for srv, credentials, reason in cases:
        session = VCenter(srv, credentials)
        try:
            with pytest.raises(VCenterError) as caught:
                await session.call(lambda si: si.content.about.name)
        finally:
            session.close()
        assert caught.value.reason == reason, caught.value.message
        assert vcsim.password not in caught.value.message
        assert vcsim.username not in caught.value.message
    mismatch = VCenter(cases[0][0], cases[0][1])
    try:
        with pytest.raises(VCenterError) as caught:
            await mismatch.call(lambda si: None)
    finally:
        mismatch.close()
    assert vcsim.thumbprint in caught.value.message  # the server's, to compare with vCenter's own

    insecure = VCenter(
        server(vcsim, thumbprint="", insecure=True), Credentials(vcsim.username, vcsim.password)
    )
    try:
        assert await insecure.call(lambda si: str(si.content.about.apiType)) == "VirtualCenter"
    finally:
        insecure.close()


def test_credentials_never_show_and_their_secret_round_trips() -> None:
    credentials = Credentials("admin@vsphere.local", "s3cret")
    assert "admin" not in repr(credentials)
    assert "s3cret" not in repr(credentials)
    secret = credentials_secret(credentials)
    back = credentials_from_secret(secret, "eksa-system/vsphere-credentials")
    assert (back.username, back.password) == ("admin@vsphere.local", "s3cret")
    with pytest.raises(VCenterError) as caught:
        credentials_from_secret(None, "eksa-system/vsphere-credentials")
    assert "EKSA_VSPHERE_USERNAME" in caught.value.message


def test_machines_spread_over_failure_domains_in_order() -> None:
    assert pick_failure_domain([], []) is None
    assert pick_failure_domain(["a", "b", "c"], []) == "a"
    assert pick_failure_domain(["a", "b", "c"], ["a"]) == "b"
    assert pick_failure_domain(["a", "b", "c"], ["a", "b", "c", "b"]) == "a"
    assert pick_failure_domain(["a", "b"], ["gone", "a"]) == "b"


def test_guestinfo_carries_the_bootstrap_data_metadata_and_the_ownership_marker() -> None:
    desired = Desired(
        name="vs1-cp-abcde",
        uid="42",
        owner="eksa-system/vs1-cp-abcde",
        cluster="eksa-system/vs1",
        num_cpus=2,
        memory_mib=8192,
        disk_gib=25,
        clone_mode="",
        user_data=b"#cloud-config\nruncmd: []\n",
    )
    info = guest_info(desired)
    assert base64.b64decode(info["guestinfo.userdata"]) == desired.user_data
    assert info["guestinfo.userdata.encoding"] == info["guestinfo.metadata.encoding"] == "base64"
    metadata = yaml.safe_load(base64.b64decode(info["guestinfo.metadata"]))
    assert metadata == {"instance-id": "vs1-cp-abcde", "local-hostname": "vs1-cp-abcde"}
    assert (info[OWNER_KEY], info[CLUSTER_KEY]) == ("eksa-system/vs1-cp-abcde", "eksa-system/vs1")


def test_thumbprints_and_server_addresses_are_read_as_users_write_them() -> None:
    assert format_thumbprint("ab12cd") == "AB:12:CD"
    assert Server("vcenter.example.com").address == ("vcenter.example.com", 443)
    assert Server("https://vcenter.example.com:8443/sdk").address == ("vcenter.example.com", 8443)
    assert Server("10.0.0.5:9443").display == "10.0.0.5:9443"


async def test_a_vm_is_cloned_sized_wired_powered_and_destroyed_only_by_its_owner(vcenter: VCenter) -> None:
    from anywhere.providers.vsphere import vm as vms
    from anywhere.providers.vsphere.inventory import resolve_placement

    placement_names = names(
        "ubuntu-2204-kube-v1-33", extra_networks=("/DC0/network/DC0_DVPG0",)
    )  # a second NIC, on a distributed port group
    desired = Desired(
        name="sized",
        uid="5f1b6a3c-0000-4000-8000-000000000001",
        owner="eksa-system/sized",
        cluster="eksa-system/c1",
        num_cpus=4,
        memory_mib=4096,
        disk_gib=30,
        clone_mode="",  # the disk must grow: a full clone although the template has a snapshot
        user_data=b"#cloud-config\n",
    )

    def make(si: object) -> vms.VMState:
        placement = resolve_placement(si, placement_names)
        task = vms.start_clone(si, placement, desired)
        while vms.task_state(si, task).state in ("queued", "running"):
            pass
        vm = vms.find_vm(si, placement.datacenter, desired.uid)
        assert vm is not None
        assert vms.apply_configuration(si, vm, placement, desired)
        assert not vms.apply_configuration(si, vm, placement, desired)  # idempotent
        vms.power_on(si, vm)
        return vms.observe(si, vm)

    state = await vcenter.call(make)
    assert (state.num_cpus, state.memory_mib, state.disk_gib) == (4, 4096, 30)
    assert state.networks == ("VM Network", "DC0_DVPG0")
    assert state.owner == "eksa-system/sized"
    assert state.powered_on

    def destroy_as(si: object, owner: str) -> None:
        placement = resolve_placement(si, placement_names)
        vms.destroy(si, vms.find_vm(si, placement.datacenter, desired.uid), owner)

    with pytest.raises(VCenterError) as caught:
        await vcenter.call(destroy_as, "eksa-system/someone-else")
    assert caught.value.reason == "NotOwner"
    await vcenter.call(destroy_as, "eksa-system/sized")
    assert await vcenter.call(lambda si: vms.vms_of_cluster(si, "eksa-system/c1")) == {}
