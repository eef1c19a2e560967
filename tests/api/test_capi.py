from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from anywhere.api import capi, v1alpha1
from anywhere.api.capi import (
    CLUSTER_NAME_LABEL,
    CapiObject,
    Cluster,
    KubeadmConfig,
    KubeadmConfigTemplate,
    KubeadmControlPlane,
    Machine,
    MachineDeployment,
    MachineHealthCheck,
    MachineSet,
    NetnsCluster,
    NetnsMachine,
    NetnsMachineTemplate,
    SimCluster,
    SimMachine,
    SimMachineTemplate,
    VSphereCluster,
    VSphereMachine,
    VSphereMachineTemplate,
)
from anywhere.api.capi.tinkerbell import (
    HARDWARE_OWNER_NAME_LABEL,
    HARDWARE_OWNER_NAMESPACE_LABEL,
    Hardware,
    TinkerbellCluster,
    TinkerbellMachine,
    TinkerbellMachineTemplate,
    Workflow,
)
from anywhere.api.crds import all_crds, capi_crds, crd_for
from anywhere.apiserver import crd as crd_admission
from anywhere.apiserver import structural, tables

NOW = "2024-05-01T10:00:00Z"
CONDITIONS = [
    {"type": "Ready", "status": "True", "lastTransitionTime": NOW},
    {
        "type": "InfrastructureReady",
        "status": "False",
        "severity": "Warning",
        "lastTransitionTime": NOW,
        "reason": "WaitingForInfrastructure",
        "message": "0 of 1 completed",
    },
]
META = {
    "name": "demo-x",
    "namespace": "eksa-system",
    "labels": {CLUSTER_NAME_LABEL: "demo"},
    "creationTimestamp": NOW,
    "generation": 2,
    "uid": "6b3c1f0e-0000-4000-8000-000000000001",
}
INFRA_TEMPLATE_REF = {
    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
    "kind": "SimMachineTemplate",
    "name": "demo-md-0-1",
    "namespace": "eksa-system",
}
SELECTOR = {
    "matchLabels": {CLUSTER_NAME_LABEL: "demo", "cluster.x-k8s.io/deployment-name": "demo-md-0"},
    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
}
MACHINE_SPEC = {
    "clusterName": "demo",
    "bootstrap": {
        "configRef": {
            "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta1",
            "kind": "KubeadmConfigTemplate",
            "name": "demo-md-0-1",
        },
        "dataSecretName": "demo-md-0-abcde",
    },
    "infrastructureRef": INFRA_TEMPLATE_REF,
    "version": "v1.29.1",
    "providerID": "sim://demo/demo-md-0-abcde",
    "failureDomain": "fd-1",
    "nodeDrainTimeout": "5m0s",
    "nodeVolumeDetachTimeout": "0s",
    "nodeDeletionTimeout": "10s",
}
TEMPLATE = {
    "metadata": {"labels": SELECTOR["matchLabels"], "annotations": {"a": "b"}},
    "spec": MACHINE_SPEC,
}
KUBEADM_CONFIG_SPEC: dict[str, Any] = {
    "clusterConfiguration": {
        "imageRepository": "public.ecr.aws/eks-distro/kubernetes",
        "etcd": {"local": {"extraArgs": {"cipher-suites": "TLS_AES_128_GCM_SHA256"}}},
        "apiServer": {"certSANs": ["10.0.0.10"], "extraArgs": {"audit-log-maxage": "30"}},
    },
    "initConfiguration": {"nodeRegistration": {"kubeletExtraArgs": {"node-labels": "a=b"}}},
    "joinConfiguration": {"nodeRegistration": {"taints": [{"key": "k", "effect": "NoSchedule"}]}},
    "files": [
        {"path": "/etc/kubernetes/manifests/kube-vip.yaml", "owner": "root:root", "content": "x"},
        {
            "path": "/etc/ca.pem",
            "permissions": "0640",
            "encoding": "base64",
            "append": False,
            "contentFrom": {"secret": {"name": "demo-ca", "key": "tls.crt"}},
        },
    ],
    "diskSetup": {"partitions": [{"device": "/dev/sdb", "layout": True}]},
    "mounts": [["/dev/sdb1", "/var/lib/etcd"]],
    "preKubeadmCommands": ["hostname demo"],
    "postKubeadmCommands": ["echo done"],
    "users": [
        {
            "name": "ec2-user",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "sshAuthorizedKeys": ["ssh-ed25519 AAAA demo"],
            "lockPassword": True,
            "passwdFrom": {"secret": {"name": "pw", "key": "hash"}},
        }
    ],
    "ntp": {"servers": ["pool.ntp.org"], "enabled": True},
    "format": "cloud-config",
    "verbosity": 4,
    "useExperimentalRetryJoin": True,
}
STATUS_ADDRESSES = [
    {"type": "InternalIP", "address": "10.0.0.21"},
    {"type": "Hostname", "address": "demo-md-0-abcde"},
]

SAMPLES: dict[type[CapiObject], dict[str, Any]] = {
    Cluster: {
        "spec": {
            "paused": False,
            "clusterNetwork": {
                "apiServerPort": 6443,
                "services": {"cidrBlocks": ["10.96.0.0/12"]},
                "pods": {"cidrBlocks": ["192.168.0.0/16"]},
                "serviceDomain": "cluster.local",
            },
            "controlPlaneEndpoint": {"host": "10.0.0.10", "port": 6443},
            "controlPlaneRef": {
                "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
                "kind": "KubeadmControlPlane",
                "name": "demo",
                "namespace": "eksa-system",
            },
            "infrastructureRef": {
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                "kind": "SimCluster",
                "name": "demo",
            },
            "topology": {"class": "quick-start", "version": "v1.29.1", "workers": {"machineDeployments": []}},
        },
        "status": {
            "failureDomains": {"fd-1": {"controlPlane": True, "attributes": {"zone": "a"}}},
            "phase": "Provisioned",
            "infrastructureReady": True,
            "controlPlaneReady": True,
            "conditions": CONDITIONS,
            "observedGeneration": 2,
            "failureReason": "InvalidConfiguration",
            "failureMessage": "bad",
        },
    },
    Machine: {
        "spec": MACHINE_SPEC,
        "status": {
            "nodeRef": {"apiVersion": "v1", "kind": "Node", "name": "demo-md-0-abcde", "uid": "u"},
            "nodeInfo": {
                "machineID": "m",
                "systemUUID": "s",
                "bootID": "b",
                "kernelVersion": "6.1.0",
                "osImage": "Bottlerocket",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kubeletVersion": "v1.29.1",
                "kubeProxyVersion": "v1.29.1",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "lastUpdated": NOW,
            "addresses": STATUS_ADDRESSES,
            "phase": "Running",
            "certificatesExpiryDate": "2025-05-01T10:00:00Z",
            "bootstrapReady": True,
            "infrastructureReady": True,
            "observedGeneration": 2,
            "conditions": CONDITIONS,
            "deletion": {"nodeDrainStartTime": NOW, "waitForNodeVolumeDetachStartTime": NOW},
            "failureReason": "UpdateError",
            "failureMessage": "x",
        },
    },
    MachineSet: {
        "spec": {
            "clusterName": "demo",
            "replicas": 3,
            "minReadySeconds": 0,
            "deletePolicy": "Oldest",
            "selector": SELECTOR,
            "template": TEMPLATE,
        },
        "status": {
            "selector": "cluster.x-k8s.io/cluster-name=demo",
            "replicas": 3,
            "fullyLabeledReplicas": 3,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "observedGeneration": 2,
            "conditions": CONDITIONS,
        },
    },
    MachineDeployment: {
        "spec": {
            "clusterName": "demo",
            "replicas": 3,
            "rolloutAfter": NOW,
            "selector": SELECTOR,
            "template": TEMPLATE,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%", "deletePolicy": "Newest"},
                "remediation": {"maxInFlight": "50%"},
            },
            "minReadySeconds": 10,
            "revisionHistoryLimit": 1,
            "paused": False,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": 2,
            "selector": "cluster.x-k8s.io/cluster-name=demo",
            "replicas": 4,
            "updatedReplicas": 1,
            "readyReplicas": 3,
            "availableReplicas": 3,
            "unavailableReplicas": 0,
            "phase": "ScalingUp",
            "conditions": CONDITIONS,
        },
    },
    MachineHealthCheck: {
        "spec": {
            "clusterName": "demo",
            "selector": SELECTOR,
            "unhealthyConditions": [
                {"type": "Ready", "status": "Unknown", "timeout": "5m0s"},
                {"type": "Ready", "status": "False", "timeout": "5m0s"},
            ],
            "maxUnhealthy": "40%",
            "unhealthyRange": "[1-3]",
            "nodeStartupTimeout": "10m0s",
            "remediationTemplate": {"apiVersion": "x/v1", "kind": "Remediation", "name": "r"},
        },
        "status": {
            "expectedMachines": 3,
            "currentHealthy": 3,
            "remediationsAllowed": 1,
            "observedGeneration": 2,
            "targets": ["demo-md-0-a", "demo-md-0-b"],
            "conditions": CONDITIONS,
        },
    },
    KubeadmControlPlane: {
        "spec": {
            "replicas": 3,
            "version": "v1.29.1",
            "machineTemplate": {
                "metadata": {"labels": {"a": "b"}},
                "infrastructureRef": INFRA_TEMPLATE_REF,
                "nodeDrainTimeout": "1m0s",
                "nodeVolumeDetachTimeout": "1m0s",
                "nodeDeletionTimeout": "10s",
            },
            "kubeadmConfigSpec": KUBEADM_CONFIG_SPEC,
            "rolloutBefore": {"certificatesExpiryDays": 21},
            "rolloutAfter": NOW,
            "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "remediationStrategy": {"maxRetry": 5, "retryPeriod": "2m0s", "minHealthyPeriod": "1h0m0s"},
        },
        "status": {
            "selector": "cluster.x-k8s.io/cluster-name=demo,cluster.x-k8s.io/control-plane",
            "replicas": 3,
            "version": "v1.29.1",
            "updatedReplicas": 3,
            "readyReplicas": 3,
            "unavailableReplicas": 0,
            "initialized": True,
            "ready": True,
            "observedGeneration": 2,
            "conditions": CONDITIONS,
            "lastRemediation": {"machine": "demo-abcde", "timestamp": NOW, "retryCount": 1},
        },
    },
    KubeadmConfig: {
        "spec": KUBEADM_CONFIG_SPEC,
        "status": {
            "ready": True,
            "dataSecretName": "demo-abcde",
            "observedGeneration": 2,
            "conditions": CONDITIONS,
        },
    },
    KubeadmConfigTemplate: {
        "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": KUBEADM_CONFIG_SPEC}},
    },
    SimCluster: {
        "spec": {"controlPlaneEndpoint": {"host": "10.0.0.10", "port": 6443}},
        "status": {
            "ready": True,
            "failureDomains": {"fd-1": {"controlPlane": True}},
            "conditions": CONDITIONS,
            "observedGeneration": 1,
        },
    },
    SimMachine: {
        "spec": {
            "providerID": "sim://demo/demo-md-0-abcde",
            "bootDelay": "2s",
            "bootJitter": "500ms",
            "failureRate": 0.05,
        },
        "status": {
            "ready": True,
            "addresses": STATUS_ADDRESSES,
            "failureReason": "BootFailed",
            "failureMessage": "the simulated boot failed",
            "conditions": CONDITIONS,
        },
    },
    SimMachineTemplate: {
        "spec": {
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"bootDelay": "1s", "failureRate": 0}}
        },
    },
    NetnsCluster: {
        "spec": {"controlPlaneEndpoint": {"host": "10.10.0.2", "port": 6443}},
        "status": {"ready": False, "conditions": CONDITIONS},
    },
    NetnsMachine: {
        "spec": {"providerID": "netns://demo/demo-cp-1", "bootTimeout": "5m"},
        "status": {"ready": True, "addresses": STATUS_ADDRESSES, "conditions": CONDITIONS},
    },
    NetnsMachineTemplate: {"spec": {"template": {"spec": {"bootTimeout": "5m"}}}},
    VSphereCluster: {
        "spec": {
            "server": "vcenter.example.com",
            "thumbprint": "AB:CD",
            "identityRef": {"kind": "Secret", "name": "vsphere-credentials", "namespace": "eksa-system"},
            "datacenter": "DC0",
            "network": "/DC0/network/VM Network",
            "failureDomains": [{"name": "fd-1", "computeCluster": "DC0_C0", "datastore": "LocalDS_0"}],
            "controlPlaneVIP": "10.40.0.10",
            "controlPlaneEndpoint": {"host": "127.0.0.1", "port": 40001},
        },
        "status": {"ready": True, "failureDomains": {"fd-1": {"controlPlane": True}}},
    },
    VSphereMachine: {
        "spec": {
            "providerID": "vsphere://4201",
            "template": "ubuntu-2204-kube-v1-33",
            "numCPUs": 2,
            "diskGiB": 25,
        },
        "status": {
            "ready": True,
            "vmRef": "vm-42",
            "instanceUuid": "u-1",
            "failureDomain": "fd-1",
            "taskRef": "task-7",
        },
    },
    VSphereMachineTemplate: {"spec": {"template": {"spec": {"memoryMiB": 8192, "tags": ["urn:tag"]}}}},
    TinkerbellCluster: {
        "spec": {
            "controlPlaneEndpoint": {"host": "10.80.8.90", "port": 6443},
            "tinkerbellIP": "10.80.8.91",
            "osImageURL": "http://images/ubuntu-1-33.gz",
            "hookImagesURLPath": "http://images/hook",
            "controlPlaneVIP": "10.80.8.90",
        },
        "status": {"ready": True, "failureReason": "x", "failureMessage": "y", "conditions": CONDITIONS},
    },
    TinkerbellMachine: {
        "spec": {
            "providerID": "tinkerbell://eksa-system/hw-1",
            "hardwareName": "hw-1",
            "hardwareAffinity": {
                "required": [{"labelSelector": {"matchLabels": {"type": "cp"}}}],
                "preferred": [
                    {
                        "weight": 50,
                        "hardwareAffinityTerm": {
                            "labelSelector": {
                                "matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1"]}]
                            }
                        },
                    }
                ],
            },
            "templateOverride": "version: '0.1'\nname: demo\n",
            "osFamily": "ubuntu",
            "osImageURL": "http://images/ubuntu-1-33.gz",
            "bootOptions": {"bootMode": "netboot"},
        },
        "status": {"ready": True, "addresses": STATUS_ADDRESSES, "conditions": CONDITIONS},
    },
    TinkerbellMachineTemplate: {
        "spec": {"template": {"spec": {"hardwareAffinity": {"required": [{"labelSelector": {}}]}}}}
    },
    Hardware: {
        "spec": {
            "bmc": {
                "host": "127.0.0.1",
                "port": 8443,
                "authSecretRef": {"name": "bmc-hw-1-auth", "namespace": "eksa-system"},
            },
            "disks": [{"device": "/dev/sda"}],
            "interfaces": [
                {
                    "dhcp": {
                        "mac": "52:54:00:00:00:01",
                        "hostname": "hw-1",
                        "ip": {"address": "10.10.0.11", "netmask": "255.255.255.0", "gateway": "10.10.0.1"},
                        "nameServers": ["1.1.1.1"],
                        "arch": "x86_64",
                        "uefi": True,
                        "vlanID": "10",
                    },
                    "netboot": {"allowPXE": False, "allowWorkflow": False},
                }
            ],
        },
        "status": {"conditions": CONDITIONS},
    },
    Workflow: {
        "spec": {
            "templateRef": "demo",
            "hardwareRef": "hw-1",
            "hardwareMap": {"device_1": "52:54:00:00:00:01"},
            "rendered": "version: '0.1'\n",
        },
        "status": {
            "state": "STATE_RUNNING",
            "tasks": [
                {
                    "name": "os-installation",
                    "workerID": "52:54:00:00:00:01",
                    "actions": [
                        {
                            "name": "stream-image",
                            "image": "quay.io/tinkerbell/actions/image2disk:latest",
                            "status": "STATE_SUCCESS",
                            "startedAt": NOW,
                            "seconds": 12,
                            "message": "done",
                        }
                    ],
                }
            ],
        },
    },
}

EXPECTED_COLUMNS: dict[type[CapiObject], list[str]] = {
    Cluster: ["Phase", "Age", "Version"],
    Machine: ["Cluster", "NodeName", "ProviderID", "Phase", "Age", "Version"],
    MachineSet: ["Cluster", "Desired", "Replicas", "Ready", "Available", "Age", "Version"],
    MachineDeployment: [
        "Cluster",
        "Desired",
        "Replicas",
        "Ready",
        "Updated",
        "Unavailable",
        "Phase",
        "Age",
        "Version",
    ],
    MachineHealthCheck: ["Cluster", "ExpectedMachines", "MaxUnhealthy", "CurrentHealthy", "Age"],
    KubeadmControlPlane: [
        "Cluster",
        "Initialized",
        "API Server Available",
        "Desired",
        "Replicas",
        "Ready",
        "Updated",
        "Unavailable",
        "Age",
        "Version",
    ],
    KubeadmConfig: ["Cluster", "Age"],
    TinkerbellCluster: ["Cluster", "Ready", "Endpoint", "Tinkerbell IP", "Age"],
    TinkerbellMachine: ["Cluster", "Hardware", "ProviderID", "Ready", "Age"],
    Hardware: ["Owner", "MAC", "IP", "BMC", "Age"],
    Workflow: ["State", "Hardware", "Age"],
}

GROUPS = {
    Cluster: "cluster.x-k8s.io",
    Machine: "cluster.x-k8s.io",
    MachineSet: "cluster.x-k8s.io",
    MachineDeployment: "cluster.x-k8s.io",
    MachineHealthCheck: "cluster.x-k8s.io",
    KubeadmControlPlane: "controlplane.cluster.x-k8s.io",
    KubeadmConfig: "bootstrap.cluster.x-k8s.io",
    KubeadmConfigTemplate: "bootstrap.cluster.x-k8s.io",
    SimCluster: "infrastructure.cluster.x-k8s.io",
    SimMachine: "infrastructure.cluster.x-k8s.io",
    SimMachineTemplate: "infrastructure.cluster.x-k8s.io",
    NetnsCluster: "infrastructure.cluster.x-k8s.io",
    NetnsMachine: "infrastructure.cluster.x-k8s.io",
    NetnsMachineTemplate: "infrastructure.cluster.x-k8s.io",
    VSphereCluster: "infrastructure.cluster.x-k8s.io",
    VSphereMachine: "infrastructure.cluster.x-k8s.io",
    VSphereMachineTemplate: "infrastructure.cluster.x-k8s.io",
    TinkerbellCluster: "infrastructure.cluster.x-k8s.io",
    TinkerbellMachine: "infrastructure.cluster.x-k8s.io",
    TinkerbellMachineTemplate: "infrastructure.cluster.x-k8s.io",
    Hardware: "tinkerbell.org",
    Workflow: "tinkerbell.org",
}
# Tinkerbell's own kinds are tinkerbell.org/v1alpha1, in kubectl's "tinkerbell" category.
TINKERBELL_KINDS = (Hardware, Workflow)

KINDS = list(capi.ALL_KINDS)


def ids(kind: type[CapiObject]) -> str:
    return kind.KIND


def version(kind: type[CapiObject]) -> str:
    return "v1alpha1" if kind in TINKERBELL_KINDS else "v1beta1"


def sample(kind: type[CapiObject]) -> CapiObject:
    data = {
        "apiVersion": f"{kind.GROUP}/{version(kind)}",
        "kind": kind.KIND,
        "metadata": META,
        **SAMPLES[kind],
    }
    return kind.model_validate(data, by_name=False)


def version_of(crd: dict[str, Any]) -> dict[str, Any]:
    [version] = crd["spec"]["versions"]
    result: dict[str, Any] = version
    return result


def schema_of(kind: type[CapiObject]) -> dict[str, Any]:
    schema: dict[str, Any] = version_of(crd_for(kind))["schema"]["openAPIV3Schema"]
    return schema


def test_registry_covers_every_kind_once() -> None:
    assert set(KINDS) == set(SAMPLES) == set(GROUPS)
    assert len(capi.KINDS) == len(KINDS)
    assert capi.KINDS[("cluster.x-k8s.io/v1beta1", "Cluster")] is Cluster
    assert [c["spec"]["names"]["kind"] for c in capi_crds()] == [k.KIND for k in KINDS]


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_group_version_and_defaults(kind: type[CapiObject]) -> None:
    assert GROUPS[kind] == kind.GROUP
    assert version(kind) == kind.VERSION
    obj = kind.model_validate({"metadata": {"name": "x"}}, by_name=False)
    assert obj.api_version == f"{GROUPS[kind]}/{version(kind)}"
    assert obj.to_dict()["apiVersion"] == f"{GROUPS[kind]}/{version(kind)}"
    assert obj.kind == kind.KIND


def test_anywhere_kinds_keep_their_group() -> None:
    for kind in v1alpha1.ALL_KINDS:
        assert (kind.GROUP, kind.VERSION) == ("anywhere.eks.amazonaws.com", "v1alpha1")
    assert all(c["spec"]["group"] == "anywhere.eks.amazonaws.com" for c in all_crds())
    assert v1alpha1.Cluster().api_version == "anywhere.eks.amazonaws.com/v1alpha1"


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_round_trip(kind: type[CapiObject]) -> None:
    obj = sample(kind)
    assert kind.model_validate(obj.to_dict(), by_name=False) == obj
    # nothing of the sample is lost on the way
    expected = {"apiVersion": obj.api_version, "kind": kind.KIND, "metadata": META, **SAMPLES[kind]}
    assert obj.to_dict() == expected


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_crd_is_structural_and_admitted(kind: type[CapiObject]) -> None:
    crd = crd_for(kind)
    assert structural.check_structural(schema_of(kind)) == []
    admitted = crd_admission.admit(yaml.safe_load(yaml.safe_dump(crd)))
    assert admitted["status"]["acceptedNames"]["kind"] == kind.KIND


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_crd_names(kind: type[CapiObject]) -> None:
    crd = crd_for(kind)
    assert crd["metadata"]["name"] == f"{kind.PLURAL}.{GROUPS[kind]}"
    # Only Cluster API's kinds carry its contract label; Tinkerbell's own kinds implement no contract.
    expected_labels = None if kind in TINKERBELL_KINDS else {"cluster.x-k8s.io/v1beta1": "v1beta1"}
    assert crd["metadata"].get("labels") == expected_labels
    spec = crd["spec"]
    assert spec["group"] == GROUPS[kind]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == (["tinkerbell"] if kind in TINKERBELL_KINDS else ["cluster-api"])
    assert spec["names"].get("shortNames", []) == list(kind.SHORT_NAMES)
    served = version_of(crd)
    assert (served["name"], served["served"], served["storage"]) == (version(kind), True, True)


def test_short_names_are_cluster_apis() -> None:
    assert Cluster.SHORT_NAMES == ("cl",)
    assert Machine.SHORT_NAMES == ("ma",)
    assert MachineSet.SHORT_NAMES == ("ms",)
    assert MachineDeployment.SHORT_NAMES == ("md",)
    assert MachineHealthCheck.SHORT_NAMES == ("mhc", "mhcs")
    assert KubeadmControlPlane.SHORT_NAMES == ("kcp",)
    assert (Hardware.SHORT_NAMES, Workflow.SHORT_NAMES) == (("hw",), ("wf",))  # Tinkerbell's


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_subresources(kind: type[CapiObject]) -> None:
    subresources = version_of(crd_for(kind))["subresources"]
    assert ("status" in subresources) == ("status" in kind.model_fields)
    if kind in (MachineSet, MachineDeployment, KubeadmControlPlane):
        assert subresources["scale"] == {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    else:
        assert "scale" not in subresources


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_sample_validates_against_its_crd(kind: type[CapiObject]) -> None:
    obj = sample(kind).to_dict()
    schema = schema_of(kind)
    assert structural.unknown_fields(obj, schema) == []  # the schema knows every field of the model
    stored, causes = structural.admit(obj, schema)
    assert causes == []
    assert stored == obj


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_minimal_object_validates_against_its_crd(kind: type[CapiObject]) -> None:
    obj = kind.model_validate({"metadata": {"name": "x"}}).to_dict()
    assert structural.validate(obj, schema_of(kind)) == []


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        (Machine, ("spec", "clusterName"), 1),
        (Machine, ("status", "bootstrapReady"), "yes"),
        (MachineDeployment, ("spec", "replicas"), "3"),
        (MachineDeployment, ("spec", "strategy", "rollingUpdate", "maxSurge"), True),
        (MachineHealthCheck, ("spec", "unhealthyConditions"), {"type": "Ready"}),
        (KubeadmControlPlane, ("spec", "kubeadmConfigSpec", "files"), "x"),
        (Cluster, ("spec", "controlPlaneEndpoint", "port"), "6443"),
        (SimMachine, ("spec", "failureRate"), "often"),
    ],
)
def test_wrong_types_are_refused(kind: type[CapiObject], path: tuple[str, ...], value: Any) -> None:
    data = sample(kind).to_dict()
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    assert structural.validate(data, schema_of(kind)) != []
    with pytest.raises(ValidationError):
        kind.model_validate(data, by_name=False)


def test_int_or_string_fields() -> None:
    md = schema_of(MachineDeployment)["properties"]["spec"]["properties"]["strategy"]
    for name in ("maxSurge", "maxUnavailable"):
        assert md["properties"]["rollingUpdate"]["properties"][name]["x-kubernetes-int-or-string"] is True
    mhc = schema_of(MachineHealthCheck)["properties"]["spec"]["properties"]["maxUnhealthy"]
    assert mhc["x-kubernetes-int-or-string"] is True
    kcp = schema_of(KubeadmControlPlane)["properties"]["spec"]["properties"]["rolloutStrategy"]
    assert kcp["properties"]["rollingUpdate"]["properties"]["maxSurge"]["x-kubernetes-int-or-string"] is True
    for value in (1, "25%"):
        data = sample(MachineDeployment).to_dict()
        data["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = value
        assert structural.validate(data, schema_of(MachineDeployment)) == []
        assert MachineDeployment.model_validate(data, by_name=False).to_dict() == data


def test_kubeadm_configuration_is_free_form_below_the_first_level() -> None:
    spec = schema_of(KubeadmConfig)["properties"]["spec"]["properties"]
    for name in ("clusterConfiguration", "initConfiguration", "joinConfiguration", "diskSetup"):
        assert spec[name] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert spec["files"]["items"]["properties"]["contentFrom"]["type"] == "object"
    kcp = schema_of(KubeadmControlPlane)["properties"]["spec"]["properties"]["kubeadmConfigSpec"]
    assert kcp["properties"] == spec


def test_unknown_fields_are_refused_by_the_model() -> None:
    data = sample(Machine).to_dict()
    data["spec"]["clustername"] = "demo"
    with pytest.raises(ValidationError, match="clustername"):
        Machine.model_validate(data, by_name=False)


def test_wire_names() -> None:
    spec = schema_of(Machine)["properties"]["spec"]["properties"]
    assert {"providerID", "clusterName", "infrastructureRef", "nodeDrainTimeout"} <= set(spec)
    info = schema_of(Machine)["properties"]["status"]["properties"]["nodeInfo"]["properties"]
    assert {"machineID", "systemUUID", "bootID", "osImage", "kubeProxyVersion"} <= set(info)
    network = schema_of(Cluster)["properties"]["spec"]["properties"]["clusterNetwork"]["properties"]
    assert {"apiServerPort", "services", "pods", "serviceDomain"} == set(network)
    assert network["pods"]["properties"]["cidrBlocks"]["items"] == {"type": "string"}
    topology = schema_of(Cluster)["properties"]["spec"]["properties"]["topology"]["properties"]
    assert "class" in topology


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_printer_columns(kind: type[CapiObject]) -> None:
    columns = version_of(crd_for(kind))["additionalPrinterColumns"]
    if kind in EXPECTED_COLUMNS:
        assert [c["name"] for c in columns] == EXPECTED_COLUMNS[kind]
    assert {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}.items() <= next(
        c for c in columns if c["name"] == "Age"
    ).items()
    schema = schema_of(kind)
    for column in columns:
        assert column["type"] in {"integer", "string", "boolean", "date"}
        path = column["jsonPath"]
        if path.startswith(".metadata."):
            continue
        # spec/status columns name fields the schema has, with a matching type
        node: dict[str, Any] = schema
        for part in path.strip(".").split("."):
            field, _, index = part.partition("[")
            node = node["properties"][field]
            if index:  # a list element: .spec.interfaces[0].dhcp
                node = node["items"]
        if column["type"] in ("integer", "boolean"):
            assert node["type"] == column["type"], path
        elif column["type"] == "string":
            assert node.get("type", "string") == "string" or node.get("x-kubernetes-int-or-string"), path


def test_printer_columns_paths() -> None:
    def paths(kind: type[CapiObject]) -> dict[str, str]:
        return {c["name"]: c["jsonPath"] for c in version_of(crd_for(kind))["additionalPrinterColumns"]}

    assert paths(Machine) == {
        "Cluster": ".spec.clusterName",
        "NodeName": ".status.nodeRef.name",
        "ProviderID": ".spec.providerID",
        "Phase": ".status.phase",
        "Age": ".metadata.creationTimestamp",
        "Version": ".spec.version",
    }
    assert paths(MachineDeployment)["Version"] == ".spec.template.spec.version"
    assert paths(KubeadmControlPlane)["API Server Available"] == ".status.ready"
    assert paths(KubeadmControlPlane)["Cluster"] == ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    assert paths(Cluster)["Version"] == ".spec.topology.version"
    desired = next(
        c
        for c in version_of(crd_for(MachineDeployment))["additionalPrinterColumns"]
        if c["name"] == "Desired"
    )
    assert desired["priority"] == 10


def cells(kind: type[CapiObject]) -> dict[str, Any]:
    """What ``kubectl get`` prints for the sample, through the API server's table code."""
    columns = tables.columns_for_crd_version(version_of(crd_for(kind)))
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    [row] = tables.rows_for_columns([sample(kind).to_dict()], columns, now)
    return {c.name: cell for c, cell in zip(columns, row.cells, strict=True)}


def test_kubectl_get_rows() -> None:
    assert cells(Machine) == {
        "Name": "demo-x",
        "Cluster": "demo",
        "NodeName": "demo-md-0-abcde",
        "ProviderID": "sim://demo/demo-md-0-abcde",
        "Phase": "Running",
        "Age": "2h",
        "Version": "v1.29.1",
    }
    kcp = cells(KubeadmControlPlane)
    assert (kcp["Cluster"], kcp["Initialized"], kcp["API Server Available"], kcp["Replicas"]) == (
        "demo",
        True,
        True,
        3,
    )
    md = cells(MachineDeployment)
    assert (md["Desired"], md["Replicas"], md["Updated"], md["Unavailable"], md["Phase"]) == (
        3,
        4,
        1,
        0,
        "ScalingUp",
    )
    assert cells(MachineHealthCheck)["MaxUnhealthy"] == "40%"
    sim = cells(SimMachine)
    assert (sim["Cluster"], sim["ProviderID"], sim["Ready"]) == ("demo", "sim://demo/demo-md-0-abcde", True)


def test_tinkerbell_kubectl_rows() -> None:
    hardware = sample(Hardware).to_dict()
    hardware["metadata"]["labels"] = {
        HARDWARE_OWNER_NAME_LABEL: "demo-cp-x",
        HARDWARE_OWNER_NAMESPACE_LABEL: "ns",
    }
    columns = tables.columns_for_crd_version(version_of(crd_for(Hardware)))
    [row] = tables.rows_for_columns([hardware], columns, datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    assert {c.name: cell for c, cell in zip(columns, row.cells, strict=True)} == {
        "Name": "demo-x",
        "Owner": "demo-cp-x",
        "MAC": "52:54:00:00:00:01",
        "IP": "10.10.0.11",
        "BMC": "127.0.0.1",
        "Age": "2h",
    }
    assert cells(Hardware)["Owner"] is None  # free hardware: no owner
    workflow = cells(Workflow)
    assert (workflow["State"], workflow["Hardware"]) == ("STATE_RUNNING", "hw-1")
    machine = cells(TinkerbellMachine)
    assert (machine["Cluster"], machine["Hardware"], machine["Ready"]) == ("demo", "hw-1", True)
    assert cells(TinkerbellCluster)["Tinkerbell IP"] == "10.80.8.91"
