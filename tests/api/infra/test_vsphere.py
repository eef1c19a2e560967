from __future__ import annotations

from typing import Any

import pytest
import yaml

from anywhere.api import check_config
from anywhere.api.config import ClusterConfig
from anywhere.api.errors import FieldError
from anywhere.api.infra import vsphere
from anywhere.api.infra._machine import PAUSED_ANNOTATION
from anywhere.api.v1alpha1._base import ObjectMeta
from anywhere.api.v1alpha1._machine import UserConfiguration
from anywhere.api.v1alpha1.cluster import Cluster
from anywhere.api.v1alpha1.vsphere import VSphereDatacenterConfig, VSphereMachineConfig
from tests.api.infra.conftest import CERT, only

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILY8YXnsbhYEHdfMPmZG7eLtta7D8n0Ol7mO2pWr2fFn test@example.com"
THUMBPRINT = "1E:3B:A1:4C:B2:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE"

DATACENTER_YAML = f"""
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: VSphereDatacenterConfig
metadata:
  name: prod
  namespace: default
spec:
  datacenter: SDDC-Datacenter
  network: /SDDC-Datacenter/network/sddc-cgw-network-1
  server: vcenter.example.com
  thumbprint: "{THUMBPRINT}"
  insecure: false
  failureDomains:
  - name: fd-1
    computeCluster: Cluster-1
    resourcePool: /SDDC-Datacenter/host/Cluster-1/Resources
    datastore: /SDDC-Datacenter/datastore/ds-1
    folder: /SDDC-Datacenter/vm/prod
    network: /SDDC-Datacenter/network/fd-net-1
status:
  specValid: true
  observedGeneration: 2
  failureMessage: ""
"""

MACHINE_YAML = f"""
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: VSphereMachineConfig
metadata:
  name: prod-cp
  namespace: default
spec:
  diskGiB: 25
  datastore: /SDDC-Datacenter/datastore/WorkloadDatastore
  folder: /SDDC-Datacenter/vm/prod
  numCPUs: 4
  memoryMiB: 8192
  osFamily: bottlerocket
  resourcePool: "*/Resources"
  storagePolicyName: vSAN Default Storage Policy
  networks: [/SDDC-Datacenter/network/extra]
  template: /SDDC-Datacenter/vm/Templates/bottlerocket-kube-v1-30
  cloneMode: linkedClone
  tags: ["urn:vmomi:InventoryServiceTag:8e0ce079-0675-47d6-8665-16ada4e6dabd:GLOBAL"]
  users:
  - name: ec2-user
    sshAuthorizedKeys: ["{SSH_KEY}"]
  hostOSConfiguration:
    ntpConfiguration:
      servers: [time.example.com, 10.0.0.1, "2001:db8::1", udp://ntp.example.com:123]
    certBundles:
    - name: corp-ca
      data: |
{"".join("        " + line + chr(10) for line in CERT.splitlines())}
    bottlerocketConfiguration:
      kubernetes:
        allowedUnsafeSysctls: [net.core.somaxconn]
        clusterDNSIPs: [10.96.0.10]
        maxPods: 110
        cpuCFSQuota: true
        kubeAPIQPS: 50
        kubeAPIBurst: 100
        eventRecordQPS: 5
        registryPullQPS: 5
        imageGCHighThresholdPercent: 85
        imageGCLowThresholdPercent: 80
        providerID: vsphere://abc
        containerLogMaxSize: 10Mi
        containerLogMaxFiles: 5
        shutdownGracePeriod: 30s
        podPidsLimit: 4096
        evictionHard: {{memory.available: 100Mi}}
      kernel:
        sysctlSettings: {{vm.max_map_count: "262144"}}
      boot:
        bootKernelParameters: {{console: [tty0, ttyS0]}}
status: {{}}
"""


def datacenter(**spec: Any) -> VSphereDatacenterConfig:
    obj = VSphereDatacenterConfig.model_validate(yaml.safe_load(DATACENTER_YAML), by_name=False)
    return obj.model_copy(update={"spec": obj.spec.model_copy(update=spec)})


def machine(**spec: Any) -> VSphereMachineConfig:
    obj = VSphereMachineConfig.model_validate(yaml.safe_load(MACHINE_YAML), by_name=False)
    return obj.model_copy(update={"spec": obj.spec.model_copy(update=spec)})


def fields(errors: list[FieldError]) -> list[str]:
    return [e.field for e in errors]


# --- loading ------------------------------------------------------------------------------------


def test_full_yaml_loads_and_round_trips() -> None:
    for obj in (datacenter(), machine()):
        again = type(obj).model_validate(obj.to_dict(), by_name=False)
        assert again == obj
    m = machine()
    assert m.spec.num_cpus == 4
    assert m.spec.memory_mib == 8192
    assert m.spec.host_os_configuration is not None
    settings = m.spec.host_os_configuration.bottlerocket_configuration
    assert settings is not None
    assert settings.kubernetes is not None
    assert settings.kubernetes.cluster_dns_ips == ["10.96.0.10"]
    assert (
        "clusterDNSIPs"
        in m.to_dict()["spec"]["hostOSConfiguration"]["bottlerocketConfiguration"]["kubernetes"]
    )
    assert datacenter().to_dict()["spec"]["failureDomains"][0]["computeCluster"] == "Cluster-1"


def test_full_yaml_is_valid() -> None:
    assert vsphere.validate_datacenter(datacenter()) == []
    assert vsphere.validate_machine(machine()) == []
    assert machine_checks(machine()) == []
    assert datacenter_checks() == []


def test_unknown_field_is_refused() -> None:
    data = yaml.safe_load(MACHINE_YAML)
    data["spec"]["numCpus"] = 2
    with pytest.raises(ValueError, match="numCpus"):
        VSphereMachineConfig.model_validate(data, by_name=False)


# --- sample -------------------------------------------------------------------------------------


def sample_config(name: str = "prod") -> ClusterConfig:
    s = vsphere.sample(name)
    assert s.control_plane_machine is not None
    assert s.worker_machine is not None
    cluster = Cluster.model_validate(
        {
            "kind": "Cluster",
            "metadata": {"name": name},
            "spec": {
                "kubernetesVersion": "1.30",
                "controlPlaneConfiguration": {
                    "count": 3,
                    "endpoint": {"host": s.endpoint_host},
                    "machineGroupRef": {"kind": "VSphereMachineConfig", "name": s.control_plane_machine.name},
                },
                "workerNodeGroupConfigurations": [
                    {
                        "name": "md-0",
                        "count": 2,
                        "machineGroupRef": {"kind": "VSphereMachineConfig", "name": s.worker_machine.name},
                    }
                ],
                "datacenterRef": {"kind": "VSphereDatacenterConfig", "name": s.datacenter.name},
            },
        },
        by_name=False,
    )
    return ClusterConfig(cluster, [s.datacenter, s.control_plane_machine, s.worker_machine])


def test_sample_validates_clean() -> None:
    s = vsphere.sample("prod")
    assert s.control_plane_machine is not None
    assert s.worker_machine is not None
    assert isinstance(s.datacenter, VSphereDatacenterConfig)
    assert vsphere.validate_datacenter(s.datacenter) == []
    for m in (s.control_plane_machine, s.worker_machine):
        assert isinstance(m, VSphereMachineConfig)
        assert vsphere.validate_machine(m) == []
        vsphere.default_machine(m)
        assert vsphere.validate_machine(m) == []
    assert vsphere.create_checks(sample_config()) == []
    assert s.control_plane_machine.name == "prod-cp"
    assert s.worker_machine.name == "prod"


def test_rules_flags() -> None:
    rules = vsphere.RULES
    assert rules.name == "vsphere"
    assert rules.datacenter_kind is VSphereDatacenterConfig
    assert rules.machine_kind is VSphereMachineConfig
    assert rules.endpoint_required
    assert not rules.kindnetd_allowed
    assert not rules.control_plane_only_allowed
    assert not rules.in_place_upgrade_allowed  # refused by current EKS Anywhere outside a feature flag
    assert rules.create_checks is vsphere.create_checks
    assert rules.validate_cluster(sample_config()) == []  # every cross-object rule is a create check


def create_config(name: str = "prod") -> ClusterConfig:
    """A Cluster and objects as EKS Anywhere's own spec test files write them: placeholders that
    are a valid spec, although a create would refuse them."""
    config = sample_config(name)
    cluster = config.cluster
    assert cluster.spec.control_plane_configuration is not None
    assert cluster.spec.control_plane_configuration.endpoint is not None
    cluster.spec.control_plane_configuration.endpoint.host = "test-ip"
    dc, cp, workers = config.objects
    assert isinstance(dc, VSphereDatacenterConfig)
    assert isinstance(cp, VSphereMachineConfig)
    assert isinstance(workers, VSphereMachineConfig)
    dc.spec.thumbprint = "myTlsThumbprint"
    cp.spec.os_family = "ubuntu"
    cp.spec.template = "myTemplate"
    cp.spec.users = [UserConfiguration(name="mySshUsername", ssh_authorized_keys=["mySshAuthorizedKey"])]
    workers.spec.template = "myTemplate2"
    return config


def test_placeholders_pass_static_validation_but_not_create_checks() -> None:
    config = create_config()
    dc, cp, workers = config.objects
    assert isinstance(dc, VSphereDatacenterConfig)
    assert vsphere.validate_datacenter(dc) == []
    for m in (cp, workers):
        assert isinstance(m, VSphereMachineConfig)
        assert vsphere.validate_machine(m) == []
    assert vsphere.RULES.validate_cluster(config) == []
    errors = vsphere.create_checks(config)
    assert [(e.obj, e.field) for e in errors] == [
        ("VSphereDatacenterConfig/prod", "spec.thumbprint"),
        ("VSphereMachineConfig/prod-cp", "spec.users[0].sshAuthorizedKeys[0]"),
        ("Cluster/prod", "spec.controlPlaneConfiguration.endpoint.host"),
        ("Cluster/prod", "spec.workerNodeGroupConfigurations[0].machineGroupRef"),
        ("VSphereMachineConfig/prod-cp", "spec.template"),
        ("VSphereMachineConfig/prod", "spec.template"),
    ]


def datacenter_checks(**spec: Any) -> list[FieldError]:
    """The create checks of the sample cluster with its datacenter replaced by ``datacenter(**spec)``."""
    config = sample_config()
    config.objects[0] = datacenter(**spec)
    return vsphere.create_checks(config)


def machine_checks(m: VSphereMachineConfig) -> list[FieldError]:
    """The create checks of the sample cluster plus ``m`` (renamed ``spare``, used by no node)."""
    config = sample_config()
    m.metadata = ObjectMeta(name="spare")
    config.objects.append(m)
    return vsphere.create_checks(config)


# --- datacenter defaults and rules --------------------------------------------------------------


def test_default_datacenter_makes_network_paths_absolute() -> None:
    dc = datacenter(network="VM Network", thumbprint=THUMBPRINT, insecure=True)
    assert dc.spec.failure_domains is not None
    dc.spec.failure_domains[0].network = "fd-net"
    vsphere.default_datacenter(dc)
    assert dc.spec.network == "/SDDC-Datacenter/network/VM Network"
    assert dc.spec.failure_domains[0].network == "/SDDC-Datacenter/network/fd-net"
    assert dc.spec.thumbprint is None
    vsphere.default_datacenter(dc)
    assert dc.spec.network == "/SDDC-Datacenter/network/VM Network"


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"server": None}, "spec.server", "server is required"),
        ({"server": ""}, "spec.server", "server is required"),
        ({"datacenter": None}, "spec.datacenter", "datacenter is required"),
        ({"network": None}, "spec.network", "network is required"),
        ({"network": "/Other-DC/network/net"}, "spec.network", "must be under '/SDDC-Datacenter/network'"),
        ({"network": "/SDDC-Datacenter/vm/net"}, "spec.network", "invalid path"),
    ],
)
def test_datacenter_rule(spec: dict[str, Any], field: str, text: str) -> None:
    only(vsphere.validate_datacenter(datacenter(**spec)), field, text)


@pytest.mark.parametrize(
    ("thumbprint", "text"),
    [("ABCDEFG", "not a certificate thumbprint"), ("1E:3B:A1", "SHA-1 fingerprint")],
)
def test_thumbprint_format_is_a_create_check(thumbprint: str, text: str) -> None:
    assert vsphere.validate_datacenter(datacenter(thumbprint=thumbprint)) == []
    errors = datacenter_checks(thumbprint=thumbprint)
    only(errors, "spec.thumbprint", text)
    assert errors[0].obj == "VSphereDatacenterConfig/prod"


def test_datacenter_relative_network_is_valid() -> None:
    assert vsphere.validate_datacenter(datacenter(network="VM Network")) == []


def test_thumbprint_format_ignored_when_insecure_and_sha256_accepted() -> None:
    assert datacenter_checks(thumbprint="junk", insecure=True) == []
    sha256 = ":".join(["AB"] * 32)
    assert datacenter_checks(thumbprint=sha256) == []
    assert datacenter_checks(thumbprint=THUMBPRINT.lower()) == []


def test_datacenter_reports_every_error() -> None:
    errors = vsphere.validate_datacenter(datacenter(server=None, datacenter=None, network=None))
    assert fields(errors) == ["spec.server", "spec.datacenter", "spec.network"]


@pytest.mark.parametrize(
    ("attr", "field"),
    [
        ("name", "name"),
        ("compute_cluster", "computeCluster"),
        ("resource_pool", "resourcePool"),
        ("datastore", "datastore"),
        ("folder", "folder"),
        ("network", "network"),
    ],
)
def test_failure_domain_field_required(attr: str, field: str) -> None:
    dc = datacenter()
    assert dc.spec.failure_domains is not None
    setattr(dc.spec.failure_domains[0], attr, None)
    only(
        vsphere.validate_datacenter(dc), f"spec.failureDomains[0].{field}", f"{field} is not set or is empty"
    )


def test_failure_domain_network_path_and_unique_names() -> None:
    dc = datacenter()
    assert dc.spec.failure_domains is not None
    dc.spec.failure_domains[0].network = "/Elsewhere/network/x"
    only(vsphere.validate_datacenter(dc), "spec.failureDomains[0].network", "invalid path")

    dc = datacenter()
    assert dc.spec.failure_domains is not None
    dc.spec.failure_domains.append(dc.spec.failure_domains[0].model_copy())
    only(vsphere.validate_datacenter(dc), "spec.failureDomains[1].name", "used more than once")


# --- datacenter updates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"server": "other.example.com"}, "spec.server"),
        ({"datacenter": "Other-DC", "network": "/Other-DC/network/sddc-cgw-network-1"}, "spec.datacenter"),
        ({"network": "/SDDC-Datacenter/network/other"}, "spec.network"),
    ],
)
def test_datacenter_immutable_fields(spec: dict[str, Any], field: str) -> None:
    errors = vsphere.datacenter_update(datacenter(), datacenter(**spec))
    assert field in fields(errors)
    assert all("immutable" in e.message for e in errors)


def test_datacenter_update_allows_equivalent_network_and_thumbprint_change() -> None:
    old = datacenter(network="sddc-cgw-network-1")
    assert vsphere.datacenter_update(old, datacenter()) == []
    assert vsphere.datacenter_update(datacenter(), datacenter(thumbprint=None, insecure=True)) == []


def test_datacenter_update_skipped_when_paused() -> None:
    old = datacenter()
    old.metadata = ObjectMeta(name="prod", annotations={PAUSED_ANNOTATION: "true"})
    assert vsphere.datacenter_update(old, datacenter(server="elsewhere")) == []


# --- machine defaults and rules -----------------------------------------------------------------


def test_default_machine() -> None:
    m = VSphereMachineConfig(metadata=ObjectMeta(name="m"))
    vsphere.default_machine(m)
    assert m.spec.os_family == "bottlerocket"
    assert m.spec.memory_mib == 8192
    assert m.spec.num_cpus == 2
    assert m.spec.users is not None
    assert m.spec.users[0].name == "ec2-user"
    assert m.spec.disk_gib is None  # depends on the template: left to the provider

    ubuntu = VSphereMachineConfig.model_validate(
        {"kind": "VSphereMachineConfig", "spec": {"osFamily": "ubuntu", "memoryMiB": 1024, "numCPUs": 0}},
        by_name=False,
    )
    vsphere.default_machine(ubuntu)
    assert ubuntu.spec.memory_mib == 2048
    assert ubuntu.spec.num_cpus == 2
    assert ubuntu.spec.users is not None
    assert ubuntu.spec.users[0].name == "capv"


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"datastore": None}, "spec.datastore", "datastore is required"),
        ({"resource_pool": ""}, "spec.resourcePool", "resourcePool is required"),
    ],
)
def test_machine_rule(spec: dict[str, Any], field: str, text: str) -> None:
    only(vsphere.validate_machine(machine(**spec)), field, text)


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"memory_mib": 1024}, "spec.memoryMiB", "below the minimum of 2048"),
        ({"num_cpus": 0}, "spec.numCPUs", "at least 1"),
        ({"disk_gib": -1}, "spec.diskGiB", "cannot be negative"),
        ({"clone_mode": "instantClone"}, "spec.cloneMode", "fullClone, linkedClone"),
        ({"networks": ["a", "b", "c"]}, "spec.networks", "at most 2"),
        ({"networks": ["a", ""]}, "spec.networks[1]", "cannot be empty"),
    ],
)
def test_machine_create_check(spec: dict[str, Any], field: str, text: str) -> None:
    assert vsphere.validate_machine(machine(**spec)) == []
    errors = machine_checks(machine(**spec))
    only(errors, field, text)
    assert errors[0].obj == "VSphereMachineConfig/spare"


def test_os_family_must_be_supported() -> None:
    errors = vsphere.validate_machine(machine(os_family="windows"))
    assert "spec.osFamily" in fields(errors)
    message = next(e.message for e in errors if e.field == "spec.osFamily")
    assert "bottlerocket, ubuntu, redhat" in message


def test_template_required_for_ubuntu_and_redhat() -> None:
    for os_family in ("ubuntu", "redhat"):
        m = machine(os_family=os_family, template=None, host_os_configuration=None)
        m.spec.users = [m.spec.users[0].model_copy(update={"name": "capv"})] if m.spec.users else None
        assert vsphere.validate_machine(m) == []
        only(machine_checks(m), "spec.template", "template is required")
    assert machine_checks(machine(template=None)) == []


def test_bottlerocket_user_must_be_ec2_user() -> None:
    m = machine()
    assert m.spec.users is not None
    m.spec.users[0].name = "capv"
    assert vsphere.validate_machine(m) == []
    only(machine_checks(m), "spec.users[0].name", "use 'ec2-user' for Bottlerocket")


def test_bottlerocket_user_checked_once_defaulted() -> None:
    m = machine()
    m.spec.users = None
    assert vsphere.validate_machine(m) == []
    vsphere.default_machine(m)
    assert vsphere.validate_machine(m) == []


def test_ssh_key_format_is_a_create_check() -> None:
    m = machine()
    assert m.spec.users is not None
    m.spec.users[0].ssh_authorized_keys = ["ssh-rsa AAAA..."]
    assert vsphere.validate_machine(m) == []
    only(machine_checks(m), "spec.users[0].sshAuthorizedKeys[0]", "not a valid SSH public key")
    m.spec.users[0].ssh_authorized_keys = ["ssh-rsa " + SSH_KEY.split()[1]]  # blob names another type
    only(machine_checks(m), "spec.users[0].sshAuthorizedKeys[0]", "not a valid SSH public key")
    m.spec.users[0].ssh_authorized_keys = ["", f'no-pty,from="10.0.0.0/8" {SSH_KEY}']
    assert machine_checks(m) == []


def host_os(m: VSphereMachineConfig) -> Any:
    assert m.spec.host_os_configuration is not None
    return m.spec.host_os_configuration


def test_ntp_servers() -> None:
    m = machine()
    host_os(m).ntp_configuration.servers = []
    only(vsphere.validate_machine(m), "spec.hostOSConfiguration.ntpConfiguration.servers", "cannot be empty")
    m = machine()
    host_os(m).ntp_configuration.servers = ["time.example.com", "bad server", "udp://:99999"]
    errors = vsphere.validate_machine(m)
    assert fields(errors) == [
        "spec.hostOSConfiguration.ntpConfiguration.servers[1]",
        "spec.hostOSConfiguration.ntpConfiguration.servers[2]",
    ]
    assert "'bad server' is not a valid NTP server" in errors[0].message


def test_cert_bundles() -> None:
    m = machine()
    host_os(m).cert_bundles[0].name = ""
    only(vsphere.validate_machine(m), "spec.hostOSConfiguration.certBundles[0].name", "name cannot be empty")
    m = machine()
    host_os(m).cert_bundles[0].data = "not a certificate"
    only(vsphere.validate_machine(m), "spec.hostOSConfiguration.certBundles[0].data", "certificate PEM")
    m = machine()
    host_os(m).cert_bundles[0].data = CERT.replace("MIIBjTCC", "MIIBjTCD")
    only(
        vsphere.validate_machine(m),
        "spec.hostOSConfiguration.certBundles[0].data",
        "not a DER-encoded X.509 certificate",
    )
    m = machine()
    host_os(m).cert_bundles[0].data = CERT + CERT
    assert vsphere.validate_machine(m) == []


def test_bottlerocket_only_host_settings() -> None:
    m = machine(os_family="ubuntu")
    assert m.spec.users is not None
    m.spec.users[0].name = "capv"
    errors = vsphere.validate_machine(m)
    assert fields(errors) == [
        "spec.hostOSConfiguration.certBundles[0]",
        "spec.hostOSConfiguration.bottlerocketConfiguration",
    ]
    assert "only be used with osFamily 'bottlerocket'" in errors[0].message
    assert "only be used with osFamily 'bottlerocket'" in errors[1].message


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        (
            lambda br: setattr(br.kubernetes, "allowed_unsafe_sysctls", [""]),
            "kubernetes.allowedUnsafeSysctls[0]",
            "empty",
        ),
        (
            lambda br: setattr(br.kubernetes, "cluster_dns_ips", ["10.96.0.300"]),
            "kubernetes.clusterDNSIPs[0]",
            "valid IP",
        ),
        (lambda br: setattr(br.kubernetes, "max_pods", -1), "kubernetes.maxPods", "cannot be negative"),
        (
            lambda br: setattr(br.kernel, "sysctl_settings", {"": "1"}),
            "kernel.sysctlSettings",
            "key cannot be empty",
        ),
        (
            lambda br: setattr(br.boot, "boot_kernel_parameters", {"": []}),
            "boot.bootKernelParameters",
            "key cannot",
        ),
    ],
)
def test_bottlerocket_settings(change: Any, field: str, text: str) -> None:
    m = machine()
    change(host_os(m).bottlerocket_configuration)
    only(vsphere.validate_machine(m), f"spec.hostOSConfiguration.bottlerocketConfiguration.{field}", text)


# --- machine updates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [({"os_family": "ubuntu"}, "spec.osFamily"), ({"storage_policy_name": "gold"}, "spec.storagePolicyName")],
)
def test_machine_immutable_fields(spec: dict[str, Any], field: str) -> None:
    only(vsphere.machine_update(machine(), machine(**spec)), field, "immutable")


def test_machine_update_allows_the_rest() -> None:
    changed = machine(
        template="/SDDC-Datacenter/vm/Templates/bottlerocket-kube-v1-31", num_cpus=8, disk_gib=50
    )
    assert vsphere.machine_update(machine(), changed) == []
    assert vsphere.machine_update(machine(os_family=None), machine()) == []  # defaults to bottlerocket
    assert vsphere.machine_update(machine(storage_policy_name=""), machine(storage_policy_name=None)) == []


def test_machine_update_skipped_when_paused() -> None:
    old = machine()
    old.metadata = ObjectMeta(name="prod-cp", annotations={PAUSED_ANNOTATION: "true"})
    assert vsphere.machine_update(old, machine(os_family="ubuntu")) == []


# --- cluster-wide create checks -----------------------------------------------------------------


def with_machines(**specs: dict[str, Any]) -> ClusterConfig:
    """The sample cluster with its machine configs (``cp``, ``workers``, ``etcd``) changed."""
    config = sample_config()
    cp, workers = config.objects[1], config.objects[2]
    assert isinstance(cp, VSphereMachineConfig)
    assert isinstance(workers, VSphereMachineConfig)
    for obj, key in ((cp, "cp"), (workers, "workers")):
        obj.spec = obj.spec.model_copy(update=specs.get(key, {}))
    if "etcd" in specs:
        etcd = cp.model_copy(deep=True, update={"metadata": ObjectMeta(name="prod-etcd")})
        etcd.spec = etcd.spec.model_copy(update=specs["etcd"])
        config.objects.append(etcd)
        config.cluster.spec.external_etcd_configuration = Cluster.model_validate(
            {
                "kind": "Cluster",
                "spec": {
                    "externalEtcdConfiguration": {
                        "count": 3,
                        "machineGroupRef": {"kind": "VSphereMachineConfig", "name": "prod-etcd"},
                    }
                },
            },
            by_name=False,
        ).spec.external_etcd_configuration
    return config


def test_workers_must_share_control_plane_os_family() -> None:
    config = with_machines(workers={"os_family": "ubuntu", "template": "ubuntu-2204-kube-1-30"})
    assert vsphere.RULES.validate_cluster(config) == []
    errors = vsphere.create_checks(config)
    only(errors, "spec.workerNodeGroupConfigurations[0].machineGroupRef", "must have the same osFamily")
    assert errors[0].obj == "Cluster/prod"


def test_etcd_must_share_control_plane_os_family_and_template() -> None:
    config = with_machines(
        cp={"template": "br-1-30"}, workers={"template": "br-1-30"}, etcd={"os_family": "ubuntu"}
    )
    only(vsphere.create_checks(config), "spec.externalEtcdConfiguration.machineGroupRef", "same osFamily")
    config = with_machines(
        cp={"template": "br-1-30-a"}, workers={"template": "br-1-30-a"}, etcd={"template": "br-1-30-b"}
    )
    only(vsphere.create_checks(config), "spec.externalEtcdConfiguration.machineGroupRef", "same template")
    config = with_machines(etcd={})
    assert vsphere.create_checks(config) == []


def test_endpoint_must_be_an_ip() -> None:
    config = sample_config()
    cp = config.cluster.spec.control_plane_configuration
    assert cp is not None
    assert cp.endpoint is not None
    cp.endpoint.host = "api.example.com"
    only(vsphere.create_checks(config), "spec.controlPlaneConfiguration.endpoint.host", "not an IP address")
    cp.endpoint.host = "fd00::10"
    assert vsphere.create_checks(config) == []


def test_template_must_name_kubernetes_version() -> None:
    config = with_machines(cp={"template": "/DC/vm/bottlerocket-kube-v1-29"})
    errors = vsphere.create_checks(config)
    only(errors, "spec.template", "does not name Kubernetes version 1.30")
    assert errors[0].obj == "VSphereMachineConfig/prod-cp"

    config = with_machines(cp={"template": "br-1.30"}, workers={"template": "br-1_30"})
    assert vsphere.create_checks(config) == []

    config = with_machines(cp={"template": "br-130"}, workers={"template": "br-1-30"})
    config.cluster.worker_groups[0].kubernetes_version = "1.29"
    errors = vsphere.create_checks(config)
    only(errors, "spec.template", "1.29")
    assert errors[0].obj == "VSphereMachineConfig/prod"


def test_in_place_upgrades_are_refused_on_vsphere() -> None:
    config = sample_config()
    data = config.cluster.to_dict()
    data["spec"]["controlPlaneConfiguration"]["upgradeRolloutStrategy"] = {"type": "InPlace"}
    config.cluster = Cluster.model_validate(data, by_name=False)
    errors = check_config(config)
    assert any(
        e.field == "spec.controlPlaneConfiguration.upgradeRolloutStrategy.type"
        and "InPlace upgrades are only supported on tinkerbell" in e.message
        for e in errors
    ), errors


def test_missing_machine_configs_are_left_to_cluster_validation() -> None:
    config = sample_config()
    config.objects = config.objects[:1]
    assert vsphere.create_checks(config) == []
