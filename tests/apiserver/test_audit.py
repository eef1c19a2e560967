"""The audit log: the policy matcher and parser, redaction, and a real `anywhere serve` whose log is
read while kubectl and raw HTTPS requests (including refused ones) go through it."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from hypothesis import given
from hypothesis import strategies as st

from anywhere.apiserver._http import User
from anywhere.apiserver.audit import (
    REDACTED,
    AuditConfigError,
    AuditLog,
    Policy,
    attributes,
    parse_policy,
    redact,
)
from tests.apiserver.conftest import Server, start_server, stop_server

ADMIN = User("admin", ("system:masters", "system:authenticated"))
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def policy(*rules: dict[str, Any], **extra: Any) -> Policy:
    return parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **extra})


def request(method: str, path: str, user: User | None = ADMIN, query: dict[str, str] | None = None) -> Any:
    return attributes(method, path, query or {}, user)


# ---- what a request is about -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/pods/p/log", {}, ("get", "", "v1", "pods", "log", "ns", "p")),
        ("GET", "/apis/apps/v1/deployments", {}, ("list", "apps", "v1", "deployments", "", "", "")),
        (
            "GET",
            "/apis/apps/v1/deployments",
            {"watch": "true"},
            ("watch", "apps", "v1", "deployments", "", "", ""),
        ),
        ("GET", "/api/v1/watch/namespaces/a/secrets", {}, ("watch", "", "v1", "secrets", "", "a", "")),
        ("GET", "/api/v1/namespaces/foo", {}, ("get", "", "v1", "namespaces", "", "foo", "foo")),
        (
            "PUT",
            "/api/v1/namespaces/foo/finalize",
            {},
            ("update", "", "v1", "namespaces", "finalize", "foo", "foo"),
        ),
        (
            "PATCH",
            "/api/v1/namespaces/foo/status",
            {},
            ("patch", "", "v1", "namespaces", "status", "foo", "foo"),
        ),
        ("POST", "/api/v1/namespaces/d/configmaps", {}, ("create", "", "v1", "configmaps", "", "d", "")),
        (
            "DELETE",
            "/api/v1/namespaces/d/configmaps",
            {},
            ("deletecollection", "", "v1", "configmaps", "", "d", ""),
        ),
        ("DELETE", "/api/v1/nodes/n1", {}, ("delete", "", "v1", "nodes", "", "", "n1")),
        (
            "GET",
            "/api/v1/namespaces/d/secrets",
            {"fieldSelector": "metadata.name=s1"},
            ("list", "", "v1", "secrets", "", "d", "s1"),
        ),
    ],
)
def test_resource_requests_are_parsed_as_kube_apiserver_does(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    attrs = request(method, path, query=query)
    assert attrs.resource_request
    got = (attrs.verb, attrs.api_group, attrs.api_version, attrs.resource, attrs.subresource)
    assert (*got, attrs.namespace, attrs.name) == expected


@pytest.mark.parametrize(
    "path", ["/healthz", "/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/openapi/v2"]
)
def test_discovery_and_other_paths_are_non_resource_requests(path: str) -> None:
    attrs = request("GET", path)
    assert not attrs.resource_request
    assert attrs.verb == "get"
    assert attrs.path == path


# ---- the policy ------------------------------------------------------------------------------------


def test_first_matching_rule_wins() -> None:
    p = policy(
        {"level": "Request", "resources": [{"group": "", "resources": ["configmaps"]}]},
        {"level": "None", "resources": [{"group": "", "resources": ["configmaps"]}]},
        {"level": "Metadata"},
    )
    assert p.evaluate(request("GET", "/api/v1/namespaces/d/configmaps")).level == "Request"
    assert p.evaluate(request("GET", "/api/v1/namespaces/d/pods")).level == "Metadata"
    assert policy({"level": "None", "verbs": ["watch"]}).evaluate(request("GET", "/healthz")).level == "None"


def test_users_groups_and_verbs() -> None:
    p = policy(
        {"level": "RequestResponse", "users": ["alice"]},
        {"level": "Request", "userGroups": ["devs", "ops"], "verbs": ["create", "delete"]},
        {"level": "Metadata", "verbs": ["get"]},
    )
    alice, dev = User("alice"), User("bob", ("devs",))
    path = "/api/v1/namespaces/d/pods"
    assert p.evaluate(request("GET", path, alice)).level == "RequestResponse"
    assert p.evaluate(request("POST", path, dev)).level == "Request"
    assert p.evaluate(request("GET", path + "/x", dev)).level == "Metadata"
    assert p.evaluate(request("GET", path, dev)).level == "None"  # a list: no rule
    assert p.evaluate(request("POST", path, None)).level == "None"  # no user: user rules never match


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("pods", "/api/v1/namespaces/d/pods/p", True),
        ("pods", "/api/v1/namespaces/d/pods/p/log", False),
        ("pods/log", "/api/v1/namespaces/d/pods/p/log", True),
        ("pods/*", "/api/v1/namespaces/d/pods/p/exec", True),
        ("pods/*", "/api/v1/namespaces/d/pods/p", True),  # as in Kubernetes: the resource too
        ("*/status", "/api/v1/namespaces/d/pods/p/status", True),
        ("*/status", "/api/v1/namespaces/d/pods/p", False),
        ("*", "/api/v1/namespaces/d/pods/p/log", True),
    ],
)
def test_resource_and_subresource_patterns(pattern: str, path: str, matches: bool) -> None:
    p = policy({"level": "Metadata", "resources": [{"group": "", "resources": [pattern]}]})
    assert (p.evaluate(request("GET", path)).level == "Metadata") is matches


def test_groups_resource_names_and_namespaces() -> None:
    p = policy(
        {"level": "Request", "resources": [{"group": "apps"}]},
        {
            "level": "Metadata",
            "resources": [{"group": "", "resources": ["configmaps"], "resourceNames": ["cfg"]}],
        },
        {"level": "RequestResponse", "namespaces": ["kube-system", ""]},
    )
    assert p.evaluate(request("GET", "/apis/apps/v1/namespaces/d/deployments/x")).level == "Request"
    assert p.evaluate(request("GET", "/api/v1/namespaces/d/deployments/x")).level == "None"  # core, not apps
    assert p.evaluate(request("GET", "/api/v1/namespaces/d/configmaps/cfg")).level == "Metadata"
    assert p.evaluate(request("GET", "/api/v1/namespaces/d/configmaps/other")).level == "None"
    assert p.evaluate(request("GET", "/api/v1/namespaces/kube-system/pods")).level == "RequestResponse"
    assert p.evaluate(request("GET", "/api/v1/nodes")).level == "RequestResponse"  # "" is cluster scope
    assert p.evaluate(request("GET", "/healthz")).level == "None"  # resource rules skip non-resource


def test_non_resource_urls() -> None:
    p = policy(
        {"level": "Metadata", "nonResourceURLs": ["/healthz*", "/version"]},
        {"level": "Request", "nonResourceURLs": ["*"]},
    )
    assert p.evaluate(request("GET", "/healthz/etcd")).level == "Metadata"
    assert p.evaluate(request("GET", "/version")).level == "Metadata"
    assert p.evaluate(request("GET", "/versions")).level == "Request"
    assert p.evaluate(request("GET", "/api/v1/pods")).level == "None"  # a resource request


def test_omit_stages_are_the_union_and_managed_fields_follow_the_rule() -> None:
    p = policy(
        {
            "level": "Metadata",
            "verbs": ["get"],
            "omitStages": ["ResponseStarted"],
            "omitManagedFields": False,
        },
        {"level": "Metadata"},
        omitStages=["RequestReceived"],
        omitManagedFields=True,
    )
    first = p.evaluate(request("GET", "/api/v1/namespaces/d/pods/p"))
    assert first.omit_stages == {"RequestReceived", "ResponseStarted"}
    assert first.omit_managed_fields is False
    second = p.evaluate(request("POST", "/api/v1/namespaces/d/pods"))
    assert second.omit_stages == {"RequestReceived"}
    assert second.omit_managed_fields is True


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"apiVersion": "audit.k8s.io/v1beta1", "kind": "Policy", "rules": []}, "apiVersion/kind must be"),
        ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy"}, "at least one rule"),
        ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{}]}, "rules[0].level"),
        (
            {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "All"}]},
            "'All' is not one of",
        ),
        (
            {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "user": ["a"]}]},
            "rules[0].user: unknown field",
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "None", "nonResourceURLs": ["/x"], "namespaces": ["a"]}],
            },
            "cannot apply to both",
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "None", "nonResourceURLs": ["x"]}],
            },
            "must begin with '/'",
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "None", "nonResourceURLs": ["/*x"]}],
            },
            "'*' may only end",
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "None", "resources": [{"group": "", "resourceNames": ["a"]}]}],
            },
            "requires at least one resource",
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "None", "omitStages": ["Done"]}],
            },
            "allowed stages are",
        ),
        (
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "None", "resources": [{"group": "apps/v1"}]}],
            },
            "not an API group",
        ),
    ],
)
def test_malformed_policies_name_the_problem(document: dict[str, Any], expected: str) -> None:
    with pytest.raises(AuditConfigError, match=re.escape(expected)):
        parse_policy(document)


# ---- redaction -------------------------------------------------------------------------------------

values = st.text(min_size=6, max_size=40).filter(lambda v: v.strip() and "<" not in v)


@given(data=st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), values, min_size=1, max_size=5))
def test_no_secret_value_survives_redaction_in_any_shape(data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": encoded,
        "stringData": data,
    }
    applied = json.dumps(secret)
    secret["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": applied}
    shapes = [
        (json.loads(json.dumps(secret)), None),  # a Secret wherever it appears
        ({"kind": "SecretList", "items": [json.loads(json.dumps(secret))]}, "secret"),
        ({"kind": "Table", "rows": [{"cells": [], "object": json.loads(json.dumps(secret))}]}, "secret"),
        ({"data": dict(encoded), "stringData": dict(data)}, "secret"),  # a merge patch: no kind
        ([{"op": "add", "path": f"/data/{k}", "value": v} for k, v in encoded.items()], "secret"),
        (
            {
                "kind": "Status",
                "code": 422,
                "message": f"bad {data}",
                "details": {"causes": [{"message": str(data)}]},
            },
            "secret",
        ),
    ]
    for shape, sensitive in shapes:
        text = json.dumps(redact(shape, sensitive))
        for plain, enc in zip(data.values(), encoded.values(), strict=True):
            assert json.dumps(plain)[1:-1] not in text
            assert enc not in text


def test_tokens_in_token_reviews_and_requests_are_redacted() -> None:
    review = {"kind": "TokenReview", "spec": {"token": "eyJhbGciOi.secret.token"}}
    assert redact(review, "tokenreview")["spec"]["token"] == REDACTED
    issued = {"kind": "TokenRequest", "status": {"token": "eyJissued.secret"}}
    assert redact(issued, "tokenrequest")["status"]["token"] == REDACTED
    configmap = {"kind": "ConfigMap", "data": {"a": "visible"}}
    assert redact(configmap, None)["data"]["a"] == "visible"


# ---- the writer --------------------------------------------------------------------------------------


async def test_the_writer_keeps_every_event_in_order_when_its_queue_is_full(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(str(path), queue_size=4)
    await log.start()

    def line(n: int) -> Callable[[], bytes]:
        def render() -> bytes:
            if n == 7:
                raise ValueError("an event that cannot be rendered")
            return json.dumps({"n": n}).encode() + b"\n"

        return render

    for n in range(500):  # far more than the queue holds: writers wait for room, none is dropped
        await log.write(line(n))
    await log.close()
    written = [json.loads(x)["n"] for x in path.read_text().splitlines()]
    assert written == [n for n in range(500) if n != 7]
    assert path.stat().st_mode & 0o777 == 0o600


# ---- a real server -----------------------------------------------------------------------------------

VIEWER_TOKEN = "viewer-token-0123456789abcdef"  # a user with no RBAC bindings
POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "rules": [
        {"level": "None", "users": ["nobody-in-particular"]},
        # the highest level, to show that Secret values stay out even there
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["secrets"]}]},
        {
            "level": "Request",
            "resources": [{"group": "", "resources": ["configmaps"]}],
            "omitStages": ["RequestReceived"],
        },
        {"level": "None", "resources": [{"group": "", "resources": ["configmaps"]}]},  # never reached
        {"level": "None", "nonResourceURLs": ["/openapi*", "/api", "/api/*", "/apis", "/apis/*"]},
        {"level": "Metadata"},
    ],
}
REQUIRED = {
    "kind",
    "apiVersion",
    "level",
    "auditID",
    "stage",
    "requestURI",
    "verb",
    "user",
    "sourceIPs",
    "requestReceivedTimestamp",
    "stageTimestamp",
}


class Audited:
    def __init__(self, server: Server, log: Path) -> None:
        self.server = server
        self.log = log
        self.http = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED", ca_certs=str(server.data_dir / "ca.crt"), retries=False, timeout=30
        )

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def wait_for(self, found: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        """The log once ``found`` holds of it (the writer is another task in another process)."""
        deadline = time.monotonic() + 20
        while True:
            events = self.events()
            if found(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    def of(self, audit_id: str, final: str = "ResponseComplete") -> list[dict[str, Any]]:
        events = self.wait_for(lambda es: any(e["auditID"] == audit_id and e["stage"] == final for e in es))
        return [e for e in events if e["auditID"] == audit_id]

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> urllib3.BaseHTTPResponse:
        """A request with the admin's certificate, or with only a bearer token."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
            pool = self.http
        else:
            pool = urllib3.PoolManager(
                cert_reqs="CERT_REQUIRED",
                ca_certs=str(self.server.data_dir / "ca.crt"),
                cert_file=str(self.server.data_dir / "admin.crt"),
                key_file=str(self.server.data_dir / "admin.key"),
                retries=False,
                timeout=30,
            )
        data = None if body is None else json.dumps(body).encode()
        return pool.request(method, self.server.url + path, body=data, headers=headers)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    folder = tmp_path_factory.mktemp("audit")
    (folder / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    log = folder / "audit.log"
    (folder / "tokens.csv").write_text(f"{VIEWER_TOKEN},viewer,uid-viewer,team\n")
    server = start_server(
        folder / "data",
        args=(
            *("--audit-policy-file", str(folder / "policy.yaml"), "--audit-log-path", str(log)),
            *("--token-auth-file", str(folder / "tokens.csv")),
        ),
    )
    yield Audited(server, log)
    stop_server(server)


SECRET_VALUES = (
    "s3cr3t-created",
    "s3cr3t-applied",
    "s3cr3t-patched",
    "s3cr3t-json-patched",
    "s3cr3t bad b64!",
)


def test_secret_values_never_reach_the_log(audited: Audited) -> None:
    kubectl = audited.server.kubectl
    kubectl("create", "secret", "generic", "creds", "--from-literal=password=s3cr3t-created")
    manifest = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: applied}\nstringData: {token: s3cr3t-applied}\n"
    )
    kubectl("apply", "-f", "-", input=manifest)
    kubectl("apply", "-f", "-", input=manifest.replace("s3cr3t-applied", "s3cr3t-patched"))
    patched = base64.b64encode(b"s3cr3t-json-patched").decode()
    kubectl(
        "patch",
        "secret",
        "creds",
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/data/password", "value": patched}]),
    )
    kubectl("get", "secrets", "-o", "yaml")
    kubectl("get", "secret", "creds", "-o", "json")
    kubectl("get", "secrets")
    rejected = audited.call(
        "POST",
        "/api/v1/namespaces/default/secrets",
        body={"metadata": {"name": "bad"}, "data": {"p": "s3cr3t bad b64!"}},
    )
    assert rejected.status in (400, 422)
    audit_id = rejected.headers["Audit-Id"]
    audited.of(audit_id)
    text = audited.log.read_text()
    assert '"resource":"secrets"' in text
    for value in SECRET_VALUES:
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text
    created = [
        e
        for e in audited.events()
        if e["verb"] == "create" and e.get("objectRef", {}).get("resource") == "secrets"
    ]
    assert created
    assert all(e["level"] == "RequestResponse" for e in created)
    complete = [e for e in created if e["stage"] == "ResponseComplete" and e["responseStatus"]["code"] == 201]
    assert complete[0]["requestObject"]["data"]["password"] == REDACTED
    assert complete[0]["responseObject"]["metadata"]["name"] == "creds"


def test_levels_follow_the_policy_and_stages_are_omitted_per_rule(audited: Audited) -> None:
    kubectl = audited.server.kubectl
    kubectl("create", "configmap", "levels", "--from-literal=visible=yes-this-one")
    kubectl("get", "namespace", "default")
    events = audited.wait_for(
        lambda es: any(
            e.get("objectRef", {}).get("name") == "default"
            and e["stage"] == "ResponseComplete"
            and e["objectRef"]["resource"] == "namespaces"
            for e in es
        )
    )
    configmap = [
        e for e in events if e.get("objectRef", {}).get("resource") == "configmaps" and e["verb"] == "create"
    ]
    assert [e["stage"] for e in configmap] == ["ResponseComplete"]  # RequestReceived omitted by its rule
    assert configmap[0]["level"] == "Request"  # the first matching rule, not the None after it
    assert configmap[0]["requestObject"]["data"] == {"visible": "yes-this-one"}
    assert "responseObject" not in configmap[0]
    namespace = [
        e for e in events if e.get("objectRef", {}).get("resource") == "namespaces" and e["verb"] == "get"
    ]
    assert {e["stage"] for e in namespace} == {"RequestReceived", "ResponseComplete"}
    assert all(e["level"] == "Metadata" for e in namespace)
    assert not any("requestObject" in e or "responseObject" in e for e in namespace)
    assert not any(e["requestURI"].startswith("/openapi") for e in events)  # level None: not logged
    received = next(e for e in namespace if e["stage"] == "RequestReceived")
    assert "responseStatus" not in received
    assert received["stageTimestamp"] == received["requestReceivedTimestamp"]


def test_every_line_is_an_audit_event_with_kubernetes_fields(audited: Audited) -> None:
    audited.server.kubectl("get", "configmaps", "-n", "kube-system")
    response = audited.call("GET", "/api/v1/namespaces/kube-system/configmaps")
    events = audited.of(response.headers["Audit-Id"])
    assert events[0]["requestURI"] == "/api/v1/namespaces/kube-system/configmaps"
    for event in audited.events():
        assert set(event) >= REQUIRED, event
        assert event["kind"] == "Event"
        assert event["apiVersion"] == "audit.k8s.io/v1"
        assert event["level"] in ("Metadata", "Request", "RequestResponse")
        assert TIMESTAMP.match(event["requestReceivedTimestamp"])
        assert TIMESTAMP.match(event["stageTimestamp"])
        assert event["stageTimestamp"] >= event["requestReceivedTimestamp"]
        if event["stage"] != "RequestReceived":
            assert isinstance(event["responseStatus"]["code"], int)
        if "objectRef" in event:
            assert event["objectRef"]["apiVersion"]
            assert event["objectRef"]["resource"]
        if event["user"]:
            assert event["user"]["username"] in ("admin", "viewer")
            assert event["sourceIPs"] == ["127.0.0.1"]


def test_refused_authentication_is_logged_without_the_token(audited: Audited) -> None:
    token = "not-a-real-token-0123456789abcdef"
    response = audited.call("GET", "/api/v1/namespaces/default/secrets", token=token)
    assert response.status == 401
    events = audited.of(response.headers["Audit-Id"], final="ResponseStarted")
    assert len(events) == 1
    event = events[0]
    assert event["stage"] == "ResponseStarted"
    assert event["user"] == {}
    assert event["responseStatus"]["code"] == 401
    assert event["responseStatus"]["message"] == "Authentication failed, attempted: bearer"
    assert event["objectRef"] == {"resource": "secrets", "namespace": "default", "apiVersion": "v1"}
    assert token not in audited.log.read_text()
    admin_token = (audited.server.data_dir / "token").read_text().strip()
    assert admin_token not in audited.log.read_text()


def test_a_forbidden_request_is_logged_with_its_user_and_no_body(audited: Audited) -> None:
    response = audited.call(
        "POST",
        "/api/v1/namespaces/default/secrets",
        token=VIEWER_TOKEN,
        body={"metadata": {"name": "nope"}, "stringData": {"p": "s3cr3t-forbidden"}},
    )
    assert response.status == 403
    events = audited.of(response.headers["Audit-Id"])
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseComplete"]
    final = events[-1]
    assert final["user"]["username"] == "viewer"
    assert "team" in final["user"]["groups"]
    assert final["responseStatus"]["code"] == 403
    assert final["responseStatus"]["reason"] == "Forbidden"
    assert 'User "viewer" cannot create resource "secrets"' in final["responseStatus"]["message"]
    assert "requestObject" not in final  # never decoded: the request was refused first
    text = audited.log.read_text()
    assert VIEWER_TOKEN not in text
    assert "s3cr3t-forbidden" not in text


def test_a_watch_logs_its_stream_start_and_its_end(audited: Audited) -> None:
    response = audited.call("GET", "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1")
    assert response.status == 200
    events = audited.of(response.headers["Audit-Id"])
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert all(e["verb"] == "watch" for e in events)
    assert "responseObject" not in events[-1]


@pytest.mark.parametrize(
    ("args", "expected", "code"),
    [
        (("--audit-policy-file", "{policy}"), "--audit-policy-file and --audit-log-path go together", 2),
        (("--audit-policy-file", "{bad}", "--audit-log-path", "{log}"), "rules[0].level", 1),
        (
            ("--audit-policy-file", "{policy}", "--audit-log-path", "{missing}/audit.log"),
            "cannot open the audit log",
            1,
        ),
    ],
)
def test_bad_audit_options_stop_the_start(
    tmp_path: Path, args: tuple[str, ...], expected: str, code: int
) -> None:
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Everything}]\n"
    )
    paths = {"policy": tmp_path / "policy.yaml", "bad": tmp_path / "bad.yaml", "log": tmp_path / "a.log"}
    filled = [a.format(**paths, missing=tmp_path / "missing") for a in args]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "anywhere",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            "0",
            *filled,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == code, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
