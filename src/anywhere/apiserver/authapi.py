"""Access control of one API server, and the APIs that expose it to clients.

:class:`Access` bundles the RBAC authorizer and the ServiceAccount token issuer, both following
storage, and serves the requests that are about access rather than stored objects:

- ``POST /api/v1/namespaces/NS/serviceaccounts/NAME/token``: an ``authentication.k8s.io/v1``
  TokenRequest (``kubectl create token NAME``);
- ``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`` (``kubectl auth can-i``) and
  ``.../selfsubjectrulesreviews`` (``kubectl auth can-i --list``);
- ``POST /apis/authentication.k8s.io/v1/selfsubjectreviews`` (``kubectl auth whoami``);
- discovery of those two groups.

These kinds are never stored, so they live here rather than in the resource registry. The
server calls :meth:`Access.authorize` right after authentication, then :meth:`Access.serve`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from aiohttp import web

from anywhere.apiserver import authn, rbac
from anywhere.apiserver._http import USER_KEY, User, json_response, parse_body
from anywhere.apiserver._views import ReadYourWrites
from anywhere.apiserver.errors import StatusError, invalid, not_found
from anywhere.storage import Storage

Obj = dict[str, Any]
AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"
# group -> (plural, kind) served here: cluster-scoped and create-only
_SERVED: dict[str, tuple[tuple[str, str], ...]] = {
    AUTHORIZATION: (
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
        ("selfsubjectrulesreviews", "SelfSubjectRulesReview"),
    ),
    AUTHENTICATION: (("selfsubjectreviews", "SelfSubjectReview"),),
}
_NOT_FOUND = "the server could not find the requested resource"


class Access:
    """The authorizer and ServiceAccount tokens of one server, over its store.

    ``storage`` is the store the server should write through: writes to RBAC objects and
    ServiceAccounts are answered once the in-memory views have them (read-your-writes), so a
    revoked binding is revoked for the very next request, and a Role or binding that would grant
    its writer more than the writer holds is refused (RBAC's escalation check).
    """

    def __init__(self, storage: Storage, sa_signing_key_pem: bytes, *, issuer: str = authn.ISSUER) -> None:
        self.authorizer = rbac.Authorizer(storage)
        self.service_accounts = authn.ServiceAccounts(storage, sa_signing_key_pem, issuer)
        self.storage: Storage = ReadYourWrites(
            storage, [self.authorizer.view, self.service_accounts.view], self.authorizer.guard_write
        )
        self._raw = storage

    async def start(self) -> None:
        """Seed the default RBAC policy and load the views (before the server takes requests)."""
        await self.authorizer.start()
        await self.service_accounts.start()

    async def stop(self) -> None:
        await self.service_accounts.stop()
        await self.authorizer.stop()

    def authorize(self, request: web.Request, user: User) -> None:
        """Raise the 403 Status unless RBAC allows the request."""
        self.authorizer.check(request, user)

    def groups(self) -> list[Obj]:
        """The entries these APIs add to ``/apis``."""
        return [_group_entry(group) for group in _SERVED]

    async def serve(self, request: web.Request) -> web.StreamResponse | None:
        """Answer a request about access, or None for the server to route it."""
        attributes = request[rbac.ATTRIBUTES_KEY]
        if not attributes.resource_request:
            return self._discovery(request.path.rstrip("/"))
        group = attributes.api_group
        if group in _SERVED:
            return await self._review(request, attributes)
        if group == "" and attributes.resource == "serviceaccounts" and attributes.subresource == "token":
            return await self._token_request(request, attributes)
        return None

    # ---- discovery

    def _discovery(self, path: str) -> web.Response | None:
        for group in _SERVED:
            if path == f"/apis/{group}":
                return json_response({"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group)})
            if path == f"/apis/{group}/v1":
                return json_response(
                    {
                        "kind": "APIResourceList",
                        "apiVersion": "v1",
                        "groupVersion": f"{group}/v1",
                        "resources": [
                            {
                                "name": plural,
                                "singularName": kind.lower(),
                                "namespaced": False,
                                "kind": kind,
                                "verbs": ["create"],
                            }
                            for plural, kind in _SERVED[group]
                        ],
                    }
                )
        return None

    # ---- reviews

    async def _review(self, request: web.Request, attributes: rbac.Attributes) -> web.Response:
        kinds = dict(_SERVED[attributes.api_group])
        if attributes.api_version != "v1" or attributes.resource not in kinds or attributes.namespace:
            raise StatusError(404, _NOT_FOUND)
        if attributes.verb != "create" or attributes.name:
            raise StatusError(405, "the server does not allow this method on the requested resource")
        kind = kinds[attributes.resource]
        body = await _body(request)
        user = request[USER_KEY]
        spec = _spec(body)
        if kind == "SelfSubjectAccessReview":
            status = self._access_review(user, spec)
        elif kind == "SelfSubjectRulesReview":
            status = self._rules_review(user, spec)
        else:
            info: Obj = {"username": user.name, "groups": list(user.groups)}
            if user.uid:
                info["uid"] = user.uid
            status = {"userInfo": info}
        answer: Obj = {
            "kind": kind,
            "apiVersion": f"{attributes.api_group}/v1",
            "metadata": {"creationTimestamp": None},
        }
        if kind != "SelfSubjectReview":
            answer["spec"] = spec
        answer["status"] = status
        return json_response(answer, 201)

    def _access_review(self, user: User, spec: Obj) -> Obj:
        resource = spec.get("resourceAttributes")
        non_resource = spec.get("nonResourceAttributes")
        if (resource is None) == (non_resource is None):
            field, message = (
                (
                    "spec.nonResourceAttributes",
                    'Invalid value: "": cannot be specified in combination with resourceAttributes',
                )
                if resource is not None
                else (
                    "spec.resourceAttributes",
                    "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )
            )
            raise invalid(
                "SelfSubjectAccessReview",
                AUTHORIZATION,
                "",
                [{"type": "FieldValueInvalid", "field": field, "message": message}],
            )
        if isinstance(resource, dict):
            text = {k: str(resource.get(k) or "") for k in ("verb", "group", "version", "resource")}
            extra = {k: str(resource.get(k) or "") for k in ("subresource", "namespace", "name")}
            attributes = rbac.Attributes(
                user,
                text["verb"],
                "",
                True,
                text["group"],
                text["version"],
                text["resource"],
                extra["subresource"],
                extra["namespace"],
                extra["name"],
            )
        else:
            details = non_resource if isinstance(non_resource, dict) else {}
            attributes = rbac.Attributes(user, str(details.get("verb") or ""), str(details.get("path") or ""))
        decision = self.authorizer.authorize(attributes)
        status: Obj = {"allowed": decision.allowed}
        if decision.reason:
            status["reason"] = decision.reason
        return status

    def _rules_review(self, user: User, spec: Obj) -> Obj:
        namespace = str(spec.get("namespace") or "")
        if not namespace:
            raise StatusError(400, "no namespace on request")
        rules, errors = self.authorizer.policy.rules_for(user, namespace)
        if rbac.MASTERS in user.groups:  # allowed everything whatever the bindings say
            everything = [rbac.Rule(("*",), ("*",), ("*",)), rbac.Rule(("*",), non_resource_urls=("*",))]
            rules = list(dict.fromkeys([*everything, *rules]))
        status: Obj = {
            "resourceRules": [
                {
                    "verbs": list(r.verbs),
                    "apiGroups": list(r.api_groups),
                    "resources": list(r.resources),
                    **({"resourceNames": list(r.resource_names)} if r.resource_names else {}),
                }
                for r in rules
                if not r.non_resource_urls
            ],
            "nonResourceRules": [
                {"verbs": list(r.verbs), "nonResourceURLs": list(r.non_resource_urls)}
                for r in rules
                if r.non_resource_urls
            ],
            "incomplete": bool(errors),
        }
        if errors:
            status["evaluationError"] = rbac.aggregate_errors(errors)
        return status

    # ---- TokenRequest

    async def _token_request(self, request: web.Request, attributes: rbac.Attributes) -> web.Response:
        if attributes.verb != "create" or not attributes.name or not attributes.namespace:
            raise StatusError(405, "the server does not allow this method on the requested resource")
        namespace, name = attributes.namespace, attributes.name
        body = await _body(request)
        spec = _spec(body)
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            seconds = authn.DEFAULT_EXPIRATION
        problems = []
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            problems.append(("spec.expirationSeconds", f"Invalid value: {seconds!r}: must be a whole number"))
        elif seconds < authn.MIN_EXPIRATION:
            problems.append(
                (
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                )
            )
        elif seconds > authn.MAX_EXPIRATION:
            problems.append(
                (
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds",
                )
            )
        audiences = spec.get("audiences") or []
        if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
            problems.append(("spec.audiences", "Invalid value: must be a list of non-empty strings"))
        if spec.get("boundObjectRef"):
            problems.append(
                (
                    "spec.boundObjectRef",
                    "Unsupported value: this server issues tokens bound to their ServiceAccount only; "
                    "leave out --bound-object-kind",
                )
            )
        if problems:
            raise invalid(
                "TokenRequest",
                AUTHENTICATION,
                name,
                [{"type": "FieldValueInvalid", "field": f, "message": m} for f, m in problems],
            )
        record = await self._raw.get(f"{authn.SERVICE_ACCOUNTS_PREFIX}{namespace}/{name}")
        if record is None:
            raise not_found("", "serviceaccounts", name)
        account = orjson.loads(record.value)
        uid = str((account.get("metadata") or {}).get("uid") or "")
        token, expires = self.service_accounts.issue(
            namespace, name, uid, audiences=tuple(audiences), seconds=int(seconds)
        )
        return json_response(
            {
                "kind": "TokenRequest",
                "apiVersion": f"{AUTHENTICATION}/v1",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "creationTimestamp": _timestamp(dt.datetime.now(dt.UTC)),
                },
                "spec": {
                    "audiences": list(audiences or self.service_accounts.audiences),
                    "expirationSeconds": int(seconds),
                    "boundObjectRef": None,
                },
                "status": {"token": token, "expirationTimestamp": _timestamp(expires)},
            },
            201,
        )


def _spec(body: Obj) -> Obj:
    spec = body.get("spec")
    return spec if isinstance(spec, dict) else {}


def _group_entry(group: str) -> Obj:
    version = {"groupVersion": f"{group}/v1", "version": "v1"}
    return {"name": group, "versions": [version], "preferredVersion": version}


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _body(request: web.Request) -> Obj:
    raw = await request.read()
    return parse_body(raw, request.content_type) if raw else {}
