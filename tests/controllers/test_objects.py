"""The small object helpers every controller shares."""

from __future__ import annotations

from anywhere.api.capi import PAUSED_ANNOTATION
from anywhere.controllers.objects import cluster_paused, flag_is_true, referenced_infrastructure


def test_a_cluster_pauses_by_annotation_or_by_spec() -> None:
    assert not cluster_paused(None)
    assert not cluster_paused({"metadata": {"name": "c"}, "spec": {}})
    assert cluster_paused({"metadata": {"annotations": {PAUSED_ANNOTATION: ""}}})
    assert cluster_paused({"metadata": {}, "spec": {"paused": True}})
    assert not cluster_paused(
        {"metadata": {"annotations": {PAUSED_ANNOTATION: "false"}}, "spec": {"paused": False}}
    )


def test_flags_are_true_only_when_they_say_so() -> None:
    assert flag_is_true("true")
    assert flag_is_true(" True ")
    assert not flag_is_true(None)
    assert not flag_is_true("")
    assert not flag_is_true("yes")


def test_a_machine_names_its_infrastructure_of_one_kind() -> None:
    machine = {
        "metadata": {"name": "m", "namespace": "eksa-system"},
        "spec": {"infrastructureRef": {"kind": "NetnsMachine", "name": "m-infra"}},
    }
    assert referenced_infrastructure(machine, "NetnsMachine") == ["eksa-system/m-infra"]
    assert referenced_infrastructure(machine, "SimMachine") == []
    elsewhere = {
        **machine,
        "spec": {"infrastructureRef": {"kind": "NetnsMachine", "name": "x", "namespace": "o"}},
    }
    assert referenced_infrastructure(elsewhere, "NetnsMachine") == ["o/x"]
    assert referenced_infrastructure({"metadata": {"name": "m"}, "spec": {}}, "NetnsMachine") == []
