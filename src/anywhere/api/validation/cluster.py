"""Static validation: everything that can be checked from the specification alone.

Runs after defaulting. Every rule adds its errors to one list and the next rule runs anyway, so the
user sees every problem of a file at once. Rules that span the Cluster and a provider's objects are
the provider's (``ProviderRules.validate_cluster``); rules of one object are its kind's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from anywhere.api.config import ClusterConfig
from anywhere.api.duration import parse_duration
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra import ProviderRules, rules_for_datacenter
from anywhere.api.v1alpha1 import KINDS
from anywhere.api.v1alpha1._base import Ref
from anywhere.api.v1alpha1.cluster import ClusterNetwork, MachineHealthCheck
from anywhere.api.validation import objects
from anywhere.api.validation._common import (
    KUBERNETES_VERSION,
    SEMVER,
    check_labels,
    check_taints,
    is_host,
    is_ip,
    minor_of,
    parse_cidr,
    valid_port,
)

CLUSTER_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]+$")
MAX_CLUSTER_NAME_LENGTH = 35
IDENTITY_PROVIDER_KINDS = ("OIDCConfig", "AWSIamConfig")
GITOPS_KINDS = ("GitOpsConfig", "FluxConfig")
POLICY_ENFORCEMENT_MODES = ("default", "always", "never")
ROUTING_MODES = ("overlay", "direct")
ROLLOUT_TYPES = ("RollingUpdate", "InPlace")
MAX_NODE_POD_MASK_GAP = 16
WORKER_SKEW_MINORS = 2

_Rule = Callable[[ClusterConfig, ErrorList, "ProviderRules | None"], None]


def validate_config(config: ClusterConfig) -> list[FieldError]:
    """Every static error of a defaulted configuration: the Cluster, its refs, and each object."""
    cluster_errors = ErrorList(config.cluster.ref)
    provider = _provider(config, cluster_errors)
    for rule in _RULES:
        rule(config, cluster_errors, provider)
    errors = list(cluster_errors.errors)
    for obj in config.objects:
        errors.extend(objects.validate_object(obj))
    if provider is not None and not config.partial:
        errors.extend(provider.validate_cluster(config))
    return errors


def _provider(config: ClusterConfig, errors: ErrorList) -> ProviderRules | None:
    ref = config.cluster.spec.datacenter_ref
    if ref is None or not ref.kind or not ref.name:
        errors.add("spec.datacenterRef", "datacenterRef with kind and name is required")
        return None
    provider = rules_for_datacenter(ref.kind)
    if provider is None:
        datacenter_kinds = sorted(k for k in KINDS if k.endswith("DatacenterConfig"))
        errors.add(
            "spec.datacenterRef.kind",
            f"{ref.kind!r} is not a datacenter kind; use one of {', '.join(datacenter_kinds)}",
        )
        return None
    if config.get(ref.kind, ref.name) is None and not config.partial:
        errors.add("spec.datacenterRef", f"{ref.kind}/{ref.name} is not defined; add it to the configuration")
    return provider


def _name(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    name = config.cluster.name
    if not CLUSTER_NAME.match(name):
        errors.add(
            "metadata.name",
            f"{name} is not a valid cluster name, cluster names must start with lowercase/uppercase letters "
            "and can include numbers and dashes (e.g. 'testCluster-123' is valid, '123testCluster' is not)",
        )
    if len(name) > MAX_CLUSTER_NAME_LENGTH:
        errors.add(
            "metadata.name",
            f"number of characters in {name} should be less than {MAX_CLUSTER_NAME_LENGTH + 1} (it has {len(name)})",
        )


def _kubernetes_version(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    version = config.cluster.spec.kubernetes_version
    if not version:
        errors.add("spec.kubernetesVersion", 'kubernetesVersion is required, e.g. "1.33"')
    elif not KUBERNETES_VERSION.match(version):
        errors.add(
            "spec.kubernetesVersion",
            f'{version!r} is not a Kubernetes version; write major.minor, e.g. "1.33"',
        )


def _machine_ref(
    config: ClusterConfig, errors: ErrorList, provider: ProviderRules | None, field: str, ref: Ref | None
) -> None:
    """A machineGroupRef must name an existing machine config of the provider's machine kind."""
    if provider is None:
        return
    machine_kind = provider.machine_kind
    if machine_kind is None:
        if ref is not None and ref.kind:
            errors.add(field, f"the {provider.name} provider has no machine configs; remove machineGroupRef")
        return
    if ref is None or not ref.name:
        errors.add(field, f"machineGroupRef is required (kind {machine_kind.KIND} and a name)")
        return
    if ref.kind != machine_kind.KIND:
        errors.add(
            f"{field}.kind",
            f"{ref.kind!r} is not a machine config of the {provider.name} provider; use {machine_kind.KIND}",
        )
        return
    if config.get(ref.kind, ref.name) is None and not config.partial:
        errors.add(field, f"{ref.kind}/{ref.name} is not defined; add it to the configuration")


def _control_plane(config: ClusterConfig, errors: ErrorList, provider: ProviderRules | None) -> None:
    spec = config.cluster.spec
    control_plane = spec.control_plane_configuration
    field = "spec.controlPlaneConfiguration"
    if control_plane is None:
        errors.add(field, "controlPlaneConfiguration is required")
        return
    count = control_plane.count
    if count is None or count <= 0:
        errors.add(f"{field}.count", f"control plane node count must be positive (got {count})")
    elif spec.external_etcd_configuration is None and count % 2 == 0:
        errors.add(
            f"{field}.count",
            f"control plane node count cannot be an even number ({count}) with stacked etcd; "
            "use 1, 3 or 5 so etcd keeps quorum",
        )
    host = control_plane.endpoint.host if control_plane.endpoint else None
    if not host:
        if provider is None or provider.endpoint_required:
            errors.add(
                f"{field}.endpoint.host",
                "cluster controlPlaneConfiguration.endpoint.host is not set or is empty; give a free IP for the VIP",
            )
    elif provider is not None and provider.node_network is not None:
        _endpoint_in_node_network(config, errors, provider, host)
    _machine_ref(config, errors, provider, f"{field}.machineGroupRef", control_plane.machine_group_ref)
    check_taints(errors, f"{field}.taints", control_plane.taints)
    check_labels(errors, f"{field}.labels", control_plane.labels)
    for index, san in enumerate(control_plane.cert_sans or []):
        if not is_host(san):
            errors.add(f"{field}.certSans[{index}]", f"{san!r} is neither an IP address nor a DNS name")
    for key in control_plane.api_server_extra_args or {}:
        if not key or key.startswith("-") or " " in key:
            errors.add(
                f"{field}.apiServerExtraArgs[{key}]",
                "flag names are written without leading dashes or spaces",
            )
    _health_check(errors, f"{field}.machineHealthCheck", control_plane.machine_health_check)
    _kubelet_configuration(errors, f"{field}.kubeletConfiguration", control_plane.kubelet_configuration)


def _endpoint_in_node_network(
    config: ClusterConfig, errors: ErrorList, provider: ProviderRules, host: str
) -> None:
    """Beyond EKS Anywhere: where the datacenter declares its node network, the VIP must fit it."""
    datacenter = config.datacenter
    network = provider.node_network(datacenter) if datacenter is not None else None
    if network is None:
        return
    field = "spec.controlPlaneConfiguration.endpoint.host"
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        errors.add(
            field,
            f"{host!r} is not an IPv4 address; the endpoint is a VIP in the node subnet {network.subnet}",
        )
        return
    if address not in network.subnet or address in (
        network.subnet.network_address,
        network.subnet.broadcast_address,
    ):
        errors.add(
            field,
            f"endpoint {address} is outside the node subnet {network.subnet}; pick a free address inside it",
        )
    elif network.dhcp_range is not None and network.dhcp_range[0] <= address <= network.dhcp_range[1]:
        start, end = network.dhcp_range
        errors.add(
            field, f"endpoint {address} is inside the DHCP range {start}-{end}; pick an address outside it"
        )
    elif network.gateway is not None and address == network.gateway:
        errors.add(field, f"endpoint {address} is the gateway's address; pick a free address")


def _endpoint_outside_cluster_cidrs(
    config: ClusterConfig, errors: ErrorList, _: ProviderRules | None
) -> None:
    """An endpoint IP inside the pod or service CIDR would be routed into the cluster, not to the VIP."""
    spec = config.cluster.spec
    control_plane = spec.control_plane_configuration
    host = control_plane.endpoint.host if control_plane and control_plane.endpoint else None
    network = spec.cluster_network
    if not host or not is_ip(host) or network is None:
        return
    address = ipaddress.ip_address(host)
    for name, blocks in (("pods", network.pods), ("services", network.services)):
        for text in (blocks.cidr_blocks or []) if blocks else []:
            block = parse_cidr(text)
            if block is not None and block.version == address.version and address in block:
                errors.add(
                    "spec.controlPlaneConfiguration.endpoint.host",
                    f"control plane endpoint {host} conflicts with {name} CIDR block {text}",
                )


def _external_etcd(config: ClusterConfig, errors: ErrorList, provider: ProviderRules | None) -> None:
    etcd = config.cluster.spec.external_etcd_configuration
    if etcd is None:
        return
    field = "spec.externalEtcdConfiguration"
    if etcd.count is None or etcd.count <= 0:
        errors.add(f"{field}.count", f"external etcd count must be positive (got {etcd.count})")
    elif etcd.count % 2 == 0:
        errors.add(
            f"{field}.count", f"external etcd count cannot be an even number ({etcd.count}); use 1, 3 or 5"
        )
    _machine_ref(config, errors, provider, f"{field}.machineGroupRef", etcd.machine_group_ref)


def _workers(config: ClusterConfig, errors: ErrorList, provider: ProviderRules | None) -> None:
    cluster = config.cluster
    groups = cluster.worker_groups
    field = "spec.workerNodeGroupConfigurations"
    control_plane = cluster.spec.control_plane_configuration
    if not groups:
        if provider is not None and provider.control_plane_only_allowed:
            if control_plane is not None and control_plane.taints:
                errors.add(
                    "spec.controlPlaneConfiguration.taints",
                    "cannot taint control plane when there is no worker node; remove the taints or add a worker group",
                )
        else:
            name = provider.name if provider else "this"
            errors.add(field, f"workerNodeGroupConfigurations cannot be empty on the {name} provider")
        return
    names: set[str] = set()
    control_minor = minor_of(cluster.spec.kubernetes_version)
    for index, group in enumerate(groups):
        path = f"{field}[{index}]"
        if not group.name:
            errors.add(
                f"{path}.name", "must specify name for worker nodes (required when there are several groups)"
            )
        elif group.name in names:
            errors.add(
                f"{path}.name", f"worker node group names must be unique ({group.name!r} is used twice)"
            )
        else:
            names.add(group.name)
        if group.count is not None and group.count < 0:
            errors.add(f"{path}.count", f"worker node count must be 0 or more (got {group.count})")
        autoscaling = group.autoscaling_configuration
        if autoscaling is not None:
            low, high = autoscaling.min_count, autoscaling.max_count
            if low is None or high is None:
                errors.add(f"{path}.autoscalingConfiguration", "minCount and maxCount are both required")
            elif low < 0 or low > high:
                errors.add(
                    f"{path}.autoscalingConfiguration",
                    f"minCount {low} and maxCount {high} must satisfy 0 <= minCount <= maxCount",
                )
            elif group.count is not None and not low <= group.count <= high:
                errors.add(
                    f"{path}.count",
                    f"count {group.count} must lie between minCount {low} and maxCount {high}",
                )
        _machine_ref(config, errors, provider, f"{path}.machineGroupRef", group.machine_group_ref)
        check_taints(errors, f"{path}.taints", group.taints)
        check_labels(errors, f"{path}.labels", group.labels)
        _health_check(errors, f"{path}.machineHealthCheck", group.machine_health_check)
        _kubelet_configuration(errors, f"{path}.kubeletConfiguration", group.kubelet_configuration)
        if group.kubernetes_version is not None:
            minor = minor_of(group.kubernetes_version)
            if minor is None:
                errors.add(
                    f"{path}.kubernetesVersion",
                    f'{group.kubernetes_version!r} is not a Kubernetes version (e.g. "1.33")',
                )
            elif control_minor is not None and minor > control_minor:
                errors.add(
                    f"{path}.kubernetesVersion",
                    f"worker version {group.kubernetes_version} is newer than the control plane's "
                    f"{cluster.spec.kubernetes_version}; workers may not run ahead of the control plane",
                )
            elif control_minor is not None and control_minor - minor > WORKER_SKEW_MINORS:
                errors.add(
                    f"{path}.kubernetesVersion",
                    f"worker version {group.kubernetes_version} is more than {WORKER_SKEW_MINORS} minor versions "
                    f"behind the control plane's {cluster.spec.kubernetes_version}",
                )
    if cluster.is_self_managed and all(_has_blocking_taint(g.taints) for g in groups):
        errors.add(
            field,
            "at least one WorkerNodeGroupConfiguration must not have NoExecute and/or NoSchedule taints, "
            "so that the cluster's own components can run",
        )


def _has_blocking_taint(taints: list[Any] | None) -> bool:
    return any(t.effect in ("NoSchedule", "NoExecute") for t in taints or [])


def _network(config: ClusterConfig, errors: ErrorList, provider: ProviderRules | None) -> None:
    network = config.cluster.spec.cluster_network
    field = "spec.clusterNetwork"
    if network is None:
        errors.add(field, "clusterNetwork is required (pods, services and a CNI)")
        return
    _cni(errors, network, provider)
    pods = _single_cidr(
        errors, f"{field}.pods.cidrBlocks", network.pods.cidr_blocks if network.pods else None, "pod"
    )
    services = _single_cidr(
        errors,
        f"{field}.services.cidrBlocks",
        network.services.cidr_blocks if network.services else None,
        "service",
    )
    if (
        pods is not None
        and services is not None
        and pods.version == services.version
        and pods.overlaps(services)
    ):
        errors.add(f"{field}.services.cidrBlocks[0]", f"service CIDR {services} overlaps the pod CIDR {pods}")
    datacenter = config.datacenter
    node_network = (
        provider.node_network(datacenter) if provider is not None and datacenter is not None else None
    )
    if node_network is not None:
        for name, block, path in (("pod", pods, "pods"), ("service", services, "services")):
            if block is not None and block.version == 4 and block.overlaps(node_network.subnet):
                errors.add(
                    f"{field}.{path}.cidrBlocks[0]",
                    f"{name} CIDR {block} overlaps the node subnet {node_network.subnet}",
                )
    mask = network.nodes.cidr_mask_size if network.nodes else None
    if mask is not None and pods is not None:
        limit = 32 if pods.version == 4 else 128
        if mask > limit:
            errors.add(
                f"{field}.nodes.cidrMaskSize", f"node mask {mask} is longer than an address (/{limit})"
            )
        elif mask <= pods.prefixlen:
            errors.add(
                f"{field}.nodes.cidrMaskSize",
                f"the size of pod subnet with mask {pods.prefixlen} is smaller than or equal to the size of node "
                f"subnet with mask {mask}; the node mask must be longer than the pod mask",
            )
        elif mask - pods.prefixlen > MAX_NODE_POD_MASK_GAP:
            errors.add(
                f"{field}.nodes.cidrMaskSize",
                f"pod subnet mask ({pods.prefixlen}) and node-mask ({mask}) difference is greater than "
                f"{MAX_NODE_POD_MASK_GAP}; use a shorter node mask or a larger pod CIDR",
            )
    if network.dns and network.dns.resolv_conf is not None and not network.dns.resolv_conf.path:
        errors.add(f"{field}.dns.resolvConf.path", "path is required when resolvConf is set")


def _single_cidr(
    errors: ErrorList, field: str, blocks: list[str] | None, name: str
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not blocks:
        errors.add(field, f"{name}s CIDR block not specified or empty")
        return None
    if len(blocks) > 1:
        errors.add(field, f"multiple CIDR blocks for {name}s are not yet supported (got {len(blocks)})")
    block = parse_cidr(blocks[0])
    if block is None:
        errors.add(f"{field}[0]", f"invalid CIDR block {blocks[0]!r} for {name}s; give a valid CIDR block")
    return block


def _cni(errors: ErrorList, network: ClusterNetwork, provider: ProviderRules | None) -> None:
    field = "spec.clusterNetwork"
    config = network.cni_config
    if config is None:
        if not network.cni:
            errors.add(
                f"{field}.cniConfig", "cni not specified: set cniConfig.cilium (or kindnetd on docker)"
            )
        else:
            errors.add(f"{field}.cni", f"cni {network.cni} not supported; use cniConfig.cilium")
        return
    if network.cni:
        errors.add(
            f"{field}.cni",
            "invalid format for cni plugin: both old and new formats used, use only the cniConfig field",
        )
    chosen = [
        name
        for name, value in (("cilium", config.cilium), ("kindnetd", config.kindnetd))
        if value is not None
    ]
    if not chosen:
        errors.add(f"{field}.cniConfig", "no cni plugin specified in cniConfig; set cilium")
    elif len(chosen) > 1:
        errors.add(f"{field}.cniConfig", "cannot specify more than one cni plugins; keep cilium or kindnetd")
    if config.kindnetd is not None and provider is not None and not provider.kindnetd_allowed:
        errors.add(
            f"{field}.cniConfig.kindnetd",
            f"kindnetd is only supported on the docker provider for development and testing, not {provider.name}; "
            "use cilium",
        )
    cilium = config.cilium
    if cilium is None:
        return
    path = f"{field}.cniConfig.cilium"
    if cilium.skip_upgrade:
        others = [
            k for k, v in cilium.to_dict().items() if k != "skipUpgrade" and v not in (None, "", {}, False)
        ]
        if others:
            errors.add(
                path,
                f"skipUpgrade hands the CNI to you; remove the other cilium settings ({', '.join(sorted(others))})",
            )
    mode = cilium.policy_enforcement_mode
    if mode and mode not in POLICY_ENFORCEMENT_MODES:
        errors.add(
            f"{path}.policyEnforcementMode",
            f"{mode!r} is invalid; use one of {', '.join(POLICY_ENFORCEMENT_MODES)}",
        )
    if cilium.routing_mode and cilium.routing_mode not in ROUTING_MODES:
        errors.add(
            f"{path}.routingMode",
            f"{cilium.routing_mode!r} is invalid; use one of {', '.join(ROUTING_MODES)}",
        )
    if cilium.routing_mode == "direct":
        if not cilium.ipv4_native_routing_cidr:
            errors.add(f"{path}.ipv4NativeRoutingCIDR", "direct routing needs ipv4NativeRoutingCIDR")
    elif cilium.ipv4_native_routing_cidr or cilium.ipv6_native_routing_cidr:
        errors.add(path, "native routing CIDRs are only used with routingMode: direct")
    for name, value, version in (
        ("ipv4NativeRoutingCIDR", cilium.ipv4_native_routing_cidr, 4),
        ("ipv6NativeRoutingCIDR", cilium.ipv6_native_routing_cidr, 6),
    ):
        if value:
            block = parse_cidr(value)
            if block is None or block.version != version:
                errors.add(f"{path}.{name}", f"{value!r} is not a valid IPv{version} CIDR block")


def _proxy(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    proxy = config.cluster.spec.proxy_configuration
    if proxy is None:
        return
    field = "spec.proxyConfiguration"
    for name, value in (("httpProxy", proxy.http_proxy), ("httpsProxy", proxy.https_proxy)):
        if not value:
            errors.add(f"{field}.{name}", f"no value set for {name}")
            continue
        problem = proxy_problem(value)
        if problem:
            errors.add(f"{field}.{name}", problem)
    for index, entry in enumerate(proxy.no_proxy or []):
        if not entry.strip():
            errors.add(f"{field}.noProxy[{index}]", "noProxy entries may not be empty")


def proxy_problem(value: str) -> str | None:
    """Why ``value`` is not a proxy address (``[scheme://]host:port``), or ``None``."""
    hostport = value
    if "://" in value:
        scheme, _, hostport = value.partition("://")
        if scheme not in ("http", "https"):
            return f"proxy {value!r} has scheme {scheme!r}; use http:// or https://"
        hostport = hostport.rstrip("/")
    host, sep, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        return f"proxy {value!r} must be host:port, e.g. 10.0.0.1:3128 or http://proxy.example.com:3128"
    if not is_host(host):
        return f"proxy host {host!r} is neither a valid IP address nor a valid domain name"
    if not valid_port(port):
        return f"proxy port {port} is invalid, please provide a valid proxy port (1 to 65535)"
    return None


def _registry_mirror(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    mirror = config.cluster.spec.registry_mirror_configuration
    if mirror is None:
        return
    field = "spec.registryMirrorConfiguration"
    if not mirror.endpoint:
        errors.add(f"{field}.endpoint", "no value set for registryMirrorConfiguration.endpoint")
    elif not is_host(mirror.endpoint):
        errors.add(f"{field}.endpoint", f"{mirror.endpoint!r} is neither an IP address nor a host name")
    if mirror.port and not valid_port(mirror.port):
        errors.add(
            f"{field}.port", f"registry mirror port {mirror.port} is invalid, please provide a valid port"
        )
    namespaces = mirror.oci_namespaces or []
    registries: set[str] = set()
    for index, entry in enumerate(namespaces):
        path = f"{field}.ociNamespaces[{index}]"
        if not entry.registry:
            errors.add(
                f"{path}.registry", "registry can't be set to empty in ociNamespaces (e.g. public.ecr.aws)"
            )
        elif entry.registry in registries:
            errors.add(f"{path}.registry", f"registry {entry.registry!r} is mapped twice")
        else:
            registries.add(entry.registry)


def _references(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    spec = config.cluster.spec
    refs = spec.identity_provider_refs
    if refs is not None:
        for index, ref in enumerate(refs):
            path = f"spec.identityProviderRefs[{index}]"
            if ref.kind not in IDENTITY_PROVIDER_KINDS:
                errors.add(
                    f"{path}.kind",
                    f"kind: {ref.kind} for identityProviderRef is not supported; use OIDCConfig or AWSIamConfig",
                )
                continue
            if not ref.name:
                errors.add(f"{path}.name", "name is required")
            elif config.get(ref.kind, ref.name) is None and not config.partial:
                errors.add(path, f"{ref.kind}/{ref.name} is not defined; add it to the configuration")
    gitops = spec.git_ops_ref
    if gitops is not None:
        if gitops.kind not in GITOPS_KINDS:
            errors.add(
                "spec.gitOpsRef.kind",
                f"only GitOpsConfig or FluxConfig kinds are supported for gitOpsRef (got {gitops.kind!r})",
            )
        elif not gitops.name:
            errors.add("spec.gitOpsRef.name", "name is required")
        elif config.get(gitops.kind, gitops.name) is None and not config.partial:
            errors.add(
                "spec.gitOpsRef", f"{gitops.kind}/{gitops.name} is not defined; add it to the configuration"
            )


def _packages(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    cluster = config.cluster
    packages = cluster.spec.packages
    if packages is None or cluster.is_self_managed:
        return
    if packages.controller is not None:
        errors.add(
            "spec.packages.controller",
            "packages: controller should not be specified for a workload cluster (only on a management cluster)",
        )
    if packages.cronjob is not None:
        errors.add(
            "spec.packages.cronjob",
            "packages: cronjob should not be specified for a workload cluster (only on a management cluster)",
        )


def _versions(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    spec = config.cluster.spec
    if spec.bundles_ref is not None and spec.eksa_version is not None:
        errors.add(
            "spec.eksaVersion",
            "cannot pass both bundlesRef and eksaVersion; new clusters should use eksaVersion instead of bundlesRef",
        )
    if spec.eksa_version is not None and not SEMVER.match(spec.eksa_version):
        errors.add(
            "spec.eksaVersion", f"eksaVersion {spec.eksa_version!r} is not a valid semver, e.g. v0.22.0"
        )
    bundles = spec.bundles_ref
    if bundles is not None and not (bundles.name and bundles.namespace and bundles.api_version):
        errors.add("spec.bundlesRef", "bundlesRef needs name, namespace and apiVersion")


def _rollout(config: ClusterConfig, errors: ErrorList, provider: ProviderRules | None) -> None:
    in_place_allowed = provider is None or provider.in_place_upgrade_allowed
    control_plane = config.cluster.spec.control_plane_configuration
    strategy = control_plane.upgrade_rollout_strategy if control_plane else None
    field = "spec.controlPlaneConfiguration.upgradeRolloutStrategy"
    if strategy is not None:
        _rollout_type(
            errors, field, strategy.type, strategy.rolling_update is not None, in_place_allowed, provider
        )
        surge = strategy.rolling_update.max_surge if strategy.rolling_update else None
        if surge is not None and surge not in (0, 1):
            errors.add(
                f"{field}.rollingUpdate.maxSurge", f"maxSurge for control plane must be 0 or 1 (got {surge})"
            )
        count = control_plane.count if control_plane else None
        if surge == 0 and count is not None and count < 3:
            errors.add(
                f"{field}.rollingUpdate.maxSurge",
                "maxSurge 0 removes a control plane machine before adding one; it needs 3 or more machines",
            )
    for index, group in enumerate(config.cluster.worker_groups):
        worker = group.upgrade_rollout_strategy
        if worker is None:
            continue
        path = f"spec.workerNodeGroupConfigurations[{index}].upgradeRolloutStrategy"
        _rollout_type(
            errors, path, worker.type, worker.rolling_update is not None, in_place_allowed, provider
        )
        params = worker.rolling_update
        if params is None:
            continue
        for name, value in (("maxSurge", params.max_surge), ("maxUnavailable", params.max_unavailable)):
            if value is not None and value < 0:
                errors.add(f"{path}.rollingUpdate.{name}", f"{name} must be 0 or more (got {value})")
        if (params.max_surge or 0) == 0 and (params.max_unavailable or 0) == 0:
            errors.add(
                f"{path}.rollingUpdate",
                "maxSurge and maxUnavailable cannot both be 0; no machine could be replaced",
            )


def _rollout_type(
    errors: ErrorList,
    field: str,
    kind: str | None,
    has_rolling: bool,
    in_place_allowed: bool,
    provider: ProviderRules | None,
) -> None:
    if kind is not None and kind not in ROLLOUT_TYPES:
        errors.add(
            f"{field}.type",
            f"only 'RollingUpdate' and 'InPlace' are supported for upgrade rollout strategy type (got {kind!r})",
        )
    if kind == "InPlace":
        if not in_place_allowed:
            errors.add(
                f"{field}.type",
                f"InPlace upgrades are only supported on tinkerbell, not {provider.name if provider else ''}",
            )
        if has_rolling:
            errors.add(f"{field}.rollingUpdate", "rollingUpdate cannot be set with type InPlace")


def _health_check(errors: ErrorList, field: str, check: MachineHealthCheck | None) -> None:
    if check is None:
        return
    for name, value in (
        ("nodeStartupTimeout", check.node_startup_timeout),
        ("unhealthyMachineTimeout", check.unhealthy_machine_timeout),
    ):
        if value is None:
            continue
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            errors.add(f"{field}.{name}", str(exc))
            continue
        if seconds <= 0:
            errors.add(f"{field}.{name}", f"{name} must be positive (got {value})")
        elif name == "nodeStartupTimeout" and seconds < 30:
            errors.add(f"{field}.{name}", f"nodeStartupTimeout must be at least 30s (got {value})")
    problem = max_unhealthy_problem(check.max_unhealthy)
    if problem:
        errors.add(f"{field}.maxUnhealthy", problem)


def max_unhealthy_problem(value: int | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        return None if value >= 0 else f"maxUnhealthy must be 0 or more (got {value})"
    match = re.fullmatch(r"(\d+)%", value)
    if match is None or int(match.group(1)) > 100:
        return f"maxUnhealthy {value!r} must be a count or a percentage from 0% to 100%"
    return None


def _kubelet_configuration(errors: ErrorList, field: str, config: dict[str, Any] | None) -> None:
    if config is None:
        return
    kind = config.get("kind")
    if kind is not None and kind != "KubeletConfiguration":
        errors.add(f"{field}.kind", f"kind must be KubeletConfiguration (got {kind!r})")
    api_version = config.get("apiVersion")
    if api_version is not None and api_version != "kubelet.config.k8s.io/v1beta1":
        errors.add(
            f"{field}.apiVersion", f"apiVersion must be kubelet.config.k8s.io/v1beta1 (got {api_version!r})"
        )


def _cluster_health_check(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    _health_check(errors, "spec.machineHealthCheck", config.cluster.spec.machine_health_check)


def _pod_iam(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    pod_iam = config.cluster.spec.pod_iam_config
    if pod_iam is None:
        return
    issuer = pod_iam.service_account_issuer or ""
    if not issuer.startswith("https://") or not is_host(
        issuer[len("https://") :].split("/", 1)[0].split(":")[0]
    ):
        errors.add("spec.podIamConfig.serviceAccountIssuer", f"{issuer!r} must be an https:// URL")


def _etcd_encryption(config: ClusterConfig, errors: ErrorList, _: ProviderRules | None) -> None:
    encryption = config.cluster.spec.etcd_encryption
    if encryption is None:
        return
    field = "spec.etcdEncryption"
    if len(encryption) != 1:
        errors.add(field, f"exactly one etcdEncryption configuration is supported (got {len(encryption)})")
    for index, item in enumerate(encryption):
        path = f"{field}[{index}]"
        if not item.providers:
            errors.add(f"{path}.providers", "at least one provider is required")
        if not item.resources:
            errors.add(f"{path}.resources", "at least one resource is required (e.g. secrets)")
        names: set[str] = set()
        for p_index, entry in enumerate(item.providers or []):
            kms = entry.kms
            p_path = f"{path}.providers[{p_index}].kms"
            if kms is None:
                errors.add(p_path, "kms is required")
                continue
            if not kms.name:
                errors.add(f"{p_path}.name", "name is required")
            elif kms.name in names:
                errors.add(f"{p_path}.name", f"provider name {kms.name!r} is used twice")
            else:
                names.add(kms.name)
            if not kms.socket_listen_address or not kms.socket_listen_address.startswith("unix://"):
                errors.add(
                    f"{p_path}.socketListenAddress", "socketListenAddress must be a unix:// socket path"
                )


_RULES: tuple[_Rule, ...] = (
    _name,
    _kubernetes_version,
    _control_plane,
    _endpoint_outside_cluster_cidrs,
    _external_etcd,
    _workers,
    _network,
    _proxy,
    _registry_mirror,
    _references,
    _packages,
    _versions,
    _rollout,
    _cluster_health_check,
    _pod_iam,
    _etcd_encryption,
)


def create_checks(config: ClusterConfig) -> list[FieldError]:
    """The provider's create-time checks that need no live infrastructure (see ``ProviderRules``)."""
    datacenter = config.datacenter
    provider = rules_for_datacenter(datacenter.kind) if datacenter is not None else None
    return provider.create_checks(config) if provider is not None else []
