"""The vCenter simulator the vSphere provider is tested against: each feature, seen with pyVmomi.

These tests pin down what the provider's tests rely on (tests/vcsim/main.go), against the real
simulator process.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import Security, pbm, vim

from tests.vcsim import (
    DEFAULT_CONFIG,
    Vcsim,
    VcsimError,
    attached_tags,
    connect,
    connect_pbm,
    default_config,
    rest,
    rest_session,
    start,
    vm_names,
    vms_with_extra_config,
    wait_for,
)

DHCP_FIRST = ipaddress.IPv4Address("10.40.0.100")
DHCP_LAST = ipaddress.IPv4Address("10.40.0.199")
OWNER_KEY = "anywhere.cluster"


@pytest.fixture
def si(vcsim: Vcsim) -> Iterator[Any]:
    si: Any = connect(vcsim)
    yield si
    si.content.sessionManager.Logout()


# pyVmomi's stubs make every optional property "X | None": the tests use Any for managed objects.


def find(si: vim.ServiceInstance, path: str) -> Any:
    index: Any = si.content.searchIndex
    obj = index.FindByInventoryPath(path)
    assert obj is not None, f"{path} not found"
    return obj


def template(si: vim.ServiceInstance, name: str) -> Any:
    return find(si, f"DC0/vm/Templates/{name}")


def clone(
    si: vim.ServiceInstance,
    source: str,
    name: str,
    *,
    linked: bool = True,
    power_on: bool = False,
    owner: str = "test",
    devices: list[vim.vm.device.VirtualDeviceSpec] | None = None,
) -> Any:
    """Clone a template into the folder "anywhere" the way the provider does (a linked clone from
    the template's snapshot, into the cluster's resource pool, marked with an owner)."""
    tmpl = template(si, source)
    location = vim.vm.RelocateSpec(pool=find(si, "DC0/host/DC0_C0/Resources"))
    spec = vim.vm.CloneSpec(location=location, powerOn=power_on, template=False)
    if linked:
        location.diskMoveType = "createNewChildDiskBacking"
        spec.snapshot = tmpl.snapshot.currentSnapshot
    spec.config = vim.vm.ConfigSpec(
        numCPUs=2,
        memoryMB=4096,
        extraConfig=[vim.option.OptionValue(key=OWNER_KEY, value=owner)],
        deviceChange=devices or [],
    )
    task = tmpl.CloneVM_Task(folder=find(si, "DC0/vm/anywhere"), name=name, spec=spec)
    WaitForTask(task, si=si)
    return task.info.result


def power_on(si: vim.ServiceInstance, vm: vim.VirtualMachine) -> None:
    WaitForTask(vm.PowerOnVM_Task(), si=si)


def in_dhcp_range(value: Any) -> bool:
    return bool(value) and DHCP_FIRST <= ipaddress.IPv4Address(value) <= DHCP_LAST


def wait_for_ip(
    si: vim.ServiceInstance, vm: vim.VirtualMachine, check: Callable[[Any], bool] = in_dhcp_range
) -> str:
    ip: str = wait_for(si, vm, "guest.ipAddress", check)
    return ip


def dvpg_nic(si: Any, tmpl: Any) -> vim.vm.device.VirtualDeviceSpec:
    """A device change moving the template's NIC onto the distributed port group DC0_DVPG0."""
    pg = find(si, "DC0/network/DC0_DVPG0")
    nic = next(d for d in tmpl.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard))
    nic.backing = vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
        port=vim.dvs.PortConnection(portgroupKey=pg.key, switchUuid=pg.config.distributedVirtualSwitch.uuid)
    )
    return vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic)


# --- connection --------------------------------------------------------------------------------


def test_thumbprint_pins_the_certificate(vcsim: Vcsim) -> None:
    assert re.fullmatch(r"([0-9A-F]{2}:){19}[0-9A-F]{2}", vcsim.thumbprint)
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((vcsim.host, vcsim.port)))
    assert hashlib.sha1(der).hexdigest() == vcsim.thumbprint.replace(":", "").lower()
    assert vcsim.url == f"https://127.0.0.1:{vcsim.port}/sdk"

    si: Any = connect(vcsim)
    about = si.content.about
    assert (about.apiType, about.apiVersion) == ("VirtualCenter", "6.5")
    si.content.sessionManager.Logout()

    wrong = ("00" if not vcsim.thumbprint.startswith("00") else "11") + vcsim.thumbprint[2:]
    with pytest.raises(Security.ThumbprintMismatchException):
        connect(vcsim, thumbprint=wrong)


def test_only_the_configured_credentials_log_in(vcsim: Vcsim) -> None:
    with pytest.raises(vim.fault.InvalidLogin):
        connect(vcsim, password=vcsim.password + "x")
    with pytest.raises(PermissionError), rest_session(vcsim, password=vcsim.password + "x"):
        pass
    with rest_session(vcsim) as headers:
        assert headers["vmware-api-session-id"]


def test_bad_config_is_refused_with_the_reason(vcsim_binary: Path) -> None:
    with pytest.raises(VcsimError, match=r'unknown field "templetes"'):
        start({"templetes": []}, binary=vcsim_binary)
    config = default_config()
    config["dhcp"] = {"No Such Network": {"first": "10.0.0.1", "last": "10.0.0.9"}}
    with pytest.raises(VcsimError, match="No Such Network"):
        start(config, binary=vcsim_binary)


def test_exits_when_its_parent_goes(vcsim: Vcsim) -> None:
    # start() keeps the simulator's stdin open; a dead test process closes it.
    assert vcsim.process.stdin is not None
    vcsim.process.stdin.close()
    assert vcsim.process.wait(timeout=30) == 0
    assert "stdin closed" in vcsim.log_tail()


# --- inventory ---------------------------------------------------------------------------------


def test_templates_are_set_up_as_configured(si: vim.ServiceInstance) -> None:
    for spec in DEFAULT_CONFIG["templates"]:
        tmpl = template(si, spec["name"])
        assert tmpl.config.template is True
        assert tmpl.config.guestId == spec["guestId"]
        assert (tmpl.snapshot is not None) == spec["snapshot"], spec["name"]
        disks = [d for d in tmpl.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        assert [d.capacityInBytes for d in disks] == [spec["diskGiB"] << 30]
        backings: list[Any] = [
            d.backing for d in tmpl.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)
        ]
        assert [b.deviceName for b in backings] == ["VM Network"]
    assert {s["name"] for s in DEFAULT_CONFIG["templates"]} <= vm_names(si)
    assert find(si, "DC0/vm/anywhere").childEntity == []


def test_linked_clone_gets_a_dhcp_address(si: vim.ServiceInstance) -> None:
    vm = clone(si, "ubuntu-2204-kube-v1-33", "w1-cp-0", owner="w1")
    assert vm.parent.name == "anywhere"
    # The template wrapper applies spec.config's hardware, as vCenter does.
    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (2, 4096)
    assert vms_with_extra_config(si, OWNER_KEY) == {"w1-cp-0": "w1"}
    assert not vm.guest.ipAddress

    power_on(si, vm)
    ip = wait_for_ip(si, vm)
    assert vm.guest.hostName == "w1-cp-0"
    assert (vm.guest.toolsRunningStatus, vm.guest.toolsStatus) == ("guestToolsRunning", "toolsOk")
    net = vm.guest.net[0]
    assert (net.network, list(net.ipAddress)) == ("VM Network", [ip])
    assert vm.summary.guest.ipAddress == ip


def test_clone_spec_power_on_and_duplicate_name(si: vim.ServiceInstance) -> None:
    vm = clone(si, "bottlerocket-kube-v1-33", "w1-md-0", linked=False, power_on=True)
    assert vm.runtime.powerState == "poweredOn"
    wait_for_ip(si, vm)
    with pytest.raises(vim.fault.DuplicateName) as e:
        clone(si, "ubuntu-2204-kube-v1-34", "w1-md-0")
    assert e.value.msg == "The name 'w1-md-0' already exists."
    assert sorted(n for n in vm_names(si) if n.startswith("w1-")) == ["w1-md-0"]


def test_vm_on_a_network_without_dhcp_never_gets_an_address(si: vim.ServiceInstance) -> None:
    tmpl = template(si, "ubuntu-2204-kube-v1-33")
    dark = clone(si, tmpl.name, "dark", devices=[dvpg_nic(si, tmpl)])
    assert dark.network[-1].name == "DC0_DVPG0"
    lit = clone(si, tmpl.name, "lit")
    power_on(si, dark)
    power_on(si, lit)
    wait_for_ip(si, lit)
    # Powering off clears the address in a later round of the guest simulation than the one that
    # would have given "dark" its address: by then it would have one.
    WaitForTask(lit.PowerOffVM_Task(), si=si)
    wait_for(si, lit, "guest.ipAddress", lambda ip: not ip)
    assert not dark.guest.ipAddress
    assert all(not n.ipAddress for n in dark.guest.net)


def test_power_off_and_destroy_release_the_address(si: vim.ServiceInstance) -> None:
    first = clone(si, "ubuntu-2204-kube-v1-33", "first", power_on=True)
    ip = wait_for_ip(si, first)
    assert ip == str(DHCP_FIRST)
    second = clone(si, "ubuntu-2204-kube-v1-33", "second", power_on=True)
    assert wait_for_ip(si, second) == str(DHCP_FIRST + 1)

    WaitForTask(first.PowerOffVM_Task(), si=si)
    wait_for(si, first, "guest.ipAddress", lambda ip: not ip)
    assert not first.guest.net[0].ipAddress
    WaitForTask(first.Destroy_Task(), si=si)

    third = clone(si, "ubuntu-2204-kube-v1-33", "third", power_on=True)
    assert wait_for_ip(si, third) == ip


def test_faulty_template_fails_its_first_two_clones(si: vim.ServiceInstance) -> None:
    for attempt in (1, 2):
        with pytest.raises(vim.fault.NoDiskSpace) as e:
            clone(si, "ubuntu-2204-kube-v1-33-faulty", "flaky")
        assert e.value.datastore == "LocalDS_0"
        assert e.value.msg == "Insufficient disk space on datastore 'LocalDS_0'.", attempt
        assert "flaky" not in vm_names(si)
    vm = clone(si, "ubuntu-2204-kube-v1-33-faulty", "flaky", power_on=True)
    wait_for_ip(si, vm)


# --- storage policies (pbm) ------------------------------------------------------------------


def test_storage_policies_through_pbm(vcsim: Vcsim, si: vim.ServiceInstance) -> None:
    content = connect_pbm(vcsim, si).RetrieveContent()
    manager = content.profileManager
    ids = manager.PbmQueryProfile(
        resourceType=pbm.profile.ResourceType(resourceType="STORAGE"), profileCategory="REQUIREMENT"
    )
    names = {p.name for p in manager.PbmRetrieveContent(profileIds=ids)}
    print("storage policies:", sorted(names))
    assert "vSAN Default Storage Policy" in names


# --- tags (REST) ---------------------------------------------------------------------------------


def test_tags_exist_and_attach_to_a_vm(vcsim: Vcsim, si: vim.ServiceInstance) -> None:
    assert set(vcsim.tags) == {"anywhere/control-plane", "anywhere/workers"}
    vm = clone(si, "ubuntu-2204-kube-v1-33", "tagged")
    with rest_session(vcsim) as headers:
        for key, tag_id in vcsim.tags.items():
            assert tag_id.startswith("urn:vmomi:InventoryServiceTag:")
            status, tag = rest(vcsim, "GET", f"/com/vmware/cis/tagging/tag/id:{tag_id}", headers=headers)
            assert status == 200
            status, category = rest(
                vcsim,
                "GET",
                f"/com/vmware/cis/tagging/category/id:{tag['value']['category_id']}",
                headers=headers,
            )
            assert f"{category['value']['name']}/{tag['value']['name']}" == key

        workers = vcsim.tags["anywhere/workers"]
        status, _ = rest(
            vcsim,
            "POST",
            f"/com/vmware/cis/tagging/tag-association/id:{workers}?~action=attach",
            body={"object_id": {"id": vm._moId, "type": "VirtualMachine"}},
            headers=headers,
        )
        assert status == 200
    assert attached_tags(vcsim, vm._moId) == {workers}

    status, _ = rest(vcsim, "GET", f"/com/vmware/cis/tagging/tag/id:{workers}")
    assert status == 401  # no session
