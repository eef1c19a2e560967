"""The machine's real kubectl against a real `anywhere serve` process."""

from __future__ import annotations

import json
import subprocess
import time

import yaml

from anywhere.api import dump_config
from anywhere.api.generate import generate_config
from tests.apiserver.conftest import Server

CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels: {{app: demo}}
data:
  greeting: hello
"""

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1, default: 3}
              color: {type: string, enum: [red, blue]}
          status:
            type: object
            properties:
              ready: {type: boolean}
"""


def test_version_and_discovery(server: Server) -> None:
    assert "Server Version: v1.33" in server.kubectl("version").stdout
    resources = server.kubectl("api-resources").stdout
    for expected in ("configmaps", "leases", "clusters", "simmachineconfigs", "customresourcedefinitions"):
        assert expected in resources


def test_apply_get_label_annotate_patch_delete(server: Server) -> None:
    server.kubectl("apply", "--validate=false", "-f", "-", input=CONFIGMAP.format(name="cm1"))
    data = json.loads(server.kubectl("get", "cm", "cm1", "-o", "json").stdout)
    assert data["data"] == {"greeting": "hello"}
    assert data["metadata"]["resourceVersion"]
    assert (
        yaml.safe_load(server.kubectl("get", "cm", "cm1", "-o", "yaml").stdout)["metadata"]["name"] == "cm1"
    )
    assert server.kubectl("get", "cm", "-o", "name").stdout.split() == ["configmap/cm1"]
    table = server.kubectl("get", "cm", "cm1").stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert table[1].split()[:2] == ["cm1", "1"]

    server.kubectl("label", "cm", "cm1", "tier=web")
    server.kubectl("annotate", "cm", "cm1", "note=yes")
    server.kubectl("patch", "cm", "cm1", "--type", "merge", "-p", '{"data":{"merged":"1"}}')
    server.kubectl(
        "patch", "cm", "cm1", "--type", "json", "-p", '[{"op":"add","path":"/data/json","value":"2"}]'
    )
    server.kubectl("patch", "cm", "cm1", "--type", "strategic", "-p", '{"data":{"strategic":"3"}}')
    data = json.loads(server.kubectl("get", "cm", "cm1", "-o", "json").stdout)
    assert data["metadata"]["labels"] == {"app": "demo", "tier": "web"}
    assert data["metadata"]["annotations"]["note"] == "yes"
    assert data["data"] == {"greeting": "hello", "merged": "1", "json": "2", "strategic": "3"}
    assert server.kubectl("get", "cm", "-l", "tier=web", "-o", "name").stdout.split() == ["configmap/cm1"]
    assert server.kubectl("get", "cm", "-l", "tier=db", "-o", "name").stdout.split() == []

    failed = server.kubectl(
        "patch",
        "cm",
        "cm1",
        "--type",
        "json",
        "-p",
        '[{"op":"test","path":"/data/greeting","value":"bye"}]',
        check=False,
    )
    assert failed.returncode != 0

    server.kubectl("delete", "cm", "cm1")
    missing = server.kubectl("get", "cm", "cm1", check=False)
    assert missing.returncode != 0
    assert 'configmaps "cm1" not found' in missing.stderr


def test_watch_streams_changes(server: Server) -> None:
    watcher = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            str(server.kubeconfig),
            "get",
            "cm",
            "-w",
            "-o",
            "name",
            "--request-timeout=0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)  # kubectl lists, then watches from the list's resourceVersion
        server.kubectl("apply", "--validate=false", "-f", "-", input=CONFIGMAP.format(name="watched"))
        assert watcher.stdout is not None
        seen = ""
        deadline = time.monotonic() + 20
        while "configmap/watched" not in seen and time.monotonic() < deadline:
            seen += watcher.stdout.readline()
        assert "configmap/watched" in seen
    finally:
        watcher.kill()
        watcher.communicate()
        server.kubectl("delete", "cm", "watched", "--ignore-not-found")


def test_wait_for_delete_with_finalizer(server: Server) -> None:
    manifest = CONFIGMAP.format(name="held").replace(
        "  labels:", "  finalizers: [example.com/hold]\n  labels:"
    )
    server.kubectl("apply", "--validate=false", "-f", "-", input=manifest)
    server.kubectl("delete", "cm", "held", "--wait=false")
    held = json.loads(server.kubectl("get", "cm", "held", "-o", "json").stdout)
    assert held["metadata"]["deletionTimestamp"]
    server.kubectl("patch", "cm", "held", "--type", "merge", "-p", '{"metadata":{"finalizers":null}}')
    server.kubectl("wait", "--for=delete", "cm/held", "--timeout=20s")


def test_crd_then_its_objects(server: Server) -> None:
    server.kubectl("apply", "--validate=false", "-f", "-", input=WIDGET_CRD)
    server.kubectl("wait", "--for=condition=established", "crd/widgets.example.com", "--timeout=20s")
    widget = (
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {color: red, extra: dropped}\n"
    )
    server.kubectl("apply", "--validate=false", "-f", "-", input=widget)
    obj = json.loads(server.kubectl("get", "widget", "w1", "-o", "json").stdout)
    assert obj["spec"] == {"color": "red", "size": 3}  # defaulted, unknown field pruned
    rows = server.kubectl("get", "wd").stdout.splitlines()
    assert rows[0].split() == ["NAME", "SIZE"]
    assert rows[1].split() == ["w1", "3"]
    bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {color: green, size: 0}\n"
    refused = server.kubectl("apply", "--validate=false", "-f", "-", input=bad, check=False)
    assert refused.returncode != 0
    assert "spec.color" in refused.stderr
    assert "spec.size" in refused.stderr
    server.kubectl("delete", "crd", "widgets.example.com")
    gone = server.kubectl("get", "widgets", check=False)
    assert gone.returncode != 0


def test_invalid_cluster_refused_with_validate_messages(server: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = generate_config("kc", "sim")
    config.cluster.spec.control_plane_configuration.count = 2  # type: ignore[union-attr]
    path = tmp_path / "kc.yaml"
    path.write_text(dump_config(config))
    refused = server.kubectl("apply", "--validate=false", "-f", str(path), check=False)
    assert refused.returncode != 0
    assert "control plane node count cannot be an even number (2) with stacked etcd" in refused.stderr
    config.cluster.spec.control_plane_configuration.count = 3  # type: ignore[union-attr]
    path.write_text(dump_config(config))
    server.kubectl("apply", "--validate=false", "-f", str(path))
    cluster = json.loads(
        server.kubectl("get", "clusters.anywhere.eks.amazonaws.com", "kc", "-o", "json").stdout
    )
    assert cluster["spec"]["clusterNetwork"]["nodes"]["cidrMaskSize"] == 24  # defaulted by admission


def test_kubectl_create_subcommands(server: Server) -> None:
    """These send protobuf bodies: the server decodes them."""
    server.kubectl("create", "namespace", "team-a")
    server.kubectl("create", "configmap", "settings", "-n", "team-a", "--from-literal=mode=fast")
    server.kubectl("create", "secret", "generic", "creds", "-n", "team-a", "--from-literal=password=s3cret")
    server.kubectl("create", "serviceaccount", "robot", "-n", "team-a")
    server.kubectl("create", "deployment", "web", "-n", "team-a", "--image=nginx", "--replicas=2")
    server.kubectl("create", "role", "reader", "-n", "team-a", "--verb=get,list", "--resource=configmaps")
    server.kubectl(
        "create", "rolebinding", "reader", "-n", "team-a", "--role=reader", "--serviceaccount=team-a:robot"
    )
    settings = json.loads(server.kubectl("get", "cm", "settings", "-n", "team-a", "-o", "json").stdout)
    assert settings["data"] == {"mode": "fast"}
    secret = json.loads(server.kubectl("get", "secret", "creds", "-n", "team-a", "-o", "json").stdout)
    assert secret["data"]["password"] == "czNjcmV0"
    deployment = json.loads(server.kubectl("get", "deploy", "web", "-n", "team-a", "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
    rows = server.kubectl("get", "deploy", "-n", "team-a").stdout.splitlines()
    assert rows[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    server.kubectl("delete", "namespace", "team-a", "--wait=true", "--timeout=30s")
    assert server.kubectl("get", "namespace", "team-a", check=False).returncode != 0
