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


def _owned(name: str, owner: dict[str, str]) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n"
        f"  - {{apiVersion: v1, kind: ConfigMap, name: {owner['name']}, uid: {owner['uid']}, blockOwnerDeletion: true}}\n"
    )


def _make_owner(server: Server, name: str) -> dict[str, str]:
    server.kubectl("create", "configmap", name)
    meta = json.loads(server.kubectl("get", "cm", name, "-o", "json").stdout)["metadata"]
    return {"name": name, "uid": meta["uid"]}


def _exists(server: Server, name: str) -> bool:
    return server.kubectl("get", "cm", name, check=False).returncode == 0


def _eventually(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_garbage_collection_background_foreground_orphan(server: Server) -> None:
    owner = _make_owner(server, "owner-bg")
    server.kubectl("apply", "-f", "-", input=_owned("dep-bg", owner))
    server.kubectl("delete", "cm", "owner-bg", "--cascade=background")
    _eventually(lambda: not _exists(server, "dep-bg"))

    owner = _make_owner(server, "owner-fg")
    server.kubectl(
        "apply",
        "-f",
        "-",
        input=_owned("dep-fg", owner).replace("metadata:\n", "metadata:\n  finalizers: [example.com/hold]\n"),
    )
    server.kubectl("delete", "cm", "owner-fg", "--cascade=foreground", "--wait=false")
    held = json.loads(server.kubectl("get", "cm", "owner-fg", "-o", "json").stdout)["metadata"]
    assert "foregroundDeletion" in held["finalizers"]
    _eventually(
        lambda: bool(
            json.loads(server.kubectl("get", "cm", "dep-fg", "-o", "json").stdout)["metadata"].get(
                "deletionTimestamp"
            )
        )
    )
    assert _exists(server, "owner-fg")  # waits for its blocking dependent
    server.kubectl("patch", "cm", "dep-fg", "--type", "merge", "-p", '{"metadata":{"finalizers":null}}')
    _eventually(lambda: not _exists(server, "owner-fg"))

    owner = _make_owner(server, "owner-or")
    server.kubectl("apply", "-f", "-", input=_owned("dep-or", owner))
    server.kubectl("delete", "cm", "owner-or", "--cascade=orphan")
    _eventually(lambda: not _exists(server, "owner-or"))
    dependent = json.loads(server.kubectl("get", "cm", "dep-or", "-o", "json").stdout)["metadata"]
    assert "ownerReferences" not in dependent
    server.kubectl("delete", "cm", "dep-or")


def test_status_subresource_generation_and_dry_run(server: Server) -> None:
    server.kubectl(
        "apply",
        "-f",
        "-",
        input=WIDGET_CRD.replace("widgets", "dials")
        .replace("Widget", "Dial")
        .replace("widget", "dial")
        .replace("[wd]", "[dl]"),
    )
    server.kubectl("wait", "--for=condition=established", "crd/dials.example.com", "--timeout=20s")
    server.kubectl(
        "apply",
        "-f",
        "-",
        input="apiVersion: example.com/v1\nkind: Dial\nmetadata: {name: d1}\nspec: {size: 2}\n",
    )
    server.kubectl(
        "patch",
        "dial",
        "d1",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"ready":true},"spec":{"size":9}}',
    )
    dial = json.loads(server.kubectl("get", "dial", "d1", "-o", "json").stdout)
    assert dial["status"] == {"ready": True}
    assert dial["spec"]["size"] == 2  # a status write changes only status
    assert dial["metadata"]["generation"] == 1
    server.kubectl(
        "patch", "dial", "d1", "--type=merge", "-p", '{"spec":{"size":4},"status":{"ready":false}}'
    )
    dial = json.loads(server.kubectl("get", "dial", "d1", "-o", "json").stdout)
    assert (dial["spec"]["size"], dial["status"]["ready"], dial["metadata"]["generation"]) == (4, True, 2)
    server.kubectl("wait", "--for=jsonpath={.status.ready}=true", "dial/d1", "--timeout=10s")
    server.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input="apiVersion: example.com/v1\nkind: Dial\nmetadata: {name: d2}\nspec: {size: 5}\n",
    )
    assert server.kubectl("get", "dial", "d2", check=False).returncode != 0


def test_describe_edit_diff_deletecollection(server: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in ("dc1", "dc2", "dc3"):
        server.kubectl("create", "configmap", name, "--from-literal=k=v")
    server.kubectl("label", "cm", "dc1", "dc2", "batch=one")
    described = server.kubectl("describe", "cm", "dc1").stdout
    assert "Name:" in described
    assert "dc1" in described
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/k: v/k: edited/' \"$1\"\n")
    editor.chmod(0o755)
    server.kubectl("edit", "cm", "dc1", env={"KUBE_EDITOR": str(editor)})
    assert json.loads(server.kubectl("get", "cm", "dc1", "-o", "json").stdout)["data"] == {"k": "edited"}
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dc3\ndata:\n  k: changed\n"
    diff = server.kubectl("diff", "-f", "-", input=manifest, check=False)
    assert diff.returncode == 1, diff.stderr  # 1 = differences found
    assert "+  k: changed" in diff.stdout
    server.kubectl("delete", "cm", "-l", "batch=one")
    assert not _exists(server, "dc1")
    assert not _exists(server, "dc2")
    assert _exists(server, "dc3")
    server.kubectl("delete", "cm", "dc3")


def test_explain_and_client_side_apply_validation(server: Server) -> None:
    explained = server.kubectl("explain", "configmap.data").stdout
    assert "Data contains the configuration data" in explained
    assert "controlPlaneConfiguration" in server.kubectl("explain", "clusters.spec").stdout


def test_server_side_apply_with_managed_fields_and_conflicts(server: Server) -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n  b: '2'\n"
    out = server.kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    assert "serverside-applied" in out
    obj = json.loads(server.kubectl("get", "cm", "ssa", "-o", "json", "--show-managed-fields").stdout)
    managers = {(e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    assert obj["metadata"]["managedFields"][0]["fieldsV1"]["f:data"] == {"f:a": {}, "f:b": {}}

    other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: 'other'\n"
    refused = server.kubectl(
        "apply", "--server-side", "--field-manager=robot", "-f", "-", input=other, check=False
    )
    assert refused.returncode != 0
    assert 'conflict with "kubectl"' in refused.stderr
    assert ".data.a" in refused.stderr
    server.kubectl(
        "apply", "--server-side", "--field-manager=robot", "--force-conflicts", "-f", "-", input=other
    )
    assert json.loads(server.kubectl("get", "cm", "ssa", "-o", "json").stdout)["data"] == {
        "a": "other",
        "b": "2",
    }

    # dropping a field from the applied configuration removes it, as it is no one else's
    server.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  c: '3'\n",
    )
    assert json.loads(server.kubectl("get", "cm", "ssa", "-o", "json").stdout)["data"] == {
        "a": "other",
        "c": "3",
    }
    server.kubectl("delete", "cm", "ssa")


def test_metrics_and_health_endpoints(server: Server) -> None:
    server.kubectl("get", "cm")
    metrics = server.kubectl("get", "--raw", "/metrics").stdout
    assert 'apiserver_request_total{code="200",resource="configmaps",verb="list"}' in metrics
    assert "apiserver_request_duration_seconds_bucket" in metrics
    assert "apiserver_registered_watchers" in metrics
    for path in ("/healthz", "/livez", "/readyz"):
        assert server.kubectl("get", "--raw", path).stdout == "ok"


def test_unknown_fields_are_refused_by_kubectl_apply(server: Server) -> None:
    """kubectl sends fieldValidation=Strict, as our OpenAPI says the server supports it."""
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\nbogus: 1\ndata:\n  a: '1'\n"
    refused = server.kubectl("apply", "-f", "-", input=bad, check=False)
    assert refused.returncode != 0
    assert 'strict decoding error: unknown field "bogus"' in refused.stderr
    deployment = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typo}\nspec:\n  replica: 2\n"
        "  selector: {matchLabels: {app: t}}\n  template:\n    metadata: {labels: {app: t}}\n"
        "    spec: {containers: [{name: c, image: nginx}]}\n"
    )
    refused = server.kubectl("apply", "-f", "-", input=deployment, check=False)
    assert 'unknown field "spec.replica"' in refused.stderr
    warned = server.kubectl("apply", "--validate=warn", "-f", "-", input=bad)
    assert 'unknown field "bogus"' in warned.stderr
    assert "bogus" not in json.loads(server.kubectl("get", "cm", "strict", "-o", "json").stdout)  # pruned
    server.kubectl("delete", "cm", "strict")


def test_cluster_api_kinds_and_scale(server: Server) -> None:
    """The Cluster API CRDs are installed at start; `kubectl scale` works through /scale."""
    machines = (
        server.kubectl("get", "machines.cluster.x-k8s.io", "-A").stderr
        + server.kubectl("get", "machines.cluster.x-k8s.io", "-A").stdout
    )
    assert "No resources found" in machines
    server.kubectl("create", "deployment", "scaled", "--image=nginx", "--replicas=1")
    server.kubectl("scale", "deployment/scaled", "--replicas=3")
    assert json.loads(server.kubectl("get", "deploy", "scaled", "-o", "json").stdout)["spec"]["replicas"] == 3
    md = (
        "apiVersion: cluster.x-k8s.io/v1beta1\nkind: MachineDeployment\nmetadata: {name: md-0}\n"
        "spec:\n  clusterName: demo\n  replicas: 1\n  selector: {matchLabels: {pool: a}}\n"
        "  template:\n    metadata: {labels: {pool: a}}\n    spec:\n      clusterName: demo\n"
        "      bootstrap: {dataSecretName: boot}\n"
        "      infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta1, kind: SimMachineTemplate, name: t}\n"
    )
    server.kubectl("apply", "-f", "-", input=md)
    server.kubectl("scale", "machinedeployment/md-0", "--replicas=4")
    scaled = json.loads(server.kubectl("get", "md", "md-0", "-o", "json").stdout)
    assert scaled["spec"]["replicas"] == 4
    header = server.kubectl("get", "md").stdout.splitlines()[0].split()
    assert header[:2] == ["NAME", "CLUSTER"]
