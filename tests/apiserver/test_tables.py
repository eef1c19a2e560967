"""Server-side printing: Table objects, Kubernetes' printers and CRD printer columns."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.tables import (
    Column,
    builtin_table,
    builtin_table_rows,
    columns_for_builtin,
    columns_for_crd_version,
    human_duration,
    jsonpath_cell,
    printed_kinds,
    short_human_duration,
    table,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    t = NOW - timedelta(**delta)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "creationTimestamp": ago(minutes=5), **extra}


def row(kind: str, obj: dict[str, Any]) -> list[Any]:
    columns, rows = builtin_table_rows(kind, [obj], NOW)
    assert len(rows[0].cells) == len(columns)
    return rows[0].cells


def cells_by_name(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    columns, rows = builtin_table_rows(kind, [obj], NOW)
    return {c.name: cell for c, cell in zip(columns, rows[0].cells, strict=True)}


# --- durations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=-3), "<invalid>"),
        (timedelta(seconds=-1), "0s"),
        (timedelta(milliseconds=-500), "0s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=119), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=2, seconds=30), "2m30s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=30), "3h30m"),
        (timedelta(hours=7, minutes=59, seconds=59), "7h59m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(hours=47), "47h"),
        (timedelta(hours=48), "2d"),
        (timedelta(hours=49), "2d1h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=8), "8d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=731), "2y1d"),
        (timedelta(days=365 * 8 + 3), "8y"),
    ],
)
def test_human_duration(delta: timedelta, text: str) -> None:
    assert human_duration(delta) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=-1), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=60), "1m"),
        (timedelta(minutes=59, seconds=59), "59m"),
        (timedelta(hours=1), "1h"),
        (timedelta(hours=23, minutes=59), "23h"),
        (timedelta(days=1), "1d"),
        (timedelta(days=364), "364d"),
        (timedelta(days=365), "1y"),
        (timedelta(days=800), "2y"),
    ],
)
def test_short_human_duration(delta: timedelta, text: str) -> None:
    assert short_human_duration(delta) == text


# --- the Table object ----------------------------------------------------------------------------------


def test_table_shape_with_partial_object_metadata() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("cfg", namespace="ns"),
        "data": {"a": "1"},
    }
    out = builtin_table(
        "ConfigMap", [cm], now=NOW, resource_version="42", continue_token="next", remaining_item_count=3
    )
    assert out["kind"] == "Table"
    assert out["apiVersion"] == "meta.k8s.io/v1"
    assert out["metadata"] == {"resourceVersion": "42", "continue": "next", "remainingItemCount": 3}
    assert [c["name"] for c in out["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert out["columnDefinitions"][0] == {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": out["columnDefinitions"][0]["description"],
        "priority": 0,
    }
    assert out["rows"] == [
        {
            "cells": ["cfg", 1, "5m"],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": cm["metadata"],
            },
        }
    ]


def test_table_include_object_and_versions() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cfg")}
    assert builtin_table("ConfigMap", [cm], now=NOW, include_object="Object")["rows"][0]["object"] == cm
    assert builtin_table("ConfigMap", [cm], now=NOW, include_object="None")["rows"][0]["object"] is None
    beta = builtin_table("ConfigMap", [cm], now=NOW, api_version="meta.k8s.io/v1beta1")
    assert beta["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    assert builtin_table("ConfigMap", [], now=NOW)["rows"] == []
    assert builtin_table("ConfigMap", [cm], now=NOW)["metadata"] == {}
    assert builtin_table("ConfigMap", [cm], now=NOW, include_headers=False)["columnDefinitions"] is None


def test_table_rejects_unknown_options() -> None:
    cm = {"metadata": meta("cfg")}
    with pytest.raises(StatusError) as info:
        builtin_table("ConfigMap", [cm], include_object="Everything")
    assert (info.value.code, info.value.message) == (400, 'unrecognized includeObject value: "Everything"')
    with pytest.raises(StatusError) as info:
        builtin_table("ConfigMap", [cm], api_version="meta.k8s.io/v2")
    assert info.value.code == 406


def test_finished_pod_rows_carry_completed_condition() -> None:
    pod = {
        "metadata": meta("job-x"),
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded"},
    }
    out = builtin_table("Pod", [pod], now=NOW)
    assert out["rows"][0]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


# --- built-in printers ---------------------------------------------------------------------------------


def container_status(name: str, **state: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 0, **state}


def test_pod_running() -> None:
    pod = {
        "metadata": meta("web"),
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                container_status("a", ready=True, state={"running": {"startedAt": ago(minutes=4)}}),
                container_status("b", ready=True, state={"running": {"startedAt": ago(minutes=4)}}),
            ],
        },
    }
    assert row("Pod", pod) == ["web", "2/2", "Running", "0", "5m", "10.0.0.5", "n1", "<none>", "<none>"]
    assert [c.name for c in columns_for_builtin("Pod")] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
        "Node",
        "Nominated Node",
        "Readiness Gates",
    ]
    assert [c.priority for c in columns_for_builtin("Pod")] == [0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_pod_pending_and_crashing() -> None:
    pending = {"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}}
    assert cells_by_name("Pod", pending)["Status"] == "Pending"
    assert cells_by_name("Pod", pending)["IP"] == "<none>"

    creating = {
        "metadata": meta("p"),
        "spec": {"containers": [{"name": "a"}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [container_status("a", state={"waiting": {"reason": "ContainerCreating"}})],
        },
    }
    assert cells_by_name("Pod", creating)["Status"] == "ContainerCreating"

    crashing = {
        "metadata": meta("p"),
        "spec": {"containers": [{"name": "a"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                container_status(
                    "a",
                    restartCount=4,
                    state={"waiting": {"reason": "CrashLoopBackOff"}},
                    lastState={"terminated": {"exitCode": 1, "finishedAt": ago(minutes=3, seconds=20)}},
                )
            ],
        },
    }
    got = cells_by_name("Pod", crashing)
    assert (got["Ready"], got["Status"], got["Restarts"]) == ("0/1", "CrashLoopBackOff", "4 (3m20s ago)")


def test_pod_terminated_reasons() -> None:
    def status_of(term: dict[str, Any]) -> str:
        pod = {
            "metadata": meta("p"),
            "spec": {"containers": [{"name": "a"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [container_status("a", state={"terminated": term})],
            },
        }
        return str(cells_by_name("Pod", pod)["Status"])

    assert status_of({"exitCode": 0, "reason": "Completed"}) == "Completed"
    assert status_of({"exitCode": 137, "signal": 9}) == "Signal:9"
    assert status_of({"exitCode": 2}) == "ExitCode:2"


def test_pod_init_containers() -> None:
    def pod(statuses: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
        return {
            "metadata": meta("p"),
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": statuses, **status},
        }

    done = container_status("i1", state={"terminated": {"exitCode": 0, "reason": "Completed"}})
    running = container_status("i2", state={"running": {}})
    assert cells_by_name("Pod", pod([done, running]))["Status"] == "Init:1/2"
    failed = container_status("i1", state={"terminated": {"exitCode": 1, "reason": "Error"}})
    assert cells_by_name("Pod", pod([failed]))["Status"] == "Init:Error"
    backoff = container_status("i1", restartCount=2, state={"waiting": {"reason": "CrashLoopBackOff"}})
    got = cells_by_name("Pod", pod([backoff]))
    assert (got["Status"], got["Restarts"]) == ("Init:CrashLoopBackOff", "2")
    initializing = container_status("i1", state={"waiting": {"reason": "PodInitializing"}})
    assert cells_by_name("Pod", pod([initializing]))["Status"] == "Init:0/2"


def test_pod_sidecar_counts_as_container() -> None:
    pod = {
        "metadata": meta("p"),
        "spec": {
            "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [
                container_status("proxy", ready=True, started=True, restartCount=1, state={"running": {}})
            ],
            "containerStatuses": [container_status("app", ready=True, state={"running": {}})],
        },
    }
    got = cells_by_name("Pod", pod)
    assert (got["Ready"], got["Status"], got["Restarts"]) == ("2/2", "Running", "1")


def test_pod_terminating_gated_and_wide_columns() -> None:
    pod = {
        "metadata": meta("p", deletionTimestamp=ago(seconds=10)),
        "spec": {
            "containers": [{"name": "a"}],
            "readinessGates": [{"conditionType": "x/ready"}, {"conditionType": "y"}],
        },
        "status": {
            "phase": "Running",
            "nominatedNodeName": "n2",
            "podIPs": [{"ip": "fd00::1"}, {"ip": "10.0.0.1"}],
            "conditions": [{"type": "x/ready", "status": "True"}, {"type": "y", "status": "False"}],
        },
    }
    got = cells_by_name("Pod", pod)
    assert (got["Status"], got["IP"], got["Nominated Node"], got["Readiness Gates"]) == (
        "Terminating",
        "fd00::1",
        "n2",
        "1/2",
    )
    gated = {
        "metadata": meta("g"),
        "spec": {"containers": [{"name": "a"}]},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
        },
    }
    assert cells_by_name("Pod", gated)["Status"] == "SchedulingGated"
    lost = {
        "metadata": meta("l", deletionTimestamp=ago(seconds=1)),
        "spec": {},
        "status": {"phase": "Running", "reason": "NodeLost"},
    }
    assert cells_by_name("Pod", lost)["Status"] == "Unknown"


def test_node() -> None:
    node = {
        "metadata": meta(
            "cp-1",
            labels={
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/etcd": "",
                "kubernetes.io/role": "master",
            },
        ),
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [
                {"type": "Hostname", "address": "cp-1"},
                {"type": "InternalIP", "address": "192.168.1.10"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.31.2",
                "osImage": "Bottlerocket",
                "kernelVersion": "6.1",
                "containerRuntimeVersion": "containerd://1.7",
            },
        },
    }
    assert row("Node", node) == [
        "cp-1",
        "Ready,SchedulingDisabled",
        "control-plane,etcd,master",
        "5m",
        "v1.31.2",
        "192.168.1.10",
        "<none>",
        "Bottlerocket",
        "6.1",
        "containerd://1.7",
    ]
    bare = {"metadata": meta("w"), "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert row("Node", bare)[1:3] == ["NotReady", "<none>"]
    assert row("Node", {"metadata": meta("x")})[1] == "Unknown"
    assert row("Node", {"metadata": meta("x")})[-3:] == ["<unknown>", "<unknown>", "<unknown>"]


def test_service() -> None:
    svc = {
        "metadata": meta("web"),
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "selector": {"tier": "web", "app": "shop"},
        },
    }
    assert row("Service", svc) == [
        "web",
        "NodePort",
        "10.96.0.10",
        "<none>",
        "80:30080/TCP,53/UDP",
        "5m",
        "app=shop,tier=web",
    ]
    headless = {"metadata": meta("db"), "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}
    assert row("Service", headless)[1:5] == ["ClusterIP", "None", "<none>", "5432/TCP"]
    lb = {"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.2"]}}
    assert row("Service", lb)[3] == "<pending>"
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}}
    lb["spec"]["externalIPs"] = ["198.51.100.1"]
    assert row("Service", lb)[3] == "203.0.113.9,lb.example.com,198.51.100.1"
    ext = {"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    assert row("Service", ext)[2:5] == ["<none>", "db.example.com", "<none>"]


def test_endpoints() -> None:
    ep = {
        "metadata": meta("web"),
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}],
                "ports": [{"port": 8080}],
            }
        ],
    }
    assert row("Endpoints", ep)[1] == "10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 1 more..."
    assert row("Endpoints", {"metadata": meta("none")})[1] == "<none>"
    headless = {"metadata": meta("h"), "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}
    assert row("Endpoints", headless)[1] == "10.0.0.1"


def test_small_core_kinds() -> None:
    assert row("Namespace", {"metadata": meta("prod"), "status": {"phase": "Terminating"}}) == [
        "prod",
        "Terminating",
        "5m",
    ]
    assert row("Namespace", {"metadata": meta("new")})[1] == "Active"
    assert row("ConfigMap", {"metadata": meta("c"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}}) == [
        "c",
        2,
        "5m",
    ]
    assert row(
        "Secret", {"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    ) == [
        "s",
        "kubernetes.io/tls",
        2,
        "5m",
    ]
    assert row("Secret", {"metadata": meta("s")})[1:3] == ["Opaque", 0]
    assert row("ServiceAccount", {"metadata": meta("default"), "secrets": [{"name": "t"}]}) == [
        "default",
        1,
        "5m",
    ]
    assert row("Lease", {"metadata": meta("l"), "spec": {"holderIdentity": "cp-1_abc"}}) == [
        "l",
        "cp-1_abc",
        "5m",
    ]
    assert row("Lease", {"metadata": meta("l")})[1] == ""


def test_core_event() -> None:
    ev = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta("web.17a"),
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff",
        "type": "Warning",
        "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(hours=1),
        "lastTimestamp": ago(seconds=30),
        "count": 12,
    }
    assert row("Event", ev) == [
        "30s",
        "Warning",
        "BackOff",
        "pod/web",
        "spec.containers{app}",
        "kubelet, node-1",
        "Back-off restarting failed container",
        "60m",
        12,
        "web.17a",
    ]


def test_events_k8s_io_event() -> None:
    ev = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": meta("n.1"),
        "eventTime": ago(minutes=3).replace("Z", ".000000Z"),
        "regarding": {"kind": "Node", "name": "node-1"},
        "note": "Node became ready",
        "reason": "NodeReady",
        "type": "Normal",
        "reportingController": "node-controller",
        "reportingInstance": "",
    }
    got = cells_by_name("Event", ev)
    assert (
        got["Last Seen"],
        got["First Seen"],
        got["Object"],
        got["Source"],
        got["Message"],
        got["Count"],
    ) == (
        "3m",
        "3m",
        "node/node-1",
        "node-controller",
        "Node became ready",
        1,
    )
    ev["series"] = {"count": 7, "lastObservedTime": ago(seconds=5).replace("Z", ".000000Z")}
    got = cells_by_name("Event", ev)
    assert (got["Last Seen"], got["Count"]) == ("5s", 7)


def test_workloads() -> None:
    template = {
        "spec": {"containers": [{"name": "app", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}
    }
    dep = {
        "metadata": meta("web"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert row("Deployment", dep) == ["web", "2/3", 3, 2, "5m", "app,log", "nginx:1,busybox", "app=web"]
    assert row("Deployment", {"metadata": meta("d"), "spec": {}})[1:4] == ["0/1", 0, 0]

    rs = {
        "metadata": meta("web-abc"),
        "spec": {
            "replicas": 2,
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            "template": template,
        },
        "status": {"replicas": 2, "readyReplicas": 1},
    }
    assert row("ReplicaSet", rs) == ["web-abc", 2, 2, 1, "5m", "app,log", "nginx:1,busybox", "app in (web)"]
    assert row("ReplicaSet", {"metadata": meta("r"), "spec": {"replicas": 0}})[1:4] == [0, 0, 0]
    assert row("ReplicaSet", {"metadata": meta("r")})[-1] == "<none>"

    sts = {
        "metadata": meta("db"),
        "spec": {"replicas": 3, "template": template},
        "status": {"readyReplicas": 3},
    }
    assert row("StatefulSet", sts) == ["db", "3/3", "5m", "app,log", "nginx:1,busybox"]

    ds = {
        "metadata": meta("agent"),
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "a", "image": "agent:2"}],
                }
            },
        },
        "status": {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberReady": 2,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert row("DaemonSet", ds) == [
        "agent",
        3,
        3,
        2,
        3,
        2,
        "kubernetes.io/os=linux",
        "5m",
        "a",
        "agent:2",
        "app=agent",
    ]


def test_role_bindings() -> None:
    rb = {
        "metadata": meta("admins"),
        "roleRef": {"kind": "ClusterRole", "name": "admin", "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "ops"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
            {"kind": "User", "name": "bob"},
        ],
    }
    assert row("RoleBinding", rb) == ["admins", "ClusterRole/admin", "5m", "alice, bob", "ops", "build/ci"]
    assert row(
        "ClusterRoleBinding", {"metadata": meta("x"), "roleRef": {"kind": "ClusterRole", "name": "view"}}
    ) == [
        "x",
        "ClusterRole/view",
        "5m",
        "",
        "",
        "",
    ]


@pytest.mark.parametrize("kind", ["Role", "ClusterRole", "CustomResourceDefinition"])
def test_kinds_without_printer_get_name_and_created_at(kind: str) -> None:
    assert kind not in printed_kinds()
    obj = {"metadata": {"name": "x", "creationTimestamp": "2024-04-01T10:11:12Z"}}
    columns, rows = builtin_table_rows(kind, [obj], NOW)
    assert [(c.name, c.type) for c in columns] == [("Name", "string"), ("Created At", "date")]
    assert rows[0].cells == ["x", "2024-04-01T10:11:12Z"]
    assert builtin_table_rows(kind, [{"metadata": {"name": "y"}}], NOW)[1][0].cells == [
        "y",
        "0001-01-01T00:00:00Z",
    ]


def test_unset_creation_time_is_unknown_age() -> None:
    assert row("ConfigMap", {"metadata": {"name": "c"}})[2] == "<unknown>"


# --- custom resources ----------------------------------------------------------------------------------

CLUSTER_VERSION = {
    "name": "v1beta1",
    "additionalPrinterColumns": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {
            "name": "Replicas",
            "type": "integer",
            "jsonPath": ".spec.replicas",
            "priority": 1,
            "description": "Wanted",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}


def test_columns_for_crd_version() -> None:
    cols = columns_for_crd_version(CLUSTER_VERSION)
    assert [(c.name, c.type, c.priority) for c in cols] == [
        ("Name", "string", 0),
        ("Phase", "string", 0),
        ("Ready", "string", 0),
        ("Replicas", "integer", 1),
        ("Age", "date", 0),
    ]
    assert cols[0].format == "name"
    assert cols[3].description == "Wanted"
    assert cols[1].description == "Custom resource definition column (in JSONPath format): .status.phase"
    # No declared columns: Name and Age.
    assert [(c.name, c.type) for c in columns_for_crd_version({"name": "v1"})] == [
        ("Name", "string"),
        ("Age", "date"),
    ]
    # Declared columns without Age: no Age is added.
    only = columns_for_crd_version(
        {"additionalPrinterColumns": [{"name": "X", "type": "string", "jsonPath": ".x"}]}
    )
    assert [c.name for c in only] == ["Name", "X"]


def test_crd_columns_cells_with_filter_expression() -> None:
    obj = {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Cluster",
        "metadata": meta("mgmt"),
        "spec": {"replicas": 3},
        "status": {
            "phase": "Provisioned",
            "conditions": [
                {"type": "InfrastructureReady", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
        },
    }
    out = table([obj], columns_for_crd_version(CLUSTER_VERSION), now=NOW, resource_version="7")
    assert out["rows"][0]["cells"] == ["mgmt", "Provisioned", "True", 3, "5m"]
    assert [c["priority"] for c in out["columnDefinitions"]] == [0, 0, 0, 1, 0]
    missing = {"metadata": {"name": "new"}}
    assert table([missing], columns_for_crd_version(CLUSTER_VERSION), now=NOW)["rows"][0]["cells"] == [
        "new",
        None,
        None,
        None,
        None,
    ]


def test_crd_default_columns_use_short_duration() -> None:
    obj = {"metadata": {"name": "a", "creationTimestamp": ago(days=2, hours=5)}}
    assert table([obj], columns_for_crd_version({}), now=NOW)["rows"][0]["cells"] == ["a", "2d"]


@pytest.mark.parametrize(
    ("column", "value", "cell"),
    [
        (Column("S", "string", ".v"), "text", "text"),
        (Column("S", "string", ".v"), 3, "3"),
        (Column("S", "string", ".v"), 2.5, "2.5"),
        (Column("S", "string", ".v"), 4.0, "4"),
        (Column("S", "string", ".v"), True, "true"),
        (Column("S", "string", ".v"), None, "<no value>"),
        (Column("S", "string", ".v"), {"b": 1, "a": "<x>"}, '{"a":"\\u003cx\\u003e","b":1}'),
        (Column("S", "string", ".v"), ["a", 1], '["a",1]'),
        (Column("I", "integer", ".v"), 7, 7),
        (Column("I", "integer", ".v"), 7.9, 7),
        (Column("I", "integer", ".v"), "7", None),
        (Column("I", "integer", ".v"), True, None),
        (Column("N", "number", ".v"), 2, 2.0),
        (Column("N", "number", ".v"), "2", None),
        (Column("B", "boolean", ".v"), False, False),
        (Column("B", "boolean", ".v"), "false", None),
        (Column("D", "date", ".v"), "2024-05-01T11:00:00Z", "1h"),
        (Column("D", "date", ".v"), "2024-05-01T11:00:00.5+00:00", "59m"),
        (Column("D", "date", ".v"), "yesterday", "<invalid>"),
        (Column("D", "date", ".v"), "0001-01-01T00:00:00Z", "<unknown>"),
        (Column("D", "date", ".v"), "", "<unknown>"),
        (Column("D", "date", ".v"), 12, None),
        (Column("X", "object", ".v"), {"a": 1}, None),
    ],
)
def test_jsonpath_cell_types(column: Column, value: Any, cell: Any) -> None:
    assert jsonpath_cell(column, {"v": value}, NOW) == cell


@pytest.mark.parametrize(
    ("path", "cell"),
    [
        (".metadata.labels.app\\.kubernetes\\.io/name", "web"),
        (".metadata.labels['app.kubernetes.io/name']", "web"),
        (".metadata.annotations.team-owner", "infra"),
        (".spec.items[1].name", "b"),
        (".spec.items[-1].name", "c"),
        (".spec.items[*].name", "a"),
        (".spec.items[?(@.size>1)].name", "b"),
        (".spec.items[?(@.name!='a')].size", "2"),
        ("{.spec.items[0].name}", "a"),
        ("$.spec.items[2].size", "3"),
        (".spec.items[7].name", None),
        (".spec.nothing.here", None),
    ],
)
def test_kubectl_jsonpath_dialect(path: str, cell: Any) -> None:
    obj = {
        "metadata": {"labels": {"app.kubernetes.io/name": "web"}, "annotations": {"team-owner": "infra"}},
        "spec": {"items": [{"name": "a", "size": 1}, {"name": "b", "size": 2}, {"name": "c", "size": 3}]},
    }
    assert jsonpath_cell(Column("C", "string", path), obj, NOW) == cell


def test_invalid_jsonpath_ends_crd_columns() -> None:
    version = {
        "additionalPrinterColumns": [
            {"name": "Good", "type": "string", "jsonPath": ".a"},
            {"name": "Bad", "type": "string", "jsonPath": ".b[?(@.x=="},
            {"name": "After", "type": "string", "jsonPath": ".c"},
        ]
    }
    assert [c.name for c in columns_for_crd_version(version)] == ["Name", "Good"]
    assert jsonpath_cell(Column("Bad", "string", ".b[?(@.x=="), {"b": []}, NOW) is None


# --- what the real kubectl prints from these tables ------------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_real_kubectl_prints_our_tables(tmp_path: Path) -> None:
    """Serve tables from a minimal discovery-only server and let the machine's kubectl render them."""
    # Three whole hours: the age prints as "3h" for the next minute, however slow the machine is
    # (five minutes would print "5m1s" a second later).
    created = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": created},
        "spec": {"containers": [{"name": "a"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.5"}],
            "containerStatuses": [{"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}}],
        },
    }
    machine = {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Machine",
        "metadata": {"name": "cp-0", "namespace": "default", "creationTimestamp": created},
        "spec": {"clusterName": "mgmt"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    machine_version = {
        "name": "v1beta1",
        "additionalPrinterColumns": [
            {"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterName"},
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    }
    seen_accept: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            group = {
                "name": "cluster.x-k8s.io",
                "versions": [{"groupVersion": "cluster.x-k8s.io/v1beta1", "version": "v1beta1"}],
                "preferredVersion": {"groupVersion": "cluster.x-k8s.io/v1beta1", "version": "v1beta1"},
            }
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
        if path == "/api/v1":
            pods = {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get", "list"],
            }
            return web.json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": [pods]})
        if path == "/apis/cluster.x-k8s.io/v1beta1":
            machines = {
                "name": "machines",
                "singularName": "machine",
                "namespaced": True,
                "kind": "Machine",
                "verbs": ["get", "list"],
            }
            return web.json_response(
                {
                    "kind": "APIResourceList",
                    "groupVersion": "cluster.x-k8s.io/v1beta1",
                    "resources": [machines],
                }
            )
        if path.endswith(("/pods", "/machines")):
            seen_accept.append(request.headers.get("Accept", ""))
        if path == "/api/v1/namespaces/default/pods":
            return web.json_response(builtin_table("Pod", [pod], resource_version="9"))
        if path == "/apis/cluster.x-k8s.io/v1beta1/namespaces/default/machines":
            return web.json_response(
                table([machine], columns_for_crd_version(machine_version), resource_version="9")
            )
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}, status=404
        )

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: t, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
            "contexts: [{name: t, context: {cluster: t, user: u, namespace: default}}]\n"
            "current-context: t\nusers: [{name: u, user: {}}]\n"
        )

        async def kubectl(*args: str) -> list[list[str]]:
            proc = await asyncio.create_subprocess_exec(
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "--cache-dir",
                str(tmp_path / "cache"),
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
            assert proc.returncode == 0, err.decode()
            return [re.split(r"\s{2,}", line.strip()) for line in out.decode().splitlines()]

        assert await kubectl("get", "pods") == [
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            ["web", "1/1", "Running", "0", "3h"],
        ]
        wide = await kubectl("get", "pods", "-o", "wide")
        assert wide[0][-4:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
        assert wide[1][-4:] == ["10.0.0.5", "node-1", "<none>", "<none>"]
        assert await kubectl("get", "machines") == [
            ["NAME", "CLUSTER", "READY", "AGE"],
            ["cp-0", "mgmt", "True", "3h"],
        ]
        assert (await kubectl("get", "machines", "-o", "wide"))[1] == [
            "cp-0",
            "mgmt",
            "True",
            "Running",
            "3h",
        ]
        assert seen_accept
        assert all("as=Table;v=v1;g=meta.k8s.io" in accept for accept in seen_accept)
    finally:
        await runner.cleanup()
