"""Authorization: Kubernetes RBAC over the Roles, ClusterRoles and their bindings in storage.

Every request is described by :class:`Attributes` (derived from its path and method the way
kube-apiserver's RequestInfoFactory does, so a request is authorized before it is routed and an
unauthorized caller cannot tell an existing object from a missing one), then checked against the
bindings that name the user or one of its groups. The policy lives in memory, indexed by subject,
and follows storage (:mod:`._views`), so a check costs no storage read and a handful of dict
look-ups however many bindings there are.

Matching follows ``k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac``: verbs, API groups and
resources with ``*``, ``resource/subresource`` and ``*/subresource``, resourceNames (a rule with
names never matches a request without one, such as create or an unfiltered list), and
nonResourceURLs with a trailing ``*``. ServiceAccount subjects without a namespace take the
binding's. Members of ``system:masters`` are always allowed, as kube-apiserver's privileged group.

The default ClusterRoles and bindings (cluster-admin, admin/edit/view by aggregation,
system:discovery, system:basic-user, system:public-info-viewer, system:monitoring) are written to
storage at start, as kube-apiserver's bootstrap policy is: users see them with ``kubectl get
clusterroles``, bind to them by name, and can switch their reconciliation off with the annotation
``rbac.authorization.kubernetes.io/autoupdate: "false"``. One evaluation path then serves both the
defaults and the user's own policy.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from anywhere.apiserver._http import User, query_flag
from anywhere.apiserver._views import View
from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.objects import prepare_create, stored
from anywhere.apiserver.resources import BUILTIN_TYPES, ResourceType
from anywhere.apiserver.selectors import LabelSelector, label_selector_from_dict
from anywhere.storage import Conflict, KeyExists, Storage

log = logging.getLogger("anywhere.apiserver")

Obj = dict[str, Any]
GROUP = "rbac.authorization.k8s.io"
PREFIX = f"/registry/{GROUP}/"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
SA_PREFIX = "system:serviceaccount:"

# --------------------------------------------------------------------------------------------------
# Request attributes


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, in authorization's terms (``authorizer.Attributes``)."""

    user: User
    verb: str
    path: str = ""
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


# Where the checked request keeps its attributes (for the audit log and the handlers).
ATTRIBUTES_KEY: web.RequestKey[Attributes] = web.RequestKey("attributes", Attributes)

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


def attributes_of(user: User, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes of a request, from its method, path and query alone.

    ``/api/v1/...`` and ``/apis/GROUP/VERSION/...`` are resource requests; everything else,
    discovery (``/api``, ``/apis/GROUP/VERSION``) included, is a non-resource request whose verb is
    the lowercase HTTP method. A GET without a name is a list, or a watch with ``watch=true`` (or
    the ``/watch/`` prefix); a list with ``fieldSelector=metadata.name=X`` is about ``X``; a
    DELETE without a name is a deletecollection.
    """
    parts = [p for p in path.split("/") if p]
    plain = Attributes(user, method.lower(), path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return plain
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return plain
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    special = parts[0] == "watch"
    if special:
        if len(parts) < 2:
            return Attributes(user, "watch", path, True, group, version)
        verb, parts = "watch", parts[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) > 1 else ""
    subresource = parts[2] if len(parts) > 2 and not special else ""
    if not name and verb == "get":
        verb = "watch" if query_flag(query.get("watch")) else "list"
    if not name and verb in ("list", "watch"):
        name = _exact_name(query.get("fieldSelector", ""))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(user, verb, path, True, group, version, resource, subresource, namespace, name)


def _exact_name(field_selector: str) -> str:
    """The name a field selector pins (``metadata.name=X`` or ``==``), if it pins one."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and not key.endswith("!") and key.strip() == "metadata.name":
            value = value.strip()
            if value and "/" not in value and "%" not in value and value not in (".", ".."):
                return value
    return ""


# --------------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Rule:
    """One PolicyRule, as stored (order kept, so reviews show what the user wrote)."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> Rule:
        def strings(name: str) -> tuple[str, ...]:
            values = rule.get(name)
            return tuple(str(v) for v in values) if isinstance(values, list) else ()

        return cls(
            strings("verbs"),
            strings("apiGroups"),
            strings("resources"),
            strings("resourceNames"),
            strings("nonResourceURLs"),
        )

    def as_dict(self) -> Obj:
        fields = (
            ("verbs", self.verbs),
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.non_resource_urls),
        )
        return {k: list(v) for k, v in fields if v or k == "verbs"}


def resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    """``*``, the exact ``resource[/subresource]``, or ``*/subresource`` for a subresource request."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for wanted in rule.resources:
        if wanted in ("*", combined):
            return True
        if subresource and wanted == f"*/{subresource}":
            return True
    return False


def url_matches(rule: Rule, path: str) -> bool:
    for wanted in rule.non_resource_urls:
        if wanted in ("*", path):
            return True
        if wanted.endswith("*") and path.startswith(wanted.rstrip("*")):
            return True
    return False


def rule_allows(attributes: Attributes, rule: Rule) -> bool:
    """Whether one rule grants the request (a pure function: the heart of RBAC)."""
    if "*" not in rule.verbs and attributes.verb not in rule.verbs:
        return False
    if not attributes.resource_request:
        return url_matches(rule, attributes.path)
    return (
        ("*" in rule.api_groups or attributes.api_group in rule.api_groups)
        and resource_matches(rule, attributes.resource, attributes.subresource)
        and (not rule.resource_names or attributes.name in rule.resource_names)
    )


# --------------------------------------------------------------------------------------------------
# The policy, in memory


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class _Subject:
    kind: str
    name: str
    namespace: str
    key: tuple[str, str]  # ("u", user name) or ("g", group): what the index is keyed by

    def describe(self, binding_namespace: str) -> str:
        if self.kind == "ServiceAccount":
            return f'{self.kind} "{self.name}/{self.namespace or binding_namespace}"'
        return f'{self.kind} "{self.name}"'


@dataclass(frozen=True)
class _Binding:
    namespace: str  # "" for a ClusterRoleBinding
    name: str
    role_kind: str
    role_name: str
    subjects: tuple[_Subject, ...]

    def describe(self, subject: _Subject) -> str:
        if self.namespace:
            kind, name = "RoleBinding", f"{self.name}/{self.namespace}"
        else:
            kind, name = "ClusterRoleBinding", self.name
        return f'{kind} "{name}" of {self.role_kind} "{self.role_name}" to {subject.describe(self.namespace)}'


@dataclass(frozen=True)
class _ClusterRole:
    rules: tuple[Rule, ...]
    labels: Mapping[str, str]
    aggregation: tuple[LabelSelector, ...] | None  # set: rules come from the roles it selects


def _subjects(binding: Obj, namespace: str) -> tuple[_Subject, ...]:
    found = []
    for subject in binding.get("subjects") or []:
        if not isinstance(subject, dict):
            continue
        kind, name = str(subject.get("kind", "")), str(subject.get("name", ""))
        subject_namespace = str(subject.get("namespace") or "")
        if kind == "User":
            key = ("u", name)
        elif kind == "Group":
            key = ("g", name)
        elif kind == "ServiceAccount" and (subject_namespace or namespace):
            key = ("u", f"{SA_PREFIX}{subject_namespace or namespace}:{name}")
        else:
            continue
        found.append(_Subject(kind, name, subject_namespace, key))
    return tuple(found)


# What cluster-admin holds: every verb on everything, and every non-resource URL.
_FULL_AUTHORITY = (
    Rule.of({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
    Rule.of({"verbs": ["*"], "nonResourceURLs": ["*"]}),
)


def _rules(obj: Obj) -> tuple[Rule, ...]:
    return tuple(Rule.of(r) for r in obj.get("rules") or [] if isinstance(r, dict))


class Policy:
    """Roles, ClusterRoles and bindings by name, and bindings by subject; updated per change."""

    def __init__(self) -> None:
        self._roles: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self._cluster_roles: dict[str, _ClusterRole] = {}
        self._bindings: dict[tuple[str, str], _Binding] = {}
        # namespace ("" for cluster bindings) -> subject key -> binding names
        self._index: dict[str, dict[tuple[str, str], set[str]]] = {}
        self._effective: dict[str, tuple[Rule, ...]] = {}

    # ---- keeping current

    def apply(self, key: str, obj: Obj | None) -> None:
        """One change of a stored RBAC object (``None``: deleted), by its storage key."""
        parts = key.split("/")
        if len(parts) < 5 or parts[2] != GROUP:
            return
        plural, rest = parts[3], parts[4:]
        namespace, name = (rest[0], rest[1]) if len(rest) == 2 else ("", rest[0])
        if plural == "roles":
            if obj is None:
                self._roles.pop((namespace, name), None)
            else:
                self._roles[(namespace, name)] = _rules(obj)
        elif plural == "clusterroles":
            self._effective.clear()
            if obj is None:
                self._cluster_roles.pop(name, None)
            else:
                self._cluster_roles[name] = self._cluster_role(obj)
        elif plural in ("rolebindings", "clusterrolebindings"):
            self._unindex(namespace, name)
            if obj is not None:
                self._index_binding(namespace, name, obj)

    @staticmethod
    def _cluster_role(obj: Obj) -> _ClusterRole:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        rule = obj.get("aggregationRule")
        aggregation: tuple[LabelSelector, ...] | None = None
        if isinstance(rule, dict):
            selectors = []
            for selector in rule.get("clusterRoleSelectors") or []:
                with contextlib.suppress(StatusError):  # a bad selector selects nothing
                    selectors.append(label_selector_from_dict(selector))
            aggregation = tuple(selectors)
        return _ClusterRole(_rules(obj), {str(k): str(v) for k, v in labels.items()}, aggregation)

    def _index_binding(self, namespace: str, name: str, obj: Obj) -> None:
        ref = obj.get("roleRef") or {}
        binding = _Binding(
            namespace, name, str(ref.get("kind", "")), str(ref.get("name", "")), _subjects(obj, namespace)
        )
        self._bindings[(namespace, name)] = binding
        scope = self._index.setdefault(namespace, {})
        for subject in binding.subjects:
            scope.setdefault(subject.key, set()).add(name)

    def _unindex(self, namespace: str, name: str) -> None:
        binding = self._bindings.pop((namespace, name), None)
        if binding is None:
            return
        scope = self._index.get(namespace, {})
        for subject in binding.subjects:
            names = scope.get(subject.key)
            if names is not None:
                names.discard(name)
                if not names:
                    del scope[subject.key]
        if not scope:
            self._index.pop(namespace, None)

    # ---- reading

    def cluster_role_rules(self, name: str) -> tuple[Rule, ...] | None:
        """A ClusterRole's rules; an aggregated role's are those of the roles it selects."""
        if name not in self._cluster_roles:
            return None
        cached = self._effective.get(name)
        if cached is None:
            cached = self._effective[name] = self._aggregate(name, frozenset())
        return cached

    def _aggregate(self, name: str, seen: frozenset[str]) -> tuple[Rule, ...]:
        role = self._cluster_roles[name]
        if role.aggregation is None:
            return role.rules
        rules: dict[Rule, None] = {}
        seen = seen | {name}
        for other, candidate in sorted(self._cluster_roles.items()):
            if other in seen or not any(s.matches(candidate.labels) for s in role.aggregation):
                continue
            rules.update(dict.fromkeys(self._aggregate(other, seen)))
        return tuple(rules)

    def unchanged_role(self, namespace: str, name: str, obj: Obj) -> bool:
        if namespace:
            return self._roles.get((namespace, name)) == _rules(obj)
        current = self._cluster_roles.get(name)
        return current is not None and current == self._cluster_role(obj)

    def aggregates(self, name: str) -> bool:
        """Whether the stored ClusterRole ``name`` has an aggregationRule."""
        current = self._cluster_roles.get(name)
        return current is not None and current.aggregation is not None

    def unchanged_binding(self, namespace: str, name: str, obj: Obj) -> bool:
        current = self._bindings.get((namespace, name))
        ref = obj.get("roleRef") or {}
        return (
            current is not None
            and (current.role_kind, current.role_name) == (str(ref.get("kind", "")), str(ref.get("name", "")))
            and current.subjects == _subjects(obj, namespace)
        )

    def role_rules(self, binding: _Binding) -> tuple[tuple[Rule, ...] | None, str]:
        if binding.role_kind == "ClusterRole":
            rules = self.cluster_role_rules(binding.role_name)
            return rules, f'clusterrole.{GROUP} "{binding.role_name}" not found'
        if binding.role_kind == "Role":
            rules = self._roles.get((binding.namespace, binding.role_name))
            return rules, f'role.{GROUP} "{binding.role_name}" not found'
        return None, f'unsupported role reference kind: "{binding.role_kind}"'

    def visit(
        self, user: User, namespace: str
    ) -> Iterator[tuple[_Binding, _Subject, tuple[Rule, ...] | None, str]]:
        """Every binding that applies to ``user`` for a request in ``namespace`` (cluster bindings
        first), with the subject that made it apply and the rules it grants (``None`` and why
        when its role is missing)."""
        keys = [("u", user.name), *(("g", g) for g in user.groups)]
        for scope in ("", namespace) if namespace else ("",):
            index = self._index.get(scope, {})
            names: set[str] = set()
            for key in keys:
                names |= index.get(key, set())
            for name in sorted(names):
                binding = self._bindings[(scope, name)]
                subject = next(s for s in binding.subjects if s.key in keys)
                rules, missing = self.role_rules(binding)
                yield binding, subject, rules, ("" if rules is not None else missing)

    def authorize(self, attributes: Attributes) -> Decision:
        if MASTERS in attributes.user.groups:
            return Decision(True)
        errors: list[str] = []
        for binding, subject, rules, error in self.visit(attributes.user, attributes.namespace):
            if rules is None:
                errors.append(error)
                continue
            if any(rule_allows(attributes, rule) for rule in rules):
                return Decision(True, f"RBAC: allowed by {binding.describe(subject)}")
        return Decision(False, f"RBAC: {aggregate_errors(errors)}" if errors else "")

    def rules_for(self, user: User, namespace: str) -> tuple[list[Rule], list[str]]:
        """What ``user`` may do in ``namespace`` (SelfSubjectRulesReview), and the bindings' errors."""
        rules: dict[Rule, None] = {}
        errors: list[str] = []
        for _binding, _subject, granted, error in self.visit(user, namespace):
            if granted is None:
                errors.append(error)
            else:
                rules.update(dict.fromkeys(granted))
        return list(rules), errors


def aggregate_errors(errors: list[str]) -> str:
    """As apimachinery's error aggregate prints: one message alone, several as ``[a, b]``."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --------------------------------------------------------------------------------------------------
# 403


def _sanitize(text: str) -> str:
    """Errors never look like HTML (kube-apiserver escapes the same three characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def forbidden_message(attributes: Attributes) -> str:
    """``User "u" cannot VERB resource "R[/S]" in API group "G" in the namespace "N"`` (or ``at
    the cluster scope``), or ``User "u" cannot VERB path "/p"``: Kubernetes' words exactly."""
    user = _go_quote(attributes.user.name)
    if not attributes.resource_request:
        return f"User {user} cannot {attributes.verb} path {_go_quote(attributes.path)}"
    resource = attributes.resource
    if attributes.subresource:
        resource = f"{resource}/{attributes.subresource}"
    where = (
        f"in the namespace {_go_quote(attributes.namespace)}"
        if attributes.namespace
        else "at the cluster scope"
    )
    return (
        f"User {user} cannot {attributes.verb} resource {_go_quote(resource)} "
        f"in API group {_go_quote(attributes.api_group)} {where}"
    )


def forbidden(attributes: Attributes, reason: str = "") -> StatusError:
    """The 403 Status kube-apiserver answers (``apierrors.NewForbidden`` around the message)."""
    message = _sanitize(forbidden_message(attributes))
    if reason:
        message = f"{message}: {reason}"
    group, resource, name = attributes.api_group, attributes.resource, attributes.name
    qualified = f"{resource}.{group}" if group else resource
    if not qualified:
        text = f"forbidden: {message}"
    elif name:
        text = f"{qualified} {_go_quote(name)} is forbidden: {message}"
    else:
        text = f"{qualified} is forbidden: {message}"
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", resource)) if v}
    return StatusError(403, text, reason="Forbidden", details=details)


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the plain strings these messages carry."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in escaped)
    return f'"{escaped}"'


# --------------------------------------------------------------------------------------------------
# Escalation: nobody grants what they do not hold


def _atoms(rule: Rule) -> Iterator[Rule]:
    """A rule as one rule per verb, group, resource and name (or URL): what coverage is judged on."""
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                for name in rule.resource_names or ("",):
                    yield Rule((verb,), (group,), (resource,), (name,) if name else ())
    for url in rule.non_resource_urls:
        for verb in rule.verbs:
            yield Rule((verb,), non_resource_urls=(url,))


def _rule_covers(owner: Rule, atom: Rule) -> bool:
    if "*" not in owner.verbs and not set(atom.verbs) <= set(owner.verbs):
        return False
    if "*" not in owner.api_groups and not set(atom.api_groups) <= set(owner.api_groups):
        return False
    for resource in atom.resources:
        _, slash, subresource = resource.partition("/")
        if not ({"*", resource} & set(owner.resources) or (slash and f"*/{subresource}" in owner.resources)):
            return False
    for url in atom.non_resource_urls:
        if not any(
            o in ("*", url) or (o.endswith("*") and url.startswith(o.rstrip("*")))
            for o in owner.non_resource_urls
        ):
            return False
    if atom.resource_names:
        return not owner.resource_names or set(atom.resource_names) <= set(owner.resource_names)
    return not owner.resource_names


def uncovered(owner: tuple[Rule, ...] | list[Rule], wanted: tuple[Rule, ...] | list[Rule]) -> list[Rule]:
    """The permissions of ``wanted`` that no rule of ``owner`` covers, compacted (one rule per
    group, resource and name, with its verbs), as kube-apiserver reports an escalation."""
    missing: dict[tuple[tuple[str, ...], ...], list[str]] = {}
    for rule in wanted:
        for atom in _atoms(rule):
            if not any(_rule_covers(o, atom) for o in owner):
                verbs = missing.setdefault(
                    (atom.api_groups, atom.resources, atom.resource_names, atom.non_resource_urls), []
                )
                verbs.extend(v for v in atom.verbs if v not in verbs)
    return [Rule(tuple(verbs), *key) for key, verbs in missing.items()]


def _compact_string(rule: Rule) -> str:
    parts = [
        f"{label}:[{' '.join(_go_quote(v) for v in values)}]"
        for label, values in (
            ("APIGroups", rule.api_groups),
            ("Resources", rule.resources),
            ("NonResourceURLs", rule.non_resource_urls),
            ("ResourceNames", rule.resource_names),
            ("Verbs", rule.verbs),
        )
        if values
    ]
    return "{" + ", ".join(parts) + "}"


# The caller of the request being served: storage writes of RBAC objects are checked against it.
_CALLER: contextvars.ContextVar[User | None] = contextvars.ContextVar("rbac_caller", default=None)


# --------------------------------------------------------------------------------------------------
# The authorizer


class Authorizer:
    """RBAC over a store: seeds the default policy, follows the store, decides requests."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.policy = Policy()
        self.view = View(storage, PREFIX, self.policy.apply)

    async def start(self) -> None:
        await seed_defaults(self._storage)
        await self.view.start()

    async def stop(self) -> None:
        await self.view.stop()

    def authorize(self, attributes: Attributes) -> Decision:
        return self.policy.authorize(attributes)

    def check(self, request: web.Request, user: User) -> Attributes:
        """Authorize a request or raise its 403; the attributes are kept on the request."""
        attributes = attributes_of(user, request.method, request.path, request.query)
        request[ATTRIBUTES_KEY] = attributes
        decision = self.policy.authorize(attributes)
        if not decision.allowed:
            raise forbidden(attributes, decision.reason)
        _CALLER.set(user)
        return attributes

    def guard_write(self, key: str, value: bytes) -> None:
        """Refuse (403) a write of a Role, ClusterRole or binding that grants what its writer does
        not hold, as kube-apiserver does: a role's rules must be covered by the writer's own
        permissions (or the writer may ``escalate`` roles); a binding's role must be (or the writer
        may ``bind`` it). Writes by the server itself (no caller) and by system:masters pass, and
        so does a write that leaves the rules (or role and subjects) as they are."""
        user = _CALLER.get()
        if user is None or MASTERS in user.groups or not key.startswith(PREFIX):
            return
        parts = key.split("/")
        plural, rest = parts[3], parts[4:]
        namespace, name = (rest[0], rest[1]) if len(rest) == 2 else ("", rest[0])
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if plural in ("roles", "clusterroles"):
            if self.policy.unchanged_role(namespace, name, obj):
                return
            verb, resource, wanted = "escalate", plural, _rules(obj)
        elif plural in ("rolebindings", "clusterrolebindings"):
            if self.policy.unchanged_binding(namespace, name, obj):
                return
            ref = obj.get("roleRef") or {}
            kind, role_name = str(ref.get("kind", "")), str(ref.get("name", ""))
            verb, resource, name = "bind", f"{kind.lower()}s", role_name
            probe = _Binding(namespace, "", kind, role_name, ())
            rules, missing = self.policy.role_rules(probe)
            if (
                rules is None
                and not self.policy.authorize(
                    Attributes(user, verb, "", True, GROUP, "v1", resource, "", namespace, name)
                ).allowed
            ):
                raise self._escalation(plural, parts, user, missing)
            wanted = rules or ()
        else:
            return
        permitted = Attributes(user, verb, "", True, GROUP, "v1", resource, "", namespace, name)
        if self.policy.authorize(permitted).allowed:
            return
        owned, _errors = self.policy.rules_for(user, namespace)
        # An aggregationRule gathers the rules of any role its selectors match, now or later, so
        # setting, changing or dropping one takes full authority, as in Kubernetes.
        if (
            plural == "clusterroles"
            and (obj.get("aggregationRule") is not None or self.policy.aggregates(name))
            and uncovered(owned, _FULL_AUTHORITY)
        ):
            raise self._escalation(
                plural, parts, user, "must have cluster-admin privileges to use the aggregationRule"
            )
        lacking = uncovered(owned, wanted)
        if lacking:
            held = "\n".join(sorted(_compact_string(r) for r in lacking))
            raise self._escalation(
                plural,
                parts,
                user,
                f"user {_go_quote(user.name)} (groups=[{' '.join(_go_quote(g) for g in user.groups)}]) "
                f"is attempting to grant RBAC permissions not currently held:\n{held}",
            )

    @staticmethod
    def _escalation(plural: str, parts: list[str], user: User, why: str) -> StatusError:
        name = parts[-1]
        return StatusError(
            403,
            f"{plural}.{GROUP} {_go_quote(name)} is forbidden: {why}",
            reason="Forbidden",
            details={"name": name, "group": GROUP, "kind": plural},
        )


# --------------------------------------------------------------------------------------------------
# The default policy (what kube-apiserver's bootstrap policy holds, for the kinds served here)

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}


def _rule(verbs: list[str], groups: list[str] | None = None, resources: list[str] | None = None) -> Obj:
    return {"verbs": verbs, "apiGroups": groups or [""], "resources": resources or []}


def _url_rule(verbs: list[str], urls: list[str]) -> Obj:
    return {"verbs": verbs, "nonResourceURLs": urls}


_HEALTH = ["/livez", "/readyz", "/healthz", "/version", "/version/"]
_VIEW_CORE = [
    "configmaps",
    "endpoints",
    "events",
    "namespaces",
    "namespaces/status",
    "pods",
    "pods/status",
    "serviceaccounts",
    "services",
    "services/status",
]
_APPS = [
    "daemonsets",
    "daemonsets/status",
    "deployments",
    "deployments/scale",
    "deployments/status",
    "replicasets",
    "replicasets/scale",
    "replicasets/status",
    "statefulsets",
    "statefulsets/scale",
    "statefulsets/status",
]


def _cluster_role(name: str, rules: list[Obj], aggregate_to: str = "", aggregates: str = "") -> Obj:
    labels = dict(_BOOTSTRAP_LABELS)
    if aggregate_to:
        labels[f"{AGGREGATE_TO}{aggregate_to}"] = "true"
    role: Obj = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels, "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    }
    if aggregates:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {f"{AGGREGATE_TO}{aggregates}": "true"}}]
        }
    return role


def _cluster_binding(name: str, role: str, groups: list[str]) -> Obj:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(_BOOTSTRAP_LABELS), "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups],
    }


def default_cluster_roles() -> list[Obj]:
    core_writable = ["configmaps", "events", "secrets", "serviceaccounts", "services", "pods"]
    roles = [
        _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _url_rule(["*"], ["*"])]),
        _cluster_role(
            "system:discovery",
            [_url_rule(["get"], [*_HEALTH, "/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*"])],
        ),
        _cluster_role(
            "system:basic-user",
            [
                _rule(
                    ["create"],
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
            ],
        ),
        _cluster_role("system:public-info-viewer", [_url_rule(["get"], _HEALTH)]),
        _cluster_role(
            "system:monitoring",
            [
                _url_rule(
                    ["get"],
                    [
                        "/metrics",
                        "/metrics/slis",
                        "/livez",
                        "/readyz",
                        "/healthz",
                        "/livez/*",
                        "/readyz/*",
                        "/healthz/*",
                    ],
                )
            ],
        ),
        _cluster_role("admin", [], aggregates="admin"),
        _cluster_role("edit", [], aggregate_to="admin", aggregates="edit"),
        _cluster_role("view", [], aggregate_to="edit", aggregates="view"),
        _cluster_role(
            "system:aggregate-to-admin",
            [
                _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
                _rule([*_READ, *_WRITE], [GROUP], ["rolebindings", "roles"]),
            ],
            aggregate_to="admin",
        ),
        _cluster_role(
            "system:aggregate-to-edit",
            [
                _rule(_WRITE, [""], core_writable),
                _rule(_READ, [""], ["secrets"]),
                _rule(["create"], [""], ["serviceaccounts/token"]),
                _rule(_WRITE, ["apps"], [r for r in _APPS if not r.endswith("/status")]),
                _rule([*_READ, *_WRITE], ["coordination.k8s.io"], ["leases"]),
            ],
            aggregate_to="edit",
        ),
        _cluster_role(
            "system:aggregate-to-view",
            [
                _rule(_READ, [""], _VIEW_CORE),
                _rule(_READ, ["apps"], _APPS),
                _rule(_READ, ["events.k8s.io"], ["events"]),
            ],
            aggregate_to="view",
        ),
    ]
    # What the aggregation gives each aggregated role, so that `kubectl describe` shows it.
    policy = Policy()
    for role in roles:
        policy.apply(f"{PREFIX}clusterroles/{role['metadata']['name']}", role)
    for role in roles:
        if "aggregationRule" in role:
            role["rules"] = [r.as_dict() for r in policy.cluster_role_rules(role["metadata"]["name"]) or ()]
    return roles


def default_cluster_role_bindings() -> list[Obj]:
    return [
        _cluster_binding("cluster-admin", "cluster-admin", [MASTERS]),
        _cluster_binding("system:discovery", "system:discovery", [AUTHENTICATED]),
        _cluster_binding("system:basic-user", "system:basic-user", [AUTHENTICATED]),
        _cluster_binding(
            "system:public-info-viewer", "system:public-info-viewer", [AUTHENTICATED, UNAUTHENTICATED]
        ),
        _cluster_binding("system:monitoring", "system:monitoring", ["system:monitoring"]),
    ]


def _rbac_type(kind: str) -> ResourceType:
    return next(rt for rt in BUILTIN_TYPES if rt.group == GROUP and rt.kind == kind)


async def seed_defaults(storage: Storage) -> None:
    """Create the default ClusterRoles and bindings, or add what they lack (kube-apiserver's
    reconciliation: missing rules and subjects are added, nothing is taken away, and an object
    annotated ``autoupdate: "false"`` is left alone). Replicas starting together race harmlessly."""
    for kind, objects, merge in (
        ("ClusterRole", default_cluster_roles(), _merge_role),
        ("ClusterRoleBinding", default_cluster_role_bindings(), _merge_binding),
    ):
        rt = _rbac_type(kind)
        for wanted in objects:
            key = rt.storage_key(None, wanted["metadata"]["name"])
            record = await storage.get(key)
            if record is None:
                with contextlib.suppress(KeyExists):
                    await storage.create(key, stored(prepare_create(rt, wanted, None)))
                continue
            current = orjson.loads(record.value)
            annotations = (current.get("metadata") or {}).get("annotations") or {}
            if annotations.get(AUTOUPDATE) == "false":
                continue
            if merge(current, wanted):
                with contextlib.suppress(Conflict):
                    await storage.update(key, stored(current), expected_rv=record.mod_rv)


def _merge_role(current: Obj, wanted: Obj) -> bool:
    rules = current.setdefault("rules", [])
    missing = [r for r in wanted["rules"] if r not in rules]
    rules.extend(missing)
    changed = bool(missing)
    if "aggregationRule" in wanted and current.get("aggregationRule") != wanted["aggregationRule"]:
        current["aggregationRule"] = wanted["aggregationRule"]
        changed = True
    labels = current.setdefault("metadata", {}).setdefault("labels", {})
    for key, value in wanted["metadata"]["labels"].items():
        if labels.get(key) != value:
            labels[key] = value
            changed = True
    return changed


def _merge_binding(current: Obj, wanted: Obj) -> bool:
    subjects = current.setdefault("subjects", [])
    missing = [s for s in wanted["subjects"] if s not in subjects]
    subjects.extend(missing)
    return bool(missing)
