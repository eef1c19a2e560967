"""Kinds of the vSphere provider: where in vCenter a cluster lives, and what its VMs look like.

``HostOSConfiguration`` and ``UserConfiguration`` are shared by EKS Anywhere's VM providers; they are
defined here because vSphere is the first provider of this package to use them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object


class UserConfiguration(Model):
    """An OS user created on every VM, with the SSH keys allowed to log in as it."""

    name: str | None = None
    ssh_authorized_keys: list[str] | None = None


class NTPConfiguration(Model):
    """NTP servers the host OS synchronises its clock with."""

    servers: list[str] | None = None


class CertBundle(Model):
    """An extra CA bundle (PEM) trusted by the host OS."""

    name: str | None = None
    data: str | None = None


class BottlerocketKubernetesSettings(Model):
    """Kubelet settings Bottlerocket exposes through its API (Cluster API's Bottlerocket bootstrap)."""

    allowed_unsafe_sysctls: list[str] | None = None
    cluster_dns_ips: list[str] | None = Field(default=None, alias="clusterDNSIPs")
    cluster_domain: str | None = None
    container_log_max_files: int | None = None
    container_log_max_size: str | int | None = None
    cpu_cfs_quota: bool | None = Field(default=None, alias="cpuCFSQuota")
    cpu_manager_policy: str | None = None
    cpu_manager_policy_options: dict[str, str] | None = None
    cpu_manager_reconcile_period: str | None = None
    event_burst: int | None = None
    event_record_qps: int | None = Field(default=None, alias="eventRecordQPS")
    eviction_hard: dict[str, str] | None = None
    eviction_max_pod_grace_period: int | None = None
    eviction_soft: dict[str, str] | None = None
    eviction_soft_grace_period: dict[str, str] | None = None
    image_gc_high_threshold_percent: int | None = Field(default=None, alias="imageGCHighThresholdPercent")
    image_gc_low_threshold_percent: int | None = Field(default=None, alias="imageGCLowThresholdPercent")
    kube_api_burst: int | None = Field(default=None, alias="kubeAPIBurst")
    kube_api_qps: int | None = Field(default=None, alias="kubeAPIQPS")
    kube_reserved: dict[str, str] | None = None
    max_pods: int | None = None
    memory_manager_policy: str | None = None
    pod_pids_limit: int | None = None
    provider_id: str | None = Field(default=None, alias="providerID")
    registry_burst: int | None = None
    registry_pull_qps: int | None = Field(default=None, alias="registryPullQPS")
    shutdown_grace_period: str | None = None
    shutdown_grace_period_critical_pods: str | None = None
    system_reserved: dict[str, str] | None = None
    topology_manager_policy: str | None = None
    topology_manager_scope: str | None = None


class BottlerocketKernelSettings(Model):
    """Kernel sysctls set on Bottlerocket nodes."""

    sysctl_settings: dict[str, str] | None = None


class BottlerocketBootSettings(Model):
    """Kernel command-line parameters of Bottlerocket nodes (each key takes a list of values)."""

    boot_kernel_parameters: dict[str, list[str]] | None = None


class BottlerocketConfiguration(Model):
    """Bottlerocket-only host settings; refused for other OS families."""

    kubernetes: BottlerocketKubernetesSettings | None = None
    kernel: BottlerocketKernelSettings | None = None
    boot: BottlerocketBootSettings | None = None


class HostOSConfiguration(Model):
    """Host OS settings applied when a node boots: NTP, trusted CAs, Bottlerocket settings."""

    ntp_configuration: NTPConfiguration | None = None
    bottlerocket_configuration: BottlerocketConfiguration | None = None
    cert_bundles: list[CertBundle] | None = None


class FailureDomain(Model):
    """A vSphere failure domain: a compute cluster with its own pool, datastore, folder and network."""

    name: str | None = None
    compute_cluster: str | None = None
    resource_pool: str | None = None
    datastore: str | None = None
    folder: str | None = None
    network: str | None = None


class VSphereDatacenterConfigSpec(Model):
    datacenter: str | None = None
    network: str | None = None
    server: str | None = None
    thumbprint: str | None = None
    insecure: bool | None = None
    failure_domains: list[FailureDomain] | None = None


class VSphereDatacenterConfigStatus(Model):
    spec_valid: bool | None = None
    observed_generation: int | None = None
    failure_message: str | None = None


class VSphereDatacenterConfig(Object):
    """The vCenter a cluster is built in: server, datacenter, VM network and how to trust the server."""

    KIND: ClassVar[str] = "VSphereDatacenterConfig"
    PLURAL: ClassVar[str] = "vspheredatacenterconfigs"
    kind: Literal["VSphereDatacenterConfig"] = "VSphereDatacenterConfig"
    spec: VSphereDatacenterConfigSpec = Field(default_factory=VSphereDatacenterConfigSpec)
    status: VSphereDatacenterConfigStatus | None = None


class VSphereMachineConfigSpec(Model):
    disk_gib: int | None = Field(default=None, alias="diskGiB")
    datastore: str | None = None
    folder: str | None = None
    num_cpus: int | None = Field(default=None, alias="numCPUs")
    memory_mib: int | None = Field(default=None, alias="memoryMiB")
    os_family: str | None = None
    resource_pool: str | None = None
    storage_policy_name: str | None = None
    # Extra port groups for worker nodes (at most two), on top of the datacenter's network.
    networks: list[str] | None = None
    template: str | None = None
    users: list[UserConfiguration] | None = None
    # vSphere tag URNs attached to every VM (EKS Anywhere's TagIDs, "tags" on the wire).
    tags: list[str] | None = None
    clone_mode: str | None = None
    host_os_configuration: HostOSConfiguration | None = Field(default=None, alias="hostOSConfiguration")


class VSphereMachineConfigStatus(Model):
    pass


class VSphereMachineConfig(Object):
    """The shape of a group of VMs: template, OS family, CPUs, memory, disk and vCenter placement."""

    KIND: ClassVar[str] = "VSphereMachineConfig"
    PLURAL: ClassVar[str] = "vspheremachineconfigs"
    kind: Literal["VSphereMachineConfig"] = "VSphereMachineConfig"
    spec: VSphereMachineConfigSpec = Field(default_factory=VSphereMachineConfigSpec)
    status: VSphereMachineConfigStatus | None = None
