"""The Tinkerbell workflow of one machine: EKS Anywhere's default templates, Tinkerbell's
placeholders, the Workflow object, and the simulated tink-worker running it to success."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from anywhere.api.v1alpha1.tinkerbell import TinkerbellTemplateConfig, Workflow
from anywhere.providers.tinkerbell.workflow import (
    ACTION_IMAGES,
    STATE_FAILED,
    STATE_PENDING,
    STATE_RUNNING,
    STATE_SUCCESS,
    WorkflowValues,
    default_template,
    render_workflow,
    run_next_action,
    workflow_object,
)

COMPAT_DIR = Path(__file__).resolve().parents[4] / "shared" / "compat" / "eksa-v1alpha1"
MAC = "52:54:00:00:00:01"

VALUES = WorkflowValues(
    hardware_name="hw-1",
    mac=MAC,
    disk="/dev/sda",
    os_family="ubuntu",
    os_image_url="https://images.example.com/ubuntu-v1.33.1-amd64.gz",
    tinkerbell_ip="10.10.0.5",
    hostname="hw-1",
    ip="10.10.0.11",
    netmask="255.255.255.0",
    gateway="10.10.0.1",
    nameservers=("1.1.1.1", "8.8.8.8"),
    kubernetes_version="1.33",
    template_name="demo",
)


def actions(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for task in workflow["tasks"] for a in task["actions"]]


def names(workflow: dict[str, Any]) -> list[str]:
    return [a["name"] for a in actions(workflow)]


def one_action(environment: dict[str, str], name: str = "custom") -> dict[str, Any]:
    return {
        "version": "0.1",
        "name": "t",
        "global_timeout": 600,
        "tasks": [
            {
                "name": "os-installation",
                "worker": "{{.device_1}}",
                "actions": [
                    {"name": name, "image": "example/action:1", "timeout": 60, "environment": environment}
                ],
            }
        ],
    }


# --------------------------------------------------------------------------- defaults


def test_ubuntu_default_is_eks_anywheres() -> None:
    tpl = default_template("ubuntu", name="demo", os_image_url="https://x/u.gz", tinkerbell_ip="10.10.0.5")
    Workflow.model_validate(tpl, by_name=False)  # the shape TinkerbellTemplateConfig accepts
    assert (tpl["version"], tpl["name"], tpl["global_timeout"]) == ("0.1", "demo", 6000)
    task = tpl["tasks"][0]
    assert task["worker"] == "{{.device_1}}"
    assert task["volumes"] == ["/dev:/dev", "/dev/console:/dev/console", "/lib/firmware:/lib/firmware:ro"]
    assert names(tpl) == [
        "stream-image",
        "write-netplan",
        "disable-cloud-init-network-capabilities",
        "add-tink-cloud-init-config",
        "add-tink-cloud-init-ds-config",
        "reboot-image",
    ]
    stream, netplan, _, cloud_init, _, reboot = actions(tpl)
    assert stream["image"] == ACTION_IMAGES["image2disk"]
    assert stream["environment"] == {
        "DEST_DISK": "{{ index .Hardware.Disks 0 }}",
        "IMG_URL": "https://x/u.gz",
        "COMPRESSED": "true",
    }
    assert netplan["environment"]["DEST_DISK"] == "{{ formatPartition ( index .Hardware.Disks 0 ) 2 }}"
    assert netplan["environment"]["STATIC_NETPLAN"] == "true"
    assert cloud_init["environment"]["DEST_PATH"] == "/etc/cloud/cloud.cfg.d/10_tinkerbell.cfg"
    assert "metadata_urls: [http://10.10.0.5:50061]" in cloud_init["environment"]["CONTENTS"]
    assert reboot["image"] == ACTION_IMAGES["reboot"]
    assert all(a["image"].startswith("public.ecr.aws/eks-anywhere/tinkerbell/hub/") for a in actions(tpl))


def test_redhat_default_writes_to_partition_1_with_quoted_urls() -> None:
    tpl = default_template("redhat", name="demo", os_image_url="https://x/r.gz", tinkerbell_ip="10.10.0.5")
    Workflow.model_validate(tpl, by_name=False)
    assert names(tpl)[1:] == [
        "write-netplan",
        "disable-cloud-init-network-capabilities",
        "add-tink-cloud-init-config",
        "add-tink-cloud-init-ds-config",
        "reboot-image",
    ]
    cloud_init = actions(tpl)[3]
    assert cloud_init["environment"]["DEST_DISK"] == "{{ formatPartition ( index .Hardware.Disks 0 ) 1 }}"
    assert "metadata_urls: ['http://10.10.0.5:50061']" in cloud_init["environment"]["CONTENTS"]


def test_bottlerocket_default_writes_bootconfig_user_data_and_network() -> None:
    image = "https://images.example/bottlerocket-1-30.img.gz"
    tpl = default_template("bottlerocket", name="demo", os_image_url=image, tinkerbell_ip="10.10.0.5")
    Workflow.model_validate(tpl, by_name=False)
    assert names(tpl) == [
        "stream-image",
        "write-bootconfig",
        "write-user-data",
        "write-netplan",
        "reboot-image",
    ]
    _, bootconfig, user_data, netplan, _ = actions(tpl)
    partition = "{{ formatPartition ( index .Hardware.Disks 0 ) 12 }}"
    assert bootconfig["environment"]["BOOTCONFIG_CONTENTS"] == "kernel {}"
    assert bootconfig["environment"]["DEST_PATH"] == "/bootconfig.data"
    assert user_data["environment"]["HEGEL_URLS"] == "http://10.10.0.5:50061"
    assert user_data["environment"]["DEST_PATH"] == "/user-data.toml"
    assert netplan["environment"]["DEST_PATH"] == "/net.toml"
    assert netplan["environment"]["STATIC_BOTTLEROCKET"] == "true"
    assert {a["environment"]["DEST_DISK"] for a in (bootconfig, user_data, netplan)} == {partition}
    assert actions(tpl)[0]["environment"]["IMG_URL"] == image


def test_default_template_refuses_what_eks_anywhere_refuses() -> None:
    with pytest.raises(
        ValueError, match=r"unknown osFamily 'windows': expected one of bottlerocket, redhat, ubuntu"
    ):
        default_template("windows", name="demo", os_image_url="https://x", tinkerbell_ip="10.10.0.5")
    with pytest.raises(ValueError, match=r"osImageURL is required for osFamily ubuntu"):
        default_template("ubuntu", name="demo", os_image_url="", tinkerbell_ip="10.10.0.5")
    # EKS Anywhere takes Bottlerocket's image from its release bundle; there are none here.
    with pytest.raises(
        ValueError, match=r"osImageURL is required for osFamily bottlerocket: .* anywhere has none"
    ):
        default_template("bottlerocket", name="demo", os_image_url="", tinkerbell_ip="10.10.0.5")


def test_a_compat_bottlerocket_cluster_renders_the_default() -> None:
    """EKS Anywhere's own test configurations (no template: ``templateRef: {}``) get the default."""
    documents = list(
        yaml.safe_load_all((COMPAT_DIR / "tinkerbell_cluster_without_worker_nodes.yaml").read_text())
    )
    datacenter = next(d for d in documents if d["kind"] == "TinkerbellDatacenterConfig")
    machine = next(d for d in documents if d["kind"] == "TinkerbellMachineConfig")
    values = replace(
        VALUES,
        os_family=machine["spec"]["osFamily"],
        os_image_url="https://images.example/bottlerocket.img.gz",  # the file leaves it to the bundle
        tinkerbell_ip=datacenter["spec"]["tinkerbellIP"],
    )
    rendered = render_workflow(None, values)
    assert names(rendered)[1:3] == ["write-bootconfig", "write-user-data"]
    assert actions(rendered)[2]["environment"]["HEGEL_URLS"] == "http://10.80.8.91:50061"
    assert actions(rendered)[1]["environment"]["DEST_DISK"] == "/dev/sda12"


# --------------------------------------------------------------------------- placeholders


def test_the_default_renders_for_the_hardware() -> None:
    rendered = render_workflow(None, VALUES)
    Workflow.model_validate(rendered, by_name=False)
    assert rendered["name"] == "demo"
    assert rendered["tasks"][0]["worker"] == MAC
    assert actions(rendered)[0]["environment"]["DEST_DISK"] == "/dev/sda"
    assert {a["environment"]["DEST_DISK"] for a in actions(rendered)[1:5]} == {"/dev/sda2"}
    assert "{{" not in yaml.safe_dump(rendered)


@pytest.mark.parametrize(
    ("text", "disk", "expected"),
    [
        ("{{.device_1}}", "/dev/sda", MAC),
        ("{{ .device_1 }}", "/dev/sda", MAC),
        ("x {{- .device_1 -}} y", "/dev/sda", f"x{MAC}y"),
        ("{{ index .Hardware.Disks 0 }}", "/dev/sda", "/dev/sda"),
        ("{{index .Hardware.Disks 0}}", "/dev/nvme0n1", "/dev/nvme0n1"),
        ("{{ formatPartition ( index .Hardware.Disks 0 ) 2 }}", "/dev/sda", "/dev/sda2"),
        ("{{formatPartition (index .Hardware.Disks 0) 1}}", "/dev/sda", "/dev/sda1"),
        ("{{ formatPartition  (  index  .Hardware.Disks  0  )  12 }}", "/dev/vda", "/dev/vda12"),
        ("{{ formatPartition ( index .Hardware.Disks 0 ) 1 }}", "/dev/nvme0n1", "/dev/nvme0n1p1"),
        (
            "{{ formatPartition ( index .Hardware.Disks 0 ) 3 }}",
            "/dev/disk/by-id/wwn-0x5",
            "/dev/disk/by-id/wwn-0x5-part3",
        ),
        ("{{ (index .Hardware.Interfaces 0).DHCP.IP.Address }}", "/dev/sda", "10.10.0.11"),
        (
            "{{ (index .Hardware.Interfaces 0).DHCP.IP.Address }}/"
            "{{ netmaskToPrefixLength (index .Hardware.Interfaces 0).DHCP.IP.Netmask }}",
            "/dev/sda",
            "10.10.0.11/24",
        ),
        ("{{ (index .Hardware.Interfaces 0).DHCP.Hostname }}", "/dev/sda", "hw-1"),
        ("{{/* a comment */}}plain", "/dev/sda", "plain"),
        ("no placeholder at all }}", "/dev/sda", "no placeholder at all }}"),
    ],
)
def test_placeholders_render_as_tinkerbell_renders_them(text: str, disk: str, expected: str) -> None:
    rendered = render_workflow(one_action({"X": text}), replace(VALUES, disk=disk))
    assert actions(rendered)[0]["environment"]["X"] == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{ .Foo }}", r"unknown field 'Foo' in \.Foo: it has Hardware, device_1"),
        ("{{ .Hardware.Memory }}", r"unknown field 'Memory'"),
        ("{{.device_2}}", r"unknown field 'device_2'"),
        ("{{ index .Hardware.Disks 1 }}", r"index 1 is out of range: the list has 1 item"),
        (
            "{{ formatPartition .Hardware.Disks 1 }}",
            r"formatPartition takes a device path and a partition number",
        ),
        ("{{ upper .device_1 }}", r"unknown function 'upper'"),
        ("{{ .device_1 | upper }}", r"pipes \('\|'\) are not supported"),
        ("{{ if .device_1 }}x{{ end }}", r"'if' is not supported"),
        ("{{ .Hardware.Disks }}", r"it is a list, not text"),
        ("{{ formatPartition ( index .Hardware.Disks 0 ) 2", r"never closed"),
        ("{{ (index .Hardware.Disks 0 }}", r"unclosed '\('"),
    ],
)
def test_an_unknown_placeholder_names_itself_and_its_action(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        render_workflow(one_action({"IMG_URL": text}, name="stream-custom"), VALUES)
    message = str(caught.value)
    assert "in action 'stream-custom' of task 'os-installation' (environment.IMG_URL)" in message
    assert text.split("}}")[0][:20] in message  # the placeholder itself


def test_a_placeholder_outside_actions_names_where_it_is() -> None:
    template = one_action({})
    template["tasks"][0]["worker"] = "{{ .worker }}"
    with pytest.raises(ValueError, match=r"'\{\{ \.worker \}\}' in task 'os-installation' \(worker\)"):
        render_workflow(template, VALUES)


CUSTOM_TEMPLATE = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: TinkerbellTemplateConfig
metadata:
  name: my-cluster-name
spec:
  template:
    global_timeout: 6000
    id: ""
    name: my-cluster-name
    tasks:
    - actions:
      - environment:
          COMPRESSED: "true"
          DEST_DISK: '{{ index .Hardware.Disks 0 }}'
          IMG_URL: https://my-file-server/ubuntu-v1.33.1-eks-a-12-amd64.gz
        image: public.ecr.aws/eks-anywhere/tinkerbell/hub/image2disk:6c0f0d437bde2c836d90b000312c8b25fa1b65e1-eks-a-15
        name: stream-image
        timeout: 360
      - environment:
          DEST_DISK: '{{ formatPartition ( index .Hardware.Disks 0 ) 2 }}'
          DEST_PATH: /etc/netplan/config.yaml
          STATIC_NETPLAN: "true"
          DIRMODE: "0755"
          FS_TYPE: ext4
          GID: "0"
          MODE: "0644"
          UID: "0"
        image: public.ecr.aws/eks-anywhere/tinkerbell/hub/writefile:6c0f0d437bde2c836d90b000312c8b25fa1b65e1-eks-a-15
        name: write-netplan
        timeout: 90
      - environment:
          BLOCK_DEVICE: '{{ formatPartition ( index .Hardware.Disks 0 ) 2 }}'
          FS_TYPE: ext4
        image: public.ecr.aws/eks-anywhere/tinkerbell/hub/kexec:6c0f0d437bde2c836d90b000312c8b25fa1b65e1-eks-a-15
        name: kexec-image
        pid: host
        timeout: 90
      - name: reboot
        image: public.ecr.aws/eks-anywhere/tinkerbell/hub/reboot:6c0f0d437bde2c836d90b000312c8b25fa1b65e1-eks-a-15
        timeout: 90
        on-timeout: ["/bin/true"]
        on-failure: ["/bin/true"]
        volumes:
          - /worker:/worker
      name: my-cluster-name
      volumes:
      - /dev:/dev
      - /dev/console:/dev/console
      - /lib/firmware:/lib/firmware:ro
      worker: '{{.device_1}}'
    version: "0.1"
"""


def test_a_custom_template_config_renders_for_the_hardware() -> None:
    """A TinkerbellTemplateConfig in the shape EKS Anywhere documents (its Ubuntu example, with the
    disk placeholders its generated templates use), as the API hands it over."""
    config = TinkerbellTemplateConfig.model_validate(yaml.safe_load(CUSTOM_TEMPLATE), by_name=False)
    template = config.to_dict()["spec"]["template"]
    rendered = render_workflow(template, replace(VALUES, disk="/dev/nvme0n1"))
    assert names(rendered) == ["stream-image", "write-netplan", "kexec-image", "reboot"]
    stream, netplan, kexec, reboot = actions(rendered)
    assert stream["environment"]["DEST_DISK"] == "/dev/nvme0n1"
    assert stream["environment"]["IMG_URL"] == "https://my-file-server/ubuntu-v1.33.1-eks-a-12-amd64.gz"
    assert netplan["environment"]["DEST_DISK"] == "/dev/nvme0n1p2"
    assert kexec["environment"]["BLOCK_DEVICE"] == "/dev/nvme0n1p2"
    assert reboot["on-failure"] == ["/bin/true"]
    assert rendered["tasks"][0]["worker"] == MAC
    assert rendered["global_timeout"] == 6000


def test_a_template_override_yaml_string_is_accepted() -> None:
    """A TinkerbellMachine's ``templateOverride`` is the template as YAML text."""
    text = yaml.safe_dump(yaml.safe_load(CUSTOM_TEMPLATE)["spec"]["template"])
    rendered = render_workflow(text, VALUES)
    assert actions(rendered)[1]["environment"]["DEST_DISK"] == "/dev/sda2"
    assert render_workflow("", VALUES) == render_workflow(None, VALUES)
    with pytest.raises(ValueError, match=r"not valid YAML"):
        render_workflow("tasks: [", VALUES)
    with pytest.raises(ValueError, match=r"must be a mapping"):
        render_workflow("- a\n- b\n", VALUES)


# --------------------------------------------------------------------------- the Workflow object


MACHINE: dict[str, Any] = {
    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
    "kind": "TinkerbellMachine",
    "metadata": {
        "name": "demo-cp-abcde",
        "namespace": "eksa-system",
        "uid": "0b7c6c8e-1f3a-4d6e-9a51-2f1d3c4b5a69",
        "labels": {"cluster.x-k8s.io/cluster-name": "demo", "other": "x"},
    },
}
HARDWARE: dict[str, Any] = {
    "metadata": {"name": "hw-1", "namespace": "eksa-system"},
    "spec": {
        "disks": [{"device": "/dev/sda"}],
        "interfaces": [{"dhcp": {"mac": "52:54:00:00:00:01", "ip": {"address": "10.10.0.11"}}}],
    },
}


def test_workflow_object_is_owned_by_its_machine_and_pending() -> None:
    rendered = render_workflow(None, VALUES)
    workflow = workflow_object(MACHINE, HARDWARE, rendered)
    assert workflow["apiVersion"] == "tinkerbell.org/v1alpha1"
    assert workflow["kind"] == "Workflow"
    meta = workflow["metadata"]
    assert (meta["name"], meta["namespace"]) == ("demo-cp-abcde", "eksa-system")
    assert meta["labels"] == {"cluster.x-k8s.io/cluster-name": "demo"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
            "kind": "TinkerbellMachine",
            "name": "demo-cp-abcde",
            "uid": "0b7c6c8e-1f3a-4d6e-9a51-2f1d3c4b5a69",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = workflow["spec"]
    assert spec["hardwareRef"] == "hw-1"
    assert spec["hardwareMap"] == {"device_1": MAC}
    assert yaml.safe_load(spec["rendered"]) == rendered
    status = workflow["status"]
    assert status["state"] == STATE_PENDING
    assert [t["workerID"] for t in status["tasks"]] == [MAC]
    assert [a["name"] for a in status["tasks"][0]["actions"]] == names(rendered)
    assert {a["status"] for a in status["tasks"][0]["actions"]} == {STATE_PENDING}
    assert status["tasks"][0]["actions"][0]["image"] == ACTION_IMAGES["image2disk"]


# --------------------------------------------------------------------------- the simulated worker


def test_the_simulated_worker_runs_every_action_to_success() -> None:
    workflow = workflow_object(MACHINE, HARDWARE, render_workflow(None, VALUES))
    count = len(names(render_workflow(None, VALUES)))
    states = []
    for step in range(count):
        status = run_next_action(workflow, f"2025-01-01T00:00:{step:02d}Z")
        assert status is not None
        states.append(status["state"])
        done = [a for a in status["tasks"][0]["actions"] if a["status"] == STATE_SUCCESS]
        assert len(done) == step + 1
        assert done[-1]["startedAt"] == f"2025-01-01T00:00:{step:02d}Z"
        assert done[-1]["message"]
        workflow = {**workflow, "status": status}
    assert states == [STATE_RUNNING] * (count - 1) + [STATE_SUCCESS]
    assert run_next_action(workflow, "2025-01-01T00:01:00Z") is None


def test_the_worker_leaves_the_given_workflow_alone() -> None:
    workflow = workflow_object(MACHINE, HARDWARE, render_workflow(None, VALUES))
    before = yaml.safe_dump(workflow)
    run_next_action(workflow, "2025-01-01T00:00:00Z")
    assert yaml.safe_dump(workflow) == before


def test_a_failed_workflow_runs_no_further() -> None:
    workflow = workflow_object(MACHINE, HARDWARE, render_workflow(None, VALUES))
    workflow["status"]["state"] = STATE_FAILED
    assert run_next_action(workflow, "2025-01-01T00:00:00Z") is None


def test_a_workflow_without_status_starts_from_its_rendered_template() -> None:
    workflow = workflow_object(MACHINE, HARDWARE, render_workflow(None, VALUES))
    del workflow["status"]
    status = run_next_action(workflow, "2025-01-01T00:00:00Z")
    assert status is not None
    assert status["state"] == STATE_RUNNING
    assert status["tasks"][0]["actions"][0]["status"] == STATE_SUCCESS
    assert status["tasks"][0]["actions"][1]["status"] == STATE_PENDING
