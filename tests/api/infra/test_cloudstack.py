"""Specification rules of the cloudstack provider."""

from __future__ import annotations

from typing import Any

import pytest

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import FieldError
from anywhere.api.infra import cloudstack
from anywhere.api.v1alpha1._machine import UserConfiguration
from anywhere.api.v1alpha1.cloudstack import (
    CloudStackDatacenterConfig,
    CloudStackMachineConfig,
    CloudStackResourceDiskOffering,
    CloudStackResourceIdentifier,
)
from anywhere.api.v1alpha1.cluster import Cluster
from tests.api.infra.conftest import cluster_yaml, load, only

UUID = "4a6e2f1c-9b3d-4c8e-a1f0-7d5b3c2e1a09"
UUID2 = "0f9e8d7c-6b5a-4d3c-8b2a-1f0e9d8c7b6a"

DATACENTER = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: CloudStackDatacenterConfig
metadata:
  name: dc
spec:
  availabilityZones:
  - name: az-1
    credentialsRef: global
    domain: ROOT
    account: admin
    managementApiEndpoint: https://cloudstack.example.com:8080/client/api
    zone:
      name: zone1
      network:
        name: net1
"""

MACHINE = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: CloudStackMachineConfig
metadata:
  name: cp
spec:
  template:
    name: ubuntu-2204-kube-1-31
  computeOffering:
    name: large
  users:
  - name: capc
    sshAuthorizedKeys: ["ssh-rsa AAAA..."]
"""

CLUSTER = cluster_yaml("CloudStack", worker_machine="cp")


def datacenter(text: str = DATACENTER) -> CloudStackDatacenterConfig:
    return load(CloudStackDatacenterConfig, text)


def machine(text: str = MACHINE) -> CloudStackMachineConfig:
    return load(CloudStackMachineConfig, text)


def cluster(text: str = CLUSTER) -> Cluster:
    return load(Cluster, text)


# --- shape -------------------------------------------------------------------------------------


FULL_DATACENTER = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: CloudStackDatacenterConfig
metadata: {name: dc, namespace: default, annotations: {anywhere.eks.amazonaws.com/paused: "true"}}
spec:
  domain: d
  account: a
  managementApiEndpoint: https://x/client/api
  zones:
  - {id: 4a6e2f1c-9b3d-4c8e-a1f0-7d5b3c2e1a09, name: z, network: {id: n-id, name: n}}
  availabilityZones:
  - name: az-1
    credentialsRef: global
    domain: ROOT
    account: admin
    managementApiEndpoint: https://cloudstack.example.com:8080/client/api
    zone: {name: zone1, network: {name: net1}}
status: {specValid: true, observedGeneration: 3, failureMessage: boom}
"""

FULL_MACHINE = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: CloudStackMachineConfig
metadata: {name: m}
spec:
  template: {id: 4a6e2f1c-9b3d-4c8e-a1f0-7d5b3c2e1a09}
  computeOffering: {name: large}
  diskOffering:
    name: data
    customSizeInGB: 20
    mountPath: /data
    device: /dev/vdb
    filesystem: ext4
    label: data_disk
  users: [{name: capc, sshAuthorizedKeys: ["ssh-rsa AAAA"]}]
  affinity: anti
  userCustomDetails: {foo: bar}
  symlinks: {/var/log: /data/var/log}
status: {specValid: false, failureMessage: nope}
"""


def test_round_trip_datacenter_keeps_every_field() -> None:
    dc = datacenter(FULL_DATACENTER)
    assert dc.spec.zones
    assert dc.spec.zones[0].network
    assert dc.spec.zones[0].network.id == "n-id"
    assert dc.status
    assert dc.status.observed_generation == 3
    data = dc.to_dict()
    assert data["spec"]["availabilityZones"][0]["managementApiEndpoint"].startswith("https://")
    assert data["spec"]["availabilityZones"][0]["credentialsRef"] == "global"
    assert CloudStackDatacenterConfig.model_validate(data, by_name=False) == dc


def test_round_trip_machine_keeps_every_field() -> None:
    mc = machine(FULL_MACHINE)
    data = mc.to_dict()
    assert data["spec"]["diskOffering"]["customSizeInGB"] == 20
    assert data["spec"]["users"][0]["sshAuthorizedKeys"] == ["ssh-rsa AAAA"]
    assert CloudStackMachineConfig.model_validate(data, by_name=False) == mc


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="osFamily"):
        machine(MACHINE + "  osFamily: ubuntu\n")


# --- sample and defaults --------------------------------------------------------------------------


def test_sample_validates_clean() -> None:
    s = cloudstack.sample("c1")
    assert isinstance(s.control_plane_machine, CloudStackMachineConfig)
    assert isinstance(s.worker_machine, CloudStackMachineConfig)
    assert cloudstack.validate_datacenter(s.datacenter) == []
    assert cloudstack.validate_machine(s.control_plane_machine) == []
    assert cloudstack.validate_machine(s.worker_machine) == []
    c = cluster(
        CLUSTER.replace("name: cp}", "name: c1-cp}").replace("host: 10.0.0.10", f"host: {s.endpoint_host}")
    )
    config = ClusterConfig(c, [s.datacenter, s.control_plane_machine, s.worker_machine])
    assert cloudstack.RULES.validate_cluster(config) == []
    assert cloudstack.create_checks(config) == []


def test_rules_flags() -> None:
    rules = cloudstack.RULES
    assert rules.name == "cloudstack"
    assert rules.datacenter_kind is CloudStackDatacenterConfig
    assert rules.machine_kind is CloudStackMachineConfig
    assert rules.endpoint_required
    assert not (rules.control_plane_only_allowed)
    assert not (rules.in_place_upgrade_allowed)
    assert not (rules.kindnetd_allowed)
    assert rules.create_checks is cloudstack.create_checks
    # Every rule across objects is the provider validator's, made when a cluster is created.
    assert rules.validate_cluster(config_for(cluster())) == []


DEPRECATED = """
kind: CloudStackDatacenterConfig
metadata: {name: dc}
spec:
  domain: ROOT
  account: admin
  managementApiEndpoint: https://cloudstack.example.com:8080/client/api
  zones:
  - {name: zone1, network: {name: net1}}
  - {id: 4a6e2f1c-9b3d-4c8e-a1f0-7d5b3c2e1a09, network: {name: net2}}
"""


def test_defaults_move_deprecated_fields_into_availability_zones() -> None:
    dc = datacenter(DEPRECATED)
    cloudstack.default_datacenter(dc)
    zones = dc.spec.availability_zones or []
    assert [z.name for z in zones] == ["default-az-0", "default-az-1"]
    assert all(z.credentials_ref == "global" and z.domain == "ROOT" and z.account == "admin" for z in zones)
    assert zones[1].zone
    assert zones[1].zone.id == UUID
    assert dc.spec.zones is None
    assert dc.spec.domain is None
    assert dc.spec.account is None
    assert dc.spec.management_api_endpoint is None
    assert cloudstack.validate_datacenter(dc) == []
    before = dc.model_copy(deep=True)
    cloudstack.default_datacenter(dc)
    assert dc == before


def test_defaults_keep_given_availability_zones_and_drop_deprecated_fields() -> None:
    dc = datacenter(DATACENTER + "  domain: other\n")
    cloudstack.default_datacenter(dc)
    assert [z.name for z in dc.spec.availability_zones or []] == ["az-1"]
    assert dc.spec.domain is None


def test_default_user() -> None:
    mc = machine(MACHINE.split("  users:")[0])
    cloudstack.default_machine(mc)
    assert mc.spec.users == [UserConfiguration(name="capc", ssh_authorized_keys=[""])]
    mc = machine(MACHINE.replace("- name: capc", "- name: ''"))
    cloudstack.default_machine(mc)
    assert mc.spec.users
    assert mc.spec.users[0].name == "capc"
    assert mc.spec.users[0].ssh_authorized_keys == ["ssh-rsa AAAA..."]


# --- datacenter validation ------------------------------------------------------------------------


def az_errors(**changes: Any) -> list[FieldError]:
    dc = datacenter()
    az = (dc.spec.availability_zones or [])[0]
    for key, value in changes.items():
        setattr(az, key, value)
    return cloudstack.validate_datacenter(dc)


def test_deprecated_fields_must_be_empty_when_validated() -> None:
    errors = cloudstack.validate_datacenter(datacenter(DEPRECATED))
    assert {e.field for e in errors} == {
        "spec.account",
        "spec.domain",
        "spec.managementApiEndpoint",
        "spec.zones",
        "spec.availabilityZones",
    }
    assert all("deprecated" in e.message for e in errors if e.field != "spec.availabilityZones")


def test_availability_zones_required() -> None:
    only(
        cloudstack.validate_datacenter(
            datacenter("kind: CloudStackDatacenterConfig\nmetadata: {name: dc}\n")
        ),
        "spec.availabilityZones",
        "at least one availability zone",
    )


def test_availability_zone_names_unique() -> None:
    dc = datacenter()
    zones = dc.spec.availability_zones or []
    zones.append(zones[0].model_copy(deep=True))
    only(cloudstack.validate_datacenter(dc), "spec.availabilityZones[1].name", "must be unique")


def test_availability_zone_name_required() -> None:
    only(az_errors(name=None), "spec.availabilityZones[0].name", "name is required")


def test_credentials_ref_required() -> None:
    only(
        az_errors(credentials_ref=""),
        "spec.availabilityZones[0].credentialsRef",
        "credentialsRef is required",
    )


def test_domain_required() -> None:
    only(az_errors(domain=None), "spec.availabilityZones[0].domain", "account is only valid within a domain")


def test_management_endpoint_required_and_a_url() -> None:
    path = "spec.availabilityZones[0].managementApiEndpoint"
    only(az_errors(management_api_endpoint=None), path, "managementApiEndpoint is required")
    only(az_errors(management_api_endpoint="cloudstack:8080"), path, "not a valid URL")


def test_zone_and_network_required() -> None:
    dc = datacenter(DATACENTER.replace("      name: zone1\n", ""))
    only(cloudstack.validate_datacenter(dc), "spec.availabilityZones[0].zone", "zone is required")
    dc = datacenter(DATACENTER.replace("      network:\n        name: net1\n", ""))
    only(cloudstack.validate_datacenter(dc), "spec.availabilityZones[0].zone.network", "network is required")


def test_zone_id_must_be_uuid() -> None:
    dc = datacenter(DATACENTER.replace("name: zone1", "id: zone1"))
    only(cloudstack.validate_datacenter(dc), "spec.availabilityZones[0].zone.id", "ids are UUIDs")


# --- machine validation --------------------------------------------------------------------------


def machine_errors(**changes: Any) -> list[FieldError]:
    mc = machine()
    for key, value in changes.items():
        setattr(mc.spec, key, value)
    return cloudstack.validate_machine(mc)


def test_machine_sample_yaml_is_valid() -> None:
    assert cloudstack.validate_machine(machine()) == []
    assert cloudstack.validate_machine(machine(FULL_MACHINE)) == []


def test_compute_offering_and_template_required() -> None:
    only(machine_errors(compute_offering=None), "spec.computeOffering", "CloudStack has no default")
    only(
        machine_errors(template=CloudStackResourceIdentifier(id="", name="")),
        "spec.template",
        "template is required",
    )


def test_ids_must_be_uuids() -> None:
    only(machine_errors(template=CloudStackResourceIdentifier(id="tmpl-1")), "spec.template.id", "UUIDs")


def disk(**fields: Any) -> CloudStackResourceDiskOffering:
    base: dict[str, Any] = {
        "name": "data",
        "mount_path": "/data",
        "device": "/dev/vdb",
        "filesystem": "ext4",
        "label": "data",
    }
    base.update(fields)
    return CloudStackResourceDiskOffering(**base)


def test_disk_offering_rules() -> None:
    assert machine_errors(disk_offering=disk()) == []
    assert machine_errors(disk_offering=CloudStackResourceDiskOffering()) == []
    only(machine_errors(disk_offering=disk(mount_path="/")), "spec.diskOffering.mountPath", "absolute path")
    only(
        machine_errors(disk_offering=disk(mount_path="data")), "spec.diskOffering.mountPath", "absolute path"
    )
    for field in ("filesystem", "device", "label"):
        only(machine_errors(disk_offering=disk(**{field: ""})), f"spec.diskOffering.{field}", "is required")
    only(machine_errors(disk_offering=disk(name=None)), "spec.diskOffering", "id or name is required")
    only(machine_errors(disk_offering=disk(id="x")), "spec.diskOffering.id", "UUIDs")
    only(
        machine_errors(disk_offering=disk(custom_size_in_gb=-1)),
        "spec.diskOffering.customSizeInGB",
        "positive",
    )


def test_restricted_custom_details() -> None:
    only(
        machine_errors(user_custom_details={"rootdisksize": "50", "ok": "1"}),
        "spec.userCustomDetails[rootdisksize]",
        "cannot be given as a custom detail",
    )


def test_affinity_rules() -> None:
    assert machine_errors(affinity="pro") == []
    assert machine_errors(affinity_group_ids=[UUID, UUID2]) == []
    only(machine_errors(affinity="anti", affinity_group_ids=[UUID]), "spec.affinity", "cannot both be set")
    only(machine_errors(affinity="maybe"), "spec.affinity", "pro, anti, no")
    only(machine_errors(affinity_group_ids=["grp"]), "spec.affinityGroupIds[0]", "affinity group id")


@pytest.mark.parametrize(
    ("symlinks", "text"),
    [
        ({"/var/log/": "/data/log"}, "must not end with /"),
        ({"/var/log": "data/log"}, "must start with /"),
        ({"/var/log": "/data/l g"}, "portable file name set"),
    ],
)
def test_symlink_format(symlinks: dict[str, str], text: str) -> None:
    link = next(iter(symlinks))
    only(machine_errors(symlinks=symlinks), f"spec.symlinks[{link}]", text)


def test_users() -> None:
    only(machine_errors(users=[]), "spec.users", "at least one user")
    only(machine_errors(users=[UserConfiguration(name="")]), "spec.users[0].name", "user name is required")
    assert machine_errors(users=[UserConfiguration(name="capc", ssh_authorized_keys=[""])]) == []


# --- cluster-wide create checks ------------------------------------------------------------------


def config_for(c: Cluster, *machines: CloudStackMachineConfig) -> ClusterConfig:
    return ClusterConfig(c, [datacenter(), *(machines or (machine(),))])


def checks(config: ClusterConfig) -> list[FieldError]:
    """The create checks of ``config``, which static validation accepts: they are not spec rules."""
    assert cloudstack.RULES.validate_cluster(config) == []
    return cloudstack.create_checks(config)


def test_cluster_rules_pass() -> None:
    assert checks(config_for(cluster())) == []
    c = cluster(CLUSTER.replace("host: 10.0.0.10", "host: 'cp.example.com:443'"))
    assert checks(config_for(c)) == []


@pytest.mark.parametrize(
    ("host", "text"),
    [
        ("10.0.0.10:0", "port '0' is not valid"),
        ("fd00::10", "too many colons"),
        (":6443", "host part is empty"),
    ],
)
def test_endpoint_host_port(host: str, text: str) -> None:
    c = cluster(CLUSTER.replace("host: 10.0.0.10", f"host: '{host}'"))
    only(checks(config_for(c)), "spec.controlPlaneConfiguration.endpoint.host", text)


def test_template_name_must_carry_kubernetes_version() -> None:
    c = cluster(CLUSTER.replace('"1.31"', '"1.30"'))
    errors = checks(config_for(c))
    assert [(e.obj, e.field) for e in errors] == [("CloudStackMachineConfig/cp", "spec.template.name")]
    assert "does not name Kubernetes 1.30" in errors[0].message


def test_worker_group_version_is_used_for_its_template() -> None:
    worker = machine(MACHINE.replace("name: cp", "name: wk").replace("1-31", "1-30"))
    c = cluster()
    group = c.worker_groups[0]
    assert group.machine_group_ref is not None
    group.machine_group_ref.name = "wk"
    group.kubernetes_version = "1.30"
    assert checks(config_for(c, machine(), worker)) == []
    worker = machine(MACHINE.replace("name: cp", "name: wk"))
    only(checks(config_for(c, machine(), worker)), "spec.template.name", "Kubernetes 1.30")


def test_template_by_id_is_not_checked_without_cloudstack() -> None:
    mc = machine(MACHINE.replace("name: ubuntu-2204-kube-1-31", f"id: {UUID}"))
    assert checks(config_for(cluster(), mc)) == []


# --- updates -------------------------------------------------------------------------------------


def test_availability_zone_is_immutable() -> None:
    old, new = datacenter(), datacenter(DATACENTER.replace("net1", "net2"))
    only(cloudstack.datacenter_update(old, new), "spec.availabilityZones[0]", "'az-1' is immutable")


def test_availability_zones_may_be_added_but_one_must_stay() -> None:
    old = datacenter()
    added = datacenter()
    zones = added.spec.availability_zones or []
    zones.append(zones[0].model_copy(deep=True, update={"name": "az-2"}))
    assert cloudstack.datacenter_update(old, added) == []
    replaced = datacenter(DATACENTER.replace("az-1", "az-9"))
    only(
        cloudstack.datacenter_update(old, replaced),
        "spec.availabilityZones",
        "at least one availability zone",
    )


def test_deprecated_form_compares_after_defaulting() -> None:
    assert cloudstack.datacenter_update(datacenter(DEPRECATED), datacenter(DEPRECATED)) == []
    changed = datacenter(DEPRECATED.replace("net1", "net9"))
    only(
        cloudstack.datacenter_update(datacenter(DEPRECATED), changed),
        "spec.availabilityZones[0]",
        "immutable",
    )


def test_capc_zone_conversion_is_allowed() -> None:
    old = datacenter(DEPRECATED)
    new = datacenter(DEPRECATED)
    cloudstack.default_datacenter(new)
    for az, name in zip(new.spec.availability_zones or [], (UUID, UUID2), strict=True):
        az.name = name
        az.account = "someone-else"
    assert cloudstack.datacenter_update(old, new) == []


def test_paused_objects_skip_update_checks() -> None:
    old = datacenter(
        DATACENTER.replace("name: dc", "name: dc\n  annotations: {anywhere.eks.amazonaws.com/paused: 'true'}")
    )
    assert cloudstack.datacenter_update(old, datacenter(DATACENTER.replace("az-1", "az-9"))) == []
    old_mc = machine(
        MACHINE.replace("name: cp", "name: cp\n  annotations: {anywhere.eks.amazonaws.com/paused: 'true'}")
    )
    new_mc = machine()
    new_mc.spec.affinity = "anti"
    assert cloudstack.machine_update(old_mc, new_mc) == []


def test_affinity_is_immutable() -> None:
    new = machine()
    new.spec.affinity = "anti"
    only(cloudstack.machine_update(machine(), new), "spec.affinity", "immutable")


def test_affinity_group_ids_are_immutable() -> None:
    new = machine()
    new.spec.affinity_group_ids = [UUID]
    only(cloudstack.machine_update(machine(), new), "spec.affinityGroupIds", "immutable")
    assert cloudstack.machine_update(machine(), machine()) == []


def test_empty_and_unset_strings_are_the_same_zone() -> None:
    old = datacenter(DATACENTER.replace("    account: admin\n", "    account: ''\n"))
    new = datacenter(DATACENTER.replace("    account: admin\n", ""))
    assert cloudstack.datacenter_update(old, new) == []
