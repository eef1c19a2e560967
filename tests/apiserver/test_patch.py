"""Patch formats: RFC 7386 and RFC 6902 appendix examples, Kubernetes strategic merge patch on built-in kinds,
the status codes kube-apiserver answers, and purity (inputs never mutated, results never aliased)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.patch import (
    BUILTIN_PATCH_TYPES,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_TYPES,
    STRATEGIC_MERGE_PATCH,
    STRATEGIC_MERGE_PATCH_KINDS,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

REJECTED = "the server rejected our request due to an error in our request"


def status_of(excinfo: pytest.ExceptionInfo[StatusError]) -> dict[str, Any]:
    return excinfo.value.status()


def pure(function: Any, original: Any, patch: Any, *args: Any) -> Any:
    """Call a patch function, checking it neither mutates its inputs nor returns values aliasing them."""
    original_before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    result = function(original, patch, *args)
    assert original == original_before
    assert patch == patch_before
    expected = copy.deepcopy(result)
    _scribble(result)
    assert original == original_before, "the result aliases the original"
    assert patch == patch_before, "the result aliases the patch"
    return expected


def _scribble(value: Any) -> None:
    """Mutate every container in ``value``, to reveal sharing with the inputs."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _scribble(item)
        value["__scribbled__"] = True
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.append("__scribbled__")


# ---------------------------------------------------------------------------------------------------------------
# RFC 7386, Appendix A

RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "expected"), RFC7386_EXAMPLES)
def test_merge_patch_rfc7386_examples(original: Any, patch: Any, expected: Any) -> None:
    assert pure(merge_patch, original, patch) == expected


def test_merge_patch_replaces_lists_and_deep_merges_objects() -> None:
    pod = {
        "metadata": {"labels": {"a": "1", "b": "2"}},
        "spec": {"containers": [{"name": "x"}, {"name": "y"}]},
    }
    patch = {"metadata": {"labels": {"b": None, "c": "3"}}, "spec": {"containers": [{"name": "z"}]}}
    assert pure(merge_patch, pod, patch) == {
        "metadata": {"labels": {"a": "1", "c": "3"}},
        "spec": {"containers": [{"name": "z"}]},
    }


# ---------------------------------------------------------------------------------------------------------------
# RFC 6902, Appendix A

RFC6902_EXAMPLES = [
    # A.1 adding an object member
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    # A.2 adding an array element
    (
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    # A.3 removing an object member
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    # A.4 removing an array element
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    # A.5 replacing a value
    (
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    # A.6 moving a value
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    # A.7 moving an array element
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    # A.8 testing a value: success
    (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    # A.10 adding a nested member object
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    # A.11 ignoring unrecognized elements
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    # A.14 ~ escape ordering
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    # A.16 adding an array value
    (
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    # copy, and "test" comparing numbers by value
    (
        {"a": {"b": 1.0}},
        [{"op": "copy", "from": "/a", "path": "/c"}, {"op": "test", "path": "/c/b", "value": 1}],
        {"a": {"b": 1.0}, "c": {"b": 1.0}},
    ),
]


@pytest.mark.parametrize(("original", "operations", "expected"), RFC6902_EXAMPLES)
def test_json_patch_rfc6902_examples(original: Any, operations: Any, expected: Any) -> None:
    assert pure(json_patch, original, operations) == expected


@pytest.mark.parametrize(
    ("original", "operations", "reason"),
    [
        # A.9 testing a value: error
        (
            {"baz": "qux"},
            [{"op": "test", "path": "/baz", "value": "bar"}],
            'value at "/baz" is "qux", not "bar"',
        ),
        # A.15 comparing strings and numbers
        (
            {"/": 9, "~1": 10},
            [{"op": "test", "path": "/~01", "value": "10"}],
            'value at "/~01" is 10, not "10"',
        ),
        # true is not 1, though Python says so
        ({"a": 1}, [{"op": "test", "path": "/a", "value": True}], "is 1, not true"),
        ({"a": 1}, [{"op": "test", "path": "/b", "value": 1}], 'no member "b"'),
    ],
)
def test_json_patch_failed_test_is_422_invalid(original: Any, operations: Any, reason: str) -> None:
    with pytest.raises(StatusError) as excinfo:
        json_patch(original, operations)
    status = status_of(excinfo)
    assert (status["code"], status["reason"], status["message"]) == (422, "Invalid", REJECTED)
    [cause] = status["details"]["causes"]
    assert cause["field"] == operations[0]["path"]
    assert cause["message"].startswith("test operation at index 0 failed")
    assert reason in cause["message"]


@pytest.mark.parametrize(
    ("operations", "reason"),
    [
        # A.12 adding to a nonexistent target
        ([{"op": "add", "path": "/baz/bat", "value": "qux"}], 'no member "baz" in the document root'),
        (
            [{"op": "remove", "path": "/spec/containers/3"}],
            "index 3 is out of range for the array at /spec/containers",
        ),
        ([{"op": "replace", "path": "/metadata/name/x", "value": 1}], "/metadata/name is a string"),
        ([{"op": "add", "path": "/spec/containers/5", "value": {}}], "index 5 is out of range"),
        ([{"op": "move", "from": "/nope", "path": "/x"}], '"from": path "/nope" does not exist'),
        (
            [{"op": "move", "from": "/spec", "path": "/spec/inner"}],
            "cannot be moved into one of its own children",
        ),
        ([{"op": "remove", "path": "/spec/containers/x"}], '"x" is not a valid index'),
    ],
)
def test_json_patch_missing_path_is_422_invalid(operations: Any, reason: str) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}
    with pytest.raises(StatusError) as excinfo:
        json_patch(pod, operations)
    status = status_of(excinfo)
    assert (status["code"], status["reason"], status["message"]) == (422, "Invalid", REJECTED)
    message = status["details"]["causes"][0]["message"]
    assert f"{operations[0]['op']} operation at index 0 does not apply" in message
    assert reason in message
    assert "{'" not in message, "Python reprs must not leak into API errors"


def test_json_patch_is_all_or_nothing() -> None:
    pod = {"metadata": {"labels": {"a": "1"}}}
    operations = [
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "test", "path": "/metadata/labels/a", "value": "0"},
    ]
    with pytest.raises(StatusError):
        json_patch(pod, operations)
    assert pod == {"metadata": {"labels": {"a": "1"}}}


def test_json_patch_later_failures_name_their_index() -> None:
    operations = [{"op": "add", "path": "/a", "value": 1}, {"op": "test", "path": "/a", "value": 2}]
    with pytest.raises(StatusError) as excinfo:
        json_patch({}, operations)
    assert "test operation at index 1 failed" in status_of(excinfo)["details"]["causes"][0]["message"]


@pytest.mark.parametrize(
    ("operations", "reason"),
    [
        ({"op": "add", "path": "/a", "value": 1}, "must be a JSON array of operations, not an object"),
        ("[]", "not a string"),
        ([["add"]], "operation 0 must be a JSON object"),
        ([{"path": "/a"}], 'needs an "op" string'),
        ([{"op": "append", "path": "/a", "value": "x"}], 'unknown op "append"'),
        ([{"op": "add", "value": 1}], 'needs a "path" string'),
        ([{"op": "add", "path": "a", "value": 1}], 'must start with "/"'),
        ([{"op": "add", "path": "/a~2b", "value": 1}], 'has a "~" not followed by "0" or "1"'),
        ([{"op": "move", "path": "/a"}], 'needs a "from" string'),
        ([{"op": "test", "path": "/a"}], 'needs a "value" member'),
        (
            [{"op": "remove", "path": "/a"}, {"op": "replace", "path": "/a"}],
            'operation 1 (replace) needs a "value"',
        ),
    ],
)
def test_json_patch_malformed_is_400(operations: Any, reason: str) -> None:
    with pytest.raises(StatusError) as excinfo:
        json_patch({"a": 1}, operations)
    status = status_of(excinfo)
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert reason in status["message"]


def test_json_patch_operation_limit_is_413() -> None:
    operations = [{"op": "test", "path": "", "value": {}}] * 10_001
    with pytest.raises(StatusError) as excinfo:
        json_patch({}, operations)
    status = status_of(excinfo)
    assert (status["code"], status["reason"]) == (413, "RequestEntityTooLarge")
    assert "maximum operations in a JSON patch is 10000, got 10001" in status["message"]


def test_json_patch_added_values_are_not_shared_with_the_request() -> None:
    value = {"k": ["v"]}
    result = pure(
        json_patch,
        {},
        [{"op": "add", "path": "/x", "value": value}, {"op": "add", "path": "/y", "value": value}],
    )
    assert result == {"x": {"k": ["v"]}, "y": {"k": ["v"]}}


# ---------------------------------------------------------------------------------------------------------------
# Strategic merge patch


def a_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "finalizers": ["example.com/a", "example.com/b"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1"}],
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.25",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                },
                {"name": "sidecar", "image": "busybox", "args": ["sleep", "1d"]},
            ],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
            "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}],
            "nodeSelector": {"disk": "ssd", "zone": "a"},
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"},
            ],
        },
    }


def smp(original: dict[str, Any], patch: dict[str, Any], kind: str = "Pod") -> dict[str, Any]:
    result: dict[str, Any] = pure(strategic_merge_patch, original, patch, kind)
    return result


def test_smp_merges_containers_by_name_and_env_by_name() -> None:
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.27",
                    "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                }
            ]
        }
    }
    result = smp(a_pod(), patch)
    app, sidecar = result["spec"]["containers"]
    assert app["image"] == "nginx:1.27"
    assert app["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert sidecar == a_pod()["spec"]["containers"][1]


def test_smp_orders_like_kubernetes() -> None:
    """New items come first, then the live ones: what `kubectl patch` shows adding a container."""
    result = smp(a_pod(), {"spec": {"containers": [{"name": "redis", "image": "redis"}]}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["redis", "app", "sidecar"]
    # An item the patch names keeps the patch's order against new items, live-only items follow.
    original = {"spec": {"containers": [{"name": n} for n in "abc"]}}
    result = smp(original, {"spec": {"containers": [{"name": "d"}, {"name": "a", "image": "x"}]}})
    assert result["spec"]["containers"] == [
        {"name": "d"},
        {"name": "a", "image": "x"},
        {"name": "b"},
        {"name": "c"},
    ]
    # Live items keep their place relative to patched ones they preceded.
    result = smp(original, {"spec": {"containers": [{"name": "c", "image": "x"}]}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["a", "b", "c"]


def test_smp_env_merge_keeps_unpatched_variables() -> None:
    result = smp(a_pod(), {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "20"}]}]}})
    assert result["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
    ]


def test_smp_patch_delete_removes_a_container_and_a_port() -> None:
    patch = {
        "spec": {
            "containers": [
                {"name": "sidecar", "$patch": "delete"},
                {"name": "app", "ports": [{"containerPort": 80, "$patch": "delete"}, {"containerPort": 443}]},
            ]
        }
    }
    result = smp(a_pod(), patch)
    assert [c["name"] for c in result["spec"]["containers"]] == ["app"]
    assert result["spec"]["containers"][0]["ports"] == [{"containerPort": 443}]


def test_smp_patch_replace_on_a_list_and_on_a_map() -> None:
    patch = {
        "spec": {
            "containers": [{"$patch": "replace"}, {"name": "only", "image": "x", "stray": None}],
            "nodeSelector": {"$patch": "replace", "zone": "b"},
        }
    }
    result = smp(a_pod(), patch)
    assert result["spec"]["containers"] == [{"name": "only", "image": "x"}]
    assert result["spec"]["nodeSelector"] == {"zone": "b"}


def test_smp_patch_delete_on_a_map_leaves_it_empty() -> None:
    assert smp(a_pod(), {"spec": {"nodeSelector": {"$patch": "delete"}}})["spec"]["nodeSelector"] == {}


def test_smp_patch_merge_is_the_default_made_explicit() -> None:
    patch = {
        "metadata": {"labels": {"$patch": "merge", "new": "1"}},
        "spec": {"containers": [{"name": "app", "$patch": "merge", "image": "y"}]},
    }
    result = smp(a_pod(), patch)
    assert result["metadata"]["labels"] == {"app": "web", "tier": "front", "new": "1"}
    assert result["spec"]["containers"][0]["image"] == "y"
    assert "$patch" not in result["spec"]["containers"][0]


def test_smp_retain_keys_switches_a_volume_source() -> None:
    patch = {
        "spec": {
            "volumes": [{"name": "data", "hostPath": {"path": "/srv"}, "$retainKeys": ["hostPath", "name"]}]
        }
    }
    result = smp(a_pod(), patch)
    assert result["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/srv"}}]


def test_smp_retain_keys_must_list_every_patched_field() -> None:
    patch = {"spec": {"volumes": [{"name": "data", "hostPath": {"path": "/srv"}, "$retainKeys": ["name"]}]}}
    with pytest.raises(StatusError) as excinfo:
        strategic_merge_patch(a_pod(), patch, "Pod")
    status = status_of(excinfo)
    assert status["code"] == 400
    assert "invalid patch format of retainKeys" in status["message"]
    assert '"hostPath"' in status["message"]


def test_smp_set_element_order_orders_the_result() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "app", "image": "nginx:1.27"}],
        }
    }
    result = smp(a_pod(), patch)
    assert [c["name"] for c in result["spec"]["containers"]] == ["sidecar", "app"]
    assert result["spec"]["containers"][1]["image"] == "nginx:1.27"
    assert "$setElementOrder/containers" not in result["spec"]


def test_smp_set_element_order_alone_reorders_primitives() -> None:
    patch = {"metadata": {"$setElementOrder/finalizers": ["example.com/b", "example.com/a"]}}
    assert smp(a_pod(), patch)["metadata"]["finalizers"] == ["example.com/b", "example.com/a"]


def test_smp_set_element_order_must_agree_with_the_patch() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "a"}, {"name": "app", "image": "b"}],
        }
    }
    with pytest.raises(StatusError) as excinfo:
        strategic_merge_patch(a_pod(), patch, "Pod")
    assert status_of(excinfo)["code"] == 400
    assert "$setElementOrder/containers" in status_of(excinfo)["message"]


def test_smp_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    result = smp(a_pod(), {"metadata": {"finalizers": ["example.com/b", "example.com/c"]}})
    assert result["metadata"]["finalizers"] == ["example.com/a", "example.com/b", "example.com/c"]
    result = smp(a_pod(), {"metadata": {"finalizers": ["example.com/c", "example.com/a"]}})
    assert result["metadata"]["finalizers"] == ["example.com/c", "example.com/a", "example.com/b"]
    result = smp(a_pod(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a", "absent"]}})
    assert result["metadata"]["finalizers"] == ["example.com/b"]
    # What kubectl sends to remove one finalizer and add another, order included.
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["example.com/b", "example.com/c"],
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
            "finalizers": ["example.com/c"],
        }
    }
    assert smp(a_pod(), patch)["metadata"]["finalizers"] == ["example.com/b", "example.com/c"]


def test_smp_lists_without_a_strategy_are_replaced() -> None:
    result = smp(a_pod(), {"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}})
    assert result["spec"]["tolerations"] == [{"key": "c", "operator": "Exists"}]
    result = smp(a_pod(), {"spec": {"containers": [{"name": "sidecar", "args": ["sleep", "2d"]}]}})
    assert result["spec"]["containers"][1]["args"] == ["sleep", "2d"]


def test_smp_null_deletes_and_unmatched_nulls_are_dropped() -> None:
    patch = {
        "metadata": {"labels": {"tier": None}},
        "spec": {"nodeSelector": None, "securityContext": {"runAsUser": 1000, "runAsGroup": None}},
    }
    result = smp(a_pod(), patch)
    assert result["metadata"]["labels"] == {"app": "web"}
    assert "nodeSelector" not in result["spec"]
    assert result["spec"]["securityContext"] == {"runAsUser": 1000}


def test_smp_owner_references_by_uid_and_conditions_by_type() -> None:
    patch = {
        "metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    result = smp(a_pod(), patch)
    assert result["metadata"]["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": True}
    ]
    assert result["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]


def test_smp_merge_keys_compare_like_go() -> None:
    """80 and 80.0 are different JSON values for Kubernetes, so they are different ports."""
    result = smp(
        a_pod(), {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "http"}]}]}}
    )
    assert result["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"}
    ]
    result = smp(a_pod(), {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": "80"}]}]}})
    assert len(result["spec"]["containers"][0]["ports"]) == 2


def test_smp_deployment_template() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}]}
                    ]
                },
            },
        },
        "status": {"conditions": [{"type": "Available", "status": "True"}]},
    }
    patch = {
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
                "spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]},
            },
        },
        "status": {"conditions": [{"type": "Progressing", "status": "True"}]},
    }
    result = smp(deployment, patch, "Deployment")
    assert result["spec"]["strategy"] == {"type": "Recreate"}
    template = result["spec"]["template"]
    assert template["metadata"] == {
        "labels": {"app": "web"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": "now"},
    }
    assert template["spec"]["containers"] == [
        {
            "name": "app",
            "image": "nginx:1.25",
            "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
        }
    ]
    assert [c["type"] for c in result["status"]["conditions"]] == ["Progressing", "Available"]
    assert result["spec"]["replicas"] == 2


def test_smp_service_ports_by_port() -> None:
    service = {
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443}],
        },
    }
    patch = {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 8443, "name": "alt"}]}}
    result = smp(service, patch, "Service")
    assert result["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 9090},
        {"port": 8443, "name": "alt"},
        {"name": "https", "port": 443},
    ]


def test_smp_node_addresses_and_pod_cidrs() -> None:
    node = {
        "metadata": {"name": "n1"},
        "spec": {"podCIDRs": ["10.0.0.0/24"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "10.1.0.5"},
                {"type": "Hostname", "address": "n1"},
            ]
        },
    }
    patch = {
        "spec": {"podCIDRs": ["fd00::/64"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.1.0.6"}]},
    }
    result = smp(node, patch, "Node")
    assert result["spec"]["podCIDRs"] == ["fd00::/64", "10.0.0.0/24"]
    assert result["status"]["addresses"] == [
        {"type": "InternalIP", "address": "10.1.0.6"},
        {"type": "Hostname", "address": "n1"},
    ]


def test_smp_new_fields_get_their_directives_resolved() -> None:
    """A patch value with no live counterpart is stored without directives or nulls."""
    pod = {"metadata": {"name": "p"}, "spec": {}}
    patch = {
        "spec": {
            "containers": [
                {"name": "a", "env": [{"name": "X", "value": None}]},
                {"name": "gone", "$patch": "delete"},
            ],
            "affinity": {"nodeAffinity": {"$patch": "replace", "x": 1}},
        }
    }
    result = smp(pod, patch)
    assert result["spec"] == {
        "containers": [{"name": "a", "env": [{"name": "X"}]}],
        "affinity": {"nodeAffinity": {"x": 1}},
    }


@pytest.mark.parametrize(
    ("patch", "code", "reason"),
    [
        ({"spec": {"containers": [{"image": "x"}]}}, 400, "does not contain declared merge key: name"),
        (
            {"spec": {"containers": [{"name": "app", "$patch": "explode"}]}},
            400,
            'unknown patch type: "explode"',
        ),
        ({"spec": {"$patch": "explode"}}, 400, "unknown patch type"),
        ({"spec": {"containers": ["app"]}}, 400, "must be objects"),
        ({"metadata": {"finalizers": [["a"]]}}, 422, "lists of lists are not supported"),
        (
            {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
            400,
            "invalid patch format of primitive list",
        ),
        (
            {"metadata": {"$setElementOrder/finalizers": "a"}},
            400,
            "invalid patch format of setElementOrder list",
        ),
        ({"spec": {"$retainKeys": "a"}}, 400, "invalid patch format of retainKeys"),
        ({"spec": {"$frobnicate": 1}}, 400, 'unknown strategic merge patch directive "$frobnicate"'),
    ],
)
def test_smp_malformed(patch: dict[str, Any], code: int, reason: str) -> None:
    with pytest.raises(StatusError) as excinfo:
        strategic_merge_patch(a_pod(), patch, "Pod")
    status = status_of(excinfo)
    assert status["code"] == code
    text = status["message"] + json.dumps(status.get("details", {}))
    assert reason in text


def test_smp_on_a_custom_resource_is_415() -> None:
    with pytest.raises(StatusError) as excinfo:
        strategic_merge_patch({"spec": {}}, {"spec": {"x": 1}}, "Widget")
    status = status_of(excinfo)
    assert (status["code"], status["reason"]) == (415, "UnsupportedMediaType")
    assert status["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )


def test_smp_kinds_cover_the_served_built_ins() -> None:
    served = {
        "Namespace", "Node", "Pod", "Service", "Endpoints", "ConfigMap", "Secret", "ServiceAccount", "Event",
        "Lease", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Role", "ClusterRole", "RoleBinding",
        "ClusterRoleBinding", "CustomResourceDefinition",
    }  # fmt: skip
    assert served <= STRATEGIC_MERGE_PATCH_KINDS


def test_smp_simple_kinds_merge_metadata_and_replace_lists() -> None:
    role = {
        "metadata": {"name": "r", "finalizers": ["a"]},
        "rules": [{"verbs": ["get"], "resources": ["pods"]}],
    }
    patch = {"metadata": {"finalizers": ["b"]}, "rules": [{"verbs": ["list"], "resources": ["pods"]}]}
    result = smp(role, patch, "Role")
    assert result == {
        "metadata": {"name": "r", "finalizers": ["b", "a"]},
        "rules": [{"verbs": ["list"], "resources": ["pods"]}],
    }


# ---------------------------------------------------------------------------------------------------------------
# apply_patch: content types and body decoding


def test_patch_types_name_the_functions() -> None:
    import anywhere.apiserver.patch as module

    assert set(PATCH_TYPES) == {JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH}
    for name in PATCH_TYPES.values():
        assert callable(getattr(module, name))


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (MERGE_PATCH, b'{"metadata":{"labels":{"tier":null}}}', {"app": "web"}),
        (
            f"{MERGE_PATCH}; charset=utf-8",
            b'{"metadata":{"labels":{"x":"1"}}}',
            {"app": "web", "tier": "front", "x": "1"},
        ),
        (JSON_PATCH, b'[{"op":"remove","path":"/metadata/labels/app"}]', {"tier": "front"}),
        (STRATEGIC_MERGE_PATCH, b'{"metadata":{"labels":{"$patch":"replace","only":"1"}}}', {"only": "1"}),
    ],
)
def test_apply_patch_dispatches_on_content_type(
    content_type: str, body: bytes, expected: dict[str, str]
) -> None:
    original = a_pod()
    result = apply_patch(content_type, original, body, "Pod", True)
    assert result["metadata"]["labels"] == expected
    assert original == a_pod()


def test_apply_patch_merge_patch_replaces_lists_where_strategic_merges() -> None:
    body = b'{"spec":{"containers":[{"name":"app","image":"x"}]}}'
    merged = apply_patch(MERGE_PATCH, a_pod(), body, "Pod", True)
    strategic = apply_patch(STRATEGIC_MERGE_PATCH, a_pod(), body, "Pod", True)
    assert merged["spec"]["containers"] == [{"name": "app", "image": "x"}]
    assert [c["name"] for c in strategic["spec"]["containers"]] == ["app", "sidecar"]


def test_apply_patch_strategic_on_custom_resource_is_415() -> None:
    with pytest.raises(StatusError) as excinfo:
        apply_patch(STRATEGIC_MERGE_PATCH, {"spec": {}}, b"{}", "Pod", False)
    status = status_of(excinfo)
    assert status["code"] == 415
    assert "application/strategic-merge-patch+json" not in status["message"]


def test_apply_patch_unknown_content_type_is_415_listing_the_accepted() -> None:
    with pytest.raises(StatusError) as excinfo:
        apply_patch("application/json", a_pod(), b"{}", "Pod", True)
    status = status_of(excinfo)
    assert (status["code"], status["reason"]) == (415, "UnsupportedMediaType")
    assert status["message"].endswith(", ".join(BUILTIN_PATCH_TYPES))


def test_apply_patch_leaves_server_side_apply_to_its_caller() -> None:
    with pytest.raises(ValueError, match="server-side apply"):
        apply_patch("application/apply-patch+yaml", a_pod(), b"{}", "Pod", True)


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        (MERGE_PATCH, b"{not json", "error decoding patch"),
        (MERGE_PATCH, b"", "error decoding patch"),
        (MERGE_PATCH, b'{"a": NaN}', "NaN is not valid JSON"),
        (MERGE_PATCH, b"\xff\xfe\xfa", "error decoding patch"),
        (MERGE_PATCH, b'["a"]', "a merge patch must be a JSON object, not an array"),
        (STRATEGIC_MERGE_PATCH, b"null", "a strategic merge patch must be a JSON object, not null"),
        (JSON_PATCH, b'{"op":"add"}', "must be a JSON array of operations"),
        (MERGE_PATCH, b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_apply_patch_bad_bodies_are_400(content_type: str, body: bytes, reason: str) -> None:
    with pytest.raises(StatusError) as excinfo:
        apply_patch(content_type, a_pod(), body, "Pod", True)
    status = status_of(excinfo)
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert reason in status["message"]


def test_apply_patch_json_patch_test_failure_is_422() -> None:
    body = b'[{"op":"test","path":"/metadata/resourceVersion","value":"7"}]'
    with pytest.raises(StatusError) as excinfo:
        apply_patch(JSON_PATCH, a_pod(), body, "Pod", True)
    assert status_of(excinfo)["code"] == 422


_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=3)
_keys = st.sampled_from(["a", "b", "c", "metadata", "labels"])
_objects = st.recursive(_scalars, lambda inner: st.dictionaries(_keys, inner, max_size=4), max_leaves=12)


@given(
    original=st.dictionaries(_keys, _objects, max_size=4), patch=st.dictionaries(_keys, _objects, max_size=4)
)
def test_smp_without_lists_or_directives_is_a_merge_patch(
    original: dict[str, Any], patch: dict[str, Any]
) -> None:
    assert strategic_merge_patch(original, patch, "ConfigMap") == merge_patch(original, patch)


def test_apply_patch_deep_nesting_is_applied_or_400_never_a_crash() -> None:
    """Python's recursion limit is near JSON decoders' depth limits; either way the client gets an answer."""
    for depth in (500, 950, 5_000):
        body = ('{"a":' * depth + "1" + "}" * depth).encode()
        for content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            outcome: object
            try:
                outcome = apply_patch(content_type, {}, body, "ConfigMap", True)
            except StatusError as error:
                outcome = error.code
            assert outcome == 400 or isinstance(outcome, dict)
