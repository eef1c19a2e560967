"""Specification rules of the nutanix provider."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import FieldError
from anywhere.api.infra import nutanix
from anywhere.api.v1alpha1._base import Ref
from anywhere.api.v1alpha1._machine import UserConfiguration
from anywhere.api.v1alpha1.cluster import Cluster, ControlPlaneUpgradeRolloutStrategy
from anywhere.api.v1alpha1.nutanix import (
    NutanixCategoryIdentifier,
    NutanixDatacenterConfig,
    NutanixDatacenterFailureDomain,
    NutanixGPUIdentifier,
    NutanixMachineConfig,
    NutanixResourceIdentifier,
)
from tests.api.infra.conftest import CERT, cluster_yaml, load, only

UUID = "4a6e2f1c-9b3d-4c8e-a1f0-7d5b3c2e1a09"

DATACENTER = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: NutanixDatacenterConfig
metadata:
  name: dc
spec:
  endpoint: prism-central.example.com
  port: 9440
  credentialRef:
    kind: Secret
    name: nutanix-credentials
"""

MACHINE = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: NutanixMachineConfig
metadata:
  name: cp
spec:
  osFamily: ubuntu
  users:
  - name: eksa
    sshAuthorizedKeys: ["ssh-rsa AAAA..."]
  vcpusPerSocket: 1
  vcpuSockets: 4
  memorySize: 8Gi
  systemDiskSize: 40Gi
  image: {type: name, name: ubuntu-2204-kube-1-31}
  cluster: {type: name, name: pe-1}
  subnet: {type: uuid, uuid: 4a6e2f1c-9b3d-4c8e-a1f0-7d5b3c2e1a09}
"""

CLUSTER = cluster_yaml("Nutanix", worker_machine="wk")


def datacenter(text: str = DATACENTER) -> NutanixDatacenterConfig:
    return load(NutanixDatacenterConfig, text)


def machine(text: str = MACHINE, name: str = "cp") -> NutanixMachineConfig:
    mc = load(NutanixMachineConfig, text)
    mc.metadata.name = name
    return mc


def cluster(text: str = CLUSTER) -> Cluster:
    return load(Cluster, text)


# --- shape -------------------------------------------------------------------------------------

FULL_DATACENTER = f"""
kind: NutanixDatacenterConfig
metadata: {{name: dc}}
spec:
  endpoint: pc.example.com
  port: 9440
  additionalTrustBundle: |
{"".join("    " + line + chr(10) for line in CERT.splitlines())}
  insecure: true
  credentialRef: {{kind: Secret, name: creds}}
  failureDomains:
  - name: fd-1
    cluster: {{type: name, name: pe-1}}
    subnets: [{{type: uuid, uuid: {UUID}}}]
    workerMachineGroups: [wk]
  ccmExcludeNodeIPs: [10.0.0.1, 10.0.0.0/28, 10.0.1.1-10.0.1.9]
status: {{}}
"""

FULL_MACHINE = f"""
kind: NutanixMachineConfig
metadata: {{name: wk}}
spec:
  osFamily: redhat
  users: [{{name: eksa, sshAuthorizedKeys: ["ssh-rsa AAAA"]}}]
  vcpusPerSocket: 2
  vcpuSockets: 2
  memorySize: 4096Mi
  systemDiskSize: 100Gi
  image: {{type: uuid, uuid: {UUID}}}
  cluster: {{type: uuid, uuid: {UUID}}}
  subnet: {{type: name, name: vm-net}}
  project: {{type: name, name: proj}}
  additionalCategories: [{{key: env, value: prod}}]
  gpus: [{{type: deviceID, deviceID: 8757}}, {{type: name, name: Ampere 40}}]
  bootType: uefi
status:
  ready: true
  addresses: [{{type: InternalIP, address: 10.0.0.5}}]
  vmUUID: {UUID}
  nodeRef: {{kind: Node, name: n1, apiVersion: v1, uid: u1}}
  conditions: [{{type: Ready, status: "True", lastTransitionTime: "2024-01-01T00:00:00Z"}}]
"""


def test_round_trip_datacenter_keeps_every_field() -> None:
    dc = datacenter(FULL_DATACENTER)
    data = dc.to_dict()
    assert data["spec"]["ccmExcludeNodeIPs"][2] == "10.0.1.1-10.0.1.9"
    assert data["spec"]["failureDomains"][0]["workerMachineGroups"] == ["wk"]
    assert NutanixDatacenterConfig.model_validate(data, by_name=False) == dc
    assert nutanix.validate_datacenter(dc) == []


def test_round_trip_machine_keeps_every_field() -> None:
    mc = machine(FULL_MACHINE, name="wk")
    data = mc.to_dict()
    assert data["spec"]["gpus"][0] == {"type": "deviceID", "deviceID": 8757}
    assert data["spec"]["vcpusPerSocket"] == 2
    assert data["status"]["vmUUID"] == UUID
    assert NutanixMachineConfig.model_validate(data, by_name=False) == mc
    assert nutanix.validate_machine(mc) == []


def test_quantities_given_as_numbers_are_read_as_text() -> None:
    mc = machine(MACHINE.replace("memorySize: 8Gi", "memorySize: 8589934592"))
    assert mc.spec.memory_size == "8589934592"
    assert nutanix.validate_machine(mc) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4Gi", Decimal(4 * 1024**3)),
        ("4096Mi", Decimal(4 * 1024**3)),
        ("1e3", Decimal(1000)),
        ("1.5k", Decimal(1500)),
        ("500m", Decimal("0.5")),
        ("2E", Decimal(2 * 10**18)),
        ("4GB", None),
        ("", None),
    ],
)
def test_parse_quantity(text: str, value: Decimal | None) -> None:
    assert nutanix.parse_quantity(text) == value


# --- sample and defaults --------------------------------------------------------------------------


def test_sample_validates_clean() -> None:
    s = nutanix.sample("c1")
    assert isinstance(s.control_plane_machine, NutanixMachineConfig)
    assert isinstance(s.worker_machine, NutanixMachineConfig)
    assert nutanix.validate_datacenter(s.datacenter) == []
    assert nutanix.validate_machine(s.control_plane_machine) == []
    assert nutanix.validate_machine(s.worker_machine) == []
    c = cluster()
    assert c.spec.control_plane_configuration
    assert c.spec.control_plane_configuration.machine_group_ref
    c.spec.control_plane_configuration.machine_group_ref.name = "c1-cp"
    group_ref = c.worker_groups[0].machine_group_ref
    assert group_ref
    group_ref.name = "c1"
    config = ClusterConfig(c, [s.datacenter, s.control_plane_machine, s.worker_machine])
    assert nutanix.RULES.validate_cluster(config) == []
    assert nutanix.create_checks(config) == []


def test_rules_flags() -> None:
    rules = nutanix.RULES
    assert rules.name == "nutanix"
    assert rules.datacenter_kind is NutanixDatacenterConfig
    assert rules.machine_kind is NutanixMachineConfig
    assert rules.endpoint_required
    assert not rules.control_plane_only_allowed
    assert not rules.in_place_upgrade_allowed
    assert not rules.kindnetd_allowed
    assert rules.create_checks is nutanix.create_checks
    # Every rule across objects is the provider validator's, made when a cluster is created.
    assert rules.validate_cluster(config_for(cluster())) == []


def test_datacenter_defaults_credentials() -> None:
    dc = datacenter(DATACENTER.split("  credentialRef:")[0])
    nutanix.default_datacenter(dc)
    assert dc.spec.credential_ref == Ref(kind="Secret", name="nutanix-credentials")
    assert nutanix.validate_datacenter(dc) == []


def test_machine_defaults() -> None:
    mc = machine(MACHINE.replace("  osFamily: ubuntu\n", "").split("  users:")[0] + "  vcpuSockets: 2\n")
    nutanix.default_machine(mc)
    assert mc.spec.os_family == "ubuntu"
    assert mc.spec.users == [UserConfiguration(name="eksa", ssh_authorized_keys=[""])]


# --- datacenter validation ------------------------------------------------------------------------


def dc_errors(**changes: Any) -> list[FieldError]:
    dc = datacenter()
    for key, value in changes.items():
        setattr(dc.spec, key, value)
    return nutanix.validate_datacenter(dc)


def test_endpoint_required() -> None:
    only(dc_errors(endpoint=""), "spec.endpoint", "endpoint is required")


def test_port_rules() -> None:
    only(dc_errors(port=None), "spec.port", "port is required")
    only(dc_errors(port=70000), "spec.port", "out of range")


def test_trust_bundle() -> None:
    assert dc_errors(additional_trust_bundle=CERT) == []
    assert dc_errors(additional_trust_bundle=CERT + CERT) == []
    only(
        dc_errors(additional_trust_bundle="not a cert"),
        "spec.additionalTrustBundle",
        "could not find a PEM block",
    )
    key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEH\n-----END PRIVATE KEY-----\n"
    only(
        dc_errors(additional_trust_bundle=key),
        "spec.additionalTrustBundle",
        "does not hold an X.509 certificate",
    )
    broken = CERT.replace("MIIBjTCC", "MIIB!TCC")
    only(dc_errors(additional_trust_bundle=broken), "spec.additionalTrustBundle", "not valid base64")


def test_credential_ref_rules() -> None:
    only(dc_errors(credential_ref=None), "spec.credentialRef", "credentialRef is required")
    only(
        dc_errors(credential_ref=Ref(kind="ConfigMap", name="x")), "spec.credentialRef.kind", "must be Secret"
    )
    only(dc_errors(credential_ref=Ref(kind="Secret")), "spec.credentialRef.name", "name is required")


def domain(**fields: Any) -> NutanixDatacenterFailureDomain:
    base: dict[str, Any] = {
        "name": "fd-1",
        "cluster": NutanixResourceIdentifier(type="name", name="pe-1"),
        "subnets": [NutanixResourceIdentifier(type="name", name="net")],
    }
    base.update(fields)
    return NutanixDatacenterFailureDomain(**base)


def test_failure_domain_rules() -> None:
    assert dc_errors(failure_domains=[domain(), domain(name="fd-2")]) == []
    only(dc_errors(failure_domains=[domain(name="FD_1")]), "spec.failureDomains[0].name", "lower-case")
    only(dc_errors(failure_domains=[domain(name="a" * 65)]), "spec.failureDomains[0].name", "1 to 64")
    only(dc_errors(failure_domains=[domain(), domain()]), "spec.failureDomains[1].name", "unique")
    only(
        dc_errors(failure_domains=[domain(subnets=[])]),
        "spec.failureDomains[0].subnets",
        "at least one subnet",
    )
    only(
        dc_errors(failure_domains=[domain(cluster=NutanixResourceIdentifier(type="id", name="pe"))]),
        "spec.failureDomains[0].cluster.type",
        "use uuid or name",
    )
    only(
        dc_errors(failure_domains=[domain(subnets=[NutanixResourceIdentifier(type="uuid")])]),
        "spec.failureDomains[0].subnets[0].uuid",
        "uuid is required",
    )


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        ("10.0.0.300", "not a valid IP address"),
        ("10.0.0.0/33", "not a valid CIDR"),
        ("10.0.0.9-10.0.0.1", "greater than end IP"),
        ("10.0.0.1-10.0.0.5-10.0.0.9", "not a valid IP range"),
        ("10.0.0.x-10.0.0.9", "start IP"),
        ("10.0.0.1-fd00::1", "mixes IPv4 and IPv6"),
    ],
)
def test_ccm_exclude_node_ips(entry: str, text: str) -> None:
    only(dc_errors(ccm_exclude_node_ips=["10.0.0.1", entry]), "spec.ccmExcludeNodeIPs[1]", text)


# --- machine validation --------------------------------------------------------------------------


def machine_errors(**changes: Any) -> list[FieldError]:
    mc = machine()
    for key, value in changes.items():
        setattr(mc.spec, key, value)
    return nutanix.validate_machine(mc)


def test_machine_yaml_is_valid() -> None:
    assert nutanix.validate_machine(machine()) == []


@pytest.mark.parametrize("field", ["image", "cluster", "subnet"])
def test_identifiers_required_and_well_formed(field: str) -> None:
    camel = f"spec.{field}"
    only(machine_errors(**{field: None}), camel, "is required")
    only(
        machine_errors(**{field: NutanixResourceIdentifier(name="x")}),
        f"{camel}.type",
        "missing; use uuid or name",
    )
    only(
        machine_errors(**{field: NutanixResourceIdentifier(type="name")}), f"{camel}.name", "name is required"
    )
    only(
        machine_errors(**{field: NutanixResourceIdentifier(type="uuid", uuid="abc")}),
        f"{camel}.uuid",
        "is not a UUID",
    )


def test_project_is_checked_when_given() -> None:
    only(
        machine_errors(project=NutanixResourceIdentifier(type="bogus")),
        "spec.project.type",
        "'bogus' is not valid",
    )


def test_categories_need_key_and_value() -> None:
    only(
        machine_errors(additional_categories=[NutanixCategoryIdentifier(value="v")]),
        "spec.additionalCategories[0].key",
        "key is required",
    )
    only(
        machine_errors(additional_categories=[NutanixCategoryIdentifier(key="k")]),
        "spec.additionalCategories[0].value",
        "value is required",
    )


def test_minimum_sizes() -> None:
    only(machine_errors(vcpu_sockets=1), "spec.vcpuSockets", "at least 2")
    only(machine_errors(vcpu_sockets=None), "spec.vcpuSockets", "vcpuSockets is required")
    only(machine_errors(vcpus_per_socket=0), "spec.vcpusPerSocket", "at least 1")
    only(machine_errors(memory_size="2Gi"), "spec.memorySize", "at least 4Gi")
    only(machine_errors(memory_size="lots"), "spec.memorySize", "not a quantity")
    only(machine_errors(memory_size=None), "spec.memorySize", "memorySize is required")
    only(machine_errors(system_disk_size="20Gi"), "spec.systemDiskSize", "at least 40Gi")
    assert machine_errors(memory_size="4096Mi", system_disk_size="42949672960") == []


def test_os_family_and_boot_type() -> None:
    only(machine_errors(os_family="bottlerocket"), "spec.osFamily", "ubuntu, redhat")
    only(machine_errors(boot_type="SecureBoot"), "spec.bootType", "legacy, uefi")
    assert machine_errors(boot_type="legacy") == []


def test_gpu_rules() -> None:
    only(machine_errors(gpus=[NutanixGPUIdentifier(name="A40")]), "spec.gpus[0].type", "GPU type is required")
    only(machine_errors(gpus=[NutanixGPUIdentifier(type="vendor")]), "spec.gpus[0].type", "deviceID or name")
    only(
        machine_errors(gpus=[NutanixGPUIdentifier(type="deviceID")]),
        "spec.gpus[0].deviceID",
        "deviceID is required",
    )
    only(
        machine_errors(gpus=[NutanixGPUIdentifier(type="name")]), "spec.gpus[0].name", "GPU name is required"
    )


def test_users() -> None:
    only(machine_errors(users=[UserConfiguration(name="")]), "spec.users[0].name", "user name is required")
    only(machine_errors(users=[]), "spec.users", "at least one user")


# --- cluster-wide create checks ------------------------------------------------------------------


def config_for(c: Cluster, *objects: Any) -> ClusterConfig:
    return ClusterConfig(c, list(objects) or [datacenter(), machine(), machine(name="wk")])


def test_cluster_rules_pass() -> None:
    assert nutanix.create_checks(config_for(cluster())) == []


def checks(config: ClusterConfig) -> list[FieldError]:
    """The create checks of ``config``, which static validation accepts: they are not spec rules."""
    assert nutanix.RULES.validate_cluster(config) == []
    return nutanix.create_checks(config)


def test_endpoint_must_be_an_ip() -> None:
    c = cluster(CLUSTER.replace("host: 10.0.0.10", "host: cp.example.com"))
    only(checks(config_for(c)), "spec.controlPlaneConfiguration.endpoint.host", "not an IP")


def test_rollout_strategy_not_supported() -> None:
    c = cluster()
    assert c.spec.control_plane_configuration
    c.spec.control_plane_configuration.upgrade_rollout_strategy = ControlPlaneUpgradeRolloutStrategy(
        type="RollingUpdate"
    )
    only(
        checks(config_for(c)),
        "spec.controlPlaneConfiguration.upgradeRolloutStrategy",
        "not supported for the nutanix provider",
    )


def test_image_name_must_carry_kubernetes_version() -> None:
    worker = machine(name="wk")
    assert worker.spec.image
    worker.spec.image.name = "ubuntu-2204-kube-1-30"
    errors = checks(config_for(cluster(), datacenter(), machine(), worker))
    assert [(e.obj, e.field) for e in errors] == [("NutanixMachineConfig/wk", "spec.image.name")]
    assert "does not name Kubernetes 1.31" in errors[0].message
    c = cluster()
    c.worker_groups[0].kubernetes_version = "1.30"
    assert checks(config_for(c, datacenter(), machine(), worker)) == []
    worker.spec.image = NutanixResourceIdentifier(type="uuid", uuid=UUID)
    assert checks(config_for(cluster(), datacenter(), machine(), worker)) == []


def test_image_name_is_checked_for_every_worker_group_using_it() -> None:
    c = cluster()
    second = c.worker_groups[0].model_copy(update={"name": "md-1", "kubernetes_version": "1.30"})
    c.spec.worker_node_group_configurations = [second, c.worker_groups[0]]
    errors = checks(config_for(c, datacenter(), machine(), machine(name="wk")))
    assert [(e.obj, e.field) for e in errors] == [("NutanixMachineConfig/wk", "spec.image.name")]
    assert "does not name Kubernetes 1.30" in errors[0].message


def test_gpus_only_on_workers() -> None:
    gpu = [NutanixGPUIdentifier(type="name", name="A40")]
    cp, wk, spare = machine(), machine(name="wk"), machine(name="spare")
    cp.spec.gpus = gpu
    errors = checks(config_for(cluster(), datacenter(), cp, wk))
    only(errors, "spec.gpus", "not supported for control plane machines")
    cp.spec.gpus, wk.spec.gpus, spare.spec.gpus = None, gpu, gpu
    errors = checks(config_for(cluster(), datacenter(), cp, wk, spare))
    assert [e.obj for e in errors] == ["NutanixMachineConfig/spare"]
    assert "no worker node group uses this config" in errors[0].message


def test_failure_domains_name_worker_groups() -> None:
    dc = datacenter()
    dc.spec.failure_domains = [domain(worker_machine_groups=["wk"]), domain(name="fd-2")]
    assert checks(config_for(cluster(), dc, machine(), machine(name="wk"))) == []
    dc.spec.failure_domains[1].worker_machine_groups = ["nope"]
    errors = checks(config_for(cluster(), dc, machine(), machine(name="wk")))
    only(
        errors,
        "spec.failureDomains[1].workerMachineGroups[0]",
        "not the machine config of any worker node group",
    )
    dc.spec.failure_domains = [domain(worker_machine_groups=["wk"])]
    errors = checks(config_for(cluster(), dc, machine(), machine(name="wk")))
    only(errors, "spec.failureDomains[0].workerMachineGroups[0]", "more than the 1 failure domains")


# --- updates -------------------------------------------------------------------------------------


def test_endpoint_is_immutable() -> None:
    new = datacenter(DATACENTER.replace("prism-central", "pc2"))
    only(nutanix.datacenter_update(datacenter(), new), "spec.endpoint", "immutable")


def test_credential_ref_cannot_be_removed() -> None:
    new = datacenter()
    new.spec.credential_ref = None
    only(nutanix.datacenter_update(datacenter(), new), "spec.credentialRef", "cannot be removed")
    changed = datacenter(DATACENTER.replace("name: nutanix-credentials", "name: other"))
    assert nutanix.datacenter_update(datacenter(), changed) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("boot_type", "uefi"),
        ("os_family", "redhat"),
        ("cluster", NutanixResourceIdentifier(type="name", name="pe-2")),
        ("subnet", NutanixResourceIdentifier(type="name", name="other")),
    ],
)
def test_always_immutable_machine_fields(field: str, value: Any) -> None:
    new = machine()
    setattr(new.spec, field, value)
    camel = {"boot_type": "bootType", "os_family": "osFamily"}.get(field, field)
    only(nutanix.machine_update(machine(), new), f"spec.{camel}", "immutable")


def with_annotations(mc: NutanixMachineConfig, **annotations: str) -> NutanixMachineConfig:
    mc.metadata.annotations = {
        f"anywhere.eks.amazonaws.com/{k.replace('_', '-')}": v for k, v in annotations.items()
    }
    return mc


@pytest.mark.parametrize(
    ("field", "camel", "value"),
    [
        ("vcpu_sockets", "vcpuSockets", 8),
        ("vcpus_per_socket", "vcpusPerSocket", 2),
        ("memory_size", "memorySize", "16Gi"),
        ("system_disk_size", "systemDiskSize", "80Gi"),
        ("users", "users", [UserConfiguration(name="other", ssh_authorized_keys=["ssh-rsa B"])]),
    ],
)
def test_management_control_plane_size_is_immutable(field: str, camel: str, value: Any) -> None:
    new = machine()
    setattr(new.spec, field, value)
    old = with_annotations(machine(), control_plane="true")
    only(nutanix.machine_update(old, new), f"spec.{camel}", "immutable")
    assert nutanix.machine_update(with_annotations(machine(), etcd="true"), new) != []
    assert nutanix.machine_update(machine(), new) == []  # worker machines may be resized
    managed = with_annotations(machine(), control_plane="true", managed_by="mgmt")
    assert nutanix.machine_update(managed, new) == []  # so may a workload cluster's


def test_equal_quantities_are_not_a_change() -> None:
    new = machine()
    new.spec.memory_size = "8192Mi"
    assert nutanix.machine_update(with_annotations(machine(), control_plane="true"), new) == []


def test_paused_skips_update_checks() -> None:
    new = machine()
    new.spec.os_family = "redhat"
    assert nutanix.machine_update(with_annotations(machine(), paused="true"), new) == []
    old_dc = datacenter()
    old_dc.metadata.annotations = {"anywhere.eks.amazonaws.com/paused": "true"}
    assert nutanix.datacenter_update(old_dc, datacenter(DATACENTER.replace("prism-central", "pc2"))) == []
