"""Authentication and RBAC end to end: a real `anywhere serve`, the machine's kubectl with limited
users' kubeconfigs (client certificates from `anywhere generate kubeconfig`, a static token,
ServiceAccount tokens from `kubectl create token`), and raw HTTPS for what kubectl smooths over."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from anywhere.apiserver.authn import ISSUER
from tests.apiserver.conftest import Server, start_server, stop_server

TOKEN_FILE = 'tok-bob-4d1f,bob,uid-bob,"devs,qa"\n\ntok-root-77aa,root,uid-root,system:masters\n'
BOB_TOKEN = "tok-bob-4d1f"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("auth")
    (folder / "tokens.csv").write_text(TOKEN_FILE)
    running = start_server(folder / "data", args=("--token-auth-file", str(folder / "tokens.csv")))
    yield running
    stop_server(running)


def anywhere(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anywhere", *args], capture_output=True, text=True, timeout=60, check=False
    )


def kubeconfig(server: Server, user: str, *groups: str, token: str | None = None) -> Path:
    """A limited user's kubeconfig, made the way a user would: `anywhere generate kubeconfig`."""
    args = ["generate", "kubeconfig", "--data-dir", str(server.data_dir), "--user", user]
    for group in groups:
        args += ["--group", group]
    if token is not None:
        args += ["--token", token]
    made = anywhere(*args)
    assert made.returncode == 0, made.stderr
    path = server.data_dir.parent / f"{user}-{uuid.uuid4().hex[:6]}.kubeconfig"
    path.write_text(made.stdout)
    return path


def kubectl(config: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(config), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(config: Path, *args: str, input: str | None = None) -> str:
    result = kubectl(config, *args, input=input)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def refused(config: Path, *args: str) -> str:
    """kubectl's stderr for a request the server refused with 403."""
    result = kubectl(config, *args)
    assert result.returncode != 0, f"kubectl {' '.join(args)} was allowed: {result.stdout}"
    assert "forbidden: User " in result.stderr, result.stderr
    return result.stderr.strip()


def can_i(config: Path, *args: str) -> str:
    result = kubectl(config, "auth", "can-i", *args)
    answer = result.stdout.strip()
    assert (answer, result.returncode) in (("yes", 0), ("no", 1)), (answer, result.returncode, result.stderr)
    return answer


def admin(server: Server, *args: str, input: str | None = None) -> str:
    return server.kubectl(*args, input=input).stdout


class Raw:
    """Plain HTTPS that trusts the cluster CA and presents no client certificate."""

    def __init__(self, server: Server) -> None:
        self.url = server.url
        self.http = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED", ca_certs=str(server.data_dir / "ca.crt"), retries=False, timeout=30
        )

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = self.http.request("GET", self.url + path, headers=headers)
        try:
            return response.status, json.loads(response.data)
        except ValueError:
            return response.status, response.data.decode()

    def whoami(self, token: str) -> tuple[int, Any]:
        response = self.http.request(
            "POST",
            self.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body=b'{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}',
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        return response.status, json.loads(response.data)


UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}


# --------------------------------------------------------------------------------------------------
# Authentication


def test_requests_without_valid_credentials_get_401(server: Server) -> None:
    raw = Raw(server)
    assert raw.get("/api/v1/namespaces") == (401, UNAUTHORIZED)
    assert raw.get("/version") == (401, UNAUTHORIZED)
    assert raw.get("/api/v1/namespaces", token="not-a-token") == (401, UNAUTHORIZED)
    assert raw.get("/healthz") == (200, "ok")  # probes need no credentials
    stranger = kubeconfig(server, "nobody", token="wrong-token")
    result = kubectl(stranger, "get", "pods")
    assert result.returncode != 0
    assert "error: You must be logged in to the server" in result.stderr
    assert "wrong-token" not in result.stderr


def test_anonymous_requests_when_enabled(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data", args=("--anonymous-auth",))
    try:
        raw = Raw(running)
        assert raw.get("/version")[0] == 200  # system:public-info-viewer
        status, body = raw.get("/api/v1/namespaces/default/pods")
        assert status == 403
        assert body["message"] == (
            'pods is forbidden: User "system:anonymous" cannot list resource "pods" '
            'in API group "" in the namespace "default"'
        )
        status, body = raw.get("/apis")
        assert (status, body["message"]) == (
            403,
            'forbidden: User "system:anonymous" cannot get path "/apis"',
        )
        # a credential that does not verify is refused, not downgraded to anonymous
        assert raw.get("/version", token="stale") == (401, UNAUTHORIZED)
    finally:
        stop_server(running)


def test_a_static_token_user_and_its_groups(server: Server) -> None:
    bob = kubeconfig(server, "bob", token=BOB_TOKEN)
    info = json.loads(ok(bob, "auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert info == {"username": "bob", "uid": "uid-bob", "groups": ["devs", "qa", "system:authenticated"]}
    assert refused(bob, "get", "pods", "-n", "kube-system").endswith(
        'pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "kube-system"'
    )
    admin(server, "create", "clusterrolebinding", "devs-view", "--clusterrole=view", "--group=devs")
    try:
        ok(bob, "get", "pods", "-n", "kube-system")
        ok(bob, "get", "configmaps", "-A")
        assert can_i(bob, "get", "secrets", "-n", "default") == "no"  # view does not show secrets
        assert can_i(bob, "create", "configmaps", "-n", "default") == "no"
    finally:
        admin(server, "delete", "clusterrolebinding", "devs-view")
    # a static token in system:masters is an administrator
    root = kubeconfig(server, "root", token="tok-root-77aa")
    ok(root, "get", "nodes")


def test_service_account_tokens_from_kubectl_create_token(server: Server) -> None:
    admin(server, "create", "namespace", "robots")
    admin(server, "create", "serviceaccount", "bot", "-n", "robots")
    token = admin(server, "create", "token", "bot", "-n", "robots").strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "system:serviceaccount:robots:bot"
    assert claims["kubernetes.io"]["namespace"] == "robots"
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "bot"
    assert claims["exp"] - claims["iat"] == 3600
    bot = kubeconfig(server, "bot", token=token)
    info = json.loads(ok(bot, "auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:robots:bot"
    assert info["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:robots",
        "system:authenticated",
    ]
    assert "cannot create resource" in refused(bot, "create", "configmap", "c", "-n", "robots")
    admin(
        server,
        "create",
        "rolebinding",
        "bot-edit",
        "--clusterrole=edit",
        "--serviceaccount=robots:bot",
        "-n",
        "robots",
    )
    ok(bot, "create", "configmap", "c", "-n", "robots")
    refused(bot, "get", "configmaps", "-n", "default")
    # the token dies with its ServiceAccount, and a new ServiceAccount of that name does not revive it
    admin(server, "delete", "serviceaccount", "bot", "-n", "robots")
    result = kubectl(bot, "get", "configmaps", "-n", "robots")
    assert "Unauthorized" in result.stderr
    admin(server, "create", "serviceaccount", "bot", "-n", "robots")
    assert "Unauthorized" in kubectl(bot, "get", "configmaps", "-n", "robots").stderr
    fresh = kubeconfig(server, "bot2", token=admin(server, "create", "token", "bot", "-n", "robots").strip())
    ok(fresh, "get", "configmaps", "-n", "robots")
    # TokenRequest's own rules
    short = server.kubectl("create", "token", "bot", "-n", "robots", "--duration=5m", check=False)
    assert "may not specify a duration less than 10 minutes" in short.stderr
    missing = server.kubectl("create", "token", "ghost", "-n", "robots", check=False)
    assert 'serviceaccounts "ghost" not found' in missing.stderr
    long = admin(server, "create", "token", "bot", "-n", "robots", "--duration=48h").strip()
    long_claims = jwt.decode(long, options={"verify_signature": False})
    assert long_claims["exp"] - long_claims["iat"] == 48 * 3600


def test_expired_forged_and_foreign_tokens_are_refused(server: Server) -> None:
    admin(server, "create", "serviceaccount", "probe", "-n", "default")
    account = json.loads(admin(server, "get", "serviceaccount", "probe", "-n", "default", "-o", "json"))
    uid = account["metadata"]["uid"]
    cluster_key = serialization.load_pem_private_key((server.data_dir / "sa.key").read_bytes(), None)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)

    def mint(key: Any = cluster_key, algorithm: str = "RS256", **changes: Any) -> str:
        claims = {
            "iss": ISSUER,
            "aud": [ISSUER],
            "sub": "system:serviceaccount:default:probe",
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + dt.timedelta(hours=1)).timestamp()),
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "probe", "uid": uid}},
        }
        claims.update(changes)
        return jwt.encode(claims, key, algorithm=algorithm)

    raw = Raw(server)
    status, review = raw.whoami(mint())  # the control: a well-made token works
    assert status == 201
    assert review["status"]["userInfo"]["username"] == "system:serviceaccount:default:probe"
    refused_tokens = {
        "expired": mint(exp=int((now - dt.timedelta(minutes=5)).timestamp())),
        "signed by another key": mint(other_key),
        "another issuer": mint(iss="https://issuer.example"),
        "another audience": mint(aud=["vault"]),
        "subject not the ServiceAccount": mint(sub="system:serviceaccount:kube-system:probe"),
        "stale uid": mint(
            **{"kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "probe", "uid": "x"}}}
        ),
        "unsigned": jwt.encode(
            {"iss": ISSUER, "sub": "system:serviceaccount:default:probe"}, None, algorithm="none"
        ),
        "not a JWT": "a.b.c",
    }
    for why, token in refused_tokens.items():
        assert raw.whoami(token) == (401, UNAUTHORIZED), why


def test_a_malformed_token_file_stops_the_start_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.csv"
    bad.write_text('good-secret,alice,1,"a,b"\nsecret-xyz,carol\n')
    result = anywhere(
        "serve", "--data-dir", str(tmp_path / "data"), "--port", "0", "--token-auth-file", str(bad)
    )
    assert result.returncode == 1
    assert f"{bad}, line 2: found 2 column(s)" in result.stderr
    assert "secret" not in result.stderr.replace(str(bad), "")
    missing = anywhere(
        "serve", "--data-dir", str(tmp_path / "data"), "--token-auth-file", str(tmp_path / "none")
    )
    assert missing.returncode == 1
    assert "cannot read the token file" in missing.stderr


def test_generate_kubeconfig_needs_a_server_that_ran(tmp_path: Path) -> None:
    result = anywhere("generate", "kubeconfig", "--data-dir", str(tmp_path), "--user", "alice")
    assert result.returncode == 1
    assert "run `anywhere serve --data-dir" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------------
# RBAC through kubectl


def test_a_role_grants_reading_pods_in_one_namespace_only(server: Server) -> None:
    admin(server, "create", "namespace", "team-a")
    alice = kubeconfig(server, "alice", "developers")
    assert refused(alice, "get", "pods", "-n", "team-a").endswith(
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team-a"'
    )
    admin(server, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "team-a")
    admin(server, "create", "rolebinding", "alice-reads", "--role=pod-reader", "--user=alice", "-n", "team-a")
    assert "No resources found in team-a namespace." in kubectl(alice, "get", "pods", "-n", "team-a").stderr
    assert refused(alice, "get", "pods", "-n", "default").endswith(
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" '
        'in API group "" in the namespace "default"'
    )
    assert refused(alice, "get", "pods", "-A").endswith(
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" at the cluster scope'
    )
    assert 'User "alice" cannot create resource "pods" in API group "" in the namespace "team-a"' in refused(
        alice, "run", "web", "--image=nginx", "-n", "team-a"
    )
    assert 'pods "x" is forbidden: User "alice" cannot delete resource "pods"' in refused(
        alice, "delete", "pod", "x", "-n", "team-a"
    )
    assert can_i(alice, "list", "pods", "-n", "team-a") == "yes"
    assert can_i(alice, "get", "pods", "--subresource=log", "-n", "team-a") == "no"
    assert can_i(alice, "create", "pods", "-n", "team-a") == "no"
    assert can_i(alice, "list", "pods", "-n", "default") == "no"
    rules = ok(alice, "auth", "can-i", "--list", "-n", "team-a")
    assert any(line.split()[0] == "pods" and line.endswith("[get list]") for line in rules.splitlines())


def test_a_cluster_role_bound_to_a_group(server: Server) -> None:
    carol = kubeconfig(server, "carol", "auditors")
    assert refused(carol, "get", "nodes").endswith(
        'nodes is forbidden: User "carol" cannot list resource "nodes" in API group "" at the cluster scope'
    )
    admin(
        server, "create", "clusterrole", "node-reader", "--verb=get,list,watch", "--resource=nodes,namespaces"
    )
    admin(
        server,
        "create",
        "clusterrolebinding",
        "auditors-nodes",
        "--clusterrole=node-reader",
        "--group=auditors",
    )
    ok(carol, "get", "nodes")
    ok(carol, "get", "namespaces")
    assert can_i(carol, "delete", "nodes") == "no"
    assert refused(carol, "get", "pods", "-n", "default")
    # cluster-wide read of a namespaced kind: a ClusterRoleBinding reaches every namespace
    admin(server, "create", "clusterrole", "cm-reader", "--verb=list", "--resource=configmaps")
    admin(
        server, "create", "clusterrolebinding", "auditors-cm", "--clusterrole=cm-reader", "--group=auditors"
    )
    ok(carol, "get", "configmaps", "-A")
    ok(carol, "get", "configmaps", "-n", "kube-public")


def test_resource_names_limit_a_rule_to_named_objects(server: Server) -> None:
    admin(server, "create", "namespace", "names")
    for name in ("allowed", "other"):
        admin(server, "create", "configmap", name, "-n", "names", "--from-literal=k=v")
    dave = kubeconfig(server, "dave")
    admin(
        server,
        "create",
        "role",
        "one-cm",
        "--verb=get,list",
        "--resource=configmaps",
        "--resource-name=allowed",
        "-n",
        "names",
    )
    admin(server, "create", "rolebinding", "dave-one", "--role=one-cm", "--user=dave", "-n", "names")
    ok(dave, "get", "configmap", "allowed", "-n", "names")
    assert refused(dave, "get", "configmap", "other", "-n", "names").endswith(
        'configmaps "other" is forbidden: User "dave" cannot get resource "configmaps" '
        'in API group "" in the namespace "names"'
    )
    assert 'cannot list resource "configmaps"' in refused(dave, "get", "configmaps", "-n", "names")
    # a list pinned to the allowed name is allowed
    assert "allowed" in ok(
        dave, "get", "configmaps", "-n", "names", "--field-selector", "metadata.name=allowed"
    )


def test_subresources_are_granted_apart_from_their_resource(server: Server) -> None:
    admin(server, "create", "namespace", "subres")
    admin(server, "create", "deployment", "web", "--image=nginx", "-n", "subres")
    erin = kubeconfig(server, "erin")
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "scaler", "namespace": "subres"},
        "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "update", "patch"]},
        ],
    }
    admin(server, "apply", "-f", "-", input=json.dumps(role))
    admin(server, "create", "rolebinding", "erin-scales", "--role=scaler", "--user=erin", "-n", "subres")
    ok(erin, "scale", "deployment", "web", "--replicas=3", "-n", "subres")
    deployment = json.loads(admin(server, "get", "deployment", "web", "-n", "subres", "-o", "json"))
    assert deployment["spec"]["replicas"] == 3
    assert refused(
        erin, "patch", "deployment", "web", "-n", "subres", "-p", '{"spec":{"paused":true}}'
    ).endswith(
        'deployments.apps "web" is forbidden: User "erin" cannot patch resource "deployments" '
        'in API group "apps" in the namespace "subres"'
    )
    assert can_i(erin, "update", "deployments", "--subresource=scale", "-n", "subres") == "yes"
    assert can_i(erin, "update", "deployments", "-n", "subres") == "no"
    assert can_i(erin, "get", "deployments", "--subresource=status", "-n", "subres") == "no"
    assert 'cannot get resource "deployments/status" in API group "apps"' in refused(
        erin, "get", "--raw", "/apis/apps/v1/namespaces/subres/deployments/web/status"
    )


def test_non_resource_urls(server: Server) -> None:
    frank = kubeconfig(server, "frank")
    assert refused(frank, "get", "--raw", "/metrics").endswith(
        'forbidden: User "frank" cannot get path "/metrics"'
    )
    assert can_i(frank, "get", "/metrics") == "no"
    ok(frank, "get", "--raw", "/apis")  # discovery, for every authenticated user
    admin(server, "create", "clusterrole", "scraper", "--verb=get", "--non-resource-url=/metrics")
    admin(server, "create", "clusterrolebinding", "frank-scrapes", "--clusterrole=scraper", "--user=frank")
    assert "apiserver_request_total" in ok(frank, "get", "--raw", "/metrics")
    assert can_i(frank, "get", "/metrics") == "yes"
    assert can_i(frank, "get", "/metrics/slis") == "no"


def test_revoking_takes_effect_on_the_next_request(server: Server) -> None:
    admin(server, "create", "namespace", "revoke")
    grace = kubeconfig(server, "grace")
    admin(server, "create", "role", "reader", "--verb=list", "--resource=configmaps", "-n", "revoke")
    admin(server, "create", "rolebinding", "grace-reads", "--role=reader", "--user=grace", "-n", "revoke")
    ok(grace, "get", "configmaps", "-n", "revoke")  # granted as soon as the binding was acknowledged
    admin(server, "delete", "rolebinding", "grace-reads", "-n", "revoke")
    refused(grace, "get", "configmaps", "-n", "revoke")  # revoked as soon as the delete was acknowledged
    admin(server, "create", "rolebinding", "grace-reads", "--role=reader", "--user=grace", "-n", "revoke")
    ok(grace, "get", "configmaps", "-n", "revoke")
    admin(server, "delete", "role", "reader", "-n", "revoke")
    assert refused(grace, "get", "configmaps", "-n", "revoke").endswith(
        'in the namespace "revoke": RBAC: role.rbac.authorization.k8s.io "reader" not found'
    )


def test_the_default_policy_is_there_for_kubectl(server: Server) -> None:
    names = ok(server.kubeconfig, "get", "clusterroles", "-o", "name").split()
    for expected in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user"):
        assert f"clusterrole.rbac.authorization.k8s.io/{expected}" in names
    view = json.loads(admin(server, "get", "clusterrole", "view", "-o", "json"))
    assert view["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}
    ]
    assert any("pods" in rule.get("resources", []) for rule in view["rules"])
    binding = json.loads(admin(server, "get", "clusterrolebinding", "cluster-admin", "-o", "json"))
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}
    ]


def test_defaults_are_reconciled_at_start_unless_opted_out(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data")
    try:
        running.kubectl(
            "patch",
            "clusterrole",
            "system:discovery",
            "--type=json",
            "-p",
            '[{"op":"remove","path":"/rules/0"}]',
        )
        running.kubectl(
            "patch",
            "clusterrole",
            "view",
            "--type=merge",
            "-p",
            '{"metadata":{"annotations":{"rbac.authorization.kubernetes.io/autoupdate":"false"}},'
            '"aggregationRule":null,"rules":[]}',
        )
    finally:
        stop_server(running)
    running = start_server(tmp_path / "data")
    try:
        discovery = json.loads(running.kubectl("get", "clusterrole", "system:discovery", "-o", "json").stdout)
        assert "/apis/*" in discovery["rules"][0]["nonResourceURLs"]  # restored
        view = json.loads(running.kubectl("get", "clusterrole", "view", "-o", "json").stdout)
        assert not view.get("rules")  # left as the user set it
        assert len(running.kubectl("get", "clusterroles", "-o", "name").stdout.split()) == 11
    finally:
        stop_server(running)


def test_nobody_grants_what_they_do_not_hold(server: Server) -> None:
    admin(server, "create", "namespace", "esc")
    henry = kubeconfig(server, "henry")
    admin(server, "create", "rolebinding", "henry-admin", "--clusterrole=admin", "--user=henry", "-n", "esc")
    # a namespace administrator hands out what it holds ...
    ok(henry, "create", "rolebinding", "ivy-view", "--clusterrole=view", "--user=ivy", "-n", "esc")
    ok(henry, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "esc")
    # ... but neither binds nor writes more than that
    denied = kubectl(
        henry,
        "create",
        "rolebinding",
        "henry-root",
        "--clusterrole=cluster-admin",
        "--user=henry",
        "-n",
        "esc",
    ).stderr
    assert (
        'rolebindings.rbac.authorization.k8s.io "henry-root" is forbidden: user "henry" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:'
    ) in denied
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in denied
    big = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "nodes-too", "namespace": "esc"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "delete"]}],
    }
    result = kubectl(henry, "apply", "-f", "-", input=json.dumps(big))
    assert result.returncode != 0
    assert '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "delete"]}' in result.stderr
    assert "nodes-too" not in admin(server, "get", "roles", "-n", "esc", "-o", "name")
    # the bind verb on a role is permission enough to bind it, as in Kubernetes
    admin(
        server,
        "create",
        "clusterrole",
        "binder",
        "--verb=bind",
        "--resource=clusterroles",
        "--resource-name=cluster-admin",
    )
    admin(server, "create", "rolebinding", "henry-binds", "--clusterrole=binder", "--user=henry", "-n", "esc")
    ok(
        henry,
        "create",
        "rolebinding",
        "henry-root",
        "--clusterrole=cluster-admin",
        "--user=henry",
        "-n",
        "esc",
    )


def test_an_aggregation_rule_takes_full_authority(server: Server) -> None:
    """A ClusterRole with an empty rule list needs nothing to write, but an aggregationRule would
    gather the rules of any role it selects (cluster-admin's included): setting one, or changing a
    role that has one, takes what cluster-admin holds, as in Kubernetes."""
    mallory = kubeconfig(server, "mallory")
    admin(
        server,
        "create",
        "clusterrole",
        "role-writer",
        "--verb=get,create,update,patch",
        "--resource=clusterroles,clusterrolebindings",
    )
    admin(
        server,
        "create",
        "clusterrolebinding",
        "mallory-writes",
        "--clusterrole=role-writer",
        "--user=mallory",
    )
    empty = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "team"},
    }
    ok(mallory, "create", "-f", "-", input=json.dumps(empty))
    ok(mallory, "create", "clusterrolebinding", "team", "--clusterrole=team", "--user=mallory")
    gathering = {
        **empty,
        "aggregationRule": {
            "clusterRoleSelectors": [{"matchLabels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}]
        },
    }
    refused = kubectl(mallory, "apply", "-f", "-", input=json.dumps(gathering))
    assert refused.returncode != 0
    assert "must have cluster-admin privileges to use the aggregationRule" in refused.stderr
    assert kubectl(mallory, "auth", "can-i", "delete", "secrets", "-n", "kube-system").stdout.strip() == "no"
    # nor may she edit a role that aggregates (view's rules come from the roles it selects)
    relabel = kubectl(mallory, "label", "clusterrole", "view", "mine=yes")
    assert relabel.returncode != 0
    assert "must have cluster-admin privileges to use the aggregationRule" in relabel.stderr
