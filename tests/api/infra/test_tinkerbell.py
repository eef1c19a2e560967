from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from anywhere.api import PAUSED_ANNOTATION, validate_update
from anywhere.api.config import ClusterConfig
from anywhere.api.errors import FieldError
from anywhere.api.infra import tinkerbell as tb
from anywhere.api.v1alpha1._base import Object, ObjectMeta, Ref
from anywhere.api.v1alpha1._machine import CertBundle, UserConfiguration
from anywhere.api.v1alpha1.cluster import (
    AutoScalingConfiguration,
    Cluster,
    ClusterSpec,
    ControlPlaneConfiguration,
    ControlPlaneUpgradeRolloutStrategy,
    Endpoint,
    ExternalEtcdConfiguration,
    ProxyConfiguration,
    Taint,
    WorkerNodeGroupConfiguration,
    WorkerNodesUpgradeRolloutStrategy,
)
from anywhere.api.v1alpha1.tinkerbell import (
    LabelSelectorRequirement,
    TinkerbellDatacenterConfig,
    TinkerbellDatacenterConfigSpec,
    TinkerbellMachineConfig,
    TinkerbellMachineConfigSpec,
    TinkerbellTemplateConfig,
)
from tests.api.infra.conftest import CERT

COMPAT = Path("/work/shared/compat/eksa-v1alpha1")

DATACENTER_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: TinkerbellDatacenterConfig
metadata:
  name: bm
spec:
  tinkerbellIP: "10.80.8.91"
  osImageURL: "http://my-web-server/ubuntu-v1.30.1-eks-a-amd64.gz"
  hookImagesURLPath: "http://my-web-server/hook"
  skipLoadBalancerDeployment: false
  loadBalancerInterface: eno1
  isoBoot: true
  hookIsoURL: "http://my-web-server/hook.iso"
"""

MACHINE_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: TinkerbellMachineConfig
metadata:
  name: bm-cp
spec:
  hardwareSelector:
    type: cp
  osFamily: bottlerocket
  osImageURL: "http://my-web-server/bottlerocket-1.30.img.gz"
  templateRef:
    kind: TinkerbellTemplateConfig
    name: bm-template
  users:
  - name: ec2-user
    sshAuthorizedKeys:
    - ""
  hostOSConfiguration:
    ntpConfiguration:
      servers: [time.example.com, "udp://10.0.0.1:123"]
    bottlerocketConfiguration:
      kubernetes:
        allowedUnsafeSysctls: [net.core.somaxconn]
        clusterDNSIPs: [10.96.0.10]
        maxPods: 110
      kernel:
        sysctlSettings:
          vm.max_map_count: "262144"
      boot:
        bootKernelParameters:
          console: [tty0, ttyS0]
"""

AFFINITY_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: TinkerbellMachineConfig
metadata:
  name: bm-md
spec:
  hardwareAffinity:
    required:
    - labelSelector:
        matchLabels:
          type: worker
        matchExpressions:
        - key: rack
          operator: In
          values: [r1, r2]
        - key: broken
          operator: DoesNotExist
    preferred:
    - weight: 50
      hardwareAffinityTerm:
        labelSelector:
          matchLabels:
            disk: nvme
  osFamily: bottlerocket
"""

TEMPLATE_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: TinkerbellTemplateConfig
metadata:
  name: bm-template
spec:
  template:
    global_timeout: 6000
    id: ""
    name: bm-template
    version: "0.1"
    tasks:
    - name: bm-template
      worker: "{{.device_1}}"
      volumes:
      - /dev:/dev
      - /lib/firmware:/lib/firmware:ro
      actions:
      - name: stream-image
        image: public.ecr.aws/eks-anywhere/tinkerbell/hub/image2disk:6c0f0d437bde2c836d90-eks-a-15
        timeout: 600
        environment:
          DEST_DISK: /dev/sda
          COMPRESSED: "true"
        pid: host
      - name: reboot-image
        image: public.ecr.aws/eks-anywhere/tinkerbell/hub/reboot:6c0f0d437bde2c836d90-eks-a-15
        timeout: 90
        command: ["/bin/sh", "-c", "reboot"]
        on-timeout: ["/bin/true"]
        on-failure: ["/bin/true"]
        volumes:
        - /worker:/worker
"""


def _load(kind: type[Any], text: str) -> Any:
    return kind.model_validate(yaml.safe_load(text), by_name=False)


def _dc(text: str = DATACENTER_YAML) -> TinkerbellDatacenterConfig:
    obj: TinkerbellDatacenterConfig = _load(TinkerbellDatacenterConfig, text)
    return obj


def _mc(text: str = MACHINE_YAML) -> TinkerbellMachineConfig:
    obj: TinkerbellMachineConfig = _load(TinkerbellMachineConfig, text)
    return obj


def _template(text: str = TEMPLATE_YAML) -> TinkerbellTemplateConfig:
    obj: TinkerbellTemplateConfig = _load(TinkerbellTemplateConfig, text)
    return obj


def _has(errors: list[FieldError], field: str, text: str) -> bool:
    return any(e.field == field and text in e.message for e in errors)


def _ssh_key(key_type: str = "ssh-ed25519") -> str:
    blob = struct.pack(">I", len(key_type)) + key_type.encode() + struct.pack(">I", 32) + bytes(range(32))
    return f"{key_type} {base64.b64encode(blob).decode()} me@example.com"


# --------------------------------------------------------------------------- a whole configuration


def _config(
    *,
    version: str = "1.30",
    workers: bool = True,
    cp_family: str = "bottlerocket",
    worker_family: str = "bottlerocket",
    dc_url: str | None = None,
    cp_url: str | None = None,
    worker_url: str | None = None,
) -> ClusterConfig:
    dc = TinkerbellDatacenterConfig(
        metadata=ObjectMeta(name="bm"),
        spec=TinkerbellDatacenterConfigSpec(tinkerbell_ip="10.80.8.91", os_image_url=dc_url),
    )
    cp = TinkerbellMachineConfig(
        metadata=ObjectMeta(name="bm-cp"),
        spec=TinkerbellMachineConfigSpec(
            hardware_selector={"type": "cp"}, os_family=cp_family, os_image_url=cp_url
        ),
    )
    md = TinkerbellMachineConfig(
        metadata=ObjectMeta(name="bm-md"),
        spec=TinkerbellMachineConfigSpec(
            hardware_selector={"type": "worker"}, os_family=worker_family, os_image_url=worker_url
        ),
    )
    groups = (
        [
            WorkerNodeGroupConfiguration(
                name="md-0", count=1, machine_group_ref=Ref(kind=md.KIND, name="bm-md")
            )
        ]
        if workers
        else None
    )
    cluster = Cluster(
        metadata=ObjectMeta(name="bm"),
        spec=ClusterSpec(
            kubernetes_version=version,
            control_plane_configuration=ControlPlaneConfiguration(
                count=1,
                endpoint=Endpoint(host="10.80.8.90"),
                machine_group_ref=Ref(kind=cp.KIND, name="bm-cp"),
            ),
            worker_node_group_configurations=groups,
            datacenter_ref=Ref(kind=dc.KIND, name="bm"),
        ),
    )
    return ClusterConfig(cluster, [dc, cp, md])


def _dc_of(config: ClusterConfig) -> TinkerbellDatacenterConfig:
    obj = config.get("TinkerbellDatacenterConfig", "bm")
    assert isinstance(obj, TinkerbellDatacenterConfig)
    return obj


def _mc_of(config: ClusterConfig, name: str) -> TinkerbellMachineConfig:
    obj = config.get("TinkerbellMachineConfig", name)
    assert isinstance(obj, TinkerbellMachineConfig)
    return obj


def _compat(name: str) -> ClusterConfig:
    docs = list(yaml.safe_load_all((COMPAT / name).read_text()))
    cluster = Cluster.model_validate(docs[0], by_name=False)
    kinds = {
        k.KIND: k for k in (TinkerbellDatacenterConfig, TinkerbellMachineConfig, TinkerbellTemplateConfig)
    }
    objects: list[Object] = [kinds[d["kind"]].model_validate(d, by_name=False) for d in docs[1:]]
    return ClusterConfig(cluster, objects)


def _all_errors(config: ClusterConfig) -> list[FieldError]:
    errors = tb.validate_cluster(config)
    for obj in config.objects:
        if isinstance(obj, TinkerbellMachineConfig):
            tb.default_machine(obj)
            errors += tb.validate_machine(obj)
        elif isinstance(obj, TinkerbellDatacenterConfig):
            errors += tb.validate_datacenter(obj)
    return errors


# --------------------------------------------------------------------------- sample, rules, round trips


def test_sample_is_valid() -> None:
    sample = tb.sample("bm")
    assert sample.endpoint_host == "10.80.8.90"
    assert isinstance(sample.datacenter, TinkerbellDatacenterConfig)
    assert isinstance(sample.control_plane_machine, TinkerbellMachineConfig)
    assert isinstance(sample.worker_machine, TinkerbellMachineConfig)
    assert tb.validate_datacenter(sample.datacenter) == []
    assert tb.validate_machine(sample.control_plane_machine) == []
    assert tb.validate_machine(sample.worker_machine) == []
    config = _config()
    config.objects = [sample.datacenter, sample.control_plane_machine, sample.worker_machine]
    config.cluster.spec.control_plane_configuration = ControlPlaneConfiguration(
        count=1,
        endpoint=Endpoint(host=sample.endpoint_host),
        machine_group_ref=Ref(kind="TinkerbellMachineConfig", name=sample.control_plane_machine.name),
    )
    config.cluster.worker_groups[0].machine_group_ref = Ref(
        kind="TinkerbellMachineConfig", name=sample.worker_machine.name
    )
    assert tb.validate_cluster(config) == []
    assert tb.create_checks(config) == []


def test_rules_flags() -> None:
    rules = tb.RULES
    assert rules.name == "tinkerbell"
    assert rules.datacenter_kind is TinkerbellDatacenterConfig
    assert rules.machine_kind is TinkerbellMachineConfig
    assert rules.extra_kinds == (TinkerbellTemplateConfig,)
    assert rules.control_plane_only_allowed
    assert rules.in_place_upgrade_allowed
    assert rules.endpoint_required
    assert not rules.kindnetd_allowed
    assert rules.create_checks is tb.create_checks
    assert rules.cluster_update is tb.cluster_update


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (TinkerbellDatacenterConfig, DATACENTER_YAML),
        (TinkerbellMachineConfig, MACHINE_YAML),
        (TinkerbellMachineConfig, AFFINITY_YAML),
        (TinkerbellTemplateConfig, TEMPLATE_YAML),
    ],
)
def test_round_trip(kind: type[Any], text: str) -> None:
    obj = _load(kind, text)
    assert kind.model_validate(obj.to_dict(), by_name=False) == obj
    assert obj.to_dict() == yaml.safe_load(text)


def test_exact_json_names() -> None:
    dc = _dc().to_dict()["spec"]
    assert {"tinkerbellIP", "osImageURL", "hookImagesURLPath", "hookIsoURL", "isoBoot"} <= set(dc)
    mc = _mc().to_dict()["spec"]
    assert "hostOSConfiguration" in mc
    assert "clusterDNSIPs" in mc["hostOSConfiguration"]["bottlerocketConfiguration"]["kubernetes"]
    action = _template().to_dict()["spec"]["template"]["tasks"][0]["actions"][1]
    assert {"on-timeout", "on-failure"} <= set(action)
    assert "global_timeout" in _template().to_dict()["spec"]["template"]


def test_camel_case_template_keys_are_refused() -> None:
    data = yaml.safe_load(TEMPLATE_YAML)
    data["spec"]["template"]["globalTimeout"] = data["spec"]["template"].pop("global_timeout")
    with pytest.raises(ValueError, match="globalTimeout"):
        TinkerbellTemplateConfig.model_validate(data, by_name=False)


# --------------------------------------------------------------------------- compat cases


def test_compat_control_plane_only_123_is_valid() -> None:
    assert _all_errors(_compat("tinkerbell_cluster_without_worker_nodes.yaml")) == []


def test_compat_control_plane_only_121_is_invalid() -> None:
    errors = _all_errors(_compat("tinkerbell_121cluster_without_worker_nodes.yaml"))
    assert _has(errors, "spec.workerNodeGroupConfigurations", "needs Kubernetes 1.22 or later")


def test_compat_control_plane_only_with_taints_is_invalid() -> None:
    errors = _all_errors(_compat("cluster_without_worker_nodes_has_cp_taints.yaml"))
    assert _has(errors, "spec.controlPlaneConfiguration.taints", "no worker node groups")


# --------------------------------------------------------------------------- datacenter


def test_datacenter_valid() -> None:
    assert tb.validate_datacenter(_dc()) == []


def test_datacenter_requires_tinkerbell_ip() -> None:
    dc = _dc()
    dc.spec.tinkerbell_ip = None
    errors = tb.validate_datacenter(dc)
    assert errors == [FieldError("TinkerbellDatacenterConfig/bm", "spec.tinkerbellIP", errors[0].message)]
    assert "tinkerbellIP is required" in errors[0].message


@pytest.mark.parametrize("ip", ["10.80.8", "not-an-ip", "10.80.8.256"])
def test_datacenter_tinkerbell_ip_must_be_an_ip(ip: str) -> None:
    dc = _dc()
    dc.spec.tinkerbell_ip = ip
    assert _has(tb.validate_datacenter(dc), "spec.tinkerbellIP", "not a valid IP address")


def test_datacenter_tinkerbell_ip_may_be_ipv6() -> None:
    dc = _dc()
    dc.spec.tinkerbell_ip = "fd00::91"
    assert tb.validate_datacenter(dc) == []


@pytest.mark.parametrize("field", ["osImageURL", "hookImagesURLPath", "hookIsoURL"])
@pytest.mark.parametrize("url", ["my-web-server/image.gz", "http://", "http://host/a b"])
def test_datacenter_urls_must_be_absolute(field: str, url: str) -> None:
    data = yaml.safe_load(DATACENTER_YAML)
    data["spec"][field] = url
    errors = tb.validate_datacenter(TinkerbellDatacenterConfig.model_validate(data, by_name=False))
    assert _has(errors, f"spec.{field}", "not a valid URL")


def test_datacenter_hook_iso_url_needs_iso_boot() -> None:
    dc = _dc()
    dc.spec.iso_boot = False
    assert _has(tb.validate_datacenter(dc), "spec.hookIsoURL", "only be set when isoBoot is true")
    dc.spec.iso_boot = None
    assert _has(tb.validate_datacenter(dc), "spec.hookIsoURL", "only be set when isoBoot is true")


def test_datacenter_iso_boot_without_url_is_valid() -> None:
    dc = _dc()
    dc.spec.hook_iso_url = None
    assert tb.validate_datacenter(dc) == []


# --------------------------------------------------------------------------- machine


def test_machine_valid() -> None:
    assert tb.validate_machine(_mc()) == []
    assert tb.validate_machine(_mc(AFFINITY_YAML)) == []


def test_machine_default_os_family() -> None:
    mc = _mc()
    mc.spec.os_family = None
    tb.default_machine(mc)
    assert mc.spec.os_family == "bottlerocket"
    mc.spec.os_family = "ubuntu"
    tb.default_machine(mc)
    assert mc.spec.os_family == "ubuntu"


def test_machine_needs_hardware_selection() -> None:
    mc = _mc()
    mc.spec.hardware_selector = {}
    errors = tb.validate_machine(mc)
    assert _has(errors, "spec.hardwareSelector", "hardwareSelector (one label")
    assert errors[0].obj == "TinkerbellMachineConfig/bm-cp"


def test_machine_selector_has_one_label() -> None:
    mc = _mc()
    mc.spec.hardware_selector = {"type": "cp", "rack": "r1"}
    assert _has(tb.validate_machine(mc), "spec.hardwareSelector", "exactly one key-value pair, found 2")


def test_machine_selector_and_affinity_are_exclusive() -> None:
    mc = _mc(AFFINITY_YAML)
    mc.spec.hardware_selector = {"type": "worker"}
    assert _has(tb.validate_machine(mc), "spec.hardwareAffinity", "mutually exclusive")


def test_machine_affinity_needs_a_required_term() -> None:
    mc = _mc(AFFINITY_YAML)
    assert mc.spec.hardware_affinity is not None
    mc.spec.hardware_affinity.required = []
    assert _has(tb.validate_machine(mc), "spec.hardwareAffinity.required", "at least one term")


def _required_expressions(mc: TinkerbellMachineConfig) -> list[LabelSelectorRequirement]:
    """The match expressions of the first required hardware affinity term."""
    assert mc.spec.hardware_affinity is not None
    required = mc.spec.hardware_affinity.required
    assert required is not None
    selector = required[0].label_selector
    assert selector is not None
    assert selector.match_expressions is not None
    return selector.match_expressions


def test_machine_affinity_operator() -> None:
    mc = _mc(AFFINITY_YAML)
    expressions = _required_expressions(mc)
    expressions[0].operator = "Equals"
    errors = tb.validate_machine(mc)
    field = "spec.hardwareAffinity.required[0].labelSelector.matchExpressions[0].operator"
    assert _has(errors, field, "use one of In, NotIn, Exists, DoesNotExist")


def test_machine_affinity_values() -> None:
    mc = _mc(AFFINITY_YAML)
    expressions = _required_expressions(mc)
    expressions[0].values = []
    expressions[1].values = ["x"]
    errors = tb.validate_machine(mc)
    base = "spec.hardwareAffinity.required[0].labelSelector.matchExpressions"
    assert _has(errors, f"{base}[0].values", "operator In needs at least one value")
    assert _has(errors, f"{base}[1].values", "operator DoesNotExist takes no values")


@pytest.mark.parametrize("weight", [0, 101, None])
def test_machine_affinity_weight(weight: int | None) -> None:
    mc = _mc(AFFINITY_YAML)
    assert mc.spec.hardware_affinity is not None
    preferred = mc.spec.hardware_affinity.preferred
    assert preferred is not None
    preferred[0].weight = weight
    assert _has(tb.validate_machine(mc), "spec.hardwareAffinity.preferred[0].weight", "between 1 and 100")


def test_machine_preferred_term_selector_is_checked() -> None:
    data = yaml.safe_load(AFFINITY_YAML)
    term = data["spec"]["hardwareAffinity"]["preferred"][0]["hardwareAffinityTerm"]
    term["labelSelector"]["matchExpressions"] = [{"key": "a", "operator": "NotIn"}]
    errors = tb.validate_machine(TinkerbellMachineConfig.model_validate(data, by_name=False))
    field = "spec.hardwareAffinity.preferred[0].hardwareAffinityTerm.labelSelector.matchExpressions[0].values"
    assert _has(errors, field, "operator NotIn needs at least one value")


def test_machine_os_family() -> None:
    mc = _mc()
    mc.spec.os_family = "windows"
    assert _has(tb.validate_machine(mc), "spec.osFamily", "'windows' is not supported; use one of ubuntu")
    mc.spec.os_family = None
    assert _has(tb.validate_machine(mc), "spec.osFamily", "osFamily is required")


def test_machine_os_image_url() -> None:
    mc = _mc()
    mc.spec.os_image_url = "ubuntu-1.30.gz"
    assert _has(tb.validate_machine(mc), "spec.osImageURL", "not a valid URL")


def test_machine_template_ref_kind() -> None:
    mc = _mc()
    mc.spec.template_ref = Ref(kind="VSphereMachineConfig", name="x")
    assert _has(tb.validate_machine(mc), "spec.templateRef.kind", "must name a TinkerbellTemplateConfig")
    mc.spec.template_ref = Ref(kind="TinkerbellTemplateConfig")
    assert _has(tb.validate_machine(mc), "spec.templateRef.name", "name the TinkerbellTemplateConfig")
    mc.spec.template_ref = Ref()
    assert tb.validate_machine(mc) == []


def test_machine_users_optional() -> None:
    mc = _mc()
    mc.spec.users = None
    assert tb.validate_machine(mc) == []


def test_machine_user_name_required() -> None:
    mc = _mc()
    assert mc.spec.users is not None
    mc.spec.users[0].name = ""
    assert _has(tb.validate_machine(mc), "spec.users[0].name", "user name is required")


@pytest.mark.parametrize("key_type", ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"])
def test_machine_ssh_key_valid(key_type: str) -> None:
    mc = _mc()
    assert mc.spec.users is not None
    mc.spec.users[0].ssh_authorized_keys = [_ssh_key(key_type)]
    assert tb.validate_machine(mc) == []


def test_machine_ssh_key_with_options_valid() -> None:
    mc = _mc()
    assert mc.spec.users is not None
    mc.spec.users[0].ssh_authorized_keys = [f'from="10.0.0.0/8" {_ssh_key()}']
    assert tb.validate_machine(mc) == []


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("ssh-rsa AAAA...", "not valid base64"),
        ("ssh-rsa", "no base64 body"),
        ("hello world", "no known key type"),
        (f"ssh-rsa {_ssh_key().split()[1]}", "does not hold a ssh-rsa key"),
    ],
)
def test_machine_ssh_key_invalid(key: str, problem: str) -> None:
    mc = _mc()
    assert mc.spec.users is not None
    mc.spec.users[0].ssh_authorized_keys = [key]
    assert _has(tb.validate_machine(mc), "spec.users[0].sshAuthorizedKeys[0]", problem)


def test_host_os_ntp() -> None:
    mc = _mc()
    host = mc.spec.host_os_configuration
    assert host is not None
    assert host.ntp_configuration is not None
    host.ntp_configuration.servers = []
    assert _has(tb.validate_machine(mc), "spec.hostOSConfiguration.ntpConfiguration.servers", "at least one")
    host.ntp_configuration.servers = ["time.example.com", "bad server", "udp://"]
    errors = tb.validate_machine(mc)
    assert [e.field for e in errors] == [
        "spec.hostOSConfiguration.ntpConfiguration.servers[1]",
        "spec.hostOSConfiguration.ntpConfiguration.servers[2]",
    ]
    assert "'bad server' is not a valid NTP server" in errors[0].message
    assert "'udp://' is not a valid NTP server" in errors[1].message


def _pem(der: bytes) -> str:
    return f"-----BEGIN CERTIFICATE-----\n{base64.b64encode(der).decode()}\n-----END CERTIFICATE-----\n"


def test_host_os_cert_bundles() -> None:
    mc = _mc()
    host = mc.spec.host_os_configuration
    assert host is not None
    host.cert_bundles = [CertBundle(name="corp", data=CERT + CERT)]
    assert tb.validate_machine(mc) == []
    host.cert_bundles = [
        CertBundle(name="", data=CERT),
        CertBundle(name="x", data="not pem"),
        CertBundle(name="y", data=_pem(b"\x02\x01\x01")),
        # A SEQUENCE, but not the three parts of a certificate.
        CertBundle(name="z", data=_pem(b"\x30\x03\x02\x01\x01")),
    ]
    errors = tb.validate_machine(mc)
    assert _has(errors, "spec.hostOSConfiguration.certBundles[0].name", "name cannot be empty")
    assert _has(errors, "spec.hostOSConfiguration.certBundles[1].data", "not a PEM certificate bundle")
    assert _has(errors, "spec.hostOSConfiguration.certBundles[2].data", "not a DER-encoded X.509 certificate")
    assert _has(errors, "spec.hostOSConfiguration.certBundles[3].data", "not a DER-encoded X.509 certificate")


def test_host_os_bottlerocket_only_settings() -> None:
    mc = _mc()
    host = mc.spec.host_os_configuration
    assert host is not None
    host.cert_bundles = [CertBundle(name="corp", data=_pem(b"\x30\x00"))]
    mc.spec.os_family = "ubuntu"
    errors = tb.validate_machine(mc)
    assert _has(errors, "spec.hostOSConfiguration.bottlerocketConfiguration", "only be used with osFamily")
    assert _has(
        errors, "spec.hostOSConfiguration.certBundles[0]", "only be used with osFamily 'bottlerocket'"
    )


def test_host_os_bottlerocket_values() -> None:
    data = yaml.safe_load(MACHINE_YAML)
    bottlerocket = data["spec"]["hostOSConfiguration"]["bottlerocketConfiguration"]
    bottlerocket["kubernetes"] = {"allowedUnsafeSysctls": [""], "clusterDNSIPs": ["10.96.0"], "maxPods": -1}
    bottlerocket["kernel"] = {"sysctlSettings": {"": "1"}}
    bottlerocket["boot"] = {"bootKernelParameters": {"": ["x"]}}
    errors = tb.validate_machine(TinkerbellMachineConfig.model_validate(data, by_name=False))
    base = "spec.hostOSConfiguration.bottlerocketConfiguration"
    assert _has(errors, f"{base}.kubernetes.allowedUnsafeSysctls[0]", "cannot be an empty string")
    assert _has(errors, f"{base}.kubernetes.clusterDNSIPs[0]", "'10.96.0' is not a valid IP")
    assert _has(errors, f"{base}.kubernetes.maxPods", "cannot be negative")
    assert _has(errors, f"{base}.kernel.sysctlSettings", "key cannot be empty")
    assert _has(errors, f"{base}.boot.bootKernelParameters", "key cannot be empty")


# --------------------------------------------------------------------------- template


def test_template_valid() -> None:
    assert tb.validate_template(_template()) == []


def test_template_required() -> None:
    template = _template()
    template.spec.template = None
    assert _has(tb.validate_template(template), "spec.template", "template is required")


def test_template_fields() -> None:
    data = yaml.safe_load(TEMPLATE_YAML)
    workflow = data["spec"]["template"]
    workflow["name"] = ""
    workflow["version"] = "0.2"
    workflow["global_timeout"] = -1
    errors = tb.validate_template(TinkerbellTemplateConfig.model_validate(data, by_name=False))
    assert errors[0].obj == "TinkerbellTemplateConfig/bm-template"
    assert _has(errors, "spec.template.name", "template name is required")
    assert _has(errors, "spec.template.version", "must be '0.1', got '0.2'")
    assert _has(errors, "spec.template.global_timeout", "cannot be negative")


def test_template_name_length() -> None:
    template = _template()
    assert template.spec.template is not None
    template.spec.template.name = "x" * 200
    assert _has(tb.validate_template(template), "spec.template.name", "shorter than 200 characters")


def test_template_needs_tasks() -> None:
    template = _template()
    assert template.spec.template is not None
    template.spec.template.tasks = []
    assert _has(tb.validate_template(template), "spec.template.tasks", "at least one task")


def test_template_tasks() -> None:
    data = yaml.safe_load(TEMPLATE_YAML)
    tasks = data["spec"]["template"]["tasks"]
    tasks.append(dict(tasks[0]))
    tasks[1]["worker"] = ""
    errors = tb.validate_template(TinkerbellTemplateConfig.model_validate(data, by_name=False))
    assert _has(errors, "spec.template.tasks[1].name", "two tasks in a template cannot have the same name")
    assert _has(errors, "spec.template.tasks[1].worker", "worker is required")


def test_template_actions() -> None:
    data = yaml.safe_load(TEMPLATE_YAML)
    actions = data["spec"]["template"]["tasks"][0]["actions"]
    actions[1]["name"] = actions[0]["name"]
    actions[1]["timeout"] = -5
    actions.append({"name": "no-image", "timeout": 1})
    actions.append({"name": "bad-image", "image": "Public.ECR.aws/Bad Image", "timeout": 1})
    actions.append({"name": "", "image": "alpine", "timeout": 1})
    errors = tb.validate_template(TinkerbellTemplateConfig.model_validate(data, by_name=False))
    base = "spec.template.tasks[0].actions"
    assert _has(errors, f"{base}[1].name", "two actions in a task cannot have the same name")
    assert _has(errors, f"{base}[1].timeout", "cannot be negative")
    assert _has(errors, f"{base}[2].image", "action image is required")
    assert _has(errors, f"{base}[3].image", "not a valid container image reference")
    assert _has(errors, f"{base}[4].name", "action name is required")


@pytest.mark.parametrize(
    ("image", "valid"),
    [
        ("alpine", True),
        ("alpine:3.19", True),
        ("quay.io/tinkerbell/actions/cexec:latest", True),
        ("localhost:5000/actions/image2disk:v1.0.0", True),
        ("ghcr.io/a/b@sha256:" + "a" * 64, True),
        ("Alpine", False),
        ("alpine:", False),
        ("a b", False),
        ("registry/-bad", False),
    ],
)
def test_image_reference(image: str, valid: bool) -> None:
    assert tb.valid_image_reference(image) is valid


# --------------------------------------------------------------------------- cluster-wide


def _checks(config: ClusterConfig) -> list[FieldError]:
    """The create checks of ``config``, which static validation accepts: they are the provider
    validator's rules, not the spec's."""
    assert tb.validate_cluster(config) == []
    return tb.create_checks(config)


def test_cluster_valid() -> None:
    assert tb.validate_cluster(_config()) == []
    assert tb.create_checks(_config()) == []


def test_cluster_ignores_other_providers() -> None:
    config = _config()
    config.objects = [o for o in config.objects if not isinstance(o, TinkerbellDatacenterConfig)]
    config.cluster.spec.kubernetes_version = "1.20"
    assert tb.validate_cluster(config) == []
    assert tb.create_checks(config) == []


def test_cluster_kubernetes_120_unsupported() -> None:
    errors = _checks(_config(version="1.20"))
    assert _has(errors, "spec.kubernetesVersion", "1.20 is not supported on bare metal")


def test_cluster_external_etcd_unsupported() -> None:
    config = _config()
    config.cluster.spec.external_etcd_configuration = ExternalEtcdConfiguration(
        count=3, machine_group_ref=Ref(kind="TinkerbellMachineConfig", name="bm-cp")
    )
    assert _has(tb.validate_cluster(config), "spec.externalEtcdConfiguration", "not supported on bare metal")


@pytest.mark.parametrize(("version", "ok"), [("1.21", False), ("1.22", True), ("1.30", True)])
def test_cluster_control_plane_only_version(version: str, ok: bool) -> None:
    errors = tb.validate_cluster(_config(version=version, workers=False))
    assert (errors == []) is ok
    if not ok:
        assert errors[0].obj == "Cluster/bm"
        assert _has(errors, "spec.workerNodeGroupConfigurations", f"(kubernetesVersion is {version})")


def test_cluster_control_plane_only_no_taints() -> None:
    config = _config(workers=False)
    control_plane = config.cluster.spec.control_plane_configuration
    assert control_plane is not None
    control_plane.taints = [Taint(key="k", value="v", effect="NoSchedule")]
    assert _has(tb.validate_cluster(config), "spec.controlPlaneConfiguration.taints", "cannot be tainted")


def test_cluster_tinkerbell_ip_differs_from_endpoint() -> None:
    config = _config()
    _dc_of(config).spec.tinkerbell_ip = "10.80.8.90"
    errors = _checks(config)
    assert errors[0].obj == "TinkerbellDatacenterConfig/bm"
    assert _has(errors, "spec.tinkerbellIP", "also the control plane endpoint")


def test_cluster_proxy_needs_local_hook_images() -> None:
    config = _config()
    config.cluster.spec.proxy_configuration = ProxyConfiguration(
        http_proxy="http://10.0.0.1:3128", https_proxy="http://10.0.0.1:3128"
    )
    assert _has(_checks(config), "spec.hookImagesURLPath", "required when the cluster uses a proxy")
    _dc_of(config).spec.hook_images_url_path = "http://10.0.0.2/hook"
    assert _checks(config) == []


def test_cluster_machine_namespace_matches_datacenter() -> None:
    config = _config()
    _mc_of(config, "bm-md").metadata.namespace = "other"
    errors = _checks(config)
    assert errors[0].obj == "TinkerbellMachineConfig/bm-md"
    assert _has(errors, "metadata.namespace", "must match the namespace of TinkerbellDatacenterConfig/bm")


def test_bottlerocket_without_an_image_has_no_bundle_to_fall_back_on() -> None:
    config = _config()
    missing = tb.images_without_bundle(config)
    assert [(e.obj, e.field) for e in missing] == [
        ("TinkerbellMachineConfig/bm-cp", "spec.osImageURL"),
        ("TinkerbellMachineConfig/bm-md", "spec.osImageURL"),
    ]
    assert "no EKS Anywhere release bundle" in missing[0].message
    assert tb.images_without_bundle(_config(dc_url="http://images/bottlerocket-1.30.img.gz")) == []
    assert (
        tb.images_without_bundle(
            _config(cp_url="http://images/br-1.30.gz", worker_url="http://images/br-1.30.gz")
        )
        == []
    )
    with_template = _config(worker_url="http://images/br-1.30.gz")
    _mc_of(with_template, "bm-cp").spec.template_ref = Ref(kind="TinkerbellTemplateConfig", name="mine")
    assert tb.images_without_bundle(with_template) == []
    # ubuntu without a URL is refused by EKS Anywhere's own rule (create_checks), not this one
    assert tb.images_without_bundle(_config(cp_family="ubuntu", worker_family="ubuntu")) == []


def test_cluster_template_ref_must_exist() -> None:
    config = _config()
    _mc_of(config, "bm-cp").spec.template_ref = Ref(kind="TinkerbellTemplateConfig", name="bm-template")
    assert _has(
        tb.validate_cluster(config), "spec.templateRef.name", "'bm-template' is not in the configuration"
    )
    config.objects.append(_template())
    assert tb.validate_cluster(config) == []


def test_cluster_same_os_family() -> None:
    errors = _checks(_config(worker_family="ubuntu", dc_url="http://s/img-1.30.gz"))
    assert any(e.obj == "TinkerbellMachineConfig/bm-md" for e in errors)
    assert _has(errors, "spec.osFamily", "differs from the control plane's 'bottlerocket'")


def test_cluster_os_image_url_not_on_both() -> None:
    errors = _checks(_config(dc_url="http://s/br-1.30.gz", cp_url="http://s/br-1.30.gz"))
    assert _has(errors, "spec.osImageURL", "set it on the datacenter or on the machine configs, not both")


def test_cluster_os_image_url_required_for_ubuntu() -> None:
    errors = _checks(_config(cp_family="ubuntu", worker_family="ubuntu"))
    assert _has(errors, "spec.osImageURL", "osImageURL is required for osFamily ubuntu")
    assert {e.obj for e in errors} == {"TinkerbellMachineConfig/bm-cp", "TinkerbellMachineConfig/bm-md"}
    ok = _config(cp_family="ubuntu", worker_family="ubuntu", dc_url="http://s/ubuntu-2204-1_30.gz")
    assert _checks(ok) == []


def test_cluster_datacenter_os_image_url_names_every_version() -> None:
    config = _config(cp_family="ubuntu", worker_family="ubuntu", dc_url="http://s/ubuntu-1-30.gz")
    config.cluster.worker_groups[0].kubernetes_version = "1.29"
    errors = _checks(config)
    assert errors == [
        FieldError("TinkerbellDatacenterConfig/bm", "spec.osImageURL", errors[0].message),
    ]
    assert "Kubernetes version 1.29" in errors[0].message


def test_cluster_machine_os_image_url_names_its_version() -> None:
    config = _config(
        cp_family="ubuntu",
        worker_family="ubuntu",
        cp_url="http://s/ubuntu-130.gz",
        worker_url="http://s/ubuntu-1.30.gz",
    )
    assert _checks(config) == []
    config.cluster.worker_groups[0].kubernetes_version = "1.29"
    errors = _checks(config)
    assert errors[0].obj == "TinkerbellMachineConfig/bm-md"
    assert _has(errors, "spec.osImageURL", "must name Kubernetes version 1.29")


def _in_place() -> WorkerNodesUpgradeRolloutStrategy:
    return WorkerNodesUpgradeRolloutStrategy(type="InPlace")


def test_cluster_in_place_needs_ubuntu() -> None:
    config = _config(cp_family="bottlerocket")
    control_plane = config.cluster.spec.control_plane_configuration
    assert control_plane is not None
    control_plane.upgrade_rollout_strategy = ControlPlaneUpgradeRolloutStrategy(type="InPlace")
    config.cluster.worker_groups[0].upgrade_rollout_strategy = _in_place()
    errors = _checks(config)
    assert _has(
        errors, "spec.controlPlaneConfiguration.upgradeRolloutStrategy.type", "only supported on the ubuntu"
    )
    assert _has(
        errors,
        "spec.workerNodeGroupConfigurations[0].upgradeRolloutStrategy.type",
        "only supported on the ubuntu",
    )


def test_cluster_rollout_types_match() -> None:
    config = _config(cp_family="ubuntu", worker_family="ubuntu", dc_url="http://s/u-1.30.gz")
    control_plane = config.cluster.spec.control_plane_configuration
    assert control_plane is not None
    control_plane.upgrade_rollout_strategy = ControlPlaneUpgradeRolloutStrategy(type="InPlace")
    errors = _checks(config)
    assert _has(
        errors,
        "spec.workerNodeGroupConfigurations[0].upgradeRolloutStrategy.type",
        "RollingUpdate differs from the control plane's InPlace",
    )
    config.cluster.worker_groups[0].upgrade_rollout_strategy = _in_place()
    assert _checks(config) == []
    config.cluster.worker_groups[0].autoscaling_configuration = AutoScalingConfiguration(
        min_count=1, max_count=2
    )
    assert _has(
        _checks(config),
        "spec.workerNodeGroupConfigurations[0].autoscalingConfiguration",
        "not supported with InPlace",
    )


# --------------------------------------------------------------------------- cluster updates


def _group(config: ClusterConfig, index: int = 0) -> WorkerNodeGroupConfiguration:
    return config.cluster.worker_groups[index]


def _control_plane(config: ClusterConfig) -> ControlPlaneConfiguration:
    control_plane = config.cluster.spec.control_plane_configuration
    assert control_plane is not None
    return control_plane


def _labelled() -> ClusterConfig:
    config = _config()
    _control_plane(config).labels = {"tier": "cp"}
    _control_plane(config).taints = [Taint(key="dedicated", value="cp", effect="PreferNoSchedule")]
    _group(config).labels = {"tier": "app"}
    _group(config).taints = [Taint(key="dedicated", value="app", effect="NoSchedule")]
    return config


def _copy(config: ClusterConfig) -> ClusterConfig:
    return ClusterConfig(
        config.cluster.model_copy(deep=True), [o.model_copy(deep=True) for o in config.objects]
    )


def test_cluster_update_unchanged_is_accepted() -> None:
    old = _labelled()
    assert tb.cluster_update(old.cluster, _copy(old).cluster) == []
    assert validate_update(old, _copy(old)) == []


@pytest.mark.parametrize("field", ["labels", "taints"])
def test_cluster_update_control_plane_labels_and_taints_are_immutable(field: str) -> None:
    old = _labelled()
    new = _copy(old)
    if field == "labels":
        _control_plane(new).labels = {"tier": "other"}
    else:
        _control_plane(new).taints = None
    errors = tb.cluster_update(old.cluster, new.cluster)
    assert [(e.obj, e.field) for e in errors] == [("Cluster/bm", f"spec.controlPlaneConfiguration.{field}")]
    assert "immutable" in errors[0].message
    assert [e.field for e in validate_update(old, new)] == [f"spec.controlPlaneConfiguration.{field}"]


@pytest.mark.parametrize("field", ["labels", "taints"])
def test_cluster_update_worker_labels_and_taints_are_immutable(field: str) -> None:
    old = _labelled()
    new = _copy(old)
    new.cluster.spec.worker_node_group_configurations = [
        WorkerNodeGroupConfiguration(
            name="md-new", count=1, machine_group_ref=Ref(kind="TinkerbellMachineConfig", name="bm-md")
        ),
        _group(new),
    ]
    setattr(_group(new, 1), field, None)
    errors = tb.cluster_update(old.cluster, new.cluster)
    assert [e.field for e in errors] == [f"spec.workerNodeGroupConfigurations[1].{field}"]
    assert "immutable" in errors[0].message


def test_cluster_update_new_or_renamed_groups_choose_their_labels() -> None:
    old = _labelled()
    new = _copy(old)
    _group(new).name = "md-1"
    _group(new).labels = {"tier": "batch"}
    _group(new).taints = None
    assert tb.cluster_update(old.cluster, new.cluster) == []


def test_cluster_update_unset_and_empty_labels_and_taints_are_the_same() -> None:
    old = _config()
    new = _copy(old)
    _control_plane(new).labels = {}
    _control_plane(new).taints = []
    _group(new).labels = {}
    _group(new).taints = []
    assert tb.cluster_update(old.cluster, new.cluster) == []


def test_cluster_update_paused_cluster_may_change_labels_and_taints() -> None:
    old = _labelled()
    old.cluster.metadata.annotations = {PAUSED_ANNOTATION: "true"}
    new = _copy(old)
    _control_plane(new).labels = None
    _group(new).taints = None
    assert tb.cluster_update(old.cluster, new.cluster) == []
    assert validate_update(old, new) == []


def _upgraded(config: ClusterConfig) -> ClusterConfig:
    new = _copy(config)
    new.cluster.spec.kubernetes_version = "1.31"
    return new


def test_cluster_update_upgrade_without_scaling_is_accepted() -> None:
    old = _config()
    assert tb.cluster_update(old.cluster, _upgraded(old).cluster) == []
    assert validate_update(old, _upgraded(old)) == []


def test_cluster_update_no_control_plane_scaling_during_upgrade() -> None:
    old = _config()
    new = _upgraded(old)
    _control_plane(new).count = 3
    errors = tb.cluster_update(old.cluster, new.cluster)
    assert [(e.obj, e.field) for e in errors] == [("Cluster/bm", "spec.controlPlaneConfiguration.count")]
    assert "cannot perform scale up or down during rolling upgrades" in errors[0].message
    assert "previous control plane node count 1" in errors[0].message
    assert [e.field for e in validate_update(old, new)] == ["spec.controlPlaneConfiguration.count"]
    # Scaling without an upgrade is allowed.
    new.cluster.spec.kubernetes_version = old.cluster.spec.kubernetes_version
    assert tb.cluster_update(old.cluster, new.cluster) == []


def test_cluster_update_scaling_rule_ignores_the_pause() -> None:
    old = _config()
    old.cluster.metadata.annotations = {PAUSED_ANNOTATION: "true"}
    new = _upgraded(old)
    _control_plane(new).count = 3
    assert [e.field for e in tb.cluster_update(old.cluster, new.cluster)] == [
        "spec.controlPlaneConfiguration.count"
    ]


def test_cluster_update_no_worker_scaling_during_upgrade() -> None:
    old = _config()
    new = _upgraded(old)
    _group(new).count = 2
    errors = tb.cluster_update(old.cluster, new.cluster)
    assert [e.field for e in errors] == ["spec.workerNodeGroupConfigurations[0].count"]
    assert "cannot perform scale up or down during rolling upgrades" in errors[0].message
    assert "previous worker node count 1" in errors[0].message


def test_cluster_update_no_new_worker_group_during_upgrade() -> None:
    old = _config()
    new = _upgraded(old)
    extra = _group(new).model_copy(deep=True)
    extra.name = "md-1"
    new.cluster.spec.worker_node_group_configurations = [_group(new), extra]
    errors = tb.cluster_update(old.cluster, new.cluster)
    assert [e.field for e in errors] == [
        "spec.workerNodeGroupConfigurations",
        "spec.workerNodeGroupConfigurations[1]",
    ]
    assert all("cannot perform scale up or down during rolling upgrades" in e.message for e in errors)
    assert "revert to the previous 1 worker node groups" in errors[0].message
    assert "remove the new worker node group 'md-1'" in errors[1].message


def test_cluster_update_no_worker_group_removed_during_upgrade() -> None:
    old = _config()
    extra = _group(old).model_copy(deep=True)
    extra.name = "md-1"
    old.cluster.spec.worker_node_group_configurations = [_group(old), extra]
    new = _upgraded(old)
    new.cluster.spec.worker_node_group_configurations = [_group(new)]
    errors = tb.cluster_update(old.cluster, new.cluster)
    assert [e.field for e in errors] == ["spec.workerNodeGroupConfigurations"]
    assert "revert to the previous 2 worker node groups" in errors[0].message


def test_cluster_update_is_only_for_tinkerbell_clusters() -> None:
    old = _config()
    new = _upgraded(old)
    _control_plane(new).count = 3
    assert validate_update(old, new) != []
    old.cluster.spec.datacenter_ref = Ref(kind="VSphereDatacenterConfig", name="bm")
    new.cluster.spec.datacenter_ref = Ref(kind="VSphereDatacenterConfig", name="bm")
    assert not [e for e in validate_update(old, new) if "scale up or down" in e.message]


# --------------------------------------------------------------------------- updates


@pytest.mark.parametrize(
    ("field", "attr", "value"),
    [
        ("spec.tinkerbellIP", "tinkerbell_ip", "10.80.8.92"),
        ("spec.hookImagesURLPath", "hook_images_url_path", "http://other/hook"),
        ("spec.skipLoadBalancerDeployment", "skip_load_balancer_deployment", True),
    ],
)
def test_datacenter_immutable(field: str, attr: str, value: object) -> None:
    old = _dc()
    new = _dc()
    setattr(new.spec, attr, value)
    errors = tb.datacenter_update(old, new)
    assert [e.field for e in errors] == [field]
    assert "immutable" in errors[0].message


def test_datacenter_cli_may_change_hook_and_load_balancer() -> None:
    old = _dc()
    new = _dc()
    new.metadata.annotations = {tb.MANAGED_BY_CLI_ANNOTATION: "true"}
    new.spec.hook_images_url_path = "http://other/hook"
    new.spec.skip_load_balancer_deployment = True
    assert tb.datacenter_update(old, new) == []
    new.spec.tinkerbell_ip = "10.80.8.92"
    assert [e.field for e in tb.datacenter_update(old, new)] == ["spec.tinkerbellIP"]


def test_datacenter_mutable_fields() -> None:
    old = _dc()
    new = _dc()
    new.spec.os_image_url = "http://my-web-server/ubuntu-1.31.gz"
    assert tb.datacenter_update(old, new) == []


def test_machine_os_family_immutable() -> None:
    old = _mc()
    new = _mc()
    new.spec.os_family = "ubuntu"
    assert [e.field for e in tb.machine_update(old, new)] == ["spec.osFamily"]


def test_machine_users_immutable() -> None:
    old = _mc()
    old_users = old.spec.users
    assert old_users is not None
    old_users[0].ssh_authorized_keys = [_ssh_key()]

    new = old.model_copy(deep=True)
    assert new.spec.users is not None
    new.spec.users[0].name = "admin"
    assert [e.field for e in tb.machine_update(old, new)] == ["spec.users[0].name"]

    new = old.model_copy(deep=True)
    assert new.spec.users is not None
    new.spec.users[0].ssh_authorized_keys = [_ssh_key("ssh-rsa")]
    assert [e.field for e in tb.machine_update(old, new)] == ["spec.users[0].sshAuthorizedKeys[0]"]

    new = old.model_copy(deep=True)
    assert new.spec.users is not None
    new.spec.users[0].ssh_authorized_keys = [_ssh_key(), _ssh_key("ssh-rsa")]
    assert [e.field for e in tb.machine_update(old, new)] == ["spec.users[0].sshAuthorizedKeys"]

    new = old.model_copy(deep=True)
    new.spec.users = [*old_users, UserConfiguration(name="second")]
    assert [e.field for e in tb.machine_update(old, new)] == ["spec.users"]

    new = old.model_copy(deep=True)
    new.spec.users = None
    assert [e.field for e in tb.machine_update(old, new)] == ["spec.users"]


def test_machine_hardware_and_image_may_change() -> None:
    # EKS Anywhere's current webhook lets hardware selection and OS image change (nodes roll).
    old = _mc()
    new = _mc()
    new.spec.hardware_selector = {"type": "cp2"}
    new.spec.os_image_url = "http://my-web-server/bottlerocket-1.31.img.gz"
    assert tb.machine_update(old, new) == []
