"""Bad requests get a metav1 Status with the right code; the server keeps serving; nothing is half written."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.apiserver.conftest import Server


class Raw:
    """Plain HTTPS requests with the admin certificate: no client library smoothing anything over."""

    def __init__(self, server: Server) -> None:
        self.url = server.url
        self.http = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(server.data_dir / "ca.crt"),
            cert_file=str(server.data_dir / "admin.crt"),
            key_file=str(server.data_dir / "admin.key"),
            retries=False,
            timeout=30,
        )

    def call(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        response = self.http.request(
            method, self.url + path, body=body, headers={"Content-Type": content_type}
        )
        try:
            return response.status, json.loads(response.data)
        except ValueError:
            return response.status, response.data


@pytest.fixture(scope="module")
def raw(server: Server) -> Raw:
    return Raw(server)


def assert_status(result: tuple[int, Any], code: int, reason: str | None = None) -> dict[str, Any]:
    status, body = result
    assert status == code, body
    assert isinstance(body, dict)
    assert body["kind"] == "Status"
    assert body["code"] == code
    if reason:
        assert body["reason"] == reason
    return body


CM = "/api/v1/namespaces/default/configmaps"


def names(raw: Raw) -> list[str]:
    status, body = raw.call("GET", CM)
    assert status == 200
    return sorted(item["metadata"]["name"] for item in body["items"])


def test_each_kind_of_bad_request(raw: Raw) -> None:
    before = names(raw)
    assert_status(raw.call("POST", CM, b"{not json"), 400, "BadRequest")
    assert_status(raw.call("POST", CM, b"[1, 2]"), 400)
    assert_status(
        raw.call(
            "POST", CM, json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}).encode()
        ),
        400,
    )
    assert_status(
        raw.call(
            "POST",
            CM,
            json.dumps({"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x"}}).encode(),
        ),
        400,
    )
    invalid = assert_status(
        raw.call("POST", CM, json.dumps({"metadata": {"name": "Not_Valid"}}).encode()), 422, "Invalid"
    )
    assert invalid["details"]["causes"][0]["field"] == "metadata.name"
    assert_status(raw.call("POST", CM, b"x" * (4 * 1024 * 1024)), 413)
    assert_status(raw.call("POST", CM, b"<xml/>", content_type="application/xml"), 415)
    assert_status(raw.call("GET", "/api/v1/namespaces/default/nonsense"), 404, "NotFound")
    assert_status(raw.call("GET", "/apis/nonsense.example.com/v1/things"), 404)
    assert_status(raw.call("PUT", CM, b"{}"), 405)
    assert_status(raw.call("GET", CM + "?limit=abc"), 400)
    assert_status(raw.call("GET", CM + "?labelSelector=%3D%3D%3D"), 400)
    assert_status(
        raw.call(
            "POST", "/api/v1/namespaces/absent/configmaps", json.dumps({"metadata": {"name": "x"}}).encode()
        ),
        404,
    )
    assert names(raw) == before
    status, _ = raw.call("GET", "/readyz")
    assert status == 200


def test_update_conflict_and_missing_resource_version_on_custom_resources(raw: Raw) -> None:
    body = {"metadata": {"name": "conflicted"}, "data": {"a": "1"}}
    status, created = raw.call("POST", CM, json.dumps(body).encode())
    assert status == 201
    stale = dict(created, data={"a": "2"})
    assert raw.call("PUT", f"{CM}/conflicted", json.dumps(stale).encode())[0] == 200
    assert_status(raw.call("PUT", f"{CM}/conflicted", json.dumps(stale).encode()), 409, "Conflict")
    cluster = "/apis/anywhere.eks.amazonaws.com/v1alpha1/namespaces/default/clusters/nope"
    assert_status(raw.call("PUT", cluster, json.dumps({"metadata": {"name": "nope"}}).encode()), 404)


def test_unauthenticated_requests_are_refused(server: Server) -> None:
    http = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED", ca_certs=str(server.data_dir / "ca.crt"), retries=False
    )
    response = http.request("GET", server.url + "/api/v1/namespaces")
    assert response.status == 401
    assert json.loads(response.data)["reason"] == "Unauthorized"
    response = http.request(
        "GET", server.url + "/api/v1/namespaces", headers={"Authorization": "Bearer wrong"}
    )
    assert response.status == 401


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(
        [CM, "/apis/anywhere.eks.amazonaws.com/v1alpha1/namespaces/default/clusters", "/api/v1/namespaces"]
    ),
    body=json_values,
)
def test_fuzzed_bodies_never_break_the_server(raw: Raw, path: str, body: Any) -> None:
    status, answer = raw.call("POST", path, json.dumps(body).encode())
    assert status != 500, answer
    if status == 201:
        kind = answer["kind"]
        name = answer["metadata"]["name"]
        assert raw.call("DELETE", f"{path}/{name}")[0] == 200, kind
    else:
        assert isinstance(answer, dict)
        assert answer["kind"] == "Status"
        assert 400 <= answer["code"] < 500


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    segments=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1, max_size=12), max_size=7
    )
)
def test_fuzzed_paths_answer_with_a_status(raw: Raw, segments: list[str]) -> None:
    status, answer = raw.call("GET", "/" + "/".join(["api", *segments]))
    assert status != 500, answer
