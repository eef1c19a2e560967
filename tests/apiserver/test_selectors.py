"""Label and field selectors: Kubernetes' syntax, semantics and error wording."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.selectors import (
    EVERYTHING,
    NOTHING,
    Operator,
    Requirement,
    field_value,
    label_key_errors,
    label_selector_from_dict,
    label_selector_from_set,
    label_value_errors,
    parse_field_selector,
    parse_label_selector,
)

NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def bad_label_selector(text: str) -> str:
    with pytest.raises(StatusError) as info:
        parse_label_selector(text)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
    return info.value.message


# --- label selector strings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("", {"a": "b"}, True),
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", {}, False),
        ("a==b", {"a": "b"}, True),
        ("a!=b", {"a": "c"}, True),
        ("a!=b", {}, True),  # a missing label is "not equal"
        ("a!=b", {"a": "b"}, False),
        ("a in (x,y)", {"a": "y"}, True),
        ("a in (x,y)", {"a": "z"}, False),
        ("a in (x,y)", {}, False),
        ("a notin (x)", {"a": "y"}, True),
        ("a notin (x)", {}, True),
        ("a notin (x)", {"a": "x"}, False),
        ("a", {"a": ""}, True),
        ("a", {"b": "c"}, False),
        ("!a", {"b": "c"}, True),
        ("!a", {"a": "c"}, False),
        ("a=b,c=d", {"a": "b", "c": "d"}, True),
        ("a=b,c=d", {"a": "b", "c": "e"}, False),
        ("a=", {"a": ""}, True),  # an empty value is a value
        ("a in ()", {"a": ""}, True),
        ("a in (x,)", {"a": ""}, True),
        ("app.kubernetes.io/name=web", {"app.kubernetes.io/name": "web"}, True),
        ("a>5", {"a": "6"}, True),
        ("a>5", {"a": "5"}, False),
        ("a>5", {"a": "x"}, False),
        ("a<5", {"a": "-1"}, True),
        ("in in (in)", {"in": "in"}, True),  # keywords are plain words where a key or value is expected
    ],
)
def test_label_selector_matches(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


def test_label_selector_tolerates_whitespace() -> None:
    sel = parse_label_selector("  a = b ,\tc  in ( x , y ) , ! d  ")
    assert str(sel) == "a=b,c in (x,y),!d"
    assert sel.matches({"a": "b", "c": "y"})
    assert not sel.matches({"a": "b", "c": "y", "d": "1"})


def test_label_selector_string_is_kubernetes_canonical_form() -> None:
    # Requirements sorted by key, set values sorted, the empty value kept: as labels.Selector.String().
    assert str(parse_label_selector("x in (foo,,baz),z notin (),y")) == "x in (,baz,foo),y,z notin ()"
    assert str(parse_label_selector("b!=1,a==2,c>3,d<4")) == "a==2,b!=1,c>3,d<4"


def test_empty_selector_is_everything() -> None:
    assert parse_label_selector("").empty
    assert parse_label_selector("   ").empty
    assert parse_label_selector("") == EVERYTHING


def test_requires_exact_match() -> None:
    sel = parse_label_selector("a=1,b in (2),c in (3,4),d!=5")
    assert sel.requires_exact_match("a") == "1"
    assert sel.requires_exact_match("b") == "2"
    assert sel.requires_exact_match("c") is None
    assert sel.requires_exact_match("d") is None
    assert sel.requires_exact_match("e") is None


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
        ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
        ("! =a", "unable to parse requirement: found '=', expected: identifier"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        (
            "a<x",
            'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
    ],
)
def test_label_selector_syntax_errors(selector: str, message: str) -> None:
    assert bad_label_selector(selector) == message


def test_label_selector_invalid_key_message() -> None:
    assert bad_label_selector("-app=x") == (
        f'unable to parse requirement: <nil>: Invalid value: "-app": name part {NAME_RULE}'
    )
    long_key = "k" * 64
    assert bad_label_selector(long_key) == (
        f'unable to parse requirement: <nil>: Invalid value: "{long_key}": name part must be no more than 63 characters'
    )
    assert "prefix part a lowercase RFC 1123 subdomain" in bad_label_selector("Example.com/a=b")
    assert "prefix part must be non-empty" in bad_label_selector("/a=b")
    assert "a qualified name must consist" in bad_label_selector("a/b/c")


def test_label_selector_invalid_value_message() -> None:
    assert (
        bad_label_selector("app=-x")
        == f'unable to parse requirement: values[0][app]: Invalid value: "-x": {VALUE_RULE}'
    )
    # Several bad values are aggregated in brackets, in sorted order.
    assert bad_label_selector("app in (-x,-y)") == (
        "unable to parse requirement: ["
        f'values[0][app]: Invalid value: "-x": {VALUE_RULE}, '
        f'values[1][app]: Invalid value: "-y": {VALUE_RULE}]'
    )


def test_label_key_and_value_rules() -> None:
    assert label_key_errors("example.com/My_name.1") == []
    assert label_key_errors("") == ["name part must be non-empty", f"name part {NAME_RULE}"]
    assert label_value_errors("") == []
    assert label_value_errors("v" * 63) == []
    assert label_value_errors("v" * 64) == ["must be no more than 63 characters"]
    # Lengths are counted in bytes, as Go does.
    assert label_value_errors("é" * 32) != []


# --- metav1.LabelSelector objects ---------------------------------------------------------------------


def test_label_selector_from_dict_nil_and_empty() -> None:
    # A nil selector selects nothing; an empty one selects everything (metav1.LabelSelectorAsSelector).
    assert label_selector_from_dict(None) == NOTHING
    assert not label_selector_from_dict(None).matches({"a": "b"})
    assert label_selector_from_dict({}) == EVERYTHING
    assert label_selector_from_dict({"matchLabels": {}, "matchExpressions": []}).matches({"x": "y"})


def test_label_selector_from_dict_matches_and_prints() -> None:
    sel = label_selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "owner", "operator": "Exists"},
            ],
        }
    )
    assert str(sel) == "app=web,!canary,env notin (dev),owner,tier in (edge,front)"
    assert sel.matches({"app": "web", "tier": "edge", "owner": "me"})
    assert not sel.matches({"app": "web", "tier": "edge", "owner": "me", "canary": "1"})
    assert not sel.matches({"app": "web", "tier": "edge", "owner": "me", "env": "dev"})
    assert not sel.matches({"app": "web", "tier": "back", "owner": "me"})


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
            '"Equals" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist',
        ),
        ({"matchLabels": {"-a": "x"}}, f'key: Invalid value: "-a": name part {NAME_RULE}'),
        ({"matchLabels": {"a": "x y"}}, f'values[0][a]: Invalid value: "x y": {VALUE_RULE}'),
    ],
)
def test_label_selector_from_dict_errors(selector: dict[str, object], message: str) -> None:
    with pytest.raises(StatusError) as info:
        label_selector_from_dict(selector)
    assert info.value.code == 400
    assert info.value.message == message


def test_label_selector_from_set() -> None:
    sel = label_selector_from_set({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"})
    assert not sel.matches({"a": "1"})
    assert label_selector_from_set(None).empty
    assert label_selector_from_set({}).matches({})


def test_requirement_new_validates() -> None:
    assert Requirement.new("a", Operator.IN, ["x"]).matches({"a": "x"})
    with pytest.raises(ValueError, match="exact-match compatibility requires one single value"):
        Requirement.new("a", Operator.EQUALS, ["x", "y"])
    with pytest.raises(ValueError, match=r"spec\.selector\.key: Invalid value"):
        Requirement.new("-a", Operator.EXISTS, path="spec.selector")


_key_part = st.from_regex(r"[a-z0-9]([a-z0-9._-]{0,8}[a-z0-9])?", fullmatch=True)
_key = st.one_of(
    _key_part, st.builds(lambda p, n: f"{p}.io/{n}", st.from_regex(r"[a-z]{1,6}", fullmatch=True), _key_part)
)
_value = st.one_of(st.just(""), _key_part)
_clause = st.one_of(
    st.builds(lambda k, v, op: f"{k}{op}{v}", _key, _value, st.sampled_from(["=", "==", "!="])),
    st.builds(
        lambda k, vs, op: f"{k} {op} ({','.join(vs)})",
        _key,
        st.lists(_key_part, min_size=1, max_size=3),
        st.sampled_from(["in", "notin"]),
    ),
    st.builds(lambda k: k, _key),
    st.builds(lambda k: f"!{k}", _key),
)


@given(clauses=st.lists(_clause, min_size=1, max_size=4), labels=st.dictionaries(_key, _value, max_size=4))
def test_label_selector_string_round_trips(clauses: list[str], labels: dict[str, str]) -> None:
    sel = parse_label_selector(",".join(clauses))
    again = parse_label_selector(str(sel))
    assert str(again) == str(sel)
    assert again.matches(labels) == sel.matches(labels)
    assert sel.matches(labels) == all(parse_label_selector(c).matches(labels) for c in clauses)


# --- field selectors -----------------------------------------------------------------------------------

POD = {
    "metadata": {"name": "web-1", "namespace": "prod"},
    "spec": {"nodeName": "node-a", "hostNetwork": True},
    "status": {"phase": "Running"},
}
POD_FIELDS = {"spec.nodeName", "spec.hostNetwork", "status.phase"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("metadata.name=web-1", True),
        ("metadata.name==web-1", True),
        ("metadata.name!=web-1", False),
        ("metadata.namespace=prod,spec.nodeName=node-a", True),
        ("metadata.namespace=prod,spec.nodeName=node-b", False),
        ("status.phase!=Pending", True),
        ("spec.hostNetwork=true", True),
        ("spec.nodeName=", False),
        (",metadata.name=web-1,", True),  # empty terms are skipped
    ],
)
def test_field_selector_matches(selector: str, expected: bool) -> None:
    assert parse_field_selector(selector, POD_FIELDS).matches(POD) is expected


def test_field_selector_missing_field_is_empty_string() -> None:
    node = {"metadata": {"name": "n"}}
    assert parse_field_selector("metadata.namespace=").matches(node)  # cluster-scoped objects
    assert parse_field_selector("spec.nodeName=", {"spec.nodeName"}).matches({"metadata": {"name": "p"}})


def test_field_selector_unescapes_values() -> None:
    sel = parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert sel.requirements[0].value == "a,b=c\\d"
    assert sel.matches({"metadata": {"name": "a,b=c\\d"}})


def test_field_selector_unsupported_field() -> None:
    with pytest.raises(StatusError) as info:
        parse_field_selector("spec.schedulerName=x", POD_FIELDS)
    assert (info.value.code, info.value.message) == (400, "field label not supported: spec.schedulerName")
    with pytest.raises(StatusError) as info:
        parse_field_selector("spec.size=3", generic=True)
    assert (
        info.value.message
        == '"spec.size" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("a=1,b", "invalid selector: 'a=1,b'; can't understand 'b'"),
        (r"metadata.name=a\b", "invalid field selector: invalid escape sequence: \\b"),
        ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
        ("metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
    ],
)
def test_field_selector_syntax_errors(selector: str, message: str) -> None:
    with pytest.raises(StatusError) as info:
        parse_field_selector(selector)
    assert (info.value.code, info.value.message) == (400, message)


def test_field_selector_custom_getters() -> None:
    # Events select on "source", which is source.component, not a path of that name.
    fields = {
        "source": lambda ev: field_value(ev, "source.component"),
        "type": lambda ev: field_value(ev, "type"),
    }
    sel = parse_field_selector("source=kubelet,type=Warning", fields)
    assert sel.matches({"source": {"component": "kubelet"}, "type": "Warning"})
    assert not sel.matches({"source": {"component": "scheduler"}, "type": "Warning"})


def test_field_selector_string_and_exact_match() -> None:
    sel = parse_field_selector("metadata.namespace!=kube-system,metadata.name==x")
    assert str(sel) == "metadata.name=x,metadata.namespace!=kube-system"
    assert sel.requires_exact_match("metadata.name") == "x"
    assert sel.requires_exact_match("metadata.namespace") is None
    assert parse_field_selector("").empty


def test_field_value() -> None:
    obj = {"a": {"b": True, "c": 3, "d": None, "e": "x", "f": 2.0}}
    assert field_value(obj, "a.b") == "true"
    assert field_value(obj, "a.c") == "3"
    assert field_value(obj, "a.d") == ""
    assert field_value(obj, "a.e") == "x"
    assert field_value(obj, "a.f") == "2"
    assert field_value(obj, "a.missing") == ""
    assert field_value(obj, "a.e.deeper") == ""
