"""A vSphere cluster's whole life through the CLI, against govmomi's vCenter simulator.

`anywhere create cluster -f FILE` (a subprocess, with the credentials in EKSA_VSPHERE_USERNAME /
EKSA_VSPHERE_PASSWORD) checks the inventory, starts the management plane and clones a VM per machine;
the VMs report IPs (the simulator's stand-in for VMware Tools and DHCP) and, since no kubelet runs in
them, the plane registers their Nodes on their behalf. Scaling and a Kubernetes upgrade (a new
template) go through `anywhere upgrade cluster`; `anywhere delete cluster` leaves no VM of the
cluster. Preflight names every missing inventory object at once, before anything is made, and no
credential appears in any output or log.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from anywhere.providers.vsphere.vm import CLUSTER_KEY
from tests.conftest import kubectl_json
from tests.harness import run_anywhere
from tests.providers.vsphere.spec import TEMPLATES, documents, write
from tests.vcsim import Vcsim, attached_tags, connect, vms_with_extra_config

CLI_TIMEOUT = 600  # a bound on a hung command, not an expectation


def cli(
    folder: Path, v: Vcsim, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    credentials = {"EKSA_VSPHERE_USERNAME": v.username, "EKSA_VSPHERE_PASSWORD": v.password}
    return run_anywhere(folder, *args, env={**credentials, **(env or {})}, timeout=CLI_TIMEOUT)


def marked_vms(v: Vcsim, name: str) -> set[str]:
    si = connect(v)
    return {
        vm for vm, marker in vms_with_extra_config(si, CLUSTER_KEY).items() if marker == f"eksa-system/{name}"
    }


def vm_details(v: Vcsim, names: set[str]) -> dict[str, Any]:
    """name -> (CPUs, memory, BIOS UUID, guest IP, moid, decoded guestinfo.userdata)."""
    from pyVmomi import vim

    si = connect(v)
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    out: dict[str, Any] = {}
    for vm in view.view:
        if vm.name not in names:
            continue
        extra = {o.key: o.value for o in vm.config.extraConfig}
        out[vm.name] = {
            "cpus": vm.config.hardware.numCPU,
            "memory": vm.config.hardware.memoryMB,
            "uuid": vm.config.uuid,
            "ip": vm.guest.ipAddress,
            "moid": vm._moId,
            "userdata": base64.b64decode(extra["guestinfo.userdata"]).decode(),
            "power": str(vm.runtime.powerState),
        }
    view.Destroy()
    return out


def ready_nodes(kubeconfig: Path) -> dict[str, Any]:
    nodes = kubectl_json(kubeconfig, "get", "nodes")["items"]
    return {
        n["metadata"]["name"]: n
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or ())
    }


def assert_no_credentials(v: Vcsim, *texts: str) -> None:
    for text in texts:
        assert v.password not in text
        assert v.username not in text


def test_create_scale_upgrade_and_delete_a_cluster_through_the_cli(vcsim: Vcsim, tmp_path: Path) -> None:
    v = vcsim
    name = "vs1"
    tag = v.tags["anywhere/control-plane"]
    spec = write(tmp_path, name, v, tags=(tag,), storage_policy="vSAN Default Storage Policy")
    outputs: list[str] = []
    try:
        created = cli(tmp_path, v, "create", "cluster", "-f", str(spec))
        outputs += [created.stdout, created.stderr]
        assert created.returncode == 0, created.stdout + created.stderr
        assert "vSphere preflight passed" in created.stdout
        kubeconfig = tmp_path / name / f"{name}-eks-a-cluster.kubeconfig"

        first = marked_vms(v, name)
        assert len(first) == 2
        details = vm_details(v, first)
        nodes = ready_nodes(kubeconfig)
        assert set(nodes) == first  # one Node per VM, named after it
        for vm_name, vm in details.items():
            assert (vm["cpus"], vm["memory"], vm["power"]) == (2, 8192, "poweredOn")
            node = nodes[vm_name]
            assert node["spec"]["providerID"] == f"vsphere://{vm['uuid']}"
            addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
            assert addresses["InternalIP"] == vm["ip"]
            assert vm["ip"].startswith("10.40.0.")
            assert vm["userdata"].startswith("#cloud-config")
            assert attached_tags(v, vm["moid"]) == {tag}
        assert sum("kubeadm init" in vm["userdata"] for vm in details.values()) == 1

        # Scale the workers to 2: one more VM, the others untouched.
        write(tmp_path, name, v, workers=2, tags=(tag,), storage_policy="vSAN Default Storage Policy")
        scaled = cli(tmp_path, v, "upgrade", "cluster", "-f", str(spec))
        outputs += [scaled.stdout, scaled.stderr]
        assert scaled.returncode == 0, scaled.stdout + scaled.stderr
        second = marked_vms(v, name)
        assert len(second) == 3
        assert first < second
        assert len(ready_nodes(kubeconfig)) == 3

        # Kubernetes 1.34: a new template, every machine replaced by a rolling upgrade.
        write(
            tmp_path,
            name,
            v,
            workers=2,
            version="1.34",
            tags=(tag,),
            storage_policy="vSAN Default Storage Policy",
        )
        upgraded = cli(tmp_path, v, "upgrade", "cluster", "-f", str(spec))
        outputs += [upgraded.stdout, upgraded.stderr]
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        third = marked_vms(v, name)
        assert len(third) == 3
        assert not third & second
        nodes = ready_nodes(kubeconfig)
        assert set(nodes) == third
        assert {n["status"]["nodeInfo"]["kubeletVersion"].split(".")[1] for n in nodes.values()} == {"34"}

        outputs.append((tmp_path / name / ".anywhere" / "plane.log").read_text())
    finally:
        deleted = cli(tmp_path, v, "delete", "cluster", name)
        outputs += [deleted.stdout, deleted.stderr]
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert marked_vms(v, name) == set()
    assert not (tmp_path / name).exists()
    assert_no_credentials(v, *outputs)


def test_preflight_names_every_missing_inventory_object_before_anything_is_made(
    vcsim: Vcsim, tmp_path: Path
) -> None:
    v = vcsim
    name = "broken"
    docs = documents(
        name,
        v,
        network="/DC0/network/No Such Network",
        folder="/DC0/vm/no-such-folder",
        datastore="/DC0/datastore/NoSuchDS",
        resource_pool="/DC0/host/DC0_C0/Resources/no-such-pool",
        tags=("urn:vmomi:InventoryServiceTag:00000000-0000-0000-0000-000000000000:GLOBAL",),
        storage_policy="No Such Policy",
    )
    docs[2]["spec"]["template"] = f"{TEMPLATES}/no-such-template-kube-v1-33"
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump_all(docs, sort_keys=False))

    result = cli(tmp_path, v, "create", "cluster", "-f", str(spec))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    for expected in (
        "network '/DC0/network/No Such Network' was not found",
        "folder '/DC0/vm/no-such-folder' was not found",
        "datastore '/DC0/datastore/NoSuchDS' was not found",
        "resource pool '/DC0/host/DC0_C0/Resources/no-such-pool' was not found",
        "template '/DC0/vm/Templates/no-such-template-kube-v1-33' was not found",
        "storage policy 'No Such Policy' was not found",
        "tag urn:vmomi:InventoryServiceTag:00000000-0000-0000-0000-000000000000:GLOBAL was not found",
    ):
        assert expected in output, output
    assert not (tmp_path / name).exists()
    assert marked_vms(v, name) == set()
    assert_no_credentials(v, output)

    docs = documents(name, v, network="/NoSuchDC/network/VM Network")
    docs[1]["spec"]["datacenter"] = "NoSuchDC"
    spec.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    result = cli(tmp_path, v, "create", "cluster", "-f", str(spec))
    assert result.returncode != 0
    assert "datacenter 'NoSuchDC' was not found" in result.stdout + result.stderr

    docs = documents(name, v, template=f"{TEMPLATES}/bottlerocket-kube-v1-33", os_family="bottlerocket")
    for machine in docs[2:]:
        machine["spec"]["cloneMode"] = "linkedClone"
        machine["spec"]["users"][0]["name"] = "ec2-user"
    spec.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    result = cli(tmp_path, v, "create", "cluster", "-f", str(spec))
    assert result.returncode != 0
    assert (
        "linkedClone needs a snapshot of template 'bottlerocket-kube-v1-33'" in result.stdout + result.stderr
    )
    assert not (tmp_path / name).exists()


def test_machines_spread_over_the_failure_domains(vcsim: Vcsim, tmp_path: Path) -> None:
    v = vcsim
    si = connect(v)
    datacenter = si.content.searchIndex.FindByInventoryPath("DC0")
    datacenter.vmFolder.CreateFolder("fd-b")
    domain = {
        "computeCluster": "/DC0/host/DC0_C0",
        "resourcePool": "/DC0/host/DC0_C0/Resources",
        "datastore": "/DC0/datastore/LocalDS_0",
        "network": "/DC0/network/VM Network",
    }
    name = "fd"
    docs = documents(name, v, workers=2)
    docs[1]["spec"]["failureDomains"] = [
        {"name": "fd-a", **domain, "folder": "/DC0/vm/anywhere"},
        {"name": "fd-b", **domain, "folder": "/DC0/vm/fd-b"},
    ]
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    try:
        created = cli(tmp_path, v, "create", "cluster", "-f", str(spec))
        assert created.returncode == 0, created.stdout + created.stderr
        assert "4 machine placement(s) checked" in created.stdout
        machines = kubectl_json(
            tmp_path / name / ".anywhere" / "admin.kubeconfig", "get", "vspheremachines", "-A"
        )
        placed = sorted(m["status"]["failureDomain"] for m in machines["items"])
        assert placed == ["fd-a", "fd-a", "fd-b"]
        folders: dict[str, set[str]] = {}
        for folder in ("anywhere", "fd-b"):
            found = si.content.searchIndex.FindByInventoryPath(f"DC0/vm/{folder}")
            folders[folder] = {vm.name for vm in found.childEntity}
        by_machine = {m["metadata"]["name"]: m["status"]["failureDomain"] for m in machines["items"]}
        for machine, domain_name in by_machine.items():
            assert machine in folders["anywhere" if domain_name == "fd-a" else "fd-b"]
    finally:
        deleted = cli(tmp_path, v, "delete", "cluster", name)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert marked_vms(v, name) == set()


def test_a_create_killed_while_cloning_resumes_without_a_second_vm(vcsim: Vcsim, tmp_path: Path) -> None:
    """kill -9 of the CLI and the management plane while clones are in flight; the same command
    again resumes: each machine finds its VM by instance UUID, none is made twice."""
    v = vcsim
    name = "crash"
    spec = write(tmp_path, name, v, workers=2)
    environment = {**os.environ, "EKSA_VSPHERE_USERNAME": v.username, "EKSA_VSPHERE_PASSWORD": v.password}
    environment.pop("KUBECONFIG", None)
    command = subprocess.Popen(
        [sys.executable, "-m", "anywhere", "create", "cluster", "-f", str(spec)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not marked_vms(v, name):  # the first clone has landed: others are in flight
            assert command.poll() is None, "create ended before any VM was cloned"
            assert time.monotonic() < deadline, "no VM was cloned within 120 s"
            time.sleep(0.05)
        pid = int((tmp_path / name / ".anywhere" / "plane.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        command.kill()
        command.wait(timeout=30)
        resumed = cli(tmp_path, v, "create", "cluster", "-f", str(spec))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "Resuming the creation of cluster crash" in resumed.stdout
        vms = marked_vms(v, name)
        assert len(vms) == 3
        assert set(ready_nodes(tmp_path / name / f"{name}-eks-a-cluster.kubeconfig")) == vms
    finally:
        if command.poll() is None:
            command.kill()
        deleted = cli(tmp_path, v, "delete", "cluster", name)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert marked_vms(v, name) == set()
