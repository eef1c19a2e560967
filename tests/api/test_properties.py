"""Property tests of the specification layer.

1. Generated valid configurations validate, and survive dump -> load unchanged (dump is a fixed point).
2. Changing any one immutable field is refused by ``validate_update``, unless the old Cluster is paused.
3. Kubernetes versions move forward one minor at a time, for the Cluster and each worker group.

The strategies only build configurations the static rules accept; a provider refusing one is a bug
of the strategy (or of a rule), never something to filter away.
"""

from __future__ import annotations

import string
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anywhere.api import (
    PAUSED_ANNOTATION,
    ClusterConfig,
    FieldError,
    check_config,
    create_checks,
    dump_config,
    load_text,
    validate_update,
)
from anywhere.api.duration import format_duration
from anywhere.api.generate import generate_config
from anywhere.api.infra import rules_for_datacenter
from anywhere.api.v1alpha1._base import Object, ObjectMeta, Ref
from anywhere.api.v1alpha1.cluster import (
    DNS,
    AutoScalingConfiguration,
    CiliumConfig,
    CNIConfig,
    Endpoint,
    ExternalEtcdConfiguration,
    MachineHealthCheck,
    ManagementCluster,
    Nodes,
    OCINamespace,
    ProxyConfiguration,
    RegistryMirrorConfiguration,
    ResolvConf,
    Taint,
    WorkerNodeGroupConfiguration,
)
from anywhere.api.v1alpha1.gitops import FluxConfig, FluxConfigSpec, GithubProviderConfig
from anywhere.api.v1alpha1.sim import IPRange

# Deterministic for CI: no example database, a fixed seed; small enough for a slow 2-core machine.
PROPERTY_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

PROVIDER_NAMES = ("sim", "vsphere", "tinkerbell", "docker", "netns")
MIN_MINOR, MAX_MINOR = 28, 34
OS_FAMILIES = ("bottlerocket", "ubuntu", "redhat")
# What the update rules say when a field may not change: ``infra._rules.immutable`` ("field is
# immutable ...") and the etcd topology rule of ``validation.update`` ("cannot switch from ...").
IMMUTABILITY_MARKERS = ("immutable", "cannot switch from")

# --------------------------------------------------------------------------- value strategies

LOWER, UPPER, DIGITS = string.ascii_lowercase, string.ascii_uppercase, string.digits


def words(first: str, middle: str, last: str | None, max_middle: int) -> st.SearchStrategy[str]:
    """One of ``first``, up to ``max_middle`` of ``middle``, then one of ``last`` (without ``last``:
    one to ``max_middle`` of ``middle``). Faster to draw than the same pattern by ``st.from_regex``."""
    tail = (
        st.builds(str.__add__, st.text(middle, max_size=max_middle), st.sampled_from(last))
        if last
        else st.text(middle, min_size=1, max_size=max_middle)
    )
    return st.builds(str.__add__, st.sampled_from(first), tail)


# ^[a-zA-Z][a-zA-Z0-9-]+$, 2 to 35 characters.
CLUSTER_NAMES = words(LOWER + UPPER, LOWER + UPPER + DIGITS + "-", None, 34)
GROUP_NAMES = words(LOWER, LOWER + DIGITS + "-", LOWER + DIGITS, 10)
# RFC 1123 labels: [a-z0-9]([-a-z0-9]*[a-z0-9])?
DNS_LABELS = st.one_of(
    st.sampled_from(LOWER + DIGITS), words(LOWER + DIGITS, LOWER + DIGITS + "-", LOWER + DIGITS, 8)
)
# The last label of a DNS name may not be all digits (it would be read as a bad IP address).
DNS_NAMES = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(DNS_LABELS, min_size=1, max_size=3),
    st.sampled_from(["com", "io", "local", "internal", "example"]),
)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
HOSTS = st.one_of(DNS_NAMES, IPV4)
PORTS = st.integers(1, 65535).map(str)

_ALNUM = LOWER + UPPER + DIGITS
# Label names and values: ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 characters.
_LABEL_WORDS = st.one_of(st.sampled_from(_ALNUM), words(_ALNUM, _ALNUM + "-_.", _ALNUM, 20))
# Values YAML would read as something other than a string unless the dumper quotes them.
_TRICKY_VALUES = [
    "true",
    "False",
    "yes",
    "on",
    "null",
    "1",
    "1.30",
    "1_000",
    "0x1F",
    "0o17",
    "1e3",
    "2024-01-02",
]
LABEL_NAMES = st.one_of(_LABEL_WORDS, st.sampled_from(_TRICKY_VALUES))
LABEL_VALUES = st.one_of(st.just(""), _LABEL_WORDS, st.sampled_from(_TRICKY_VALUES))
LABEL_KEYS = st.builds(
    lambda prefix, name: f"{prefix}/{name}" if prefix else name,
    st.one_of(st.none(), DNS_NAMES, st.sampled_from(["node.kubernetes.io", "example.com"])),
    LABEL_NAMES,
)
LABELS = st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=3)
ALL_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def taints(effects: tuple[str, ...] = ALL_EFFECTS) -> st.SearchStrategy[list[Taint]]:
    """Valid taints, each (key, effect) at most once."""
    taint = st.builds(
        Taint,
        key=LABEL_KEYS,
        value=st.one_of(st.none(), LABEL_VALUES),
        effect=st.sampled_from(effects),
    )
    return st.lists(taint, max_size=3, unique_by=lambda t: (t.key, t.effect))


OPTIONAL_LABELS = st.one_of(st.none(), LABELS)
OPTIONAL_TAINTS = st.one_of(st.none(), taints())
OPTIONAL_SOFT_TAINTS = st.one_of(st.none(), taints(("PreferNoSchedule",)))
OPTIONAL_SKEWS = st.one_of(st.none(), st.integers(0, 2))
DURATIONS = st.integers(1, 3 * 3600).map(format_duration)
STARTUP_DURATIONS = st.integers(30, 3 * 3600).map(format_duration)  # nodeStartupTimeout >= 30s
MAX_UNHEALTHY = st.one_of(st.integers(0, 10), st.integers(0, 100).map(lambda n: f"{n}%"))
HEALTH_CHECKS = st.one_of(
    st.none(),
    st.builds(
        MachineHealthCheck,
        node_startup_timeout=st.one_of(st.none(), STARTUP_DURATIONS),
        unhealthy_machine_timeout=st.one_of(st.none(), DURATIONS),
        max_unhealthy=st.one_of(st.none(), MAX_UNHEALTHY),
    ),
)


PROXY_SCHEMES = st.sampled_from(["", "http://", "https://"])
PROXY_HOSTS = st.one_of(HOSTS, IPV6.map(lambda ip: f"[{ip}]"))


@st.composite
def proxy_addresses(draw: st.DrawFn) -> str:
    scheme = draw(PROXY_SCHEMES)
    host = draw(PROXY_HOSTS)
    return f"{scheme}{host}:{draw(PORTS)}"


PROXIES = st.builds(
    ProxyConfiguration,
    http_proxy=proxy_addresses(),
    https_proxy=proxy_addresses(),
    no_proxy=st.one_of(
        st.none(),
        st.lists(st.one_of(HOSTS, st.sampled_from(["10.0.0.0/8", ".svc", "localhost"])), max_size=3),
    ),
)
REGISTRY_MIRRORS = st.builds(
    RegistryMirrorConfiguration,
    endpoint=st.one_of(HOSTS, IPV6),
    port=st.one_of(st.none(), PORTS),
    oci_namespaces=st.one_of(
        st.none(),
        st.lists(
            st.builds(OCINamespace, registry=DNS_NAMES, namespace=st.one_of(st.none(), DNS_LABELS)),
            max_size=3,
            unique_by=lambda n: n.registry,
        ),
    ),
    authenticate=st.one_of(st.none(), st.booleans()),
    insecure_skip_verify=st.one_of(st.none(), st.booleans()),
)
OPTIONAL_PROXIES = st.one_of(st.none(), PROXIES)
OPTIONAL_MIRRORS = st.one_of(st.none(), REGISTRY_MIRRORS)
RESOLV_CONF_PATHS = ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf", "/etc/kubernetes/resolv.conf")
VERSION_SPELLINGS: tuple[Callable[[str], str], ...] = (
    lambda v: v,
    lambda v: v.replace(".", "-"),
    lambda v: v.replace(".", "_"),
    lambda v: v.replace(".", ""),
)

# Free addresses for the control plane VIP: inside the node subnet, outside the DHCP range and gateway.
FREE_ENDPOINTS = {
    "sim": [f"10.10.0.{i}" for i in (*range(2, 100), *range(251, 255))],
    "netns": [f"10.20.0.{i}" for i in (*range(2, 100), *range(201, 255))],
    "vsphere": [f"10.0.0.{i}" for i in range(2, 255)],
    "tinkerbell": [f"10.80.8.{i}" for i in range(2, 255) if i not in (91, 92)],  # .91 is tinkerbellIP
}

# --------------------------------------------------------------------------- helpers


def copy_config(config: ClusterConfig) -> ClusterConfig:
    return ClusterConfig(
        config.cluster.model_copy(deep=True), [o.model_copy(deep=True) for o in config.objects], config.source
    )


def provider_of(config: ClusterConfig) -> str:
    datacenter = config.datacenter
    assert datacenter is not None
    rules = rules_for_datacenter(datacenter.kind)
    assert rules is not None
    return rules.name


def machines(config: ClusterConfig) -> list[Object]:
    return [o for o in config.objects if o.kind.endswith("MachineConfig")]


def dicts(config: ClusterConfig) -> list[dict[str, object]]:
    return [o.to_dict() for o in config.all_objects()]


def minor(version: str | None) -> int:
    assert version is not None
    return int(version.split(".")[1])


def is_immutability_error(error: FieldError) -> bool:
    return any(marker in error.message for marker in IMMUTABILITY_MARKERS)


def describe(errors: list[FieldError]) -> str:
    return "\n".join(str(e) for e in errors)


# --------------------------------------------------------------------------- valid configurations


@st.composite
def valid_configs(draw: st.DrawFn, providers: tuple[str, ...] = PROVIDER_NAMES) -> ClusterConfig:
    """A configuration every static rule accepts (not yet defaulted), varied around ``generate_config``."""
    provider = draw(st.sampled_from(providers))
    name = draw(CLUSTER_NAMES)
    cluster_minor = draw(st.integers(MIN_MINOR, MAX_MINOR))
    version = f"1.{cluster_minor}"
    config = generate_config(name, provider, version)
    spec = config.cluster.spec
    control_plane = spec.control_plane_configuration
    assert control_plane is not None
    network = spec.cluster_network
    assert network is not None

    control_plane.count = draw(st.sampled_from([1, 3, 5]))
    if provider in FREE_ENDPOINTS:
        control_plane.endpoint = Endpoint(host=draw(st.sampled_from(FREE_ENDPOINTS[provider])))
    control_plane.labels = draw(OPTIONAL_LABELS)
    control_plane.taints = draw(OPTIONAL_TAINTS)
    control_plane.machine_health_check = draw(HEALTH_CHECKS)

    self_managed = draw(st.booleans())
    if not self_managed:
        spec.management_cluster = ManagementCluster(name="mgmt" if name != "mgmt" else "mgmt-2")

    # Machine configs: the sample's, plus one per worker group when drawn (or needed, see below).
    cp_ref = control_plane.machine_group_ref
    cp_machine = config.get(cp_ref.kind, cp_ref.name) if cp_ref is not None else None
    sample_groups = spec.worker_node_group_configurations or []
    sample_worker_ref = sample_groups[0].machine_group_ref if sample_groups else None
    sample_worker = (
        config.get(sample_worker_ref.kind, sample_worker_ref.name) if sample_worker_ref is not None else None
    )
    # vSphere templates and Tinkerbell image URLs must name the Kubernetes version of their machines;
    # with them, every worker group gets a machine config of its own.
    versioned = provider in ("vsphere", "tinkerbell") and draw(st.booleans())
    os_family = draw(st.sampled_from(OS_FAMILIES)) if versioned else None

    def versioned_artifact(machine: Object, kube_version: str) -> None:
        if not versioned:
            return
        spelled = draw(st.sampled_from(VERSION_SPELLINGS))(kube_version)
        machine.spec.os_family = os_family  # type: ignore[attr-defined]
        if provider == "vsphere":
            machine.spec.template = f"/Datacenter/vm/Templates/{os_family}-kube-v{spelled}"  # type: ignore[attr-defined]
        else:
            machine.spec.os_image_url = f"http://10.80.8.92/images/{os_family}-{spelled}.gz"  # type: ignore[attr-defined]

    if cp_machine is not None:
        versioned_artifact(cp_machine, version)

    count = draw(st.integers(1, 4))
    names = draw(st.lists(GROUP_NAMES, min_size=count, max_size=count, unique=True))
    free_group = draw(st.integers(0, count - 1))  # never tainted NoSchedule/NoExecute
    groups: list[WorkerNodeGroupConfiguration] = []
    extra_machines: list[Object] = []
    for index, group_name in enumerate(names):
        group = WorkerNodeGroupConfiguration(name=group_name, count=draw(st.integers(0, 10)))
        if draw(st.booleans()):
            low = draw(st.integers(0, group.count))  # type: ignore[arg-type]
            high = draw(st.integers(group.count, group.count + 10))  # type: ignore[operator]
            group.autoscaling_configuration = AutoScalingConfiguration(min_count=low, max_count=high)
        group.labels = draw(OPTIONAL_LABELS)
        group.taints = draw(OPTIONAL_SOFT_TAINTS if index == free_group else OPTIONAL_TAINTS)
        skew = draw(OPTIONAL_SKEWS)
        if skew is not None:
            group.kubernetes_version = f"1.{cluster_minor - skew}"
        group.machine_health_check = draw(HEALTH_CHECKS)
        if sample_worker is not None:
            if versioned or draw(st.booleans()):
                machine = sample_worker.model_copy(
                    deep=True, update={"metadata": ObjectMeta(name=f"{name}-wk{index}")}
                )
                versioned_artifact(machine, group.kubernetes_version or version)
                extra_machines.append(machine)
                group.machine_group_ref = Ref(kind=machine.kind, name=machine.name)
            else:
                group.machine_group_ref = sample_worker_ref.model_copy()  # type: ignore[union-attr]
        groups.append(group)
    spec.worker_node_group_configurations = groups
    if sample_worker is not None and not any(
        g.machine_group_ref is not None and g.machine_group_ref.name == sample_worker.name for g in groups
    ):
        config.objects.remove(sample_worker)
    config.objects.extend(extra_machines)

    if provider != "tinkerbell" and draw(st.booleans()):  # bare metal has no external etcd
        spec.external_etcd_configuration = ExternalEtcdConfiguration(
            count=draw(st.sampled_from([1, 3, 5])), machine_group_ref=cp_ref.model_copy() if cp_ref else None
        )

    if provider == "docker" and draw(st.booleans()):
        network.cni_config = CNIConfig(cilium=CiliumConfig())
    cilium = network.cni_config.cilium if network.cni_config else None
    if cilium is not None:
        cilium.policy_enforcement_mode = draw(st.sampled_from([None, "default", "always", "never"]))
    if draw(st.booleans()):
        network.nodes = Nodes(cidr_mask_size=draw(st.integers(17, 32)))  # pods are a /16
    if draw(st.booleans()):
        network.dns = DNS(resolv_conf=ResolvConf(path=draw(st.sampled_from(RESOLV_CONF_PATHS))))

    spec.proxy_configuration = draw(OPTIONAL_PROXIES)
    if spec.proxy_configuration is not None and provider == "tinkerbell":
        # Behind a proxy, bare metal machines fetch HookOS from a local server.
        config.datacenter.spec.hook_images_url_path = "http://10.80.8.92/hook"  # type: ignore[union-attr]
    spec.registry_mirror_configuration = draw(OPTIONAL_MIRRORS)
    spec.machine_health_check = draw(HEALTH_CHECKS)

    if draw(st.booleans()):
        flux = FluxConfig(
            metadata=ObjectMeta(name=f"{name}-flux"),
            spec=FluxConfigSpec(github=GithubProviderConfig(owner="my-org", repository="clusters")),
        )
        config.objects.append(flux)
        spec.git_ops_ref = Ref(kind=flux.kind, name=flux.name)
    return config


@st.composite
def defaulted_configs(draw: st.DrawFn, provider: str) -> ClusterConfig:
    config = draw(valid_configs((provider,)))
    errors = check_config(config)
    assert errors == [], f"the strategy built an invalid configuration:\n{describe(errors)}"
    return config


# --------------------------------------------------------------------------- 1. dump/load


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@settings(PROPERTY_SETTINGS, max_examples=25)
@given(data=st.data())
def test_generated_valid_specs_survive_dump_load_unchanged_and_validate(
    provider: str, data: st.DataObject
) -> None:
    config = data.draw(valid_configs((provider,)), label="config")
    errors = check_config(config)
    assert errors == [], describe(errors)
    # The provider's create-time checks (vSphere templates naming the Kubernetes version, one OS
    # family for every node, ...) accept it too: the strategy builds configurations one could create.
    warnings = create_checks(config)
    assert warnings == [], describe(warnings)

    text = dump_config(config)
    loaded = load_text(text, "gen.yaml").config
    loaded_errors = check_config(loaded)
    assert loaded_errors == [], describe(loaded_errors)

    assert dicts(loaded) == dicts(config)
    assert dump_config(loaded) == text


# --------------------------------------------------------------------------- 2. immutable fields

# A change takes the data source and the (valid, defaulted) old configuration, which it may adjust
# while keeping it valid, and returns the new configuration with the object and field it changed.
Change = Callable[[st.DataObject, ClusterConfig], tuple[ClusterConfig, str, str]]


def _pick_other(data: st.DataObject, candidates: list[str], current: object) -> str:
    return data.draw(st.sampled_from([c for c in candidates if c != current]))


def change_endpoint(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
    new = copy_config(old)
    control_plane = new.cluster.spec.control_plane_configuration
    assert control_plane is not None
    current = control_plane.endpoint.host if control_plane.endpoint else None
    candidates = FREE_ENDPOINTS.get(provider_of(old), ["10.0.0.10", "10.0.0.11"])
    control_plane.endpoint = Endpoint(host=_pick_other(data, candidates, current))
    return new, old.cluster.ref, "spec.controlPlaneConfiguration.endpoint.host"


def _cidr_change(which: str, candidates: list[str]) -> Change:
    def change(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
        new = copy_config(old)
        blocks = getattr(new.cluster.spec.cluster_network, which)
        blocks.cidr_blocks = [_pick_other(data, candidates, blocks.cidr_blocks[0])]
        return new, old.cluster.ref, f"spec.clusterNetwork.{which}"

    return change


change_pods = _cidr_change("pods", ["192.168.0.0/16", "172.16.0.0/16", "100.64.0.0/16", "192.168.0.0/17"])
change_services = _cidr_change("services", ["10.96.0.0/12", "10.100.0.0/16", "172.20.0.0/16"])


def change_node_mask(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
    new = copy_config(old)
    nodes = new.cluster.spec.cluster_network.nodes  # type: ignore[union-attr]
    assert nodes is not None
    nodes.cidr_mask_size = data.draw(st.integers(17, 32).filter(lambda m: m != nodes.cidr_mask_size))
    return new, old.cluster.ref, "spec.clusterNetwork.nodes"


def change_resolv_conf(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
    new = copy_config(old)
    network = new.cluster.spec.cluster_network
    assert network is not None
    current = network.dns.resolv_conf.path if network.dns and network.dns.resolv_conf else None
    if current is not None and data.draw(st.booleans()):
        network.dns = None
    else:
        path = _pick_other(data, list(RESOLV_CONF_PATHS), current)
        network.dns = DNS(resolv_conf=ResolvConf(path=path))
    return new, old.cluster.ref, "spec.clusterNetwork.dns"


def change_proxy(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
    new = copy_config(old)
    spec = new.cluster.spec
    if spec.proxy_configuration is not None and data.draw(st.booleans()):
        spec.proxy_configuration = None  # remove
    else:  # add or change
        spec.proxy_configuration = data.draw(
            PROXIES.filter(lambda p: p != old.cluster.spec.proxy_configuration)
        )
        if provider_of(new) == "tinkerbell":
            new.datacenter.spec.hook_images_url_path = "http://10.80.8.92/hook"  # type: ignore[union-attr]
    return new, old.cluster.ref, "spec.proxyConfiguration"


def change_management_cluster(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
    new = copy_config(old)
    cluster = new.cluster
    current = cluster.spec.management_cluster.name  # type: ignore[union-attr]
    name = _pick_other(data, [cluster.name, "mgmt-a", "mgmt-b"], current)
    cluster.spec.management_cluster = ManagementCluster(name=name)
    return new, old.cluster.ref, "spec.managementCluster.name"


def change_datacenter_ref(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
    new = copy_config(old)
    datacenter = new.datacenter
    assert datacenter is not None
    renamed = f"{datacenter.name}-{data.draw(st.sampled_from(['b', 'new', '2']))}"
    datacenter.metadata.name = renamed
    new.cluster.spec.datacenter_ref = Ref(kind=datacenter.kind, name=renamed)
    assert check_config(copy_config(new)) == []
    return new, old.cluster.ref, "spec.datacenterRef"


def change_etcd_topology(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
    new = copy_config(old)
    spec = new.cluster.spec
    if spec.external_etcd_configuration is not None:
        spec.external_etcd_configuration = None
    else:
        cp_ref = spec.control_plane_configuration.machine_group_ref  # type: ignore[union-attr]
        spec.external_etcd_configuration = ExternalEtcdConfiguration(
            count=data.draw(st.sampled_from([1, 3, 5])), machine_group_ref=cp_ref
        )
    return new, old.cluster.ref, "spec.externalEtcdConfiguration"


def change_git_ops_ref(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
    if old.cluster.is_self_managed:  # gitOpsRef is fixed on workload clusters only: make it one
        name = old.cluster.name
        old.cluster.spec.management_cluster = ManagementCluster(name="mgmt" if name != "mgmt" else "mgmt-2")
        assert check_config(old) == []
    new = copy_config(old)
    spec = new.cluster.spec
    if spec.git_ops_ref is not None and data.draw(st.booleans()):
        spec.git_ops_ref = None
    else:
        current = spec.git_ops_ref.name if spec.git_ops_ref else None
        flux_name = _pick_other(data, [f"{new.cluster.name}-flux", "other-flux"], current)
        if new.get("FluxConfig", flux_name) is None:
            new.objects.append(
                FluxConfig(
                    metadata=ObjectMeta(name=flux_name),
                    spec=FluxConfigSpec(github=GithubProviderConfig(owner="other", repository="repo")),
                )
            )
        spec.git_ops_ref = Ref(kind="FluxConfig", name=flux_name)
    return new, old.cluster.ref, "spec.gitOpsRef"


def _spec_change(field: str, attribute: str, values: Callable[[object], st.SearchStrategy[object]]) -> Change:
    """A change of one attribute of the datacenter's spec."""

    def change(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
        new = copy_config(old)
        datacenter = new.datacenter
        assert datacenter is not None
        current = getattr(datacenter.spec, attribute)  # type: ignore[attr-defined]
        setattr(datacenter.spec, attribute, data.draw(values(current).filter(lambda v: v != current)))  # type: ignore[attr-defined]
        return new, datacenter.ref, field

    return change


def _machine_change(field: str, apply: Callable[[st.DataObject, Object], None]) -> Change:
    """A change of one machine config (any of the configuration's)."""

    def change(data: st.DataObject, old: ClusterConfig) -> tuple[ClusterConfig, str, str]:
        new = copy_config(old)
        machine = data.draw(st.sampled_from(machines(new)))
        apply(data, machine)
        return new, machine.ref, field

    return change


def _new_os_family(data: st.DataObject, machine: Object) -> None:
    spec = machine.spec  # type: ignore[attr-defined]
    spec.os_family = _pick_other(data, list(OS_FAMILIES), spec.os_family)


def _new_storage_policy(data: st.DataObject, machine: Object) -> None:
    spec = machine.spec  # type: ignore[attr-defined]
    spec.storage_policy_name = _pick_other(data, ["gold", "silver", "vSAN Default"], spec.storage_policy_name)


def _new_first_user(data: st.DataObject, machine: Object) -> None:
    spec = machine.spec  # type: ignore[attr-defined]
    spec.users[0].name = _pick_other(data, ["ec2-user", "admin", "ops"], spec.users[0].name)


def _texts(*options: str) -> Callable[[object], st.SearchStrategy[object]]:
    return lambda _: st.sampled_from(options)


def _ranges(subnet: str) -> Callable[[object], st.SearchStrategy[object]]:
    return lambda _: st.builds(
        lambda a, b: IPRange(start=f"{subnet}.{a}", end=f"{subnet}.{b}"),
        st.integers(100, 150),
        st.integers(151, 250),
    )


COMMON_CHANGES: dict[str, Change] = {
    "endpoint": change_endpoint,
    "pods": change_pods,
    "services": change_services,
    "nodes": change_node_mask,
    "dns": change_resolv_conf,
    "proxy": change_proxy,
    "managementCluster": change_management_cluster,
    "datacenterRef": change_datacenter_ref,
    "etcd": change_etcd_topology,
    "gitOpsRef": change_git_ops_ref,
}
PROVIDER_CHANGES: dict[str, dict[str, Change]] = {
    "sim": {
        "nodeSubnet": _spec_change("spec.nodeSubnet", "node_subnet", _texts("10.11.0.0/24", "10.10.0.0/23")),
        "gateway": _spec_change("spec.gateway", "gateway", _texts("10.10.0.1", "10.10.0.2", "10.10.0.254")),
        "dhcpRange": _spec_change("spec.dhcpRange", "dhcp_range", _ranges("10.10.0")),
        "machine osFamily": _machine_change("spec.osFamily", _new_os_family),
    },
    "netns": {
        "bridgeName": _spec_change("spec.bridgeName", "bridge_name", _texts("aw-br0", "aw-br1", "br-lab")),
        "bridgeSubnet": _spec_change(
            "spec.bridgeSubnet", "bridge_subnet", _texts("10.20.0.0/24", "10.21.0.0/24")
        ),
        "gateway": _spec_change("spec.gateway", "gateway", _texts("10.20.0.1", "10.20.0.2")),
        "dhcpRange": _spec_change("spec.dhcpRange", "dhcp_range", _ranges("10.20.0")),
        "machine osFamily": _machine_change("spec.osFamily", _new_os_family),
    },
    "vsphere": {
        "server": _spec_change(
            "spec.server", "server", _texts("vcenter.example.com", "vc2.example.com", "10.1.1.1")
        ),
        "datacenter": _spec_change("spec.datacenter", "datacenter", _texts("Datacenter", "DC2")),
        "network": _spec_change(
            "spec.network", "network", _texts("/Datacenter/network/VM Network", "/Datacenter/network/Other")
        ),
        "machine osFamily": _machine_change("spec.osFamily", _new_os_family),
        "machine storagePolicyName": _machine_change("spec.storagePolicyName", _new_storage_policy),
    },
    "tinkerbell": {
        "tinkerbellIP": _spec_change(
            "spec.tinkerbellIP", "tinkerbell_ip", _texts("10.80.8.91", "10.80.8.93")
        ),
        "hookImagesURLPath": _spec_change(
            "spec.hookImagesURLPath", "hook_images_url_path", _texts("http://10.80.8.92/hook", "http://h/x")
        ),
        "machine osFamily": _machine_change("spec.osFamily", _new_os_family),
        "machine users": _machine_change("spec.users[0].name", _new_first_user),
    },
    "docker": {},
}


def immutable_changes(provider: str) -> dict[str, Change]:
    return {**COMMON_CHANGES, **PROVIDER_CHANGES[provider]}


# Every (provider, change) pair is a case of its own, so that each immutable field is exercised on every
# run whatever the examples Hypothesis draws; the valid configuration and the new value are drawn.
IMMUTABLE_CASES = [
    (provider, label) for provider in PROVIDER_NAMES for label in sorted(immutable_changes(provider))
]


def test_every_provider_has_immutable_changes_listed() -> None:
    assert set(PROVIDER_CHANGES) == set(PROVIDER_NAMES)


@pytest.mark.parametrize(("provider", "label"), IMMUTABLE_CASES, ids=[f"{p}-{c}" for p, c in IMMUTABLE_CASES])
@settings(PROPERTY_SETTINGS, max_examples=6)
@given(data=st.data())
def test_changing_any_immutable_field_is_always_refused(
    provider: str, label: str, data: st.DataObject
) -> None:
    old = data.draw(defaulted_configs(provider), label="old")
    new, obj, field = immutable_changes(provider)[label](data, old)

    errors = validate_update(old, new)
    assert errors, f"{label}: the change was accepted"
    on_field = [e for e in errors if e.obj == obj and e.field == field]
    assert on_field, f"{label}: no error on {obj} {field}:\n{describe(errors)}"
    assert all(is_immutability_error(e) for e in on_field), describe(on_field)

    # Pausing the old Cluster lifts every immutability rule (versions are not moved here).
    paused = copy_config(old)
    paused.cluster.metadata.annotations = {**paused.cluster.annotations, PAUSED_ANNOTATION: "true"}
    paused_errors = validate_update(paused, new)
    assert not [e for e in paused_errors if is_immutability_error(e) or e.field == field], describe(
        paused_errors
    )


# --------------------------------------------------------------------------- 3. versions

STEPS_REFUSED = (2, 3, -1, -2)


def upgraded(config: ClusterConfig) -> ClusterConfig:
    """The cluster one minor up, with the worker groups that would fall more than two minors behind
    moved up one minor too: the upgrade a user can make."""
    new = copy_config(config)
    spec = new.cluster.spec
    cluster_minor = minor(spec.kubernetes_version) + 1
    spec.kubernetes_version = f"1.{cluster_minor}"
    for group in new.cluster.worker_groups:
        if group.kubernetes_version is not None and cluster_minor - minor(group.kubernetes_version) > 2:
            group.kubernetes_version = f"1.{minor(group.kubernetes_version) + 1}"
    return new


def with_cluster_minor(config: ClusterConfig, step: int) -> ClusterConfig:
    new = copy_config(config)
    spec = new.cluster.spec
    spec.kubernetes_version = f"1.{minor(spec.kubernetes_version) + step}"
    return new


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@settings(PROPERTY_SETTINGS, max_examples=15)
@given(data=st.data())
def test_cluster_version_moves_one_minor_forward_at_a_time(provider: str, data: st.DataObject) -> None:
    old = data.draw(defaulted_configs(provider), label="old")
    upgrade = upgraded(old)
    assert validate_update(old, upgrade) == [], describe(validate_update(old, upgrade))

    step = data.draw(st.sampled_from(STEPS_REFUSED), label="step")
    new = with_cluster_minor(old, step)
    errors = validate_update(old, new)
    assert [e for e in errors if e.field == "spec.kubernetesVersion"], describe(errors)
    assert not [e for e in errors if is_immutability_error(e)], describe(errors)

    # Pausing lifts the immutable fields, never the version rules.
    paused = copy_config(old)
    paused.cluster.metadata.annotations = {PAUSED_ANNOTATION: "true"}
    assert [e for e in validate_update(paused, new) if e.field == "spec.kubernetesVersion"]


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@settings(PROPERTY_SETTINGS, max_examples=15)
@given(data=st.data())
def test_worker_version_moves_one_minor_forward_at_a_time(provider: str, data: st.DataObject) -> None:
    old = data.draw(defaulted_configs(provider), label="old")
    groups = old.cluster.worker_groups
    index = data.draw(st.integers(0, len(groups) - 1), label="group")
    field = f"spec.workerNodeGroupConfigurations[{index}].kubernetesVersion"
    cluster_minor = minor(old.cluster.spec.kubernetes_version)
    current = minor(groups[index].kubernetes_version or old.cluster.spec.kubernetes_version)

    def with_worker_minor(base: ClusterConfig, value: int) -> ClusterConfig:
        new = copy_config(base)
        new.cluster.worker_groups[index].kubernetes_version = f"1.{value}"
        return new

    assert validate_update(old, with_worker_minor(old, current)) == []
    # A worker never runs ahead of the control plane: one level with it moves up after it.
    base = old if current < cluster_minor else upgraded(old)
    accepted = validate_update(old, with_worker_minor(base, current + 1))
    assert accepted == [], describe(accepted)

    step = data.draw(st.sampled_from(STEPS_REFUSED), label="step")
    errors = validate_update(old, with_worker_minor(old, current + step))
    assert errors, f"worker moved by {step} minors and nothing was refused"
    assert all(e.field == field for e in errors), describe(errors)
