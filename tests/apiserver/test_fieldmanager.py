"""Server-side apply and managedFields: ownership, conflicts, removal, list semantics, manager names.

Expected field sets, messages and entry shapes are kube-apiserver's (structured-merge-diff and the
apiserver field manager layers), as documented in "Server-Side Apply" and seen on real clusters.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from anywhere.apiserver import fieldmanager as fm
from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.patch import list_strategy

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:01:00Z"
T2 = "2024-05-01T10:02:00Z"
T3 = "2024-05-01T10:03:00Z"

CONFIGMAP = fm.semantics_for("ConfigMap", True, None)
POD = fm.semantics_for("Pod", True, None)
DEPLOYMENT = fm.semantics_for("Deployment", True, None)

WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {
                "size": {"type": "integer"},
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name", "protocol"],
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "protocol": {"type": "string", "default": "TCP"},
                            "port": {"type": "integer"},
                        },
                    },
                },
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "hosts": {"type": "array", "items": {"type": "string"}},
                "selector": {
                    "type": "object",
                    "x-kubernetes-map-type": "atomic",
                    "additionalProperties": {"type": "string"},
                },
                "settings": {"type": "object", "additionalProperties": {"type": "object"}},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}
WIDGET = fm.semantics_for("Widget", False, WIDGET_SCHEMA)


def configmap(data: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", **metadata},
    }
    if data is not None:
        obj["data"] = data
    return obj


def widget(spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": spec,
        **extra,
    }


def apply_cm(
    live: dict[str, Any] | None, applied: dict[str, Any], manager: str, now: str = T1, *, force: bool = False
) -> dict[str, Any]:
    return fm.apply(
        live, applied, manager=manager, force=force, api_version="v1", semantics=CONFIGMAP, now=now
    )


def update_cm(old: dict[str, Any] | None, new: dict[str, Any], manager: str, now: str = T0) -> dict[str, Any]:
    return fm.update(old, new, manager=manager, api_version="v1", semantics=CONFIGMAP, now=now)


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e.get("manager", ""), e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def fields_of(obj: dict[str, Any], manager: str, operation: str = "Apply") -> dict[str, Any]:
    entry = entries(obj)[(manager, operation)]
    fields: dict[str, Any] = entry["fieldsV1"]
    return fields


def conflict(call: Any) -> dict[str, Any]:
    with pytest.raises(StatusError) as caught:
        call()
    status: dict[str, Any] = caught.value.status()
    assert status["code"] == 409, status
    return status


# --------------------------------------------------------------------------------------------------
# Apply: create, re-apply, removal


def test_apply_creates_the_object_and_owns_exactly_the_applied_fields() -> None:
    applied = configmap({"key": "some value"}, labels={"test-label": "test"})
    obj = apply_cm(None, applied, "kubectl")

    assert obj["data"] == {"key": "some value"}
    assert obj["metadata"]["labels"] == {"test-label": "test"}
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            # The documentation's example: identity fields (name, namespace) are not owned.
            "fieldsV1": {"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:test-label": {}}}},
        }
    ]


def test_apply_leaves_its_inputs_untouched() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "one")
    applied = configmap({"a": "1", "b": "2"})
    live_before, applied_before = copy.deepcopy(live), copy.deepcopy(applied)
    result = apply_cm(live, applied, "one", T2)
    assert live == live_before
    assert applied == applied_before
    result["data"]["c"] = "3"
    assert "c" not in live["data"]
    assert "c" not in applied["data"]


def test_reapply_without_a_field_deletes_it() -> None:
    live = apply_cm(None, configmap({"keep": "1", "drop": "2"}, labels={"app": "x"}), "mine")
    result = apply_cm(live, configmap({"keep": "1"}), "mine", T2)
    assert result["data"] == {"keep": "1"}
    # The labels map the applier alone filled goes with its last label, as a dangling item.
    assert "labels" not in result["metadata"]
    assert fields_of(result, "mine") == {"f:data": {"f:keep": {}}}


def test_reapply_without_a_shared_field_keeps_it_for_the_other_owner() -> None:
    live = apply_cm(None, configmap({"shared": "1", "mine": "2"}), "one")
    live = apply_cm(live, configmap({"shared": "1"}), "two", T2)
    assert fields_of(live, "two") == {"f:data": {"f:shared": {}}}

    result = apply_cm(live, configmap({"mine": "2"}), "one", T3)
    assert result["data"] == {"shared": "1", "mine": "2"}
    assert fields_of(result, "one") == {"f:data": {"f:mine": {}}}
    assert fields_of(result, "two") == {"f:data": {"f:shared": {}}}


def test_a_field_set_by_an_update_is_never_removed_by_an_applier_that_did_not_own_it() -> None:
    created = update_cm(None, configmap({"a": "1", "b": "2"}), "creator")
    applied = apply_cm(created, configmap({"a": "1"}), "applier", T2)
    result = apply_cm(applied, configmap({"c": "3"}), "applier", T3)
    # "a" was also the creator's: giving it up leaves it; "b" was never the applier's.
    assert result["data"] == {"a": "1", "b": "2", "c": "3"}


def test_noop_apply_keeps_the_entry_time() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "mine", T1)
    again = apply_cm(live, configmap({"a": "1"}), "mine", T3)
    assert again == live
    assert entries(again)[("mine", "Apply")]["time"] == T1


def test_null_in_the_applied_configuration_removes_the_field_but_owns_it() -> None:
    live = update_cm(None, configmap({"a": "1", "b": "2"}), "creator")
    result = apply_cm(live, configmap({"a": None}), "mine", T2, force=True)
    assert result["data"] == {"b": "2"}
    assert fields_of(result, "mine") == {"f:data": {"f:a": {}}}


# --------------------------------------------------------------------------------------------------
# Conflicts


def test_conflict_with_an_updater_is_409_with_kubernetes_message_and_causes() -> None:
    live = update_cm(None, configmap({"key": "value"}), "kubectl-client-side-apply")
    status = conflict(lambda: apply_cm(live, configmap({"key": "other"}), "my-manager"))
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.key'
    )
    assert status["details"] == {
        "causes": [
            {
                "type": "FieldManagerConflict",
                "message": 'conflict with "kubectl-client-side-apply" using v1',
                "field": ".data.key",
            }
        ]
    }


def test_several_conflicts_are_listed_by_manager() -> None:
    live = update_cm(None, configmap({"a": "1", "b": "2"}), "updater")
    live = apply_cm(live, configmap({"c": "3"}), "applier", T1)
    status = conflict(lambda: apply_cm(live, configmap({"a": "x", "b": "y", "c": "z"}), "third", T2))
    # Managers in the order of their identities, each with its paths.
    assert status["message"] == (
        "Apply failed with 3 conflicts: "
        'conflicts with "applier":\n- .data.c\n'
        'conflicts with "updater" using v1:\n- .data.a\n- .data.b'
    )
    assert [c["field"] for c in status["details"]["causes"]] == [".data.c", ".data.a", ".data.b"]
    assert status["details"]["causes"][0]["message"] == 'conflict with "applier"'


def test_applying_the_same_value_shares_ownership_without_conflict() -> None:
    live = update_cm(None, configmap({"key": "value"}), "updater")
    result = apply_cm(live, configmap({"key": "value"}), "applier", T2)
    assert fields_of(result, "applier") == {"f:data": {"f:key": {}}}
    assert fields_of(result, "updater", "Update") == {"f:data": {".": {}, "f:key": {}}}
    # Now either changing it conflicts with the other.
    status = conflict(lambda: apply_cm(result, configmap({"key": "new"}), "applier", T3))
    assert status["details"]["causes"][0]["message"] == 'conflict with "updater" using v1'


def test_force_takes_the_field_over() -> None:
    live = update_cm(None, configmap({"key": "value", "other": "o"}), "updater")
    result = apply_cm(live, configmap({"key": "forced"}), "applier", T2, force=True)
    assert result["data"] == {"key": "forced", "other": "o"}
    assert fields_of(result, "applier") == {"f:data": {"f:key": {}}}
    assert fields_of(result, "updater", "Update") == {"f:data": {".": {}, "f:other": {}}}


def test_force_drops_an_entry_left_empty() -> None:
    live = apply_cm(None, configmap({"key": "value"}), "first")
    result = apply_cm(live, configmap({"key": "forced"}), "second", T2, force=True)
    assert [e["manager"] for e in result["metadata"]["managedFields"]] == ["second"]


def test_conflict_names_the_subresource() -> None:
    live = fm.update(
        None,
        configmap({"key": "v"}),
        manager="ctl",
        api_version="v1",
        semantics=CONFIGMAP,
        now=T0,
        subresource="status",
    )
    assert entries(live)[("ctl", "Update")]["subresource"] == "status"
    status = conflict(lambda: apply_cm(live, configmap({"key": "x"}), "applier"))
    assert (
        status["details"]["causes"][0]["message"] == 'conflict with "ctl" with subresource "status" using v1'
    )


def test_first_apply_to_an_object_without_managed_fields_conflicts_with_before_first_apply() -> None:
    live = configmap({"key": "value"}, uid="1234")
    status = conflict(lambda: apply_cm(live, configmap({"key": "other"}), "applier"))
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.key'
    )
    result = apply_cm(live, configmap({"key": "value", "new": "n"}), "applier")
    assert fields_of(result, "before-first-apply", "Update") == {"f:data": {".": {}, "f:key": {}}}


# --------------------------------------------------------------------------------------------------
# Update


def test_create_records_every_field_for_the_updater() -> None:
    obj = update_cm(None, configmap({"key": "v"}, labels={"app": "x"}), "kubectl-create")
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            # Maps that appear are owned themselves too ("."); metadata, name and namespace never are.
            "fieldsV1": {
                "f:data": {".": {}, "f:key": {}},
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            },
        }
    ]


def test_update_moves_changed_fields_to_the_updater_and_drops_empty_entries() -> None:
    live = apply_cm(None, configmap({"a": "1", "b": "2"}), "applier", T1)
    changed = copy.deepcopy(live)
    changed["data"]["a"] = "changed"
    result = update_cm(live, changed, "editor", T2)
    assert fields_of(result, "applier") == {"f:data": {"f:b": {}}}
    assert fields_of(result, "editor", "Update") == {"f:data": {"f:a": {}}}
    assert entries(result)[("editor", "Update")]["time"] == T2

    changed = copy.deepcopy(result)
    changed["data"]["b"] = "changed"
    result = update_cm(result, changed, "editor", T3)
    assert ("applier", "Apply") not in entries(result)
    assert fields_of(result, "editor", "Update") == {"f:data": {"f:a": {}, "f:b": {}}}


def test_update_then_apply_transfers_ownership_back() -> None:
    live = apply_cm(None, configmap({"replicas": "3"}), "user", T1)
    scaled = copy.deepcopy(live)
    scaled["data"]["replicas"] = "5"
    live = update_cm(live, scaled, "hpa", T2)
    # The user's stale value now conflicts with the updater...
    status = conflict(lambda: apply_cm(live, configmap({"replicas": "3"}), "user", T3))
    assert status["details"]["causes"][0]["message"] == 'conflict with "hpa" using v1'
    # ...and applying the current value shares it, after which the updater can give it up by update.
    shared = apply_cm(live, configmap({"replicas": "5"}), "user", T3)
    assert fields_of(shared, "user") == {"f:data": {"f:replicas": {}}}
    assert fields_of(shared, "hpa", "Update") == {"f:data": {"f:replicas": {}}}


def test_update_removing_a_field_removes_it_from_every_owner() -> None:
    live = apply_cm(None, configmap({"a": "1", "b": "2"}), "applier")
    removed = copy.deepcopy(live)
    del removed["data"]["a"]
    result = update_cm(live, removed, "editor", T2)
    assert fields_of(result, "applier") == {"f:data": {"f:b": {}}}
    assert ("editor", "Update") not in entries(result)  # removing owns nothing


def test_noop_update_changes_nothing() -> None:
    live = update_cm(None, configmap({"a": "1"}), "creator", T0)
    again = update_cm(live, copy.deepcopy(live), "someone-else", T3)
    assert again["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_updates_are_tracked_per_api_version_and_applies_are_not() -> None:
    live = fm.update(
        None,
        widget({"size": 1}),
        manager="ctl",
        api_version="example.com/v1",
        semantics=WIDGET,
        now=T0,
    )
    newer = copy.deepcopy(live)
    newer["spec"]["size"] = 2
    newer["apiVersion"] = "example.com/v2"
    result = fm.update(live, newer, manager="ctl", api_version="example.com/v2", semantics=WIDGET, now=T1)
    assert [(e["manager"], e["apiVersion"]) for e in result["metadata"]["managedFields"]] == [
        ("ctl", "example.com/v1"),
        ("ctl", "example.com/v2"),
    ]

    applied = fm.apply(
        None,
        widget({"size": 1}),
        manager="app",
        force=False,
        api_version="example.com/v1",
        semantics=WIDGET,
        now=T0,
    )
    config = widget({"size": 3})
    config["apiVersion"] = "example.com/v2"
    applied = fm.apply(
        applied, config, manager="app", force=False, api_version="example.com/v2", semantics=WIDGET, now=T1
    )
    assert [(e["manager"], e["apiVersion"]) for e in applied["metadata"]["managedFields"]] == [
        ("app", "example.com/v2")
    ]


def test_more_than_ten_updaters_fold_the_oldest_into_ancient_changes() -> None:
    live = update_cm(None, configmap({"k0": "v"}), "m00", "2024-05-01T10:00:00Z")
    for n in range(1, 12):
        changed = copy.deepcopy(live)
        changed["data"][f"k{n}"] = "v"
        live = update_cm(live, changed, f"m{n:02d}", f"2024-05-01T10:{n:02d}:00Z")
    managers = [e["manager"] for e in live["metadata"]["managedFields"]]
    assert len(managers) == 10
    assert "ancient-changes" in managers
    ancient = fields_of(live, "ancient-changes", "Update")
    assert set(ancient["f:data"]) >= {"f:k1", "f:k2"}  # the three oldest, merged


# --------------------------------------------------------------------------------------------------
# managedFields sent by clients


def test_managed_fields_sent_in_an_update_replace_the_servers_when_valid() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "applier")
    sent = copy.deepcopy(live)
    sent["metadata"]["managedFields"] = [
        {
            "manager": "someone",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}}},
        }
    ]
    result = update_cm(live, sent, "editor", T2)
    assert [e["manager"] for e in result["metadata"]["managedFields"]] == ["someone"]


@pytest.mark.parametrize(
    "sent",
    [
        [],  # an empty list never resets: clients unaware of the field would strip it
        [{"manager": "x", "operation": "Bogus", "apiVersion": "v1", "fieldsType": "FieldsV1"}],
        [{"manager": "x", "operation": "Update", "apiVersion": "v1"}],  # no fieldsType
        [
            {
                "manager": "x",
                "operation": "Update",
                "apiVersion": "v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"bad": {}},
            }
        ],
        "not a list",
    ],
)
def test_invalid_or_empty_managed_fields_from_a_client_keep_the_servers(sent: Any) -> None:
    live = apply_cm(None, configmap({"a": "1"}), "applier")
    body = copy.deepcopy(live)
    body["metadata"]["managedFields"] = sent
    result = update_cm(live, body, "editor", T2)
    assert result["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_a_single_empty_entry_resets_managed_fields() -> None:
    live = apply_cm(None, configmap({"a": "1"}), "applier")
    body = copy.deepcopy(live)
    body["metadata"]["managedFields"] = [{}]
    body["data"]["a"] = "changed"
    result = update_cm(live, body, "editor", T2)
    # kube-apiserver stops tracking an object whose managed fields are gone until it is applied to.
    assert "managedFields" not in result["metadata"]
    assert result["data"] == {"a": "changed"}
    again = apply_cm(result, configmap({"b": "2"}), "applier", T3)
    assert fields_of(again, "before-first-apply", "Update") == {"f:data": {".": {}, "f:a": {}}}


def test_strip_managed_fields_on_input() -> None:
    obj = configmap({"a": "1"}, managedFields=[{}])
    assert fm.strip_managed_fields_on_input(obj) == []
    assert "managedFields" not in obj["metadata"]
    assert fm.strip_managed_fields_on_input(configmap({}, managedFields=[])) is None
    assert fm.strip_managed_fields_on_input(configmap({})) is None
    valid = {
        "manager": "m",
        "operation": "Apply",
        "apiVersion": "v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {'k:{"name": "x"}': {}}},
    }
    kept = fm.strip_managed_fields_on_input(configmap({}, managedFields=[valid]))
    assert kept is not None
    assert kept[0]["fieldsV1"] == {"f:data": {'k:{"name":"x"}': {}}}  # canonical JSON


def test_managed_fields_in_the_applied_configuration_are_rejected() -> None:
    applied = configmap({"a": "1"}, managedFields=[])
    with pytest.raises(StatusError) as caught:
        apply_cm(None, applied, "mine")
    assert (caught.value.code, caught.value.message) == (400, "metadata.managedFields must be nil")


def test_apply_of_another_kind_or_version_is_rejected() -> None:
    with pytest.raises(StatusError) as caught:
        fm.apply(
            None,
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}},
            manager="m",
            force=False,
            api_version="v1",
            semantics=CONFIGMAP,
            now=T0,
        )
    assert (caught.value.code, caught.value.message) == (400, "invalid object type: /v1, Kind=Secret")
    with pytest.raises(StatusError) as caught:
        fm.apply(
            None,
            {"kind": "Deployment"},
            manager="m",
            force=False,
            api_version="apps/v1",
            semantics=DEPLOYMENT,
            now=T0,
        )
    assert caught.value.message == "invalid object type: /, Kind=Deployment"


# --------------------------------------------------------------------------------------------------
# Associative lists, sets, atomic lists and maps


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": list(containers), **spec},
    }


def apply_pod(
    live: dict[str, Any] | None, applied: dict[str, Any], manager: str, now: str = T1, **kw: Any
) -> dict[str, Any]:
    return fm.apply(
        live, applied, manager=manager, force=kw.get("force", False), api_version="v1", semantics=POD, now=now
    )


def test_pod_containers_are_owned_item_by_item_by_name() -> None:
    live = apply_pod(None, pod({"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}), "one")
    assert fields_of(live, "one") == {
        "f:spec": {
            "f:containers": {
                'k:{"name":"app"}': {
                    ".": {},
                    "f:image": {},
                    "f:name": {},
                    "f:ports": {
                        # ContainerPort is keyed by containerPort and protocol, which defaults to TCP.
                        'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}
                    },
                }
            }
        }
    }
    live = apply_pod(live, pod({"name": "sidecar", "image": "envoy"}), "two", T2)
    assert [c["name"] for c in live["spec"]["containers"]] == ["app", "sidecar"]

    # Changing another's container conflicts on that container's field only.
    status = conflict(lambda: apply_pod(live, pod({"name": "app", "image": "httpd"}), "two", T3))
    assert status["details"]["causes"][0]["field"] == '.spec.containers[name="app"].image'

    # Each applier dropping its own container removes just that one.
    result = apply_pod(
        live, pod({"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}), "one", T3
    )
    assert [c["name"] for c in result["spec"]["containers"]] == ["app", "sidecar"]
    result = apply_pod(live, pod(), "two", T3)
    assert [c["name"] for c in result["spec"]["containers"]] == ["app"]


def test_an_applier_merges_into_a_container_it_shares() -> None:
    live = apply_pod(None, pod({"name": "app", "image": "nginx"}), "one")
    live = apply_pod(live, pod({"name": "app", "env": [{"name": "A", "value": "1"}]}), "two", T2)
    assert live["spec"]["containers"] == [
        {"name": "app", "image": "nginx", "env": [{"name": "A", "value": "1"}]}
    ]
    # "two" leaving the container leaves "one"'s fields and the item ("one" owns it too).
    result = apply_pod(live, pod(), "two", T3)
    assert result["spec"]["containers"] == [{"name": "app", "image": "nginx"}]


def test_merged_list_order_follows_structured_merge_diff() -> None:
    live = fm.update(
        None,
        pod({"name": "a"}, {"name": "b"}, {"name": "c"}),
        manager="creator",
        api_version="v1",
        semantics=POD,
        now=T0,
    )
    result = apply_pod(live, pod({"name": "c"}, {"name": "a"}, {"name": "new"}), "applier")
    # Items only live keep their place; applied ones come in applied order, new ones after their predecessor.
    assert [c["name"] for c in result["spec"]["containers"]] == ["b", "c", "a", "new"]


def test_associative_list_typing_errors_are_kubernetes_500s() -> None:
    with pytest.raises(StatusError) as caught:
        apply_pod(None, pod({"image": "nginx"}), "one")
    assert caught.value.code == 500
    assert caught.value.message == (
        "failed to create typed patch object (default/p; /v1, Kind=Pod): .spec.containers: element 0: "
        'associative list with keys has an element that omits key field "name" (and doesn\'t have default value)'
    )
    with pytest.raises(StatusError) as caught:
        apply_pod(None, pod({"name": "a"}, {"name": "a"}), "one")
    assert caught.value.message.endswith('.spec.containers: duplicate entries for key [name="a"]')
    with pytest.raises(StatusError) as caught:
        apply_pod(None, pod({"name": "a"}, {"name": "a"}, {"image": "x"}), "one")
    assert caught.value.message.startswith(
        "failed to create typed patch object (default/p; /v1, Kind=Pod): errors:\n  "
    )


def test_stored_lists_that_cannot_be_typed_are_tolerated() -> None:
    # Objects stored before validation existed may repeat a key: updates and applies still work, and
    # the extra items pass through unowned.
    stored = pod({"name": "a", "image": "one"}, {"name": "a", "image": "two"})
    created = fm.update(None, stored, manager="creator", api_version="v1", semantics=POD, now=T0)
    assert created["spec"]["containers"] == stored["spec"]["containers"]
    result = apply_pod(created, pod({"name": "b", "image": "three"}), "applier")
    assert [c["image"] for c in result["spec"]["containers"]] == ["one", "two", "three"]


def test_path_strings_format_numbers_as_go_does() -> None:
    assert fm.path_string(("f:a", "v:1.5")) == ".a[=1.5]"
    assert fm.path_string(("f:a", "v:1000000.5")) == ".a[=1.0000005e+06]"
    assert fm.path_string(("f:a", "v:0.00001")) == ".a[=1e-05]"
    assert (
        fm.path_string(
            (
                "f:a",
                "v:true",
            )
        )
        == ".a[=true]"
    )


def test_finalizers_are_a_set_owned_value_by_value() -> None:
    live = apply_cm(None, configmap(finalizers=["example.com/a"]), "one")
    live = apply_cm(live, configmap(finalizers=["example.com/b"]), "two", T2)
    assert live["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]
    assert fields_of(live, "two") == {"f:metadata": {"f:finalizers": {'v:"example.com/b"': {}}}}
    result = apply_cm(live, configmap(), "one", T3)
    assert result["metadata"]["finalizers"] == ["example.com/b"]


def test_an_empty_set_owns_nothing() -> None:
    live = apply_cm(None, configmap(finalizers=["a"]), "one")
    result = apply_cm(live, configmap(finalizers=[]), "two", T2)
    assert result["metadata"]["finalizers"] == ["a"]
    assert ("two", "Apply") not in entries(result)


def test_owner_references_are_keyed_by_uid_and_atomic_each() -> None:
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u-1"}
    obj = apply_cm(None, configmap(ownerReferences=[ref]), "one")
    assert fields_of(obj, "one") == {"f:metadata": {"f:ownerReferences": {'k:{"uid":"u-1"}': {}}}}


def test_labels_are_owned_key_by_key() -> None:
    live = apply_cm(None, configmap(labels={"app": "web"}), "one")
    live = apply_cm(live, configmap(labels={"tier": "front"}), "two", T2)
    assert live["metadata"]["labels"] == {"app": "web", "tier": "front"}
    status = conflict(lambda: apply_cm(live, configmap(labels={"app": "db"}), "two", T3))
    assert status["details"]["causes"][0]["field"] == ".metadata.labels.app"
    result = apply_cm(live, configmap(labels={"app": "web"}), "two", T3)
    assert result["metadata"]["labels"] == {"app": "web"}
    assert fields_of(result, "two") == {"f:metadata": {"f:labels": {"f:app": {}}}}


def test_deployment_selector_is_atomic() -> None:
    applied = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "replicas": 1},
    }
    obj = fm.apply(
        None, applied, manager="one", force=False, api_version="apps/v1", semantics=DEPLOYMENT, now=T0
    )
    assert fields_of(obj, "one") == {"f:spec": {"f:replicas": {}, "f:selector": {}}}
    other = copy.deepcopy(applied)
    other["spec"] = {"selector": {"matchLabels": {"app": "web", "x": "y"}}}
    status = conflict(
        lambda: fm.apply(
            obj, other, manager="two", force=False, api_version="apps/v1", semantics=DEPLOYMENT, now=T1
        )
    )
    assert status["details"]["causes"][0]["field"] == ".spec.selector"


def test_crd_list_map_set_atomic_list_and_atomic_map() -> None:
    def apply_w(
        live: dict[str, Any] | None, spec: dict[str, Any], manager: str, now: str = T1
    ) -> dict[str, Any]:
        return fm.apply(
            live,
            widget(spec),
            manager=manager,
            force=False,
            api_version="example.com/v1",
            semantics=WIDGET,
            now=now,
        )

    live = apply_w(None, {"ports": [{"name": "http", "port": 80}], "tags": ["a"], "hosts": ["h1"]}, "one")
    assert fields_of(live, "one") == {
        "f:spec": {
            # Schema-declared key fields with a default fill the key; declared fields are not map keys.
            "f:hosts": {},
            "f:ports": {'k:{"name":"http","protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}}},
            "f:tags": {'v:"a"': {}},
        }
    }
    live = apply_w(live, {"ports": [{"name": "admin", "port": 9000}], "tags": ["b"]}, "two", T2)
    assert [p["name"] for p in live["spec"]["ports"]] == ["http", "admin"]
    assert live["spec"]["tags"] == ["a", "b"]

    # An unannotated list is atomic: any different value conflicts on the whole list.
    status = conflict(lambda: apply_w(live, {"hosts": ["h1", "h2"]}, "two", T3))
    assert status["details"]["causes"] == [
        {"type": "FieldManagerConflict", "message": 'conflict with "one"', "field": ".spec.hosts"}
    ]

    live = apply_w(live, {"selector": {"a": "1"}}, "three", T3)
    status = conflict(lambda: apply_w(live, {"selector": {"a": "1", "b": "2"}}, "two", T3))
    assert status["details"]["causes"][0]["field"] == ".spec.selector"


def test_crd_additional_properties_keys_are_owned_themselves() -> None:
    obj = fm.apply(
        None,
        widget({"settings": {"x": {"enabled": True}}}),
        manager="one",
        force=False,
        api_version="example.com/v1",
        semantics=WIDGET,
        now=T0,
    )
    assert fields_of(obj, "one") == {"f:spec": {"f:settings": {"f:x": {".": {}, "f:enabled": {}}}}}


def test_status_is_not_owned_through_the_main_resource() -> None:
    ignored = fm.ignored_fields(has_status_subresource=True, subresource=None)
    assert ignored == (("status",),)
    obj = fm.apply(
        None,
        widget({"size": 1}, status={"phase": "Ready"}),
        manager="one",
        force=False,
        api_version="example.com/v1",
        semantics=WIDGET,
        now=T0,
        ignored=ignored,
    )
    assert fields_of(obj, "one") == {"f:spec": {"f:size": {}}}
    assert fm.ignored_fields(has_status_subresource=True, subresource="status") == (("spec",),)
    assert fm.ignored_fields(has_status_subresource=False, subresource=None) == ()


# --------------------------------------------------------------------------------------------------
# kubectl: client-side apply handing over to server-side apply


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def client_side_applied(data: dict[str, str]) -> dict[str, Any]:
    config = configmap(data)
    del config["metadata"]["namespace"]
    annotation = json.dumps(config, sort_keys=True, separators=(",", ":")) + "\n"
    return update_cm(
        None, configmap(data, annotations={LAST_APPLIED: annotation}), "kubectl-client-side-apply"
    )


def test_kubectl_server_side_apply_takes_over_from_client_side_apply_without_conflict() -> None:
    live = client_side_applied({"key": "value"})
    result = apply_cm(live, configmap({"key": "changed"}), "kubectl", T2)
    assert result["data"] == {"key": "changed"}
    assert fields_of(result, "kubectl") == {"f:data": {"f:key": {}}}
    # The annotation follows, so that going back to client-side apply works.
    assert json.loads(result["metadata"]["annotations"][LAST_APPLIED]) == {
        "apiVersion": "v1",
        "data": {"key": "changed"},
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default"},
    }
    # Any other manager name gets the conflict.
    status = conflict(lambda: apply_cm(live, configmap({"key": "changed"}), "other", T2))
    assert status["message"].endswith('conflict with "kubectl-client-side-apply" using v1: .data.key')


def test_kubectl_still_conflicts_on_fields_changed_since_the_client_side_apply() -> None:
    live = client_side_applied({"key": "value"})
    edited = copy.deepcopy(live)
    edited["data"]["key"] = "edited"
    live = update_cm(live, edited, "kubectl-client-side-apply", T1)
    status = conflict(lambda: apply_cm(live, configmap({"key": "changed"}), "kubectl", T2))
    assert status["details"]["causes"][0]["field"] == ".data.key"


# --------------------------------------------------------------------------------------------------
# FieldsV1 and paths


def test_fields_v1_round_trip_and_order() -> None:
    paths = {
        ("f:spec", "f:b"),
        ("f:spec", "f:a"),
        ("f:spec", "f:list", 'v:"z"'),
        ("f:spec", "f:list", "v:2"),
        ("f:spec", "f:list", 'v:"a"'),
        ("f:spec", "f:items", 'k:{"name":"x"}'),
        ("f:spec", "f:items", 'k:{"name":"x"}', "f:v"),
        ("f:metadata", "f:labels"),
        ("f:metadata", "f:labels", "f:app"),
    }
    encoded = fm.encode_fields(paths)
    assert json.dumps(encoded, separators=(",", ":")) == (
        '{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:a":{},"f:b":{},'
        '"f:items":{"k:{\\"name\\":\\"x\\"}":{".":{},"f:v":{}}},"f:list":{"v:2":{},"v:\\"a\\"":{},"v:\\"z\\"":{}}}}'
    )
    assert fm.decode_fields(encoded) == frozenset(paths)
    with pytest.raises(ValueError, match="unknown path element"):
        fm.decode_fields({"x:y": {}})
    with pytest.raises(ValueError, match="not an object"):
        fm.decode_fields({"f:a": []})


def test_path_strings_read_like_kubernetes() -> None:
    assert fm.path_string(("f:spec", "f:containers", 'k:{"name":"app"}', "f:image")) == (
        '.spec.containers[name="app"].image'
    )
    assert fm.path_string(("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}')) == (
        '.spec.ports[port=80,protocol="TCP"]'
    )
    assert fm.path_string(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'


def test_list_strategy_accessor() -> None:
    assert list_strategy("Pod", ("spec", "containers")) == ("merge", "name")
    assert list_strategy("Deployment", ("spec", "template", "spec", "containers", "ports")) == (
        "merge",
        "containerPort",
    )
    assert list_strategy("Pod", ("metadata", "finalizers")) == ("merge", None)
    assert list_strategy("Endpoints", ("subsets",)) == ("replace", None)
    assert list_strategy("Widget", ("spec",)) is None


# --------------------------------------------------------------------------------------------------
# Field manager names


@pytest.mark.parametrize(
    ("field_manager", "user_agent", "expected"),
    [
        (
            "kubectl-client-side-apply",
            "kubectl/v1.32.0 (linux/amd64) kubernetes/abc1234",
            "kubectl-client-side-apply",
        ),
        (None, "kubectl/v1.32.0 (linux/amd64) kubernetes/abc1234", "kubectl"),
        ("", "OpenAPI-Generator/31.0.0/python", "OpenAPI-Generator"),
        (None, "kopf/1.37.2", "kopf"),
        (None, "Python/3.12 aiohttp/3.9.5", "Python"),
        (None, "", ""),
        (None, None, ""),
        (None, "bad\x00agent/1", "badagent"),
        (None, "x" * 200, "x" * 128),
        (None, "é" * 100, "é" * 64),  # 128 bytes of UTF-8, never a split character
    ],
)
def test_manager_name_defaults_to_the_user_agent_prefix(
    field_manager: str | None, user_agent: str | None, expected: str
) -> None:
    assert fm.manager_name(field_manager, user_agent) == expected


def test_apply_requires_a_field_manager() -> None:
    with pytest.raises(StatusError) as caught:
        fm.manager_name(None, "kubectl/v1.32.0", verb="apply")
    error = caught.value
    assert error.code == 422
    assert error.message == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    assert error.details["causes"] == [
        {
            "type": "FieldValueRequired",
            "message": "Required value: is required for apply patch",
            "field": "fieldManager",
        }
    ]
    assert fm.manager_name("my-controller", "anything", verb="apply") == "my-controller"


def test_field_manager_must_be_short_and_printable() -> None:
    with pytest.raises(StatusError) as caught:
        fm.manager_name("m" * 129, "ua", verb="create")
    assert caught.value.code == 422
    assert caught.value.message == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes'
    )
    with pytest.raises(StatusError) as caught:
        fm.manager_name("é\tx", "ua", verb="update")
    assert caught.value.message == (
        'UpdateOptions.meta.k8s.io "" is invalid: fieldManager: '
        'Invalid value: "é\\tx": invalid character U+0009 (at position 2)'
    )
    assert fm.manager_name("m" * 128, "ua", verb="patch") == "m" * 128
