"""Kubernetes protobuf request bodies, decoded to the JSON-shaped objects the server stores.

The golden fixtures in ``data/protobuf`` are request bodies captured from the machine's kubectl
(v1.32) against a logging test server; ``manifest.json`` names the command behind each one. Where
the command has a client-side dry run, the expected JSON is kubectl's own ``--dry-run=client -o json``
output for the same command, i.e. what the same client would have sent as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.protobuf import decode_request, supported_kinds

DATA = Path(__file__).parent / "data" / "protobuf"
MANIFEST: dict[str, dict[str, str]] = json.loads((DATA / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_kubectl_bodies_decode_to_the_json_kubectl_would_send(name: str) -> None:
    expected = json.loads((DATA / f"{name}.json").read_text())
    assert decode_request((DATA / f"{name}.pb").read_bytes()) == expected


def test_fixtures_cover_the_kinds_kubectl_sends() -> None:
    kinds = {json.loads((DATA / f"{name}.json").read_text())["kind"] for name in MANIFEST}
    assert kinds >= {
        "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Deployment", "Service", "Role", "ClusterRole",
        "RoleBinding", "ClusterRoleBinding", "ResourceQuota", "Pod", "TokenRequest", "SelfSubjectAccessReview",
        "DeleteOptions",
    }  # fmt: skip


def test_bytes_fields_are_base64_as_in_json() -> None:
    secret = decode_request((DATA / "secret.pb").read_bytes())
    assert secret["data"]["user"] == "YWRtaW4="  # "admin"
    configmap = decode_request((DATA / "cm.pb").read_bytes())
    assert set(configmap["binaryData"]) == {"bin.dat"}
    assert configmap["data"]["text.txt"] == "hello\n"


# --- a minimal encoder, to build the cases kubectl does not happen to send -------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _len(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _envelope(api_version: str, kind: str, raw: bytes, *, encoding: str = "") -> bytes:
    type_meta = _len(1, api_version) + _len(2, kind)
    return b"k8s\x00" + _len(1, type_meta) + _len(2, raw) + _len(3, encoding) + _len(4, "")


def _decode(api_version: str, kind: str, raw: bytes) -> dict[str, Any]:
    return decode_request(_envelope(api_version, kind, raw))


def _meta(name: str) -> bytes:
    return _len(1, _len(1, name))


def test_scalars_follow_go_json_presence_rules() -> None:
    # Container.name has no omitempty (kept even when empty), image has (dropped when empty);
    # ContainerPort.containerPort has no omitempty, so a missing value still reads 0.
    container = _len(1, "") + _len(2, "") + _len(6, _int(2, 0))
    pod_spec = _len(2, container)
    pod = _decode("v1", "Pod", _meta("p") + _len(2, pod_spec))
    assert pod["spec"]["containers"] == [{"name": "", "ports": [{"containerPort": 0}], "resources": {}}]
    assert pod["status"] == {}
    assert pod["metadata"] == {"name": "p", "creationTimestamp": None}


def test_pointer_zero_values_survive() -> None:
    account = _decode("v1", "ServiceAccount", _meta("sa") + _int(4, 0))
    assert account["automountServiceAccountToken"] is False
    deployment = _decode("apps/v1", "Deployment", _meta("d") + _len(2, _int(1, 0)))
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["selector"] is None  # a nil pointer without omitempty
    assert deployment["spec"]["template"] == {
        "metadata": {"creationTimestamp": None},
        "spec": {"containers": None},
    }


def test_negative_integers() -> None:
    probe = _int(2, -5) + _int(7, -1)  # initialDelaySeconds int32, terminationGracePeriodSeconds *int64
    container = _len(1, "c") + _len(10, probe)
    pod = _decode("v1", "Pod", _meta("p") + _len(2, _len(2, container)))
    assert pod["spec"]["containers"][0]["livenessProbe"] == {
        "initialDelaySeconds": -5,
        "terminationGracePeriodSeconds": -1,
    }


def test_packed_and_unpacked_repeated_integers() -> None:
    packed = _len(4, _varint(1000) + _varint(2000))
    unpacked = _int(4, 3000)
    pod = _decode("v1", "Pod", _meta("p") + _len(2, _len(14, packed + unpacked)))
    assert pod["spec"]["securityContext"] == {"supplementalGroups": [1000, 2000, 3000]}


def test_times_quantities_int_or_string_and_managed_fields() -> None:
    created = _len(8, _int(1, 1704164645))  # 2024-01-02T03:04:05Z
    entry = _len(1, "kubectl") + _len(2, "Apply") + _len(4, _int(1, 1704164645)) + _len(6, "FieldsV1")
    entry += _len(7, _len(1, '{"f:data":{}}'))
    meta = _len(1, _len(1, "q") + created + _len(17, entry))
    hard = _len(1, _len(1, "cpu") + _len(2, _len(1, "500m"))) + _len(1, _len(1, "pods"))  # a value-less entry
    quota = _decode("v1", "ResourceQuota", meta + _len(2, hard))
    assert quota["metadata"] == {
        "name": "q",
        "creationTimestamp": "2024-01-02T03:04:05Z",
        "managedFields": [
            {"manager": "kubectl", "operation": "Apply", "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {}}},
        ],
    }  # fmt: skip
    assert quota["spec"]["hard"] == {"cpu": "500m", "pods": "0"}

    strategy = _len(2, _len(1, _int(1, 1) + _len(3, "25%")) + _len(2, _int(2, 2)))
    deployment = _decode("apps/v1", "Deployment", _meta("d") + _len(2, _len(4, strategy)))
    assert deployment["spec"]["strategy"] == {"rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 2}}

    renew = _len(4, _int(1, 1704164645) + _int(2, 123456789))
    lease = _decode("coordination.k8s.io/v1", "Lease", _meta("l") + _len(2, _len(1, "me") + renew))
    assert lease["spec"] == {"holderIdentity": "me", "renewTime": "2024-01-02T03:04:05.123456Z"}


def test_delete_options_are_accepted_under_any_group_version() -> None:
    body = _int(1, 0) + _len(4, "Foreground") + _len(5, "All")
    for api_version in ("v1", "meta.k8s.io/v1", "apps/v1"):
        assert _decode(api_version, "DeleteOptions", body) == {
            "kind": "DeleteOptions",
            "apiVersion": api_version,
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
        }


def test_unknown_kind_is_415_and_asks_for_json() -> None:
    with pytest.raises(StatusError) as caught:
        _decode("example.com/v1", "Widget", _meta("w"))
    assert caught.value.code == 415
    assert caught.value.reason == "UnsupportedMediaType"
    assert "example.com/v1, Kind=Widget" in caught.value.message
    assert "application/json" in caught.value.message
    assert "Namespace" in caught.value.message
    assert "apps/Deployment" in supported_kinds()


def test_unknown_field_is_415_not_silently_dropped() -> None:
    # Volume.volumeSource (field 2, inlined in JSON) with gcePersistentDisk, which the table lacks.
    volume = _len(1, "v") + _len(2, _len(3, _len(1, "pd")))
    with pytest.raises(StatusError) as caught:
        _decode("v1", "Pod", _meta("p") + _len(2, _len(1, volume)))
    assert caught.value.code == 415
    assert "field 3 of VolumeSource" in caught.value.message


def test_content_encoding_is_415() -> None:
    with pytest.raises(StatusError) as caught:
        decode_request(_envelope("v1", "Namespace", b"", encoding="gzip"))
    assert caught.value.code == 415


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{}", "magic"),
        (b"k8s\x00", "apiVersion and kind"),
        (b"k8s\x00" + _len(1, _len(2, "Namespace")), "apiVersion and kind"),
        (b"k8s\x00\x0a\x10\x0a", "runs past the end"),
        (b"k8s\x00\x0a\xff", "truncated varint"),
        (_envelope("v1", "Namespace", _len(1, _int(1, 5))), "name is not length-delimited"),
        (_envelope("v1", "Namespace", b"\x0b"), "wire type 3"),
        (_envelope("v1", "Namespace", _len(1, b"\x00")), "field number 0"),
        (_envelope("v1", "Namespace", _len(1, _len(8, _int(1, 10**17)))), "out of range"),
        (_envelope("v1", "ConfigMap", _len(1, _len(17, _len(7, _len(1, "{"))))), "is not JSON"),
    ],
)
def test_malformed_bodies_are_400(body: bytes, detail: str) -> None:
    with pytest.raises(StatusError) as caught:
        decode_request(body)
    assert caught.value.code == 400
    assert caught.value.reason == "BadRequest"
    assert detail in caught.value.message
