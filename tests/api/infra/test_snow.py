from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import FieldError
from anywhere.api.infra import snow
from anywhere.api.v1alpha1._base import ObjectMeta, Ref
from anywhere.api.v1alpha1._machine import (
    BottlerocketBootSettings,
    BottlerocketConfiguration,
    BottlerocketKernelSettings,
    BottlerocketKubernetesSettings,
    CertBundle,
    HostOSConfiguration,
    NTPConfiguration,
)
from anywhere.api.v1alpha1.cluster import (
    Cluster,
    ClusterSpec,
    ControlPlaneConfiguration,
    ExternalEtcdConfiguration,
)
from anywhere.api.v1alpha1.snow import (
    IPPool,
    SnowDatacenterConfig,
    SnowDirectNetworkInterface,
    SnowIPPool,
    SnowMachineConfig,
    SnowNetwork,
    SnowVolume,
)
from tests.api.infra.conftest import CERT, load

DATACENTER_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: SnowDatacenterConfig
metadata:
  name: mycluster
spec:
  identityRef:
    kind: Secret
    name: mycluster-snow-credentials
"""

MACHINE_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: SnowMachineConfig
metadata:
  name: mycluster-cp
  namespace: default
spec:
  amiID: ami-0123456789abcdef0
  instanceType: sbe-c.xlarge
  physicalNetworkConnector: QSFP
  sshKeyName: my-key
  devices:
  - 10.0.0.11
  - 10.0.0.12
  osFamily: bottlerocket
  containersVolume:
    size: 25
    type: sbp1
  nonRootVolumes:
  - deviceName: /dev/sdc
    size: 10
    iops: 100
    encrypted: true
    encryptionKey: key-1
  network:
    directNetworkInterfaces:
    - index: 1
      primary: true
      dhcp: true
    - index: 2
      vlanID: 42
      ipPoolRef:
        kind: SnowIPPool
        name: pool-1
  hostOSConfiguration:
    ntpConfiguration:
      servers:
      - time.google.com
      - 192.168.0.1
      - 2001:db8::1
      - udp://ntp.example.com:123
    certBundles:
    - name: my-ca
      data: |
CERT
    bottlerocketConfiguration:
      kubernetes:
        allowedUnsafeSysctls:
        - net.core.somaxconn
        clusterDNSIPs:
        - 10.96.0.10
        maxPods: 100
        cpuCFSQuota: false
      kernel:
        sysctlSettings:
          net.core.wmem_max: "8388608"
      boot:
        bootKernelParameters:
          slub_debug:
          - options,slabs
status:
  specValid: true
  failureMessage: none
""".replace("CERT\n", "".join(f"        {line}\n" for line in CERT.splitlines()))

POOL_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: SnowIPPool
metadata:
  name: pool-1
spec:
  pools:
  - ipStart: 10.1.0.10
    ipEnd: 10.1.0.50
    subnet: 10.1.0.0/24
    gateway: 10.1.0.1
  - ipStart: 10.2.0.10
    ipEnd: 10.2.0.20
    subnet: 10.2.0.0/24
    gateway: 10.2.0.1
"""


def _dc(text: str = DATACENTER_YAML) -> SnowDatacenterConfig:
    return load(SnowDatacenterConfig, text)


def _mc(text: str = MACHINE_YAML) -> SnowMachineConfig:
    return load(SnowMachineConfig, text)


def _pool(text: str = POOL_YAML) -> SnowIPPool:
    return load(SnowIPPool, text)


def _one(errors: list[FieldError], field: str, text: str) -> FieldError:
    matching = [e for e in errors if e.field == field]
    assert len(matching) == 1, errors
    assert text in matching[0].message, matching[0].message
    return matching[0]


def _host_os(mc: SnowMachineConfig) -> HostOSConfiguration:
    assert mc.spec.host_os_configuration is not None
    return mc.spec.host_os_configuration


def _dni(mc: SnowMachineConfig, i: int) -> SnowDirectNetworkInterface:
    assert mc.spec.network is not None
    assert mc.spec.network.direct_network_interfaces is not None
    return mc.spec.network.direct_network_interfaces[i]


# --- sample, loading, round trips ---------------------------------------------------------


def test_sample_validates() -> None:
    sample = snow.sample("mycluster")
    assert isinstance(sample.datacenter, SnowDatacenterConfig)
    assert sample.datacenter.name == "mycluster"
    assert snow.validate_datacenter(sample.datacenter) == []
    assert isinstance(sample.control_plane_machine, SnowMachineConfig)
    assert isinstance(sample.worker_machine, SnowMachineConfig)
    assert sample.worker_machine.name == "mycluster"
    assert snow.validate_machine(sample.control_plane_machine) == []
    assert snow.validate_machine(sample.worker_machine) == []
    assert sample.endpoint_host
    cluster = Cluster(
        metadata=ObjectMeta(name="mycluster"),
        spec=ClusterSpec(
            datacenter_ref=Ref(kind="SnowDatacenterConfig", name="mycluster"),
            control_plane_configuration=ControlPlaneConfiguration(
                count=3,
                machine_group_ref=Ref(kind="SnowMachineConfig", name=sample.control_plane_machine.name),
            ),
        ),
    )
    objects = [sample.datacenter, sample.control_plane_machine, sample.worker_machine]
    assert snow.validate_cluster(ClusterConfig(cluster, objects)) == []


def test_sample_is_stable_under_defaults() -> None:
    sample = snow.sample("c")
    assert isinstance(sample.control_plane_machine, SnowMachineConfig)
    before = sample.control_plane_machine.model_copy(deep=True)
    snow.default_machine(sample.control_plane_machine)
    assert sample.control_plane_machine == before


def test_full_yaml_loads_and_validates() -> None:
    mc = _mc()
    assert mc.spec.ami_id == "ami-0123456789abcdef0"
    assert _dni(mc, 1).vlan_id == 42
    host = _host_os(mc)
    assert host.bottlerocket_configuration is not None
    assert host.bottlerocket_configuration.kubernetes is not None
    assert host.bottlerocket_configuration.kubernetes.cluster_dns_ips == ["10.96.0.10"]
    assert snow.validate_machine(mc) == []
    assert snow.validate_datacenter(_dc()) == []
    assert snow.validate_ip_pool(_pool()) == []


@pytest.mark.parametrize(
    ("kind", "text"),
    [(SnowDatacenterConfig, DATACENTER_YAML), (SnowMachineConfig, MACHINE_YAML), (SnowIPPool, POOL_YAML)],
)
def test_round_trip(kind: type[SnowDatacenterConfig | SnowMachineConfig | SnowIPPool], text: str) -> None:
    obj = kind.model_validate(yaml.safe_load(text), by_name=False)
    data = obj.to_dict()
    assert kind.model_validate(data, by_name=False) == obj
    assert data == yaml.safe_load(text)


def test_sample_round_trip() -> None:
    sample = snow.sample("c")
    for obj in (sample.datacenter, sample.control_plane_machine):
        assert obj is not None
        assert type(obj).model_validate(obj.to_dict(), by_name=False) == obj


def test_unknown_field_refused() -> None:
    with pytest.raises(ValueError, match="amiId"):
        _mc(MACHINE_YAML.replace("amiID", "amiId"))


def test_rules_registration() -> None:
    rules = snow.RULES
    assert rules.name == "snow"
    assert rules.datacenter_kind is SnowDatacenterConfig
    assert rules.machine_kind is SnowMachineConfig
    assert rules.extra_kinds == (SnowIPPool,)
    assert rules.endpoint_required
    assert not rules.control_plane_only_allowed
    assert not rules.in_place_upgrade_allowed
    assert not rules.kindnetd_allowed


# --- SnowDatacenterConfig -----------------------------------------------------------------


def test_datacenter_default_identity_ref() -> None:
    dc = SnowDatacenterConfig(metadata=ObjectMeta(name="c1"))
    snow.default_datacenter(dc)
    assert dc.spec.identity_ref == Ref(kind="Secret", name="c1-snow-credentials")
    assert snow.validate_datacenter(dc) == []


def test_datacenter_default_keeps_partial_ref() -> None:
    dc = _dc()
    assert dc.spec.identity_ref is not None
    dc.spec.identity_ref.kind = None
    snow.default_datacenter(dc)
    assert dc.spec.identity_ref.kind is None


def test_datacenter_identity_name_required() -> None:
    dc = _dc()
    assert dc.spec.identity_ref is not None
    dc.spec.identity_ref.name = ""
    error = _one(snow.validate_datacenter(dc), "spec.identityRef.name", "identityRef name is required")
    assert error.obj == "SnowDatacenterConfig/mycluster"


def test_datacenter_identity_missing_entirely() -> None:
    errors = snow.validate_datacenter(SnowDatacenterConfig(metadata=ObjectMeta(name="x")))
    assert {e.field for e in errors} == {"spec.identityRef.name", "spec.identityRef.kind"}


def test_datacenter_identity_kind_required() -> None:
    dc = _dc()
    assert dc.spec.identity_ref is not None
    dc.spec.identity_ref.kind = None
    _one(snow.validate_datacenter(dc), "spec.identityRef.kind", "identityRef kind is required")


def test_datacenter_identity_kind_secret_only() -> None:
    dc = _dc()
    assert dc.spec.identity_ref is not None
    dc.spec.identity_ref.kind = "OIDCConfig"
    _one(snow.validate_datacenter(dc), "spec.identityRef.kind", "the only supported kind is Secret")


def test_datacenter_has_no_immutable_fields() -> None:
    old, new = _dc(), _dc()
    assert new.spec.identity_ref is not None
    new.spec.identity_ref.name = "other"
    assert snow.RULES.datacenter_update(old, new) == []


# --- SnowMachineConfig --------------------------------------------------------------------


def test_machine_defaults() -> None:
    mc = SnowMachineConfig(metadata=ObjectMeta(name="m"))
    snow.default_machine(mc)
    assert mc.spec.instance_type == "sbe-c.large"
    assert mc.spec.physical_network_connector == "SFP_PLUS"


def test_machine_defaults_keep_values() -> None:
    mc = _mc()
    snow.default_machine(mc)
    assert mc.spec.instance_type == "sbe-c.xlarge"
    assert mc.spec.physical_network_connector == "QSFP"


@pytest.mark.parametrize("value", ["sbe-c.large", "sbe-c.4xlarge", "sbe-g.2xlarge", "sbe-c.xlarge"])
def test_machine_instance_type_valid(value: str) -> None:
    mc = _mc()
    mc.spec.instance_type = value
    assert snow.validate_machine(mc) == []


@pytest.mark.parametrize("value", ["", "m5.large", "sbe-c.huge", "sbe-x.large"])
def test_machine_instance_type_invalid(value: str) -> None:
    mc = _mc()
    mc.spec.instance_type = value
    _one(snow.validate_machine(mc), "spec.instanceType", "is not supported")


def test_machine_physical_network_connector() -> None:
    mc = _mc()
    mc.spec.physical_network_connector = "SFP"
    error = _one(snow.validate_machine(mc), "spec.physicalNetworkConnector", "is not supported")
    assert "SFP_PLUS, QSFP, RJ45" in error.message


@pytest.mark.parametrize("devices", [None, []])
def test_machine_devices_required(devices: list[str] | None) -> None:
    mc = _mc()
    mc.spec.devices = devices
    _one(snow.validate_machine(mc), "spec.devices", "at least one")


def test_machine_device_must_be_ip() -> None:
    mc = _mc()
    mc.spec.devices = ["10.0.0.1", "device-1"]
    _one(snow.validate_machine(mc), "spec.devices[1]", "not a device IP address")


def test_machine_os_family_required() -> None:
    mc = _mc()
    mc.spec.os_family = None
    mc.spec.host_os_configuration = None
    _one(snow.validate_machine(mc), "spec.osFamily", "osFamily is required")


def test_machine_os_family_supported() -> None:
    mc = _mc()
    mc.spec.os_family = "redhat"
    mc.spec.host_os_configuration = None
    _one(snow.validate_machine(mc), "spec.osFamily", "bottlerocket, ubuntu")


@pytest.mark.parametrize("network", [None, SnowNetwork(), SnowNetwork(direct_network_interfaces=[])])
def test_machine_dni_required(network: SnowNetwork | None) -> None:
    mc = _mc()
    mc.spec.network = network
    _one(snow.validate_machine(mc), "spec.network.directNetworkInterfaces", "at least one")


def test_machine_dni_at_most_eight() -> None:
    mc = _mc()
    dnis = [SnowDirectNetworkInterface(index=i, dhcp=True, primary=i == 1) for i in range(1, 9)]
    dnis.append(SnowDirectNetworkInterface(dhcp=True))
    mc.spec.network = SnowNetwork(direct_network_interfaces=dnis)
    _one(snow.validate_machine(mc), "spec.network.directNetworkInterfaces", "at most 8")


@pytest.mark.parametrize("primaries", [0, 2])
def test_machine_exactly_one_primary_dni(primaries: int) -> None:
    mc = _mc()
    _dni(mc, 0).primary = primaries >= 1
    _dni(mc, 1).primary = primaries >= 2
    _one(snow.validate_machine(mc), "spec.network.directNetworkInterfaces", "exactly one")


@pytest.mark.parametrize("index", [0, 9])
def test_machine_dni_index_range(index: int) -> None:
    mc = _mc()
    _dni(mc, 1).index = index
    _one(snow.validate_machine(mc), "spec.network.directNetworkInterfaces[1].index", "between 1 and 8")


@pytest.mark.parametrize("vlan", [-1, 4096])
def test_machine_dni_vlan_range(vlan: int) -> None:
    mc = _mc()
    _dni(mc, 1).vlan_id = vlan
    _one(snow.validate_machine(mc), "spec.network.directNetworkInterfaces[1].vlanID", "between 0 and 4095")


def test_machine_dni_ip_pool_ref_kind_and_name() -> None:
    mc = _mc()
    _dni(mc, 1).ip_pool_ref = Ref(kind="IPPool")
    errors = snow.validate_machine(mc)
    _one(errors, "spec.network.directNetworkInterfaces[1].ipPoolRef.kind", "use SnowIPPool")
    _one(errors, "spec.network.directNetworkInterfaces[1].ipPoolRef.name", "name is required")


def test_machine_bottlerocket_needs_containers_volume() -> None:
    mc = _mc()
    mc.spec.containers_volume = None
    _one(snow.validate_machine(mc), "spec.containersVolume", "required for Bottlerocket")


def test_machine_bottlerocket_containers_volume_size() -> None:
    mc = _mc()
    mc.spec.containers_volume = SnowVolume(size=24)
    _one(snow.validate_machine(mc), "spec.containersVolume.size", "at least 25 GiB")


def test_machine_ubuntu_containers_volume_optional_but_sized() -> None:
    mc = _mc()
    mc.spec.os_family = "ubuntu"
    mc.spec.host_os_configuration = None
    mc.spec.containers_volume = None
    assert snow.validate_machine(mc) == []
    mc.spec.containers_volume = SnowVolume(size=7)
    _one(snow.validate_machine(mc), "spec.containersVolume.size", "at least 8 GiB")
    mc.spec.containers_volume = SnowVolume(size=8)
    assert snow.validate_machine(mc) == []


def test_machine_containers_volume_size_required() -> None:
    mc = _mc()
    mc.spec.containers_volume = SnowVolume(type="sbp1")
    _one(snow.validate_machine(mc), "spec.containersVolume.size", "size is required")


def test_machine_non_root_volume_device_name_required() -> None:
    mc = _mc()
    mc.spec.non_root_volumes = [SnowVolume(size=10)]
    _one(snow.validate_machine(mc), "spec.nonRootVolumes[0].deviceName", "deviceName is required")


def test_machine_non_root_volume_device_name_reserved() -> None:
    mc = _mc()
    mc.spec.non_root_volumes = [SnowVolume(device_name="/dev/sda2", size=10)]
    _one(snow.validate_machine(mc), "spec.nonRootVolumes[0].deviceName", "reserved")


@pytest.mark.parametrize(("size", "text"), [(None, "size is required"), (7, "at least 8 GiB")])
def test_machine_non_root_volume_size(size: int | None, text: str) -> None:
    mc = _mc()
    mc.spec.non_root_volumes = [
        SnowVolume(device_name="/dev/sdc"),
        SnowVolume(device_name="/dev/sdd", size=size),
    ]
    errors = snow.validate_machine(mc)
    _one(errors, "spec.nonRootVolumes[0].size", "size is required")
    _one(errors, "spec.nonRootVolumes[1].size", text)


def test_machine_has_no_immutable_fields() -> None:
    old, new = _mc(), _mc()
    new.spec.instance_type = "sbe-c.2xlarge"
    assert snow.RULES.machine_update(old, new) == []


# --- hostOSConfiguration ------------------------------------------------------------------

HOST = "spec.hostOSConfiguration"


def test_host_os_ntp_servers_required() -> None:
    mc = _mc()
    _host_os(mc).ntp_configuration = NTPConfiguration(servers=[])
    _one(snow.validate_machine(mc), f"{HOST}.ntpConfiguration.servers", "cannot be empty")


@pytest.mark.parametrize("server", ["", "bad server", "udp://", "ntp.example.com:notaport"])
def test_host_os_ntp_server_invalid(server: str) -> None:
    mc = _mc()
    _host_os(mc).ntp_configuration = NTPConfiguration(servers=["pool.ntp.org", server])
    _one(snow.validate_machine(mc), f"{HOST}.ntpConfiguration.servers[1]", "not a valid NTP server")


def test_host_os_cert_bundles_bottlerocket_only() -> None:
    mc = _mc()
    mc.spec.os_family = "ubuntu"
    _host_os(mc).bottlerocket_configuration = None
    _one(snow.validate_machine(mc), f"{HOST}.certBundles[0]", "only be used with osFamily 'bottlerocket'")


def test_host_os_cert_bundle_name_required() -> None:
    mc = _mc()
    _host_os(mc).cert_bundles = [CertBundle(data=CERT)]
    _one(snow.validate_machine(mc), f"{HOST}.certBundles[0].name", "name cannot be empty")


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("", "not a PEM certificate bundle"),
        ("not a certificate", "not a PEM certificate bundle"),
        ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "not valid base64"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not a DER-encoded X.509 certificate",
        ),
        (CERT + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate 2"),
    ],
)
def test_host_os_cert_bundle_data(data: str, text: str) -> None:
    mc = _mc()
    _host_os(mc).cert_bundles = [CertBundle(name="ca", data=data)]
    _one(snow.validate_machine(mc), f"{HOST}.certBundles[0].data", text)


def test_host_os_cert_bundle_with_two_certificates() -> None:
    mc = _mc()
    _host_os(mc).cert_bundles = [CertBundle(name="ca", data=CERT + CERT)]
    assert snow.validate_machine(mc) == []


def test_host_os_bottlerocket_configuration_bottlerocket_only() -> None:
    mc = _mc()
    mc.spec.os_family = "ubuntu"
    _host_os(mc).cert_bundles = None
    _one(
        snow.validate_machine(mc),
        f"{HOST}.bottlerocketConfiguration",
        "only be used with osFamily 'bottlerocket'",
    )


def test_host_os_bottlerocket_settings() -> None:
    mc = _mc()
    _host_os(mc).bottlerocket_configuration = BottlerocketConfiguration(
        kubernetes=BottlerocketKubernetesSettings(
            allowed_unsafe_sysctls=["net.ok", ""], cluster_dns_ips=["10.96.0.10", "10.96.0"], max_pods=-1
        ),
        kernel=BottlerocketKernelSettings(sysctl_settings={"": "1"}),
        boot=BottlerocketBootSettings(boot_kernel_parameters={"": ["x"]}),
    )
    errors = snow.validate_machine(mc)
    where = f"{HOST}.bottlerocketConfiguration"
    _one(errors, f"{where}.kubernetes.allowedUnsafeSysctls[1]", "empty string")
    _one(errors, f"{where}.kubernetes.clusterDNSIPs[1]", "not a valid IP address")
    _one(errors, f"{where}.kubernetes.maxPods", "negative")
    _one(errors, f"{where}.kernel.sysctlSettings", "key cannot be empty")
    _one(errors, f"{where}.boot.bootKernelParameters", "key cannot be empty")


# --- rules spanning the Cluster -----------------------------------------------------------


def _config(*objects: SnowMachineConfig | SnowIPPool, etcd: str | None = None) -> ClusterConfig:
    spec = ClusterSpec(datacenter_ref=Ref(kind="SnowDatacenterConfig", name="mycluster"))
    if etcd is not None:
        spec.external_etcd_configuration = ExternalEtcdConfiguration(
            count=3, machine_group_ref=Ref(kind="SnowMachineConfig", name=etcd)
        )
    return ClusterConfig(Cluster(metadata=ObjectMeta(name="mycluster"), spec=spec), [_dc(), *objects])


def test_cluster_ip_pool_must_exist() -> None:
    mc = _mc()
    error = _one(
        snow.validate_cluster(_config(mc)),
        "spec.network.directNetworkInterfaces[1].ipPoolRef.name",
        "SnowIPPool 'pool-1' is not in the cluster configuration",
    )
    assert error.obj == "SnowMachineConfig/mycluster-cp"
    assert snow.validate_cluster(_config(mc, _pool())) == []


def _etcd_machine(*dnis: SnowDirectNetworkInterface) -> SnowMachineConfig:
    mc = _mc()
    mc.metadata.name = "etcd"
    mc.spec.network = SnowNetwork(direct_network_interfaces=list(dnis))
    return mc


def test_cluster_etcd_machines_need_static_ips() -> None:
    etcd = _etcd_machine(
        SnowDirectNetworkInterface(index=1, primary=True, ip_pool_ref=Ref(kind="SnowIPPool", name="pool-1"))
    )
    assert snow.validate_cluster(_config(etcd, _pool(), etcd="etcd")) == []


def test_cluster_etcd_machines_refuse_dhcp() -> None:
    etcd = _etcd_machine(SnowDirectNetworkInterface(index=1, primary=True, dhcp=True))
    errors = snow.validate_cluster(_config(etcd, _pool(), etcd="etcd"))
    _one(errors, "spec.network.directNetworkInterfaces[0].dhcp", "can not use DHCP")


def test_cluster_etcd_machines_need_ip_pool() -> None:
    etcd = _etcd_machine(SnowDirectNetworkInterface(index=1, primary=True))
    errors = snow.validate_cluster(_config(etcd, _pool(), etcd="etcd"))
    _one(errors, "spec.network.directNetworkInterfaces[0].ipPoolRef", "ipPoolRef is required")


def test_cluster_dhcp_fine_for_stacked_etcd() -> None:
    mc = _mc()
    mc.spec.network = SnowNetwork(
        direct_network_interfaces=[SnowDirectNetworkInterface(primary=True, dhcp=True)]
    )
    assert snow.validate_cluster(_config(mc)) == []


# --- SnowIPPool ---------------------------------------------------------------------------

P = "spec.pools[0]"


def _set(**values: str | None) -> Callable[[IPPool], None]:
    def apply(pool: IPPool) -> None:
        for key, value in values.items():
            setattr(pool, key, value)

    return apply


def _pool_errors(change: Callable[[IPPool], None]) -> list[FieldError]:
    pool = _pool()
    assert pool.spec.pools is not None
    change(pool.spec.pools[0])
    return snow.validate_ip_pool(pool)


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        (_set(ip_start=None), f"{P}.ipStart", "ipStart is required"),
        (_set(ip_start="10.1.0.300"), f"{P}.ipStart", "not a valid IP address"),
        (_set(ip_end=""), f"{P}.ipEnd", "ipEnd is required"),
        (_set(ip_end="ten"), f"{P}.ipEnd", "not a valid IP address"),
        (_set(gateway=None), f"{P}.gateway", "gateway is required"),
        (_set(gateway="10.1.0"), f"{P}.gateway", "not a valid IP address"),
        (_set(subnet=None), f"{P}.subnet", "subnet is required"),
        (_set(subnet="10.1.0.0/33"), f"{P}.subnet", "not a subnet in CIDR form"),
        (_set(ip_start="10.1.0.60"), P, "must be smaller than ipEnd"),
        (_set(ip_start="10.1.0.50"), P, "must be smaller than ipEnd"),
        (_set(ip_start="fd00::1"), P, "same IP version"),
        (_set(ip_start="10.9.0.10"), f"{P}.ipStart", "not inside the subnet 10.1.0.0/24"),
        (_set(ip_end="10.1.1.50"), f"{P}.ipEnd", "not inside the subnet"),
        (_set(gateway="10.9.0.1"), f"{P}.gateway", "not inside the subnet"),
    ],
)
def test_ip_pool_rules(change: Callable[[IPPool], None], field: str, text: str) -> None:
    error = _one(_pool_errors(change), field, text)
    assert error.obj == "SnowIPPool/pool-1"


def test_ip_pool_subnet_with_host_bits_is_accepted() -> None:
    assert _pool_errors(_set(subnet="10.1.0.1/24")) == []


def test_ip_pool_ipv6() -> None:
    change = _set(ip_start="fd00::10", ip_end="fd00::20", subnet="fd00::/64", gateway="fd00::1")
    assert _pool_errors(change) == []


def test_ip_pool_all_errors_at_once() -> None:
    pool = SnowIPPool.model_validate({"metadata": {"name": "p"}, "spec": {"pools": [{}, {"ipStart": "x"}]}})
    fields = {e.field for e in snow.validate_ip_pool(pool)}
    assert {
        "spec.pools[0].ipStart",
        "spec.pools[0].subnet",
        "spec.pools[1].ipStart",
        "spec.pools[1].gateway",
    } <= fields


def test_ip_pool_update_unchanged_and_reordered() -> None:
    old, new = _pool(), _pool()
    assert snow.ip_pool_update(old, new) == []
    assert new.spec.pools is not None
    new.spec.pools.reverse()
    assert snow.ip_pool_update(old, new) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda pools: setattr(pools[0], "ip_end", "10.1.0.60"),
        lambda pools: setattr(pools[1], "gateway", "10.2.0.254"),
        lambda pools: pools.pop(),
        lambda pools: pools.append(IPPool(ip_start="10.3.0.1", ip_end="10.3.0.9", subnet="10.3.0.0/24")),
    ],
)
def test_ip_pool_pools_immutable(change: Callable[[list[IPPool]], object]) -> None:
    old, new = _pool(), _pool()
    assert new.spec.pools is not None
    change(new.spec.pools)
    _one(snow.ip_pool_update(old, new), "spec.pools", "immutable")
