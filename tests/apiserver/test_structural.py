"""Structural schemas: CRD acceptance, pruning, defaulting and validation of custom resources."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from anywhere.api.crds import all_crds
from anywhere.api.generate import generate_config
from anywhere.apiserver._gofmt import go_float
from anywhere.apiserver.structural import (
    admit,
    apply_defaults,
    check_structural,
    prune,
    prune_with_paths,
    structural_causes,
    unknown_fields,
    validate,
)


def resource(spec: dict[str, Any], **root: Any) -> dict[str, Any]:
    """A root schema with the usual TypeMeta/ObjectMeta and the given spec properties."""
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": spec},
            **root,
        },
    }


def obj(spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def messages(causes: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["field"], c["message"]) for c in causes]


def one(schema: dict[str, Any], value: Any) -> tuple[str, str, str]:
    """The single cause ``spec.x = value`` gets under ``schema``."""
    causes = validate(obj({"x": value}), resource({"x": schema}))
    assert len(causes) == 1, causes
    return messages(causes)[0]


# ---------------------------------------------------------------------------------------------
# check_structural


def test_all_our_crds_are_structural() -> None:
    crds = all_crds()
    assert crds
    for crd in crds:
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            assert check_structural(schema) == [], crd["metadata"]["name"]


def test_every_specified_node_needs_a_type() -> None:
    schema = {
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"count": {"description": "no type"}, "list": {"type": "array", "items": {}}},
            },
        },
    }
    assert check_structural(schema) == [
        "type: Required value: must not be empty at the root",
        "properties[spec].properties[count].type: Required value: must not be empty for specified object fields",
        "properties[spec].properties[list].items.type: Required value: must not be empty for specified array items",
    ]


def test_int_or_string_and_preserve_unknown_fields_need_no_type() -> None:
    schema = resource(
        {
            "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "size": {"x-kubernetes-int-or-string": True},
            "free": {"x-kubernetes-preserve-unknown-fields": True},
        }
    )
    assert check_structural(schema) == []


def test_types_inside_logical_junctors_are_not_structural() -> None:
    schema = resource(
        {"x": {"type": "string", "anyOf": [{"type": "string", "description": "d"}, {"nullable": True}]}}
    )
    assert check_structural(schema) == [
        "properties[spec].properties[x].anyOf[0].type: Forbidden: must be empty to be structural",
        "properties[spec].properties[x].anyOf[0].description: Forbidden: must be empty to be structural",
        "properties[spec].properties[x].anyOf[1].nullable: Forbidden: must be false to be structural",
    ]


def test_junctors_only_speak_of_specified_fields() -> None:
    schema = resource(
        {
            "x": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "oneOf": [{"required": ["a"]}, {"properties": {"b": {"minLength": 1}}}],
            }
        }
    )
    assert check_structural(schema) == [
        "properties[spec].properties[x].properties[b]: Required value: because it is defined in "
        "properties[spec].properties[x].oneOf[1].properties[b]"
    ]


def test_metadata_may_only_restrict_name_and_generate_name() -> None:
    ok = resource({})
    ok["properties"]["metadata"] = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "generateName": {"type": "string"}},
    }
    assert check_structural(ok) == []
    bad = resource({})
    bad["properties"]["metadata"] = {"type": "object", "properties": {"labels": {"type": "object"}}}
    assert check_structural(bad) == [
        "properties[metadata]: Forbidden: must not specify anything other than name and generateName, "
        "but metadata is implicitly specified"
    ]
    defaulted = resource({})
    defaulted["properties"]["metadata"] = {"type": "object", "default": {"name": "x"}}
    assert check_structural(defaulted) == [
        "properties[metadata].default: Forbidden: must not be set in top-level metadata"
    ]


def test_ref_and_other_unsupported_keywords() -> None:
    schema = resource({"x": {"type": "object", "$ref": "#/definitions/x"}, "y": {"type": "Any"}})
    assert check_structural(schema) == [
        "properties[spec].properties[x].$ref: Forbidden: $ref is not supported",
        'properties[spec].properties[y].type: Unsupported value: "Any": supported values: '
        '"array", "boolean", "integer", "number", "object", "string"',
    ]


def test_additional_properties_rules() -> None:
    both = resource(
        {
            "x": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            }
        }
    )
    assert check_structural(both) == [
        "properties[spec].properties[x].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
    ]
    root = {"type": "object", "additionalProperties": {"type": "string"}}
    assert check_structural(root) == ["additionalProperties: Forbidden: must not be used at the root"]


def test_arrays_need_items_and_unique_items_is_forbidden() -> None:
    schema = resource(
        {"a": {"type": "array"}, "b": {"type": "array", "uniqueItems": True, "items": {"type": "string"}}}
    )
    assert check_structural(schema) == [
        "properties[spec].properties[a].items: Required value: must be specified",
        "properties[spec].properties[b].uniqueItems: Forbidden: uniqueItems cannot be set to true since the "
        "runtime complexity becomes quadratic",
    ]


def test_root_must_be_an_object_and_extensions_must_agree() -> None:
    assert check_structural({"type": "string"}) == [
        'type: Invalid value: "string": must be object at the root'
    ]
    schema = resource(
        {
            "a": {"x-kubernetes-int-or-string": True, "x-kubernetes-preserve-unknown-fields": True},
            "b": {"type": "string", "x-kubernetes-embedded-resource": True},
            "c": {"type": "object", "x-kubernetes-embedded-resource": True},
            "d": {"type": "object", "x-kubernetes-preserve-unknown-fields": False},
        }
    )
    assert check_structural(schema) == [
        "properties[spec].properties[a].x-kubernetes-preserve-unknown-fields: Invalid value: true: "
        "must be false if x-kubernetes-int-or-string is true",
        'properties[spec].properties[b].type: Invalid value: "string": must be object if x-kubernetes-embedded-resource is true',
        "properties[spec].properties[b].properties: Required value: must not be empty if x-kubernetes-embedded-resource "
        "is true without x-kubernetes-preserve-unknown-fields",
        "properties[spec].properties[c].properties: Required value: must not be empty if x-kubernetes-embedded-resource "
        "is true without x-kubernetes-preserve-unknown-fields",
        "properties[spec].properties[d].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined",
    ]


def test_list_map_keys_must_be_required_scalar_properties() -> None:
    schema = resource(
        {
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "missing"],
                "items": {"type": "object", "properties": {"port": {"type": "integer"}}},
            },
            "tags": {"type": "string", "x-kubernetes-list-type": "set"},
        }
    )
    assert check_structural(schema) == [
        "properties[spec].properties[ports].items.properties[port].default: Required value: this property is in "
        "x-kubernetes-list-map-keys, so it must have a default or be a required property",
        'properties[spec].properties[ports].x-kubernetes-list-map-keys: Invalid value: []interface {}{"port", "missing"}: '
        "entries must all be names of item properties",
        'properties[spec].properties[tags].type: Invalid value: "string": must be array if x-kubernetes-list-type is specified',
    ]


def test_defaults_must_validate_and_be_pruned() -> None:
    schema = resource(
        {
            "count": {"type": "integer", "default": "three"},
            "opts": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "default": {"a": "x", "b": 1},
            },
            "good": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x"}},
        }
    )
    assert check_structural(schema) == [
        'properties[spec].properties[count].default: Invalid value: "string":  in body must be of type integer: "string"',
        'properties[spec].properties[opts].default: Invalid value: map[string]interface {}{"a":"x", "b":1}: '
        "must not have unknown fields",
    ]


def test_invalid_pattern_and_path_prefix() -> None:
    schema = resource({"x": {"type": "string", "pattern": "(["}})
    (cause,) = structural_causes(schema, "spec.versions[0].schema.openAPIV3Schema")
    assert cause["type"] == "FieldValueInvalid"
    assert cause["field"] == "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].pattern"
    assert cause["message"].startswith(
        'Invalid value: "([": must be a valid regular expression, but isn\'t: '
    )


def test_not_a_mapping_at_all() -> None:
    assert check_structural(["nope"]) == ["openAPIV3Schema: Required value: must be an object"]


# ---------------------------------------------------------------------------------------------
# pruning


def test_prune_drops_unknown_fields_and_reports_them() -> None:
    schema = resource(
        {
            "count": {"type": "integer"},
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}},
            },
        }
    )
    original = obj(
        {
            "count": 1,
            "bogus": True,
            "items": [{"name": "a", "extra": 1}, {"name": "b"}],
            "labels": {"k": {"v": "x", "w": "y"}},
        }
    )
    original["status"] = {"phase": "x"}
    snapshot = copy.deepcopy(original)
    pruned, paths = prune_with_paths(original, schema)
    assert original == snapshot  # the input is left alone
    assert pruned == obj({"count": 1, "items": [{"name": "a"}, {"name": "b"}], "labels": {"k": {"v": "x"}}})
    assert paths == ["spec.bogus", "spec.items[0].extra", "spec.labels.k.w", "status"]
    assert unknown_fields(original, schema) == paths
    assert prune(original, schema) == pruned


def test_prune_never_touches_the_roots_type_and_object_meta() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object"}}}
    value = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}, "unknownMeta": 1},
        "spec": {"x": 1},
    }
    pruned, paths = prune_with_paths(value, schema)
    assert pruned == {**value, "spec": {}}
    assert paths == ["spec.x"]


def test_prune_keeps_unknown_fields_under_preserve_unknown_fields() -> None:
    schema = resource(
        {
            "free": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}},
            },
            "list": {
                "type": "array",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    )
    value = obj({"free": {"anything": {"deep": [1, 2]}, "known": {"a": "x", "b": "y"}}, "list": [{"z": 1}]})
    pruned, paths = prune_with_paths(value, schema)
    assert pruned["spec"] == {"free": {"anything": {"deep": [1, 2]}, "known": {"a": "x"}}, "list": [{"z": 1}]}
    assert paths == ["spec.free.known.b"]


def test_prune_recurses_into_embedded_resources() -> None:
    schema = resource(
        {
            "template": {
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}},
            }
        }
    )
    value = obj(
        {
            "template": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d", "labels": {"a": "b"}, "bogus": 1},
                "spec": {"replicas": 2, "paused": True},
                "status": {},
            }
        }
    )
    pruned, paths = prune_with_paths(value, schema)
    assert pruned["spec"]["template"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"a": "b"}},
        "spec": {"replicas": 2},
    }
    assert paths == ["spec.template.metadata.bogus", "spec.template.spec.paused", "spec.template.status"]


def test_prune_with_additional_properties_true_keeps_keys_but_not_nested_fields() -> None:
    # additionalProperties: true specifies the values, not their fields: objects lose their content.
    schema = resource({"m": {"type": "object", "additionalProperties": True}})
    assert prune(obj({"m": {"a": 1, "b": {"c": 2}}}), schema)["spec"] == {"m": {"a": 1, "b": {}}}


def test_prune_drops_nulls_unless_nullable_or_defaulted() -> None:
    schema = resource(
        {
            "plain": {"type": "string"},
            "nullable": {"type": "string", "nullable": True},
            "defaulted": {"type": "string", "default": "d"},
            "list": {"type": "array", "items": {"type": "string"}},
        }
    )
    pruned, paths = prune_with_paths(
        obj({"plain": None, "nullable": None, "defaulted": None, "list": ["a", None]}), schema
    )
    assert pruned["spec"] == {"nullable": None, "defaulted": None, "list": ["a", None]}
    assert paths == []  # dropped nulls are not unknown fields


# ---------------------------------------------------------------------------------------------
# defaulting


def test_defaults_fill_absent_fields_recursively() -> None:
    schema = resource(
        {
            "replicas": {"type": "integer", "default": 1},
            "strategy": {
                "type": "object",
                "default": {},
                "properties": {"type": {"type": "string", "default": "RollingUpdate"}},
            },
            "ports": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "port": {"type": "integer"},
                        "protocol": {"type": "string", "default": "TCP"},
                    },
                },
            },
            "limits": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"unit": {"type": "string", "default": "Mi"}},
                },
            },
            "optional": {
                "type": "object",
                "properties": {"inner": {"type": "string", "default": "only-if-parent"}},
            },
        }
    )
    value = obj({"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}], "limits": {"mem": {}}})
    defaulted = apply_defaults(value, schema)
    assert defaulted["spec"] == {
        "replicas": 1,
        "strategy": {"type": "RollingUpdate"},
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
        "limits": {"mem": {"unit": "Mi"}},
    }
    assert "replicas" not in value["spec"]  # the input is left alone


def test_defaults_replace_non_nullable_nulls_and_are_not_shared() -> None:
    default = {"a": ["x"]}
    schema = resource(
        {
            "o": {
                "type": "object",
                "properties": {"a": {"type": "array", "items": {"type": "string"}}},
                "default": default,
            },
            "n": {"type": "string", "nullable": True, "default": "n"},
            "items": {"type": "array", "items": {"type": "string", "default": "item"}},
        }
    )
    first = apply_defaults(obj({"o": None, "n": None, "items": ["a", None]}), schema)
    assert first["spec"] == {"o": {"a": ["x"]}, "n": None, "items": ["a", "item"]}
    first["spec"]["o"]["a"].append("mutated")
    assert default == {"a": ["x"]}


# ---------------------------------------------------------------------------------------------
# validation: each rule with the server's message


def test_type() -> None:
    assert one({"type": "integer"}, "string") == (
        "FieldValueTypeInvalid",
        "spec.x",
        'Invalid value: "string": spec.x in body must be of type integer: "string"',
    )
    assert (
        one({"type": "integer"}, True)[2]
        == 'Invalid value: "boolean": spec.x in body must be of type integer: "boolean"'
    )
    assert (
        one({"type": "object"}, [1])[2]
        == 'Invalid value: "array": spec.x in body must be of type object: "array"'
    )
    assert (
        one({"type": "integer"}, 1.5)[2]
        == 'Invalid value: "number": spec.x in body must be of type integer: "number"'
    )


def test_integral_floats_are_integers_and_integers_are_numbers() -> None:
    schema = resource({"i": {"type": "integer"}, "n": {"type": "number"}})
    assert validate(obj({"i": 3.0, "n": 3}), schema) == []


def test_required() -> None:
    schema = resource({"a": {"type": "string"}})
    schema["properties"]["spec"]["required"] = ["a"]
    schema["required"] = ["spec"]
    assert messages(validate(obj({}), schema)) == [("FieldValueRequired", "spec.a", "Required value")]
    assert messages(validate({"apiVersion": "v1", "kind": "K", "metadata": {}}, schema)) == [
        ("FieldValueRequired", "spec", "Required value")
    ]


def test_enum() -> None:
    assert one({"type": "string", "enum": ["a", "b"]}, "c") == (
        "FieldValueNotSupported",
        "spec.x",
        'Unsupported value: "c": supported values: "a", "b"',
    )
    assert (
        one({"type": "integer", "enum": [1, 2]}, 3)[2] == 'Unsupported value: 3: supported values: "1", "2"'
    )
    assert validate(obj({"x": 2.0}), resource({"x": {"type": "number", "enum": [1, 2]}})) == []


def test_minimum_maximum_and_exclusive_bounds() -> None:
    assert one({"type": "integer", "minimum": 1}, 0) == (
        "FieldValueInvalid",
        "spec.x",
        "Invalid value: 0: spec.x in body should be greater than or equal to 1",
    )
    assert (
        one({"type": "integer", "maximum": 10}, 11)[2]
        == "Invalid value: 11: spec.x in body should be less than or equal to 10"
    )
    assert one({"type": "integer", "minimum": 1, "exclusiveMinimum": True}, 1)[2] == (
        "Invalid value: 1: spec.x in body should be greater than 1"
    )
    assert one({"type": "number", "maximum": 2.5, "exclusiveMaximum": True}, 2.5)[2] == (
        "Invalid value: 2.5: spec.x in body should be less than 2.5"
    )
    assert one({"type": "number", "minimum": 1000000}, 0.5)[2] == (
        "Invalid value: 0.5: spec.x in body should be greater than or equal to 1e+06"
    )


def test_multiple_of() -> None:
    assert (
        one({"type": "integer", "multipleOf": 5}, 7)[2]
        == "Invalid value: 7: spec.x in body should be a multiple of 5"
    )
    assert validate(obj({"x": 0.75}), resource({"x": {"type": "number", "multipleOf": 0.25}})) == []


def test_string_length_and_pattern() -> None:
    assert one({"type": "string", "maxLength": 3}, "abcd") == (
        "FieldValueTooLong",
        "spec.x",
        "Too long: may not be longer than 3",
    )
    assert one({"type": "string", "minLength": 3}, "ab") == (
        "FieldValueInvalid",
        "spec.x",
        'Invalid value: "ab": spec.x in body should be at least 3 chars long',
    )
    assert one({"type": "string", "pattern": "^[a-z]+$"}, "A1") == (
        "FieldValueInvalid",
        "spec.x",
        "Invalid value: \"A1\": spec.x in body should match '^[a-z]+$'",
    )
    # the length counts characters, not bytes
    assert validate(obj({"x": "äöü"}), resource({"x": {"type": "string", "maxLength": 3}})) == []


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date-time", "2024-05-01T10:00:00Z", "yesterday"),
        ("date-time", "2024-05-01T10:00:00.123+02:00", "2024-05-01 10:00:00"),
        ("date", "2024-02-29", "2023-02-29"),
        ("duration", "1h30m", "soon"),
        ("duration", "3 days", "1 fortnight"),
        ("ipv4", "10.0.0.1", "10.0.0.256"),
        ("ipv6", "fd00::1", "10.0.0.1"),
        ("cidr", "10.0.0.0/8", "10.0.0.0"),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123"),
        ("hostname", "my-host.example.com", "-bad-.example"),
        ("email", "a@example.com", "not-an-email"),
        ("mac", "00:1a:2b:3c:4d:5e", "00:1a:2b"),
        ("byte", "aGVsbG8=", "not base64!"),
        ("uri", "https://example.com/x", "example"),
        ("quantity", "10Gi", "ten"),
    ],
)
def test_formats(fmt: str, good: str, bad: str) -> None:
    schema = resource({"x": {"type": "string", "format": fmt}})
    assert validate(obj({"x": good}), schema) == []
    assert messages(validate(obj({"x": bad}), schema)) == [
        (
            "FieldValueTypeInvalid",
            "spec.x",
            f'Invalid value: "{bad}": spec.x in body must be of type {fmt}: "{bad}"',
        )
    ]


def test_unknown_and_numeric_formats_do_not_reject() -> None:
    schema = resource(
        {"a": {"type": "string", "format": "my-format"}, "b": {"type": "integer", "format": "int32"}}
    )
    # int32 is not range-checked by the real server either
    assert validate(obj({"a": "anything", "b": 2**40}), schema) == []


def test_items_counts_and_uniqueness() -> None:
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3}
    assert one(schema, ["a"]) == (
        "FieldValueInvalid",
        "spec.x",
        "Invalid value: 1: spec.x in body should have at least 2 items",
    )
    assert one(schema, ["a", "b", "c", "d"]) == (
        "FieldValueTooMany",
        "spec.x",
        "Too many: 4: must have at most 3 items",
    )
    assert one({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, [1, 2, 1]) == (
        "FieldValueInvalid",
        "spec.x",
        'Invalid value: "": spec.x in body shouldn\'t contain duplicates',
    )
    assert one({"type": "array", "items": {"type": "integer"}}, [1, "two"]) == (
        "FieldValueTypeInvalid",
        "spec.x[1]",
        'Invalid value: "string": spec.x[1] in body must be of type integer: "string"',
    )


def test_property_counts() -> None:
    schema = {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "minProperties": 1,
        "maxProperties": 2,
    }
    assert one(schema, {}) == (
        "FieldValueInvalid",
        "spec.x",
        "Invalid value: 0: spec.x in body should have at least 1 properties",
    )
    assert one(schema, {"a": "1", "b": "2", "c": "3"}) == (
        "FieldValueTooMany",
        "spec.x",
        "Too many: 3: must have at most 2 items",
    )


def test_additional_properties_values_are_validated() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "string"}}
    assert one(schema, {"app.kubernetes.io/name": 5}) == (
        "FieldValueTypeInvalid",
        "spec.x.app.kubernetes.io/name",
        'Invalid value: "integer": spec.x.app.kubernetes.io/name in body must be of type string: "integer"',
    )


def test_nullable() -> None:
    assert one({"type": "string"}, None) == (
        "FieldValueTypeInvalid",
        "spec.x",
        'Invalid value: "null": spec.x in body must be of type string: "null"',
    )
    assert validate(obj({"x": None}), resource({"x": {"type": "string", "nullable": True}})) == []


def test_int_or_string() -> None:
    schema = resource(
        {"x": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}}
    )
    assert validate(obj({"x": 3}), schema) == []
    assert validate(obj({"x": "30%"}), schema) == []
    # The server's three causes for a fraction: the combined type, the anyOf, and the closest branch.
    assert messages(validate(obj({"x": 0.5}), schema)) == [
        (
            "FieldValueTypeInvalid",
            "spec.x",
            'Invalid value: "number": spec.x in body must be of type integer,string: "number"',
        ),
        ("FieldValueInvalid", "", 'Invalid value: "": "spec.x" must validate at least one schema (anyOf)'),
        (
            "FieldValueTypeInvalid",
            "spec.x",
            'Invalid value: "number": spec.x in body must be of type integer: "number"',
        ),
    ]
    plain = resource({"x": {"x-kubernetes-int-or-string": True}})
    assert messages(validate(obj({"x": True}), plain)) == [
        (
            "FieldValueTypeInvalid",
            "spec.x",
            'Invalid value: "boolean": spec.x in body must be of type integer,string: "boolean"',
        )
    ]


def test_one_of_all_of_not() -> None:
    one_of = {"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "b$"}]}
    assert validate(obj({"x": "ax"}), resource({"x": one_of})) == []
    assert messages(validate(obj({"x": "ab"}), resource({"x": one_of}))) == [
        (
            "FieldValueInvalid",
            "",
            'Invalid value: "": "spec.x" must validate one and only one schema (oneOf). Found 2 valid alternatives',
        )
    ]
    assert messages(validate(obj({"x": "zz"}), resource({"x": one_of})))[0] == (
        "FieldValueInvalid",
        "",
        'Invalid value: "": "spec.x" must validate one and only one schema (oneOf). Found none valid',
    )
    all_of = {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]}
    assert messages(validate(obj({"x": 9}), resource({"x": all_of}))) == [
        ("FieldValueInvalid", "spec.x", "Invalid value: 9: spec.x in body should be less than or equal to 5"),
        ("FieldValueInvalid", "", 'Invalid value: "": "spec.x" must validate all the schemas (allOf)'),
    ]
    negated = {"type": "string", "not": {"enum": ["forbidden"]}}
    assert messages(validate(obj({"x": "forbidden"}), resource({"x": negated}))) == [
        ("FieldValueInvalid", "", 'Invalid value: "": "spec.x" must not validate the schema (not)')
    ]


def test_additional_properties_false_forbids_keys() -> None:
    assert one({"type": "object", "additionalProperties": False}, {"k": 1}) == (
        "FieldValueInvalid",
        "spec.x",
        'Invalid value: "k": spec.x.k in body is a forbidden property',
    )


def test_list_type_set_and_map_uniqueness() -> None:
    schema = resource(
        {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port"],
                "items": {
                    "type": "object",
                    "properties": {"port": {"type": "integer"}},
                    "required": ["port"],
                },
            },
            "pairs": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["a", "b"],
                "items": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
            },
        }
    )
    causes = validate(
        obj(
            {
                "tags": ["a", "b", "a", "a"],
                "ports": [{"port": 80}, {"port": 443}, {"port": 80}],
                "pairs": [{"a": "x", "b": "y"}, {"a": "x", "b": "y"}],
            }
        ),
        schema,
    )
    assert messages(causes) == [
        ("FieldValueDuplicate", "spec.tags[2]", 'Duplicate value: "a"'),
        ("FieldValueDuplicate", "spec.ports[2]", 'Duplicate value: map[string]interface {}{"port":80}'),
        (
            "FieldValueDuplicate",
            "spec.pairs[1]",
            'Duplicate value: map[string]interface {}{"a":"x", "b":"y"}',
        ),
    ]
    # 1 and 1.0 and true are different set members, as in the server's decoded JSON
    numbers = resource(
        {
            "s": {
                "type": "array",
                "x-kubernetes-list-type": "set",
                "items": {"x-kubernetes-int-or-string": True},
            }
        }
    )
    assert validate(obj({"s": [1, "1"]}), numbers) == []


def test_embedded_resources_need_api_version_and_kind() -> None:
    schema = resource(
        {
            "template": {
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "x-kubernetes-preserve-unknown-fields": True,
            }
        }
    )
    assert messages(validate(obj({"template": {"metadata": {}}}), schema)) == [
        ("FieldValueRequired", "spec.template.apiVersion", "Required value"),
        ("FieldValueRequired", "spec.template.kind", "Required value"),
    ]
    bad = validate(obj({"template": {"apiVersion": "a/b/c", "kind": "Not_A_Kind"}}), schema)
    assert [c["field"] for c in bad] == ["spec.template.apiVersion", "spec.template.kind"]
    assert bad[0]["message"] == 'Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c'
    assert bad[1]["message"].startswith(
        'Invalid value: "Not_A_Kind": may have mixed case, but should otherwise match: '
    )
    assert validate(obj({"template": {"apiVersion": "apps/v1", "kind": "Deployment"}}), schema) == []


def test_root_path_prefixes_fields() -> None:
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    assert messages(validate({"count": "x"}, schema, root_path="spec.template")) == [
        (
            "FieldValueTypeInvalid",
            "spec.template.count",
            'Invalid value: "string": count in body must be of type integer: "string"',
        )
    ]


def test_cel_rules_are_ignored() -> None:
    schema = resource({"x": {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 100"}]}})
    assert validate(obj({"x": 1}), schema) == []


# ---------------------------------------------------------------------------------------------
# admit: prune, default, validate


def cluster_schema() -> dict[str, Any]:
    (crd,) = [c for c in all_crds() if c["spec"]["names"]["kind"] == "Cluster"]
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_a_generated_cluster_is_admitted_unchanged() -> None:
    cluster = generate_config("demo", "sim").cluster.to_dict()
    stored, causes = admit(cluster, cluster_schema())
    assert causes == []
    assert stored == cluster


def test_admit_on_a_real_schema_prunes_and_reports() -> None:
    cluster = generate_config("demo", "sim").cluster.to_dict()
    cluster["spec"]["controlPlaneConfiguration"]["count"] = "three"
    cluster["spec"]["notAField"] = True
    cluster["spec"]["controlPlaneConfiguration"]["kubeletConfiguration"] = {
        "maxPods": 110,
        "anything": {"goes": 1},
    }
    stored, causes = admit(cluster, cluster_schema())
    assert "notAField" not in stored["spec"]
    assert stored["spec"]["controlPlaneConfiguration"]["kubeletConfiguration"] == {
        "maxPods": 110,
        "anything": {"goes": 1},
    }
    assert messages(causes) == [
        (
            "FieldValueTypeInvalid",
            "spec.controlPlaneConfiguration.count",
            'Invalid value: "string": spec.controlPlaneConfiguration.count in body must be of type integer: "string"',
        )
    ]
    assert unknown_fields(cluster, cluster_schema()) == ["spec.notAField"]


def test_admit_orders_prune_default_validate() -> None:
    schema = resource(
        {
            "replicas": {"type": "integer", "default": 1, "minimum": 1},
            "mode": {"type": "string", "enum": ["a", "b"]},
        }
    )
    schema["properties"]["spec"]["required"] = ["replicas", "mode"]
    stored, causes = admit(obj({"replicas": None, "mode": None, "junk": 1}), schema)
    # the null replicas is defaulted; the null mode is dropped, so it is missing
    assert stored["spec"] == {"replicas": 1}
    assert messages(causes) == [("FieldValueRequired", "spec.mode", "Required value")]


# ---------------------------------------------------------------------------------------------
# Go rendering


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, "1.5"),
        (100.0, "100"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (1e-05, "1e-05"),
        (-2.25, "-2.25"),
        (123456.0, "123456"),
    ],
)
def testgo_float(value: float, text: str) -> None:
    assert go_float(value) == text
