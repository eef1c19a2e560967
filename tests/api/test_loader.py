"""Strict loading and the dump/load round trip."""

from __future__ import annotations

import pytest

from anywhere.api import LoadError, SpecError, dump_config, load_text
from anywhere.api.errors import FieldError
from anywhere.api.generate import generate_config
from anywhere.api.loader import SourceMap


def test_round_trip_is_exact() -> None:
    config = generate_config("demo", "vsphere")
    text = dump_config(config)
    loaded = load_text(text).config
    assert [o.to_dict() for o in loaded.all_objects()] == [o.to_dict() for o in config.all_objects()]
    assert dump_config(loaded) == text


def test_extra_delimiters_and_foreign_documents_are_tolerated() -> None:
    text = dump_config(generate_config("demo", "sim"))
    noisy = "---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n" + text + "\n---\n...\n"
    assert load_text(noisy).config.cluster.name == "demo"


def test_duplicate_keys_are_errors() -> None:
    text = dump_config(generate_config("demo", "sim")).replace(
        "  kubernetesVersion:", "  kubernetesVersion: '1.32'\n  kubernetesVersion:", 1
    )
    with pytest.raises(LoadError) as failure:
        load_text(text, "dup.yaml")
    assert any("duplicate key" in line and "spec.kubernetesVersion" in line for line in failure.value.lines())


def test_namespaces_must_match() -> None:
    text = dump_config(generate_config("demo", "sim"))
    text = text.replace(
        "kind: SimDatacenterConfig\nmetadata:\n  name: demo\n",
        "kind: SimDatacenterConfig\nmetadata:\n  name: demo\n  namespace: other\n",
    )
    with pytest.raises(LoadError) as failure:
        load_text(text, "ns.yaml")
    assert "namespace 'other' differs from the Cluster's 'default'" in "\n".join(failure.value.lines())


def test_explicit_default_namespace_matches_an_empty_one() -> None:
    text = dump_config(generate_config("demo", "sim"))
    text = text.replace(
        "kind: SimDatacenterConfig\nmetadata:\n",
        "kind: SimDatacenterConfig\nmetadata:\n  namespace: default\n",
    )
    assert load_text(text).config.datacenter is not None


def test_object_defined_twice() -> None:
    text = dump_config(generate_config("demo", "sim"))
    datacenter = text.split("---\n")[1]
    with pytest.raises(SpecError, match="SimDatacenterConfig/demo is defined twice"):
        load_text(text + "---\n" + datacenter)


def test_apiversion_v1_is_read_as_v1alpha1_with_a_warning() -> None:
    text = dump_config(generate_config("demo", "sim")).replace(
        "apiVersion: anywhere.eks.amazonaws.com/v1alpha1\nkind: SimDatacenterConfig",
        "apiVersion: anywhere.eks.amazonaws.com/v1\nkind: SimDatacenterConfig",
    )
    loaded = load_text(text, "v1.yaml")
    assert loaded.config.datacenter is not None
    assert loaded.config.datacenter.api_version == "anywhere.eks.amazonaws.com/v1alpha1"
    assert any("read as anywhere.eks.amazonaws.com/v1alpha1" in w for w in loaded.source_map.warnings)


def test_source_map_falls_back_to_the_nearest_parent() -> None:
    source_map = SourceMap(
        "f.yaml", {"Cluster/x": {"": 1, "spec": 5, "spec.workerNodeGroupConfigurations[0]": 9}}
    )
    error = FieldError("Cluster/x", "spec.workerNodeGroupConfigurations[0].count", "m")
    assert source_map.locate(error) == "f.yaml:9: Cluster/x: spec.workerNodeGroupConfigurations[0].count: m"
    assert source_map.line_of("Cluster/x", "status.conditions") == 1


def test_null_list_item_is_a_type_error() -> None:
    text = dump_config(generate_config("demo", "sim")).replace(
        "  datacenterRef:", "  identityProviderRefs:\n  -\n  datacenterRef:", 1
    )
    with pytest.raises(LoadError) as failure:
        load_text(text)
    assert any("spec.identityProviderRefs[0]: must be a mapping" in line for line in failure.value.lines())
