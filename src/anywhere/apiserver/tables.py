"""Server-side printing: the ``meta.k8s.io`` ``Table`` that ``kubectl get`` asks for.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints whatever columns
and cells the server returns, so the server decides what ``kubectl get`` shows. This module builds
those tables the way kube-apiserver does:

- built-in kinds get the columns and cell formatting of Kubernetes' printers (``STATUS`` of a pod,
  ``ROLES`` of a node, ``PORT(S)`` of a service, ...); all columns are always sent, and kubectl hides
  the ``priority > 0`` ones unless ``-o wide``;
- custom resources get ``Name`` plus the CRD version's ``additionalPrinterColumns``, evaluated with
  kubectl's JSONPath dialect (``.status.conditions[?(@.type=="Ready")].status``), or ``Name`` + ``Age``
  when the CRD declares none;
- other kinds (RBAC roles, CRDs themselves) get the generic ``Name`` + ``Created At``.

Ages use apimachinery's ``duration.HumanDuration`` for built-in printers ("2d3h") and its
``ShortHumanDuration`` for CRD ``date`` columns ("2d"), exactly as the Go code does.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as _jsonpath_parse

from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.selectors import label_selector_from_dict

__all__ = [
    "TABLE_API_VERSIONS",
    "Column",
    "Row",
    "builtin_table",
    "builtin_table_rows",
    "columns_for_builtin",
    "columns_for_crd_version",
    "default_columns",
    "human_duration",
    "jsonpath_cell",
    "printed_kinds",
    "rows_for_columns",
    "short_human_duration",
    "table",
]

TABLE_API_VERSIONS = ("meta.k8s.io/v1", "meta.k8s.io/v1beta1")
_INCLUDE_OBJECT = ("Metadata", "Object", "None")


@dataclass(frozen=True)
class Column:
    """One table column (``metav1.TableColumnDefinition``) and, for CRD columns, where its cells come from.

    ``type`` is an OpenAPI type (``string``, ``integer``, ``number``, ``boolean``, ``date``);
    ``format`` is ``name`` for the column holding the object's name; ``priority > 0`` columns only show
    with ``kubectl get -o wide``. ``json_path`` is kubectl JSONPath (as in CRD
    ``additionalPrinterColumns``); built-in printers compute their cells in code and leave it ``None``.
    """

    name: str
    type: str = "string"
    json_path: str | None = None
    priority: int = 0
    description: str = ""
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


@dataclass
class Row:
    """One row's cells (``None`` for a missing value) and optional row conditions (a finished pod)."""

    cells: list[Any]
    conditions: list[dict[str, str]] | None = None


# --------------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def _parse_rfc3339(text: str) -> datetime:
    """Parse like Go's ``time.Parse(time.RFC3339, ...)``; ``ValueError`` when malformed."""
    if not _RFC3339.fullmatch(text):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    return datetime.fromisoformat(text)


def _timestamp(value: Any) -> datetime | None:
    """A stored ``metav1.Time``/``MicroTime``; ``None`` when absent, null, malformed or Go's zero time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = _parse_rfc3339(value)
    except ValueError:
        return None
    return None if parsed == _ZERO_TIME else parsed


def _trunc_div(a: int, b: int) -> int:
    # Go's integer division truncates toward zero.
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _microseconds(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def human_duration(delta: timedelta) -> str:
    """apimachinery ``duration.HumanDuration``: ~2-3 significant figures ("90s", "5m30s", "3h10m", "2d3h").

    Slightly negative durations (clock skew under two seconds) print as "0s", larger ones as "<invalid>".
    """
    us = _microseconds(delta)
    seconds = _trunc_div(us, 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def short_human_duration(delta: timedelta) -> str:
    """apimachinery ``duration.ShortHumanDuration``: one unit only ("45s", "5m", "3h", "2d", "1y")."""
    us = _microseconds(delta)
    seconds = _trunc_div(us, 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds // 60 < 60:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def _age(value: Any, now: datetime) -> str:
    """Kubernetes printers' ``translateTimestampSince``: "<unknown>" when unset."""
    ts = _timestamp(value)
    return "<unknown>" if ts is None else human_duration(now - ts)


# --------------------------------------------------------------------------------------------------
# JSONPath cells (CRD additionalPrinterColumns)
# --------------------------------------------------------------------------------------------------

_FIELD_END = frozenset(".[]$@{},")


def _to_jsonpath_ng(path: str) -> str:
    """Translate kubectl JSONPath (``.a.b[?(@.x=="y")].c``) to jsonpath-ng's extended syntax.

    Field names are quoted so that names kubectl allows unquoted (``app.kubernetes.io/name`` written
    with escaped dots, ``foo-bar``, ``a/b``) are not read as operators; backslash escapes are resolved
    the way kubectl does. Bracket expressions (indexes, slices, filters, quoted keys) pass through.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    out = ["$"]
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "[":
            j, depth, quote = i, 0, ""
            while j < n:
                c = text[j]
                if quote:
                    if c == "\\":
                        j += 1
                    elif c == quote:
                        quote = ""
                elif c in "'\"":
                    quote = c
                elif c in "[(":
                    depth += 1
                elif c in "])":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise ValueError(f"unterminated '[' in {path!r}")
            out.append(text[i : j + 1])
            i = j + 1
            continue
        recursive = False
        if ch == ".":
            i += 1
            if i < n and text[i] == ".":
                recursive = True
                i += 1
        name: list[str] = []
        while i < n and text[i] not in _FIELD_END and not text[i].isspace():
            if text[i] == "\\" and i + 1 < n:
                i += 1
            name.append(text[i])
            i += 1
        field = "".join(name)
        if i < n and text[i] not in ".[" and not field:
            raise ValueError(f"unexpected {text[i]!r} in {path!r}")
        prefix = ".." if recursive else "."
        if field == "*":
            out.append(prefix + "*")
        elif field:
            out.append(prefix + '"' + field.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif recursive:
            out.append("..")
    return "".join(out)


@lru_cache(maxsize=512)
def _compile(path: str) -> JSONPath:
    """Parse once per distinct path: CRD columns are evaluated for every object of every list."""
    return _jsonpath_parse(_to_jsonpath_ng(path))


def _valid_jsonpath(path: str) -> bool:
    try:
        _compile(path)
    except (ValueError, JSONPathError):
        return False
    return True


def _go_float(value: float) -> str:
    # Go's %v for float64: shortest representation, exponent form from 1e21 up.
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _go_json(value: Any) -> str:
    # encoding/json: compact, map keys sorted, <, > and & escaped for HTML safety.
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _print_value(value: Any) -> str:
    """How kubectl's JSONPath printer renders one result (a ``string`` column's cell)."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    return _go_json(value)


def jsonpath_cell(column: Column, obj: Mapping[str, Any], now: datetime) -> Any:
    """A CRD column's cell: the first JSONPath result, converted to the column's type.

    Mirrors apiextensions-apiserver's table convertor: no result, a value of the wrong type or an
    unparsable path gives ``None``; ``date`` columns turn an RFC 3339 string into an age
    ("<invalid>" when malformed, "<unknown>" for Go's zero time).
    """
    if column.json_path is None:
        return None
    try:
        matches = _compile(column.json_path).find(obj)
    except (ValueError, TypeError, JSONPathError):  # bad path, or a filter comparing unlike types
        return None
    if not matches:
        return None
    value = matches[0].value
    kind = column.type
    if kind == "string":
        return _print_value(value)
    if value is None:
        return None
    if kind == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return math.trunc(value) if math.isfinite(value) else None
        return None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        if not isinstance(value, str):
            return None
        if value in ("", "null"):
            return "<unknown>"
        try:
            ts = _parse_rfc3339(value)
        except ValueError:
            return "<invalid>"
        return "<unknown>" if ts == _ZERO_TIME else short_human_duration(now - ts)
    return None


def rows_for_columns(
    objects: Sequence[Mapping[str, Any]], columns: Sequence[Column], now: datetime
) -> list[Row]:
    """Rows whose cells are each column's JSONPath evaluated against the object."""
    return [Row([jsonpath_cell(c, obj, now) for c in columns]) for obj in objects]


# --------------------------------------------------------------------------------------------------
# Column sets
# --------------------------------------------------------------------------------------------------

_NAME_DOC = "Name of the object, unique within its namespace (or the cluster, for cluster-scoped kinds)."
_AGE_DOC = "Time since the server created the object (metadata.creationTimestamp)."
_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."

_NAME = Column("Name", "string", ".metadata.name", format="name", description=_NAME_DOC)
_AGE = Column("Age", "string", description=_AGE_DOC)


def default_columns() -> list[Column]:
    """The generic ``Name`` + ``Created At`` table of kinds without a printer (roles, CRDs)."""
    return [
        _NAME,
        Column(
            "Created At", "date", ".metadata.creationTimestamp", description="When the object was created."
        ),
    ]


def columns_for_crd_version(version: Mapping[str, Any]) -> list[Column]:
    """Columns for a custom resource served at this CRD version (an entry of ``spec.versions``).

    As apiextensions-apiserver: ``Name`` always comes first, then the version's
    ``additionalPrinterColumns`` in order; a version declaring none gets an ``Age`` column. ``Age`` is
    not added when columns are declared (CRDs list it themselves if they want it). A column whose
    JSONPath does not parse ends the list there, as Kubernetes falls back at the first bad column
    (CRD validation normally rejects such paths before they get here).
    """
    declared = version.get("additionalPrinterColumns") or []
    if not declared:
        return [_NAME, Column("Age", "date", ".metadata.creationTimestamp", description=_AGE_DOC)]
    columns = [_NAME]
    for col in declared:
        path = col.get("jsonPath", col.get("JSONPath", ""))
        if not _valid_jsonpath(path):
            break
        columns.append(
            Column(
                name=col.get("name", ""),
                type=col.get("type", "string"),
                json_path=path,
                priority=int(col.get("priority") or 0),
                description=col.get("description")
                or f"Custom resource definition column (in JSONPath format): {path}",
                format=col.get("format") or "",
            )
        )
    return columns


# --------------------------------------------------------------------------------------------------
# Built-in printers (kube-apiserver pkg/printers/internalversion)
# --------------------------------------------------------------------------------------------------

Printer = Callable[[Mapping[str, Any], datetime], Row]


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _name(obj: Mapping[str, Any]) -> str:
    return _str(_get(obj, "metadata", "name"))


def _created(obj: Mapping[str, Any], now: datetime) -> str:
    return _age(_get(obj, "metadata", "creationTimestamp"), now)


def _format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: ``k=v`` sorted by key, or "<none>"."""
    if not isinstance(labels, Mapping) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _selector_string(selector: Any, *, empty: str, invalid: str) -> str:
    """``metav1.LabelSelectorAsSelector(sel).String()``, with the printer's text for "" and for errors.

    Deployments print the string as is (``empty=""``, ``invalid="<invalid>"``); other printers go
    through ``metav1.FormatLabelSelector`` (``"<none>"``, ``"<error>"``).
    """
    try:
        text = str(label_selector_from_dict(selector if isinstance(selector, Mapping) else None))
    except StatusError:
        return invalid
    return text or empty


def _containers(template_spec: Any) -> tuple[str, str]:
    containers = [c for c in _list(_get(template_spec, "containers")) if isinstance(c, Mapping)]
    return ",".join(_str(c.get("name")) for c in containers), ",".join(
        _str(c.get("image")) for c in containers
    )


# Pod --------------------------------------------------------------------------------------------

_POD_COLUMNS = [
    _NAME,
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column(
        "Restarts",
        description="How often the pod's containers restarted, and how long ago the last restart was.",
    ),
    _AGE,
    Column("IP", priority=1, description="The pod's primary IP address."),
    Column("Node", priority=1, description="The node the pod is scheduled on."),
    Column(
        "Nominated Node", priority=1, description="The node the scheduler nominated after preempting pods."
    ),
    Column("Readiness Gates", priority=1, description="How many of the pod's readiness gates are true."),
]


def _restartable(container: Any) -> bool:
    # A sidecar: an init container that keeps running, declared with restartPolicy Always.
    return isinstance(container, Mapping) and container.get("restartPolicy") == "Always"


def _condition_true(conditions: Any, kind: str) -> bool:
    for c in _list(conditions):
        if isinstance(c, Mapping) and c.get("type") == kind:
            return c.get("status") == "True"
    return False


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current


def _terminated_reason(term: Mapping[str, Any], prefix: str) -> str:
    if _str(term.get("reason")):
        return prefix + _str(term.get("reason"))
    if _int(term.get("signal")):
        return f"{prefix}Signal:{_int(term.get('signal'))}"
    return f"{prefix}ExitCode:{_int(term.get('exitCode'))}"


def _pod_row(pod: Mapping[str, Any], now: datetime) -> Row:
    spec = _get(pod, "spec") or {}
    status = _get(pod, "status") or {}
    init_specs = [c for c in _list(spec.get("initContainers")) if isinstance(c, Mapping)]
    init_by_name = {c.get("name"): c for c in init_specs}

    restarts = 0
    sidecar_restarts = 0
    total = len(_list(spec.get("containers"))) + sum(1 for c in init_specs if _restartable(c))
    ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    for cond in _list(status.get("conditions")):
        if _get(cond, "type") == "PodScheduled" and _get(cond, "reason") == "SchedulingGated":
            reason = "SchedulingGated"

    conditions = None
    if phase == "Succeeded":
        conditions = [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    elif phase == "Failed":
        conditions = [
            {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
        ]

    initializing = False
    for i, cs in enumerate(_list(status.get("initContainerStatuses"))):
        if not isinstance(cs, Mapping):
            continue
        restarts += _int(cs.get("restartCount"))
        finished = _timestamp(_get(cs, "lastState", "terminated", "finishedAt"))
        last_restart = _later(last_restart, finished)
        sidecar = _restartable(init_by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += _int(cs.get("restartCount"))
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        term = _get(cs, "state", "terminated")
        waiting = _get(cs, "state", "waiting")
        if isinstance(term, Mapping) and _int(term.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if isinstance(term, Mapping):
            reason = _terminated_reason(term, "Init:")
        elif (
            isinstance(waiting, Mapping)
            and _str(waiting.get("reason"))
            and waiting.get("reason") != "PodInitializing"
        ):
            reason = "Init:" + _str(waiting.get("reason"))
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status.get("conditions"), "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(_list(status.get("containerStatuses"))):
            if not isinstance(cs, Mapping):
                continue
            restarts += _int(cs.get("restartCount"))
            last_restart = _later(last_restart, _timestamp(_get(cs, "lastState", "terminated", "finishedAt")))
            waiting = _get(cs, "state", "waiting")
            term = _get(cs, "state", "terminated")
            if isinstance(waiting, Mapping) and _str(waiting.get("reason")):
                reason = _str(waiting.get("reason"))
            elif isinstance(term, Mapping):
                reason = _terminated_reason(term, "")
            elif cs.get("ready") is True and isinstance(_get(cs, "state", "running"), Mapping):
                has_running = True
                ready += 1
        # A pod whose last container completed is still running while another container runs.
        if reason == "Completed" and has_running:
            pod_ready = any(
                _get(c, "type") == "Ready" and _get(c, "status") == "True"
                for c in _list(status.get("conditions"))
            )
            reason = "Running" if pod_ready else "NotReady"

    if _get(pod, "metadata", "deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Failed", "Succeeded"):
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ips = _list(status.get("podIPs"))
    pod_ip = _str(_get(pod_ips[0], "ip")) if pod_ips else _str(status.get("podIP"))
    gates = [g for g in _list(spec.get("readinessGates")) if isinstance(g, Mapping)]
    readiness = "<none>"
    if gates:
        true_count = 0
        for gate in gates:
            for cond in _list(status.get("conditions")):
                if _get(cond, "type") == gate.get("conditionType"):
                    true_count += _get(cond, "status") == "True"
                    break
        readiness = f"{true_count}/{len(gates)}"
    return Row(
        [
            _name(pod),
            f"{ready}/{total}",
            reason,
            restarts_cell,
            _created(pod, now),
            pod_ip or "<none>",
            _str(spec.get("nodeName")) or "<none>",
            _str(status.get("nominatedNodeName")) or "<none>",
            readiness,
        ],
        conditions,
    )


# Node -------------------------------------------------------------------------------------------

_NODE_COLUMNS = [
    _NAME,
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    _AGE,
    Column("Version", description="Version of the node's kubelet."),
    Column("Internal-IP", priority=1, description="The node's first InternalIP address."),
    Column("External-IP", priority=1, description="The node's first ExternalIP address."),
    Column("OS-Image", priority=1, description="Operating system image reported by the node."),
    Column("Kernel-Version", priority=1, description="Kernel version reported by the node."),
    Column(
        "Container-Runtime", priority=1, description="Container runtime and version reported by the node."
    ),
]


def _node_address(node: Mapping[str, Any], kind: str) -> str:
    for address in _list(_get(node, "status", "addresses")):
        if _get(address, "type") == kind:
            return _str(_get(address, "address"))
    return "<none>"


def _node_row(node: Mapping[str, Any], now: datetime) -> Row:
    states: list[str] = []
    ready = [c for c in _list(_get(node, "status", "conditions")) if _get(c, "type") == "Ready"]
    if ready:
        # Kubernetes keys conditions by type, so the last Ready condition listed wins.
        states.append("Ready" if _get(ready[-1], "status") == "True" else "NotReady")
    else:
        states.append("Unknown")
    if _get(node, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    labels = _get(node, "metadata", "labels")
    for key, value in labels.items() if isinstance(labels, Mapping) else ():
        if key.startswith("node-role.kubernetes.io/"):
            if role := key[len("node-role.kubernetes.io/") :]:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = _get(node, "status", "nodeInfo") or {}
    return Row(
        [
            _name(node),
            ",".join(states),
            ",".join(sorted(roles)) or "<none>",
            _created(node, now),
            _str(info.get("kubeletVersion")),
            _node_address(node, "InternalIP"),
            _node_address(node, "ExternalIP"),
            _str(info.get("osImage")) or "<unknown>",
            _str(info.get("kernelVersion")) or "<unknown>",
            _str(info.get("containerRuntimeVersion")) or "<unknown>",
        ]
    )


# Namespace, ConfigMap, Secret, ServiceAccount, Lease ---------------------------------------------

_NAMESPACE_COLUMNS = [_NAME, Column("Status", description="The status of the namespace"), _AGE]


def _namespace_row(ns: Mapping[str, Any], now: datetime) -> Row:
    # Kubernetes sets phase Active on create; an object stored without it reads the same way.
    return Row([_name(ns), _str(_get(ns, "status", "phase")) or "Active", _created(ns, now)])


_CONFIGMAP_COLUMNS = [_NAME, Column("Data", description="Number of data and binaryData entries."), _AGE]


def _configmap_row(cm: Mapping[str, Any], now: datetime) -> Row:
    count = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return Row([_name(cm), count, _created(cm, now)])


_SECRET_COLUMNS = [
    _NAME,
    Column("Type", description="The type of the secret."),
    Column("Data", description="Number of data entries."),
    _AGE,
]


def _secret_row(secret: Mapping[str, Any], now: datetime) -> Row:
    # "Opaque" is the API's default type.
    return Row(
        [
            _name(secret),
            _str(secret.get("type")) or "Opaque",
            len(secret.get("data") or {}),
            _created(secret, now),
        ]
    )


_SERVICEACCOUNT_COLUMNS = [_NAME, Column("Secrets", description="Number of secrets listed."), _AGE]


def _serviceaccount_row(sa: Mapping[str, Any], now: datetime) -> Row:
    return Row([_name(sa), len(_list(sa.get("secrets"))), _created(sa, now)])


_LEASE_COLUMNS = [_NAME, Column("Holder", description="Identity of the lease's current holder."), _AGE]


def _lease_row(lease: Mapping[str, Any], now: datetime) -> Row:
    return Row([_name(lease), _str(_get(lease, "spec", "holderIdentity")), _created(lease, now)])


# Service, Endpoints -----------------------------------------------------------------------------

_SERVICE_COLUMNS = [
    _NAME,
    Column("Type", description="How the service is exposed."),
    Column("Cluster-IP", description="The service's cluster IP address."),
    Column("External-IP", description="Addresses the service is reachable at from outside the cluster."),
    Column("Port(s)", description="The service's ports."),
    _AGE,
    Column("Selector", priority=1, description="Labels of the pods the service routes to."),
]


def _service_external_ip(svc: Mapping[str, Any], kind: str) -> str:
    external = [ip for ip in _list(_get(svc, "spec", "externalIPs")) if isinstance(ip, str)]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        found: set[str] = set()
        for ingress in _list(_get(svc, "status", "loadBalancer", "ingress")):
            if _str(_get(ingress, "ip")):
                found.add(_get(ingress, "ip"))
            elif _str(_get(ingress, "hostname")):
                found.add(_get(ingress, "hostname"))
        lb = sorted(found)
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if kind == "ExternalName":
        return _str(_get(svc, "spec", "externalName"))
    return "<unknown>"


def _service_row(svc: Mapping[str, Any], now: datetime) -> Row:
    spec = _get(svc, "spec") or {}
    kind = _str(spec.get("type")) or "ClusterIP"
    cluster_ips = _list(spec.get("clusterIPs"))
    cluster_ip = _str(cluster_ips[0]) if cluster_ips else _str(spec.get("clusterIP"))
    pieces = []
    for port in _list(spec.get("ports")):
        protocol = _str(_get(port, "protocol")) or "TCP"
        node_port = _int(_get(port, "nodePort"))
        number = _int(_get(port, "port"))
        pieces.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return Row(
        [
            _name(svc),
            kind,
            cluster_ip or "<none>",
            _service_external_ip(svc, kind),
            ",".join(pieces) or "<none>",
            _created(svc, now),
            _format_labels(spec.get("selector")),
        ]
    )


_ENDPOINTS_COLUMNS = [_NAME, Column("Endpoints", description="Up to three of the ready addresses."), _AGE]


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _endpoints_row(ep: Mapping[str, Any], now: datetime) -> Row:
    subsets = [s for s in _list(ep.get("subsets")) if isinstance(s, Mapping)]
    if not subsets:
        return Row([_name(ep), "<none>", _created(ep, now)])
    shown: list[str] = []
    limit, more, count = 3, False, 0
    for subset in subsets:
        ips = [_str(_get(a, "ip")) for a in _list(subset.get("addresses"))]
        ports = _list(subset.get("ports"))
        if not ports:  # a headless service without ports lists bare addresses
            count += len(ips)
            for ip in ips:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(ip)
            continue
        for port in ports:
            count += len(ips)
            for ip in ips:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(_join_host_port(ip, _int(_get(port, "port"))))
    text = ",".join(shown)
    if more:
        text = f"{text} + {count - limit} more..."
    return Row([_name(ep), text, _created(ep, now)])


# Event (core/v1 and events.k8s.io/v1) -----------------------------------------------------------

_EVENT_COLUMNS = [
    Column("Last Seen", description="When the event was last observed."),
    Column("Type", description="Normal or Warning."),
    Column("Reason", description="Short machine-readable reason for the event."),
    Column("Object", description="The object the event is about."),
    Column("Subobject", priority=1, description="The part of the object the event is about (fieldPath)."),
    Column("Source", priority=1, description="The component (and host) that reported the event."),
    Column("Message", description="Human-readable description of the event."),
    Column("First Seen", priority=1, description="When the event was first observed."),
    Column("Count", priority=1, description="How many times the event occurred."),
    Column("Name", priority=1, format="name", description=_NAME_DOC),
]


def _as_core_event(ev: Mapping[str, Any]) -> Mapping[str, Any]:
    """Read an events.k8s.io/v1 Event through the core/v1 field names the printer uses."""
    if not (_str(ev.get("apiVersion")).startswith("events.k8s.io/") or "regarding" in ev or "note" in ev):
        return ev
    return {
        "metadata": ev.get("metadata") or {},
        "involvedObject": ev.get("regarding") or {},
        "message": ev.get("note"),
        "type": ev.get("type"),
        "reason": ev.get("reason"),
        "source": ev.get("deprecatedSource") or {},
        "firstTimestamp": ev.get("deprecatedFirstTimestamp"),
        "lastTimestamp": ev.get("deprecatedLastTimestamp"),
        "count": ev.get("deprecatedCount"),
        "eventTime": ev.get("eventTime"),
        "series": ev.get("series"),
        "reportingComponent": ev.get("reportingController"),
        "reportingInstance": ev.get("reportingInstance"),
    }


def _event_row(obj: Mapping[str, Any], now: datetime) -> Row:
    ev = _as_core_event(obj)
    first = _age(ev.get("firstTimestamp"), now)
    if _timestamp(ev.get("firstTimestamp")) is None:
        first = _age(ev.get("eventTime"), now)
    last = _age(ev.get("lastTimestamp"), now)
    if _timestamp(ev.get("lastTimestamp")) is None:
        last = first
    count = _int(ev.get("count"))
    series = ev.get("series")
    if isinstance(series, Mapping):
        last = _age(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the newer API carry no count
    involved = ev.get("involvedObject") or {}
    kind = _str(_get(involved, "kind")).lower()
    target = f"{kind}/{_get(involved, 'name')}" if _str(_get(involved, "name")) else kind
    component = _str(_get(ev, "source", "component")) or _str(ev.get("reportingComponent"))
    host = _str(_get(ev, "source", "host")) or _str(ev.get("reportingInstance"))
    source = f"{component}, {host}" if host else component
    return Row(
        [
            last,
            _str(ev.get("type")),
            _str(ev.get("reason")),
            target,
            _str(_get(involved, "fieldPath")),
            source,
            _str(ev.get("message")).strip(),
            first,
            count,
            _name(ev),
        ]
    )


# Workloads --------------------------------------------------------------------------------------

_DEPLOYMENT_COLUMNS = [
    _NAME,
    Column("Ready", description="Number of the pod with ready state"),
    Column("Up-to-date", description="Replicas updated to the current pod template."),
    Column("Available", description="Replicas available to serve."),
    _AGE,
    Column("Containers", priority=1, description=_CONTAINERS_DOC),
    Column("Images", priority=1, description=_IMAGES_DOC),
    Column("Selector", priority=1, description="Label selector of the pods the deployment manages."),
]


def _replicas(obj: Mapping[str, Any]) -> int:
    # spec.replicas defaults to 1 in apps/v1.
    value = _get(obj, "spec", "replicas")
    return _int(value) if value is not None else 1


def _deployment_row(dep: Mapping[str, Any], now: datetime) -> Row:
    status = _get(dep, "status") or {}
    names, images = _containers(_get(dep, "spec", "template", "spec"))
    return Row(
        [
            _name(dep),
            f"{_int(status.get('readyReplicas'))}/{_replicas(dep)}",
            _int(status.get("updatedReplicas")),
            _int(status.get("availableReplicas")),
            _created(dep, now),
            names,
            images,
            _selector_string(_get(dep, "spec", "selector"), empty="", invalid="<invalid>"),
        ]
    )


_REPLICASET_COLUMNS = [
    _NAME,
    Column("Desired", "integer", description="Number of replicas wanted."),
    Column("Current", "integer", description="Number of replicas running."),
    Column("Ready", "integer", description="Number of replicas ready."),
    _AGE,
    Column("Containers", priority=1, description=_CONTAINERS_DOC),
    Column("Images", priority=1, description=_IMAGES_DOC),
    Column("Selector", priority=1, description="Label selector of the pods the replica set manages."),
]


def _replicaset_row(rs: Mapping[str, Any], now: datetime) -> Row:
    status = _get(rs, "status") or {}
    names, images = _containers(_get(rs, "spec", "template", "spec"))
    return Row(
        [
            _name(rs),
            _replicas(rs),
            _int(status.get("replicas")),
            _int(status.get("readyReplicas")),
            _created(rs, now),
            names,
            images,
            _selector_string(_get(rs, "spec", "selector"), empty="<none>", invalid="<error>"),
        ]
    )


_STATEFULSET_COLUMNS = [
    _NAME,
    Column("Ready", description="Number of the pod with ready state"),
    _AGE,
    Column("Containers", priority=1, description=_CONTAINERS_DOC),
    Column("Images", priority=1, description=_IMAGES_DOC),
]


def _statefulset_row(sts: Mapping[str, Any], now: datetime) -> Row:
    names, images = _containers(_get(sts, "spec", "template", "spec"))
    ready = _int(_get(sts, "status", "readyReplicas"))
    return Row([_name(sts), f"{ready}/{_replicas(sts)}", _created(sts, now), names, images])


_DAEMONSET_COLUMNS = [
    _NAME,
    Column("Desired", "integer", description="Number of nodes that should run the daemon pod."),
    Column("Current", "integer", description="Number of nodes running at least one daemon pod."),
    Column("Ready", "integer", description="Number of nodes whose daemon pod is ready."),
    Column("Up-to-date", "integer", description="Number of nodes running the updated daemon pod."),
    Column("Available", "integer", description="Number of nodes whose daemon pod is available."),
    Column("Node Selector", description="Node labels the daemon pods are restricted to."),
    _AGE,
    Column("Containers", priority=1, description=_CONTAINERS_DOC),
    Column("Images", priority=1, description=_IMAGES_DOC),
    Column("Selector", priority=1, description="Label selector of the pods the daemon set manages."),
]


def _daemonset_row(ds: Mapping[str, Any], now: datetime) -> Row:
    status = _get(ds, "status") or {}
    pod_spec = _get(ds, "spec", "template", "spec")
    names, images = _containers(pod_spec)
    return Row(
        [
            _name(ds),
            _int(status.get("desiredNumberScheduled")),
            _int(status.get("currentNumberScheduled")),
            _int(status.get("numberReady")),
            _int(status.get("updatedNumberScheduled")),
            _int(status.get("numberAvailable")),
            _format_labels(_get(pod_spec, "nodeSelector")),
            _created(ds, now),
            names,
            images,
            _selector_string(_get(ds, "spec", "selector"), empty="<none>", invalid="<error>"),
        ]
    )


# RBAC bindings ----------------------------------------------------------------------------------


def _binding_columns(what: str) -> list[Column]:
    return [
        _NAME,
        Column("Role", description="The role the binding grants (kind/name)."),
        _AGE,
        Column("Users", priority=1, description=f"Users in the {what}"),
        Column("Groups", priority=1, description=f"Groups in the {what}"),
        Column("ServiceAccounts", priority=1, description=f"ServiceAccounts in the {what}"),
    ]


def _binding_row(binding: Mapping[str, Any], now: datetime) -> Row:
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    for subject in _list(binding.get("subjects")):
        kind, name = _get(subject, "kind"), _str(_get(subject, "name"))
        if kind == "ServiceAccount":
            accounts.append(f"{_str(_get(subject, 'namespace'))}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    role = f"{_str(_get(binding, 'roleRef', 'kind'))}/{_str(_get(binding, 'roleRef', 'name'))}"
    return Row(
        [
            _name(binding),
            role,
            _created(binding, now),
            ", ".join(users),
            ", ".join(groups),
            ", ".join(accounts),
        ]
    )


def _default_row(obj: Mapping[str, Any], now: datetime) -> Row:
    # Go's Time.UTC().Format(time.RFC3339): whole seconds, "Z"; an unset time is year 1.
    t = (_timestamp(_get(obj, "metadata", "creationTimestamp")) or _ZERO_TIME).astimezone(UTC)
    created = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"
    return Row([_name(obj), created])


_PRINTERS: dict[str, tuple[list[Column], Printer]] = {
    "Pod": (_POD_COLUMNS, _pod_row),
    "Node": (_NODE_COLUMNS, _node_row),
    "Namespace": (_NAMESPACE_COLUMNS, _namespace_row),
    "Service": (_SERVICE_COLUMNS, _service_row),
    "Endpoints": (_ENDPOINTS_COLUMNS, _endpoints_row),
    "ConfigMap": (_CONFIGMAP_COLUMNS, _configmap_row),
    "Secret": (_SECRET_COLUMNS, _secret_row),
    "ServiceAccount": (_SERVICEACCOUNT_COLUMNS, _serviceaccount_row),
    "Event": (_EVENT_COLUMNS, _event_row),
    "Lease": (_LEASE_COLUMNS, _lease_row),
    "Deployment": (_DEPLOYMENT_COLUMNS, _deployment_row),
    "ReplicaSet": (_REPLICASET_COLUMNS, _replicaset_row),
    "StatefulSet": (_STATEFULSET_COLUMNS, _statefulset_row),
    "DaemonSet": (_DAEMONSET_COLUMNS, _daemonset_row),
    "RoleBinding": (_binding_columns("roleBinding"), _binding_row),
    "ClusterRoleBinding": (_binding_columns("clusterRoleBinding"), _binding_row),
}


def printed_kinds() -> frozenset[str]:
    """Kinds with a dedicated printer; every other kind gets :func:`default_columns`."""
    return frozenset(_PRINTERS)


def columns_for_builtin(kind: str) -> list[Column]:
    """The columns kube-apiserver sends for a built-in kind (``Name``/``Created At`` if it has no printer)."""
    entry = _PRINTERS.get(kind)
    return list(entry[0]) if entry else default_columns()


def builtin_table_rows(
    kind: str, objects: Sequence[Mapping[str, Any]], now: datetime | None = None
) -> tuple[list[Column], list[Row]]:
    """Columns and one row per object for a built-in kind, as kube-apiserver's printers make them.

    Events of both ``v1`` and ``events.k8s.io/v1`` are ``kind="Event"``. Kinds without a printer
    (Role, ClusterRole, CustomResourceDefinition, ...) get ``Name`` and ``Created At`` (RFC 3339).
    ``now`` defaults to the current time; tests pass it to get fixed ages.
    """
    at = now or datetime.now(UTC)
    entry = _PRINTERS.get(kind)
    if entry is None:
        return default_columns(), [_default_row(obj, at) for obj in objects]
    columns, printer = entry
    return list(columns), [printer(obj, at) for obj in objects]


# --------------------------------------------------------------------------------------------------
# The Table object
# --------------------------------------------------------------------------------------------------


def table(
    objects: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    rows: Sequence[Row] | None = None,
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str | None = None,
    remaining_item_count: int | None = None,
    api_version: str = "meta.k8s.io/v1",
    include_headers: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build a ``meta.k8s.io`` ``Table`` of ``objects`` (a list, or the one object of a GET).

    ``rows`` are the precomputed rows of a built-in printer (:func:`builtin_table_rows`), one per
    object; without them each column's JSONPath is evaluated (custom resources). ``include_object``
    is the request's ``includeObject``: ``Metadata`` (the default) embeds each object's metadata as a
    ``PartialObjectMetadata``, ``Object`` the whole object, ``None`` nothing. ``include_headers=False``
    leaves out the column definitions, as for watch events after the first.
    """
    if api_version not in TABLE_API_VERSIONS:
        raise StatusError(406, f"no Table exists in group version {api_version.rsplit('/', 1)[0]}")
    policy = include_object or "Metadata"
    if policy not in _INCLUDE_OBJECT:
        raise StatusError(400, f'unrecognized includeObject value: "{include_object}"')
    if rows is None:
        rows = rows_for_columns(objects, columns, now or datetime.now(UTC))
    if len(rows) != len(objects):
        raise ValueError(f"{len(rows)} rows for {len(objects)} objects")

    out_rows: list[dict[str, Any]] = []
    for obj, row in zip(objects, rows, strict=True):
        entry: dict[str, Any] = {"cells": list(row.cells)}
        if row.conditions:
            entry["conditions"] = [dict(c) for c in row.conditions]
        if policy == "Object":
            entry["object"] = obj
        elif policy == "Metadata":
            entry["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": api_version,
                "metadata": obj.get("metadata") or {},
            }
        else:
            entry["object"] = None
        out_rows.append(entry)

    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    if remaining_item_count is not None:
        metadata["remainingItemCount"] = remaining_item_count
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": [c.definition() for c in columns] if include_headers else None,
        "rows": out_rows,
    }


def builtin_table(kind: str, objects: Sequence[Mapping[str, Any]], **options: Any) -> dict[str, Any]:
    """:func:`table` of a built-in kind with its printer's columns and rows; ``options`` as for :func:`table`."""
    columns, rows = builtin_table_rows(kind, objects, options.get("now"))
    return table(objects, columns, rows=rows, **options)
