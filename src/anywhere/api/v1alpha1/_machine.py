"""Field groups shared by the machine configs of several providers.

EKS Anywhere defines one ``UserConfiguration`` and one ``HostOSConfiguration`` (with its NTP, CA bundle
and Bottlerocket settings) for every provider whose machine config carries them; so does this package.
"""

from __future__ import annotations

from pydantic import Field

from anywhere.api.v1alpha1._base import Model


class UserConfiguration(Model):
    """An OS user created on every machine, with the SSH public keys allowed to log in as it."""

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
