"""The Cluster kind: the one object a platform engineer writes to describe a whole cluster."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from anywhere.api.v1alpha1._base import Condition, Model, Object, Ref


def _version_text(value: Any) -> Any:
    """Read ``kubernetesVersion: 1.30`` as ``"1.30"``.

    YAML reads an unquoted ``1.30`` as the float 1.3. The loader keeps the scalar's source text in
    a float subclass (``raw``); plain floats from JSON fall back to their shortest repr.
    """
    if isinstance(value, bool):
        return value
    raw = getattr(value, "raw", None)
    if isinstance(raw, str):
        return raw
    if isinstance(value, int | float):
        return str(value)
    return value


class Taint(Model):
    """A Kubernetes node taint."""

    key: str | None = None
    value: str | None = None
    effect: str | None = None
    time_added: str | None = None


class Endpoint(Model):
    """The control plane endpoint: a VIP (or host name) that fronts every API server."""

    host: str | None = None


class ControlPlaneRollingUpdateParams(Model):
    max_surge: int | None = None


class ControlPlaneUpgradeRolloutStrategy(Model):
    """RollingUpdate (the default) or InPlace (bare metal only)."""

    type: str | None = None
    rolling_update: ControlPlaneRollingUpdateParams | None = None


class WorkerNodesRollingUpdateParams(Model):
    max_unavailable: int | None = None
    max_surge: int | None = None


class WorkerNodesUpgradeRolloutStrategy(Model):
    type: str | None = None
    rolling_update: WorkerNodesRollingUpdateParams | None = None


class MachineHealthCheck(Model):
    """Timeouts after which an unhealthy machine is replaced, and how many may be at once."""

    node_startup_timeout: str | None = None
    unhealthy_machine_timeout: str | None = None
    max_unhealthy: int | str | None = None


class ControlPlaneConfiguration(Model):
    """The control plane machines: how many, where they are reached, what they run on."""

    count: int | None = None
    """Number of control plane machines: 1, 3 or 5 with stacked etcd."""
    endpoint: Endpoint | None = None
    """The address (a free IP, the VIP) that fronts every API server of the cluster; immutable."""
    machine_group_ref: Ref | None = None
    taints: list[Taint] | None = None
    labels: dict[str, str] | None = None
    upgrade_rollout_strategy: ControlPlaneUpgradeRolloutStrategy | None = None
    """How machines are replaced on upgrade: RollingUpdate (maxSurge 0 or 1) or InPlace (bare metal)."""
    skip_load_balancer_deployment: bool | None = None
    cert_sans: list[str] | None = None
    machine_health_check: MachineHealthCheck | None = None
    api_server_extra_args: dict[str, str] | None = None
    kubelet_configuration: dict[str, Any] | None = None


class AutoScalingConfiguration(Model):
    min_count: int | None = None
    max_count: int | None = None


class WorkerNodeGroupConfiguration(Model):
    name: str | None = None
    """Name of the group, unique in the cluster (the first one defaults to md-0)."""
    count: int | None = None
    """Number of machines (defaults to 1, or to the autoscaling minimum)."""
    autoscaling_configuration: AutoScalingConfiguration | None = None
    machine_group_ref: Ref | None = None
    taints: list[Taint] | None = None
    labels: dict[str, str] | None = None
    upgrade_rollout_strategy: WorkerNodesUpgradeRolloutStrategy | None = None
    kubernetes_version: str | None = None
    machine_health_check: MachineHealthCheck | None = None
    kubelet_configuration: dict[str, Any] | None = None

    _version = field_validator("kubernetes_version", mode="before")(_version_text)


class CiliumConfig(Model):
    policy_enforcement_mode: str | None = None
    egress_masquerade_interfaces: str | None = None
    skip_upgrade: bool | None = None
    routing_mode: str | None = None
    ipv4_native_routing_cidr: str | None = Field(default=None, alias="ipv4NativeRoutingCIDR")
    ipv6_native_routing_cidr: str | None = Field(default=None, alias="ipv6NativeRoutingCIDR")
    cni_exclusive: bool | None = None
    helm_values: dict[str, Any] | None = None


class KindnetdConfig(Model):
    """kindnetd takes no settings; its presence selects it (docker only)."""


class CNIConfig(Model):
    cilium: CiliumConfig | None = None
    kindnetd: KindnetdConfig | None = None


class CIDRBlocks(Model):
    cidr_blocks: list[str] | None = None


class ResolvConf(Model):
    path: str | None = None


class DNS(Model):
    resolv_conf: ResolvConf | None = None


class Nodes(Model):
    cidr_mask_size: int | None = None


class ClusterNetwork(Model):
    cni: str | None = None  # deprecated by cniConfig; still read, as EKS Anywhere does
    cni_config: CNIConfig | None = None
    pods: CIDRBlocks | None = None
    services: CIDRBlocks | None = None
    dns: DNS | None = None
    nodes: Nodes | None = None


class ExternalEtcdConfiguration(Model):
    count: int | None = None
    machine_group_ref: Ref | None = None


class ProxyConfiguration(Model):
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: list[str] | None = None


class OCINamespace(Model):
    registry: str | None = None
    namespace: str | None = None


class RegistryMirrorConfiguration(Model):
    endpoint: str | None = None
    port: str | None = None
    oci_namespaces: list[OCINamespace] | None = None
    ca_cert_content: str | None = None
    authenticate: bool | None = None
    insecure_skip_verify: bool | None = None

    @field_validator("port", mode="before")
    @classmethod
    def _port_text(cls, value: Any) -> Any:
        """EKS Anywhere types the port as a string; ``port: 443`` in YAML is an int."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ManagementCluster(Model):
    name: str | None = None


class PodIAMConfig(Model):
    service_account_issuer: str | None = None


class ImageResource(Model):
    cpu: str | None = None
    memory: str | None = None


class PackageControllerResources(Model):
    requests: ImageResource | None = None
    limits: ImageResource | None = None


class PackageControllerConfiguration(Model):
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None
    disable_webhooks: bool | None = None
    env: list[str] | None = None
    resources: PackageControllerResources | None = None


class PackageControllerCronjob(Model):
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None
    disable: bool | None = None


class PackageConfiguration(Model):
    """Curated packages: the controller runs on management clusters only."""

    disable: bool | None = None
    controller: PackageControllerConfiguration | None = None
    cronjob: PackageControllerCronjob | None = None


class BundlesRef(Model):
    name: str | None = None
    namespace: str | None = None
    api_version: str | None = None


class KMS(Model):
    name: str | None = None
    socket_listen_address: str | None = None


class EtcdEncryptionProvider(Model):
    kms: KMS | None = None


class EtcdEncryption(Model):
    providers: list[EtcdEncryptionProvider] | None = None
    resources: list[str] | None = None


class ClusterSpec(Model):
    kubernetes_version: str | None = None
    """Kubernetes version of the control plane (and of worker groups that set none), as major.minor, e.g. "1.33"."""
    control_plane_configuration: ControlPlaneConfiguration | None = None
    """The control plane: machine count (odd with stacked etcd), endpoint VIP, machine config."""
    worker_node_group_configurations: list[WorkerNodeGroupConfiguration] | None = None
    """Groups of worker machines, each with its own count, machine config, labels, taints and version."""
    datacenter_ref: Ref | None = None
    """The datacenter config (kind and name) that says where machines run; it selects the provider."""
    identity_provider_refs: list[Ref] | None = None
    """OIDCConfig and AWSIamConfig objects that authenticate users of the cluster."""
    git_ops_ref: Ref | None = None
    """A FluxConfig or GitOpsConfig that keeps the cluster's specification in git."""
    cluster_network: ClusterNetwork | None = None
    """Pod and service CIDRs, CNI, DNS and node CIDR mask size; immutable after creation."""
    external_etcd_configuration: ExternalEtcdConfiguration | None = None
    """Run etcd on machines of its own (count must be odd) instead of stacked on the control plane."""
    proxy_configuration: ProxyConfiguration | None = None
    """HTTP(S) proxy for the machines, and the destinations that bypass it."""
    registry_mirror_configuration: RegistryMirrorConfiguration | None = None
    """A registry mirror that machines pull images through."""
    management_cluster: ManagementCluster | None = None
    """The cluster that manages this one; itself (or unset) for a self-managed cluster."""
    pod_iam_config: PodIAMConfig | None = None
    packages: PackageConfiguration | None = None
    bundles_ref: BundlesRef | None = None
    eksa_version: str | None = None
    """The release of components to run, as a semantic version; replaces bundlesRef."""
    machine_health_check: MachineHealthCheck | None = None
    """Default timeouts after which unhealthy machines are replaced."""
    etcd_encryption: list[EtcdEncryption] | None = None
    license_token: str | None = None

    _version = field_validator("kubernetes_version", "eksa_version", mode="before")(_version_text)


class EksdReleaseRef(Model):
    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None


class CertificateInfo(Model):
    machine: str | None = None
    expires_in_days: int | None = None


class ClusterStatus(Model):
    failure_message: str | None = None
    failure_reason: str | None = None
    eksd_release_ref: EksdReleaseRef | None = None
    conditions: list[Condition] | None = None
    reconciled_generation: int | None = None
    children_reconciled_generation: int | None = None
    observed_generation: int | None = None
    cluster_certificate_info: list[CertificateInfo] | None = None


class Cluster(Object):
    """A Kubernetes cluster: its version, control plane, worker groups, network and add-ons."""

    KIND: ClassVar[str] = "Cluster"
    PLURAL: ClassVar[str] = "clusters"
    kind: Literal["Cluster"] = "Cluster"
    spec: ClusterSpec = Field(default_factory=ClusterSpec)
    status: ClusterStatus | None = None

    @property
    def is_self_managed(self) -> bool:
        """A cluster that manages itself: no management cluster, or itself named as one."""
        management = self.spec.management_cluster
        return management is None or not management.name or management.name == self.name

    @property
    def worker_groups(self) -> list[WorkerNodeGroupConfiguration]:
        return self.spec.worker_node_group_configurations or []
