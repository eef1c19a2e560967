"""RBAC as pure functions: request attributes from paths, rule matching, 403 messages, and the
indexed policy against a brute-force evaluation of every binding."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anywhere.apiserver._http import User
from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.rbac import (
    GROUP,
    PREFIX,
    Attributes,
    Policy,
    Rule,
    attributes_of,
    default_cluster_role_bindings,
    default_cluster_roles,
    forbidden,
    rule_allows,
    uncovered,
)

ALICE = User("alice", ("devs", "system:authenticated"))


def attrs(**fields: Any) -> Attributes:
    fields.setdefault("resource_request", True)
    return Attributes(fields.pop("user", ALICE), **fields)


# --------------------------------------------------------------------------------------------------
# Attributes from requests


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "", "pods", "", "default", "")),
        (
            "GET",
            "/api/v1/namespaces/default/pods",
            {"watch": "true"},
            ("watch", "", "pods", "", "default", ""),
        ),
        ("GET", "/api/v1/pods", {"watch": "1"}, ("watch", "", "pods", "", "", "")),
        ("GET", "/api/v1/namespaces/default/pods/p", {}, ("get", "", "pods", "", "default", "p")),
        (
            "PUT",
            "/api/v1/namespaces/default/pods/p/status",
            {},
            ("update", "", "pods", "status", "default", "p"),
        ),
        ("POST", "/api/v1/namespaces/default/pods", {}, ("create", "", "pods", "", "default", "")),
        (
            "DELETE",
            "/api/v1/namespaces/default/pods",
            {},
            ("deletecollection", "", "pods", "", "default", ""),
        ),
        ("DELETE", "/api/v1/namespaces/default/pods/p", {}, ("delete", "", "pods", "", "default", "p")),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            {},
            ("patch", "apps", "deployments", "scale", "a", "d"),
        ),
        # a namespace is named by its own namespace attribute, as kube-apiserver does
        ("GET", "/api/v1/namespaces/team", {}, ("get", "", "namespaces", "", "team", "team")),
        (
            "PUT",
            "/api/v1/namespaces/team/finalize",
            {},
            ("update", "", "namespaces", "finalize", "team", "team"),
        ),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "", "")),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
            {},
            ("get", GROUP, "clusterroles", "", "", "view"),
        ),
        # a list pinned to one name is about that name (resourceNames can allow it)
        (
            "GET",
            "/api/v1/namespaces/a/configmaps",
            {"fieldSelector": "metadata.name=cfg"},
            ("list", "", "configmaps", "", "a", "cfg"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/configmaps",
            {"fieldSelector": "metadata.name!=cfg"},
            ("list", "", "configmaps", "", "a", ""),
        ),
        ("GET", "/api/v1/watch/namespaces/a/pods/p", {}, ("watch", "", "pods", "", "a", "p")),
    ],
)
def test_resource_request_attributes(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    got = attributes_of(ALICE, method, path, query)
    assert got.resource_request
    assert (got.verb, got.api_group, got.resource, got.subresource, got.namespace, got.name) == expected


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/version", "get"),
        ("GET", "/api", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/apis", "get"),
        ("GET", "/apis/apps", "get"),
        ("GET", "/apis/apps/v1", "get"),  # discovery of a group version is not a resource request
        ("GET", "/openapi/v3/apis/apps/v1", "get"),
        ("POST", "/metrics", "post"),
    ],
)
def test_non_resource_request_attributes(method: str, path: str, verb: str) -> None:
    got = attributes_of(ALICE, method, path, {})
    assert not got.resource_request
    assert (got.verb, got.path) == (verb, path)


# --------------------------------------------------------------------------------------------------
# Rules


def rule(**fields: Any) -> Rule:
    return Rule.of(fields)


@pytest.mark.parametrize(
    ("granted", "request_", "allowed"),
    [
        (rule(verbs=["get"], apiGroups=[""], resources=["pods"]), attrs(verb="get", resource="pods"), True),
        (rule(verbs=["get"], apiGroups=[""], resources=["pods"]), attrs(verb="list", resource="pods"), False),
        (
            rule(verbs=["*"], apiGroups=[""], resources=["pods"]),
            attrs(verb="deletecollection", resource="pods"),
            True,
        ),
        (
            rule(verbs=["get"], apiGroups=["apps"], resources=["pods"]),
            attrs(verb="get", resource="pods"),
            False,
        ),
        (
            rule(verbs=["get"], apiGroups=["*"], resources=["deployments"]),
            attrs(verb="get", api_group="apps", resource="deployments"),
            True,
        ),
        # a resource does not cover its subresources; "*" does, and so does "*/sub"
        (
            rule(verbs=["get"], apiGroups=[""], resources=["pods"]),
            attrs(verb="get", resource="pods", subresource="log"),
            False,
        ),
        (
            rule(verbs=["get"], apiGroups=[""], resources=["pods/log"]),
            attrs(verb="get", resource="pods", subresource="log"),
            True,
        ),
        (
            rule(verbs=["get"], apiGroups=[""], resources=["pods/log"]),
            attrs(verb="get", resource="pods"),
            False,
        ),
        (
            rule(verbs=["get"], apiGroups=[""], resources=["*"]),
            attrs(verb="get", resource="pods", subresource="log"),
            True,
        ),
        (
            rule(verbs=["update"], apiGroups=["*"], resources=["*/scale"]),
            attrs(verb="update", api_group="apps", resource="deployments", subresource="scale"),
            True,
        ),
        (
            rule(verbs=["update"], apiGroups=["*"], resources=["*/scale"]),
            attrs(verb="update", api_group="apps", resource="deployments"),
            False,
        ),
        (
            rule(verbs=["update"], apiGroups=["*"], resources=["*/scale"]),
            attrs(verb="update", resource="pods", subresource="status"),
            False,
        ),
        # resourceNames: only requests naming one of them (never create, never a plain list)
        (
            rule(verbs=["get"], apiGroups=[""], resources=["configmaps"], resourceNames=["a"]),
            attrs(verb="get", resource="configmaps", name="a"),
            True,
        ),
        (
            rule(verbs=["get"], apiGroups=[""], resources=["configmaps"], resourceNames=["a"]),
            attrs(verb="get", resource="configmaps", name="b"),
            False,
        ),
        (
            rule(verbs=["list"], apiGroups=[""], resources=["configmaps"], resourceNames=["a"]),
            attrs(verb="list", resource="configmaps"),
            False,
        ),
        (
            rule(verbs=["create"], apiGroups=[""], resources=["configmaps"], resourceNames=["a"]),
            attrs(verb="create", resource="configmaps"),
            False,
        ),
        # non-resource URLs: exact, or a prefix ending in "*"; never for resource requests
        (
            rule(verbs=["get"], nonResourceURLs=["/metrics"]),
            attrs(verb="get", resource_request=False, path="/metrics"),
            True,
        ),
        (
            rule(verbs=["get"], nonResourceURLs=["/metrics"]),
            attrs(verb="get", resource_request=False, path="/metrics/slis"),
            False,
        ),
        (
            rule(verbs=["get"], nonResourceURLs=["/apis/*"]),
            attrs(verb="get", resource_request=False, path="/apis/apps/v1"),
            True,
        ),
        (
            rule(verbs=["get"], nonResourceURLs=["/apis/*"]),
            attrs(verb="get", resource_request=False, path="/apis"),
            False,
        ),
        (
            rule(verbs=["get"], nonResourceURLs=["*"]),
            attrs(verb="get", resource_request=False, path="/anything"),
            True,
        ),
        (rule(verbs=["get"], nonResourceURLs=["*"]), attrs(verb="get", resource="pods"), False),
        (
            rule(verbs=["get"], apiGroups=["*"], resources=["*"]),
            attrs(verb="get", resource_request=False, path="/x"),
            False,
        ),
    ],
)
def test_rule_allows(granted: Rule, request_: Attributes, allowed: bool) -> None:
    assert rule_allows(request_, granted) is allowed


names = st.sampled_from(["", "a", "b", "pods", "apps", "scale", "status"])


@st.composite
def resource_attributes(draw: st.DrawFn) -> Attributes:
    return attrs(
        verb=draw(st.sampled_from(["get", "list", "watch", "create", "update", "patch", "delete"])),
        api_group=draw(st.sampled_from(["", "apps", "example.com"])),
        resource=draw(st.sampled_from(["pods", "deployments", "widgets"])),
        subresource=draw(st.sampled_from(["", "status", "scale"])),
        name=draw(names),
    )


@given(resource_attributes())
def test_a_rule_naming_a_request_exactly_allows_it_and_only_its_verb(request_: Attributes) -> None:
    resource = f"{request_.resource}/{request_.subresource}" if request_.subresource else request_.resource
    exact = Rule(
        (request_.verb,), (request_.api_group,), (resource,), (request_.name,) if request_.name else ()
    )
    assert rule_allows(request_, exact)
    other_verb = "deletecollection"
    assert not rule_allows(
        request_, Rule((other_verb,), exact.api_groups, exact.resources, exact.resource_names)
    )
    assert rule_allows(request_, Rule(("*",), ("*",), ("*",)))


# --------------------------------------------------------------------------------------------------
# 403 messages (kube-apiserver's words)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            attrs(verb="list", resource="pods", namespace="default"),
            'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"',
        ),
        (
            attrs(verb="list", resource="nodes"),
            'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope',
        ),
        (
            attrs(
                verb="get",
                api_group="apps",
                resource="deployments",
                subresource="scale",
                namespace="a",
                name="web",
            ),
            'deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments/scale" '
            'in API group "apps" in the namespace "a"',
        ),
        (
            attrs(verb="get", resource_request=False, path="/metrics"),
            'forbidden: User "alice" cannot get path "/metrics"',
        ),
        (
            attrs(verb="get", resource_request=False, path="/x<y>", user=User('e"ve')),
            'forbidden: User "e\\"ve" cannot get path "/x&lt;y&gt;"',
        ),
    ],
)
def test_forbidden_message(request_: Attributes, message: str) -> None:
    error = forbidden(request_)
    assert isinstance(error, StatusError)
    assert (error.code, error.reason, error.message) == (403, "Forbidden", message)


def test_forbidden_details_and_reason() -> None:
    error = forbidden(
        attrs(verb="get", resource="pods", namespace="a", name="p"), 'RBAC: role.x "r" not found'
    )
    assert error.message.endswith(': RBAC: role.x "r" not found')
    assert error.status()["details"] == {"name": "p", "kind": "pods"}


# --------------------------------------------------------------------------------------------------
# The policy


def put(policy: Policy, plural: str, obj: dict[str, Any], namespace: str = "") -> None:
    name = obj["metadata"]["name"]
    key = f"{PREFIX}{plural}/{namespace}/{name}" if namespace else f"{PREFIX}{plural}/{name}"
    policy.apply(key, obj)


def drop(policy: Policy, plural: str, name: str, namespace: str = "") -> None:
    policy.apply(f"{PREFIX}{plural}/{namespace}/{name}" if namespace else f"{PREFIX}{plural}/{name}", None)


def binding(name: str, role_kind: str, role: str, *subjects: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": role},
        "subjects": list(subjects),
    }


def role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "rules": list(rules)}


READ_PODS = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}


def test_role_binding_grants_in_its_namespace_only() -> None:
    policy = Policy()
    put(policy, "roles", role("reader", READ_PODS), "a")
    put(policy, "rolebindings", binding("rb", "Role", "reader", {"kind": "User", "name": "alice"}), "a")
    decision = policy.authorize(attrs(verb="list", resource="pods", namespace="a"))
    assert decision.allowed
    assert decision.reason == 'RBAC: allowed by RoleBinding "rb/a" of Role "reader" to User "alice"'
    assert not policy.authorize(attrs(verb="list", resource="pods", namespace="b")).allowed
    assert not policy.authorize(attrs(verb="list", resource="pods")).allowed  # all namespaces
    drop(policy, "rolebindings", "rb", "a")
    assert not policy.authorize(attrs(verb="list", resource="pods", namespace="a")).allowed


def test_missing_roles_are_the_reason_of_a_denial() -> None:
    policy = Policy()
    put(policy, "rolebindings", binding("rb", "Role", "gone", {"kind": "Group", "name": "devs"}), "a")
    put(
        policy,
        "clusterrolebindings",
        binding("crb", "ClusterRole", "ghost", {"kind": "User", "name": "alice"}),
    )
    decision = policy.authorize(attrs(verb="list", resource="pods", namespace="a"))
    assert not decision.allowed
    assert decision.reason == (
        f'RBAC: [clusterrole.{GROUP} "ghost" not found, role.{GROUP} "gone" not found]'
    )
    assert policy.authorize(attrs(verb="get", resource="nodes")).reason == (
        f'RBAC: clusterrole.{GROUP} "ghost" not found'
    )


def test_service_account_subjects_default_to_the_binding_namespace() -> None:
    policy = Policy()
    put(policy, "clusterroles", role("reader", READ_PODS))
    put(
        policy,
        "rolebindings",
        binding("rb", "ClusterRole", "reader", {"kind": "ServiceAccount", "name": "bot"}),
        "a",
    )
    bot = User("system:serviceaccount:a:bot", ("system:serviceaccounts",))
    other = User("system:serviceaccount:b:bot", ("system:serviceaccounts",))
    decision = policy.authorize(attrs(user=bot, verb="get", resource="pods", namespace="a", name="p"))
    assert (
        decision.reason
        == 'RBAC: allowed by RoleBinding "rb/a" of ClusterRole "reader" to ServiceAccount "bot/a"'
    )
    assert not policy.authorize(
        attrs(user=other, verb="get", resource="pods", namespace="a", name="p")
    ).allowed


def test_changing_a_binding_reindexes_its_subjects() -> None:
    policy = Policy()
    put(policy, "clusterroles", role("reader", READ_PODS))
    put(
        policy,
        "clusterrolebindings",
        binding("crb", "ClusterRole", "reader", {"kind": "User", "name": "alice"}),
    )
    put(
        policy,
        "clusterrolebindings",
        binding("crb", "ClusterRole", "reader", {"kind": "User", "name": "bob"}),
    )
    assert not policy.authorize(attrs(verb="list", resource="pods")).allowed
    assert policy.authorize(attrs(user=User("bob"), verb="list", resource="pods")).allowed


def test_system_masters_may_do_anything() -> None:
    root = User("root", ("system:masters",))
    assert Policy().authorize(attrs(user=root, verb="delete", resource="nodes", name="n")).allowed


def test_default_policy_aggregates_view_into_edit_into_admin() -> None:
    policy = Policy()
    for obj in default_cluster_roles():
        put(policy, "clusterroles", obj)
    for obj in default_cluster_role_bindings():
        put(policy, "clusterrolebindings", obj)

    def can(role_name: str, verb: str, resource: str, group: str = "") -> bool:
        rules = policy.cluster_role_rules(role_name) or ()
        request_ = attrs(verb=verb, api_group=group, resource=resource, namespace="a")
        return any(rule_allows(request_, r) for r in rules)

    assert can("view", "list", "pods")
    assert not can("view", "create", "pods")
    assert not can("view", "get", "secrets")
    assert can("edit", "get", "secrets")
    assert can("edit", "create", "deployments", "apps")
    assert not can("edit", "create", "roles", GROUP)
    assert can("admin", "create", "roles", GROUP)
    assert can("admin", "list", "pods")
    # every authenticated user may discover the API and review its own access; nobody else
    user = User("anyone", ("system:authenticated",))
    assert policy.authorize(
        attrs(user=user, verb="get", resource_request=False, path="/apis/apps/v1")
    ).allowed
    assert policy.authorize(
        attrs(user=user, verb="create", api_group="authorization.k8s.io", resource="selfsubjectaccessreviews")
    ).allowed
    anonymous = User("system:anonymous", ("system:unauthenticated",))
    assert policy.authorize(
        attrs(user=anonymous, verb="get", resource_request=False, path="/version")
    ).allowed
    assert not policy.authorize(
        attrs(user=anonymous, verb="get", resource_request=False, path="/api")
    ).allowed
    # a label added to a ClusterRole aggregates it into view at once
    put(
        policy,
        "clusterroles",
        {
            "metadata": {
                "name": "widgets-view",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
            },
            "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}],
        },
    )
    assert can("view", "get", "widgets", "example.com")
    assert can("admin", "get", "widgets", "example.com")


# A brute-force model: every binding, every subject, no index. The indexed policy must agree.

USERS = [
    User("alice", ("devs", "system:authenticated")),
    User("bob", ("ops",)),
    User("system:serviceaccount:a:bot", ("system:serviceaccounts", "system:serviceaccounts:a")),
]
subject_strategy = st.sampled_from(
    [
        {"kind": "User", "name": "alice"},
        {"kind": "User", "name": "bob"},
        {"kind": "Group", "name": "devs"},
        {"kind": "Group", "name": "ops"},
        {"kind": "Group", "name": "system:serviceaccounts"},
        {"kind": "ServiceAccount", "name": "bot"},
        {"kind": "ServiceAccount", "name": "bot", "namespace": "a"},
        {"kind": "Alien", "name": "alice"},
    ]
)
rule_strategy = st.builds(
    lambda verbs, groups, resources, names: {
        "verbs": verbs,
        "apiGroups": groups,
        "resources": resources,
        "resourceNames": names,
    },
    st.lists(st.sampled_from(["get", "list", "*"]), min_size=1, max_size=2),
    st.lists(st.sampled_from(["", "apps", "*"]), min_size=1, max_size=2),
    st.lists(st.sampled_from(["pods", "deployments", "pods/status", "*", "*/scale"]), min_size=1, max_size=2),
    st.lists(st.sampled_from(["x", "y"]), max_size=1),
)
binding_strategy = st.tuples(
    st.sampled_from(["", "a", "b"]),  # "" -> ClusterRoleBinding
    st.sampled_from(["r1", "r2", "missing"]),
    st.sampled_from(["Role", "ClusterRole"]),
    st.lists(subject_strategy, max_size=3),
)


def brute_force(
    roles: dict[tuple[str, str], list[dict[str, Any]]],
    cluster_roles: dict[str, list[dict[str, Any]]],
    bindings: list[tuple[str, str, str, list[dict[str, str]]]],
    request_: Attributes,
) -> bool:
    user = request_.user
    for namespace, role_name, role_kind, subjects in bindings:
        if namespace and namespace != request_.namespace:
            continue
        applies = False
        for subject in subjects:
            if subject["kind"] == "User":
                applies |= subject["name"] == user.name
            elif subject["kind"] == "Group":
                applies |= subject["name"] in user.groups
            elif subject["kind"] == "ServiceAccount":
                sa_namespace = subject.get("namespace") or namespace
                applies |= (
                    bool(sa_namespace)
                    and user.name == f"system:serviceaccount:{sa_namespace}:{subject['name']}"
                )
        if not applies:
            continue
        if role_kind == "ClusterRole":
            granted = cluster_roles.get(role_name)
        else:
            granted = roles.get((namespace, role_name))
        if granted and any(rule_allows(request_, Rule.of(r)) for r in granted):
            return True
    return False


@given(
    roles=st.dictionaries(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["r1", "r2"])),
        st.lists(rule_strategy, max_size=2),
    ),
    cluster_roles=st.dictionaries(st.sampled_from(["r1", "r2"]), st.lists(rule_strategy, max_size=2)),
    bindings=st.lists(binding_strategy, max_size=6),
    request_=resource_attributes(),
    user=st.sampled_from(USERS),
    namespace=st.sampled_from(["", "a", "b"]),
)
def test_indexed_policy_agrees_with_brute_force(
    roles: dict[tuple[str, str], list[dict[str, Any]]],
    cluster_roles: dict[str, list[dict[str, Any]]],
    bindings: list[tuple[str, str, str, list[dict[str, str]]]],
    request_: Attributes,
    user: User,
    namespace: str,
) -> None:
    policy = Policy()
    for (ns, name), rules in roles.items():
        put(policy, "roles", role(name, *rules), ns)
    for name, rules in cluster_roles.items():
        put(policy, "clusterroles", role(name, *rules))
    named: dict[tuple[str, str], tuple[str, str, str, list[dict[str, str]]]] = {}
    for index, (ns, role_name, role_kind, subjects) in enumerate(bindings):
        kind = role_kind if ns else "ClusterRole"  # a ClusterRoleBinding can only name a ClusterRole
        named[(ns, f"b{index % 4}")] = (ns, role_name, kind, subjects)  # some overwrite earlier ones
    for (ns, name), (_, role_name, kind, subjects) in named.items():
        put(
            policy,
            "rolebindings" if ns else "clusterrolebindings",
            binding(name, kind, role_name, *subjects),
            ns,
        )
    request_ = Attributes(
        user,
        request_.verb,
        "",
        True,
        request_.api_group,
        "v1",
        request_.resource,
        request_.subresource,
        namespace,
        request_.name,
    )
    expected = brute_force(roles, cluster_roles, list(named.values()), request_)
    assert policy.authorize(request_).allowed is expected


# --------------------------------------------------------------------------------------------------
# Escalation: what a writer holds must cover what it grants


@pytest.mark.parametrize(
    ("owner", "wanted", "missing"),
    [
        (
            [rule(verbs=["*"], apiGroups=["*"], resources=["*"])],
            [rule(verbs=["get"], apiGroups=["apps"], resources=["deployments/scale"])],
            [],
        ),
        (
            [rule(verbs=["get", "list"], apiGroups=[""], resources=["pods"])],
            [rule(verbs=["get"], apiGroups=[""], resources=["pods"])],
            [],
        ),
        (
            [rule(verbs=["get"], apiGroups=[""], resources=["pods"])],
            [rule(verbs=["get", "delete", "create"], apiGroups=[""], resources=["pods", "secrets"])],
            [
                Rule(("delete", "create"), ("",), ("pods",)),
                Rule(("get", "delete", "create"), ("",), ("secrets",)),
            ],
        ),
        (
            [rule(verbs=["update"], apiGroups=["*"], resources=["*/scale"])],
            [rule(verbs=["update"], apiGroups=["apps"], resources=["deployments/scale"])],
            [],
        ),
        (
            [rule(verbs=["update"], apiGroups=["*"], resources=["*/scale"])],
            [rule(verbs=["update"], apiGroups=["apps"], resources=["deployments"])],
            [Rule(("update",), ("apps",), ("deployments",))],
        ),
        # names: an owner limited to names covers only those names, never the whole kind
        (
            [rule(verbs=["get"], apiGroups=[""], resources=["configmaps"], resourceNames=["a", "b"])],
            [rule(verbs=["get"], apiGroups=[""], resources=["configmaps"], resourceNames=["a"])],
            [],
        ),
        (
            [rule(verbs=["get"], apiGroups=[""], resources=["configmaps"], resourceNames=["a"])],
            [rule(verbs=["get"], apiGroups=[""], resources=["configmaps"])],
            [Rule(("get",), ("",), ("configmaps",))],
        ),
        (
            [rule(verbs=["get"], nonResourceURLs=["/logs/*"])],
            [rule(verbs=["get"], nonResourceURLs=["/logs/kube"])],
            [],
        ),
        (
            [rule(verbs=["get"], nonResourceURLs=["/logs/*"])],
            [rule(verbs=["get", "post"], nonResourceURLs=["/metrics", "/logs/x"])],
            [
                Rule(("get", "post"), non_resource_urls=("/metrics",)),
                Rule(("post",), non_resource_urls=("/logs/x",)),
            ],
        ),
    ],
)
def test_uncovered_permissions(owner: list[Rule], wanted: list[Rule], missing: list[Rule]) -> None:
    assert uncovered(owner, wanted) == missing


@given(st.lists(rule_strategy, max_size=3))
def test_rules_cover_themselves_and_everything_covers_all(rules: list[dict[str, Any]]) -> None:
    parsed = [Rule.of(r) for r in rules]
    assert uncovered(parsed, parsed) == []
    assert uncovered([Rule(("*",), ("*",), ("*",))], parsed) == []
