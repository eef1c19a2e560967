"""The Tinkerbell workflow that installs one machine: its template, its rendering, and its run.

**Templates.** A machine uses its TinkerbellTemplateConfig's workflow (the TinkerbellMachine's
``templateOverride``) or, without one, the default EKS Anywhere generates for its OS family
(:func:`default_template`), with the same actions, images and settings:

* every family: ``stream-image`` (image2disk) writes the OS image to the first disk;
* ubuntu (root filesystem on partition 2) and redhat (partition 1): ``write-netplan`` (a static
  netplan built from the metadata service), ``disable-cloud-init-network-capabilities``,
  ``add-tink-cloud-init-config`` (cloud-init's Ec2 datasource pointed at the Tinkerbell metadata
  service, Hegel, on ``http://<tinkerbellIP>:50061``), ``add-tink-cloud-init-ds-config``, then
  ``reboot-image``;
* bottlerocket (partition 12): ``write-bootconfig``, ``write-user-data`` (``/user-data.toml``
  pointing at Hegel), ``write-netplan`` (a static ``/net.toml``), then ``reboot-image``.

Disks are not written into the template: as in EKS Anywhere, the template names
``{{ index .Hardware.Disks 0 }}`` and ``{{ formatPartition ( index .Hardware.Disks 0 ) N }}``, and
the worker is ``{{.device_1}}``; Tinkerbell fills them in per machine.

**Rendering.** :func:`render_workflow` does what Tinkerbell's workflow controller does with Go's
text/template, for the expressions templates use: fields of ``.`` (``.device_1``, ``.Hardware.Disks``,
``.Hardware.Interfaces``), ``index``, ``formatPartition`` and ``netmaskToPrefixLength``, parenthesised
and chained (``(index .Hardware.Interfaces 0).DHCP.IP.Address``), with any spacing and ``{{-``/``-}}``.
Anything else (an unknown field or function, ``if``/``range``, a pipe) is a ValueError naming the
placeholder and the action it is in: a template is never run with a placeholder left in it.

**Running.** No real server boots here, so the plane plays tink-worker: once the controller sees the
server netbooted, every action is reported successful, one per step (:func:`run_next_action`), until
the workflow is ``STATE_SUCCESS``. Nothing is streamed or written anywhere.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.api.capi.tinkerbell import (
    STATE_FAILED,
    STATE_PENDING,
    STATE_RUNNING,
    STATE_SUCCESS,
    STATE_TIMEOUT,
    TINKERBELL_API_VERSION,
)
from anywhere.controllers.objects import owner_reference
from anywhere.providers.tinkerbell.pool import mac_of

__all__ = [
    "ACTION_IMAGES",
    "STATE_FAILED",
    "STATE_PENDING",
    "STATE_RUNNING",
    "STATE_SUCCESS",
    "STATE_TIMEOUT",
    "WorkflowValues",
    "default_template",
    "render_workflow",
    "run_next_action",
    "workflow_object",
]

Obj = dict[str, Any]


HEGEL_PORT: Final = 50061
"""The port of Tinkerbell's metadata service (Hegel) in EKS Anywhere's templates."""

_HUB: Final = "public.ecr.aws/eks-anywhere/tinkerbell/hub"
_ACTIONS_TAG: Final = "6c0f0d437bde2c836d90b000312c8b25fa1b65e1-eks-a-36"
ACTION_IMAGES: Final[Mapping[str, str]] = {
    name: f"{_HUB}/{name}:{_ACTIONS_TAG}" for name in ("image2disk", "writefile", "reboot", "kexec")
}
"""The Tinkerbell hub actions as EKS Anywhere's release publishes them on its public ECR."""

BOTTLEROCKET: Final = "bottlerocket"
UBUNTU: Final = "ubuntu"
REDHAT: Final = "redhat"
# The partition holding the root filesystem (ubuntu: 1 is EFI) or, for Bottlerocket, its private
# partition where bootconfig, user data and network settings go.
_PARTITION: Final = {BOTTLEROCKET: 12, UBUNTU: 2, REDHAT: 1}

_DISK: Final = "{{ index .Hardware.Disks 0 }}"
_CLOUD_INIT: Final = (
    "datasource:\n"
    "  Ec2:\n"
    "    metadata_urls: [{urls}]\n"
    "    strict_id: false\n"
    "manage_etc_hosts: localhost\n"
    "warnings:\n"
    "  dsid_missing_source: off\n"
)


@dataclass(frozen=True)
class WorkflowValues:
    """What a template is rendered with: one machine's hardware and where its OS comes from.

    ``os_image_url`` is what the default template streams; EKS Anywhere falls back to its release
    bundle's Bottlerocket image, but there are no bundles here, so the default needs it for every
    OS family.
    """

    hardware_name: str
    mac: str
    disk: str
    os_family: str
    os_image_url: str
    tinkerbell_ip: str
    hostname: str
    ip: str
    netmask: str
    gateway: str = ""
    nameservers: tuple[str, ...] = ()
    kubernetes_version: str = ""
    template_name: str = ""
    """The default template's name (EKS Anywhere names it after the cluster); the hardware's if empty."""


# --------------------------------------------------------------------------- default templates


def _write(name: str, disk: str, path: str, mode: str, dirmode: str, **extra: str) -> Obj:
    environment = {
        "DEST_DISK": disk,
        "FS_TYPE": "ext4",
        "DEST_PATH": path,
        "UID": "0",
        "GID": "0",
        "MODE": mode,
        "DIRMODE": dirmode,
        **extra,
    }
    return {"name": name, "image": ACTION_IMAGES["writefile"], "timeout": 90, "environment": environment}


def _reboot() -> Obj:
    return {
        "name": "reboot-image",
        "image": ACTION_IMAGES["reboot"],
        "timeout": 90,
        "pid": "host",
        "volumes": ["/worker:/worker"],
    }


def default_template(os_family: str, *, name: str, os_image_url: str, tinkerbell_ip: str) -> Obj:
    """EKS Anywhere's default workflow for ``os_family`` (see the module doc), disks and worker left
    as placeholders. Raises ValueError for an unknown OS family, or without an image (EKS Anywhere
    imports Bottlerocket images from its release bundle; anywhere has none)."""
    if os_family not in _PARTITION:
        raise ValueError(f"unknown osFamily {os_family!r}: expected one of {', '.join(sorted(_PARTITION))}")
    if not os_image_url:
        bundle = (
            " (EKS Anywhere would take Bottlerocket's from its release bundle; anywhere has none)"
            if os_family == BOTTLEROCKET
            else ""
        )
        raise ValueError(
            f"osImageURL is required for osFamily {os_family}: the default workflow streams it{bundle}"
        )
    partition = f"{{{{ formatPartition ( index .Hardware.Disks 0 ) {_PARTITION[os_family]} }}}}"
    hegel = f"http://{tinkerbell_ip}:{HEGEL_PORT}"
    actions: list[Obj] = [
        {
            "name": "stream-image",
            "image": ACTION_IMAGES["image2disk"],
            "timeout": 600,
            "environment": {"DEST_DISK": _DISK, "IMG_URL": os_image_url, "COMPRESSED": "true"},
        }
    ]
    netplan = _write("write-netplan", partition, "/etc/netplan/config.yaml", "0644", "0755")
    netplan["pid"] = "host"
    if os_family == BOTTLEROCKET:
        netplan["environment"].update(DEST_PATH="/net.toml", STATIC_BOTTLEROCKET="true", IFNAME="eno1")
        bootconfig = _write(
            "write-bootconfig", partition, "/bootconfig.data", "0644", "0700", BOOTCONFIG_CONTENTS="kernel {}"
        )
        user_data = _write("write-user-data", partition, "/user-data.toml", "0644", "0700", HEGEL_URLS=hegel)
        for action in (bootconfig, user_data):
            action["pid"] = "host"
        # Order matters: write-netplan appends to the user-data.toml write-user-data wrote.
        actions += [bootconfig, user_data, netplan]
    else:
        netplan["environment"]["STATIC_NETPLAN"] = "true"
        urls = f"'{hegel}'" if os_family == REDHAT else hegel
        actions += [
            netplan,
            _write(
                "disable-cloud-init-network-capabilities",
                partition,
                "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg",
                "0600",
                "0700",
                CONTENTS="network: {config: disabled}",
            ),
            _write(
                "add-tink-cloud-init-config",
                partition,
                "/etc/cloud/cloud.cfg.d/10_tinkerbell.cfg",
                "0600",
                "0700",
                CONTENTS=_CLOUD_INIT.format(urls=urls),
            ),
            _write(
                "add-tink-cloud-init-ds-config",
                partition,
                "/etc/cloud/ds-identify.cfg",
                "0600",
                "0700",
                CONTENTS="datasource: Ec2\n",
            ),
        ]
    actions.append(_reboot())
    return {
        "version": "0.1",
        "name": name,
        "global_timeout": 6000,
        "tasks": [
            {
                "name": name,
                "worker": "{{.device_1}}",
                "volumes": ["/dev:/dev", "/dev/console:/dev/console", "/lib/firmware:/lib/firmware:ro"],
                "actions": actions,
            }
        ],
    }


# --------------------------------------------------------------------------- Go template subset

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(r"\s+|\(|\)|-?\d+|\.[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*|[A-Za-z_][A-Za-z0-9_]*|\S")


class _TemplateError(ValueError):
    """Why one placeholder cannot be rendered (the caller adds where it is)."""

    placeholder = ""


def _format_partition(device: object, partition: object) -> str:
    """Tinkerbell's formatPartition: /dev/sda 1 -> /dev/sda1, /dev/nvme0n1 1 -> /dev/nvme0n1p1,
    /dev/disk/by-id/x 1 -> /dev/disk/by-id/x-part1."""
    if not isinstance(device, str) or not isinstance(partition, int):
        raise _TemplateError("formatPartition takes a device path and a partition number")
    if device.startswith("/dev/disk/"):
        return f"{device}-part{partition}"
    if device[-1:].isdigit():
        return f"{device}p{partition}"
    return f"{device}{partition}"


def _index(collection: object, position: object) -> object:
    if not isinstance(collection, list) or not isinstance(position, int):
        raise _TemplateError("index takes a list and a number")
    if not 0 <= position < len(collection):
        raise _TemplateError(f"index {position} is out of range: the list has {len(collection)} item(s)")
    return collection[position]


def _prefix_length(netmask: object) -> str:
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen)
    except ValueError:
        raise _TemplateError(f"netmaskToPrefixLength: {netmask!r} is not a netmask") from None


_FUNCTIONS: Final[dict[str, Callable[..., object]]] = {
    "index": _index,
    "formatPartition": _format_partition,
    "netmaskToPrefixLength": _prefix_length,
}


class _Expression:
    """One ``{{ ... }}`` action of the supported subset, evaluated against ``data``."""

    def __init__(self, text: str, data: Obj) -> None:
        self.data = data
        self.tokens: list[tuple[str, int, int]] = [
            (m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text) if not m.group().isspace()
        ]
        self.at = 0

    def evaluate(self) -> object:
        value = self._command()
        if self.at < len(self.tokens):
            raise _TemplateError(f"unexpected {self.tokens[self.at][0]!r}")
        return value

    def _command(self) -> object:
        if self.at >= len(self.tokens) or self.tokens[self.at][0] == ")":
            raise _TemplateError("empty expression")
        head = self.tokens[self.at][0]
        if head in ("if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"):
            raise _TemplateError(f"{head!r} is not supported in workflow templates here")
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head):
            function = _FUNCTIONS.get(head)
            if function is None:
                raise _TemplateError(f"unknown function {head!r}")
            self.at += 1
            args = []
            while self.at < len(self.tokens) and self.tokens[self.at][0] not in (")", "|"):
                args.append(self._operand())
            self._no_pipe()
            try:
                return function(*args)
            except TypeError:
                raise _TemplateError(f"wrong number of arguments to {head}") from None
        value = self._operand()
        if self.at < len(self.tokens) and self.tokens[self.at][0] not in (")",):
            self._no_pipe()
            raise _TemplateError(f"{self.tokens[self.at][0]!r} follows a value that is not a function")
        return value

    def _no_pipe(self) -> None:
        if self.at < len(self.tokens) and self.tokens[self.at][0] == "|":
            raise _TemplateError("pipes ('|') are not supported in workflow templates here")

    def _operand(self) -> object:
        token, _, end = self.tokens[self.at]
        self.at += 1
        if token == "(":
            value = self._command()
            if self.at >= len(self.tokens) or self.tokens[self.at][0] != ")":
                raise _TemplateError("unclosed '('")
            end = self.tokens[self.at][2]
            self.at += 1
            # (expr).Field: a field chain written right after the parenthesis.
            if (
                self.at < len(self.tokens)
                and self.tokens[self.at][0].startswith(".")
                and self.tokens[self.at][1] == end
            ):
                value = self._fields(value, self.tokens[self.at][0])
                self.at += 1
            return value
        if token.startswith("."):
            return self._fields(self.data, token)
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if token in _FUNCTIONS:
            raise _TemplateError(f"function {token} must be called in parentheses here")
        raise _TemplateError(f"unexpected {token!r}")

    @staticmethod
    def _fields(value: object, chain: str) -> object:
        if chain == ".":
            return value
        for name in chain.strip(".").split("."):
            if not isinstance(value, dict) or name not in value:
                known = f": it has {', '.join(sorted(value))}" if isinstance(value, dict) else ""
                raise _TemplateError(f"unknown field {name!r} in {chain}{known}")
            value = value[name]
        return value


def _placeholder_error(placeholder: str, reason: str) -> _TemplateError:
    error = _TemplateError(reason)
    error.placeholder = placeholder
    return error


def _render_text(text: str, data: Obj) -> str:
    out: list[str] = []
    last = 0
    for match in _ACTION.finditer(text):
        before = text[last : match.start()]
        if match.group(1):
            before = before.rstrip()
        out.append(before)
        expression = match.group(2).strip()
        if expression.startswith("/*") and expression.endswith("*/"):
            value: object = ""  # a comment
        else:
            try:
                value = _Expression(expression, data).evaluate()
            except _TemplateError as exc:
                raise _placeholder_error(match.group(), str(exc)) from None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _placeholder_error(match.group(), f"it is a {type(value).__name__}, not text")
        out.append(str(value))
        last = match.end()
        if match.group(3):
            rest = text[last:]
            last += len(rest) - len(rest.lstrip())
    tail = text[last:]
    if "{{" in tail:
        raise _placeholder_error(tail[tail.index("{{") :][:40], "it is never closed with '}}'")
    out.append(tail)
    return "".join(out)


def _render(value: object, data: Obj, where: str, path: str) -> object:
    """``value`` with its placeholders filled in; ``where`` (the action, the task) and ``path`` (the
    field in it) name it in an error."""
    if isinstance(value, str):
        try:
            return _render_text(value, data)
        except _TemplateError as exc:
            field = f" ({path})" if path else ""
            raise ValueError(
                f"cannot render placeholder {exc.placeholder!r} in {where}{field}: {exc}"
            ) from None
    if isinstance(value, list):
        return [_render(item, data, where, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            _render(k, data, where, path): _render(v, data, where, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    return value


def _data(values: WorkflowValues) -> Obj:
    """What Tinkerbell exposes to a template: the hardware map, and the Hardware's disks and interfaces
    (Go field names)."""
    ip = {"Address": values.ip, "Netmask": values.netmask, "Gateway": values.gateway}
    dhcp = {
        "MAC": values.mac,
        "Hostname": values.hostname,
        "IP": ip,
        "NameServers": list(values.nameservers),
    }
    return {
        "device_1": values.mac,
        "Hardware": {"Disks": [values.disk] if values.disk else [], "Interfaces": [{"DHCP": dhcp}]},
    }


def render_workflow(template: Mapping[str, Any] | str | None, values: WorkflowValues) -> Obj:
    """The workflow for one machine: ``template`` (a TinkerbellTemplateConfig's ``spec.template`` as
    a dict, or the YAML text of a TinkerbellMachine's ``templateOverride``) or, when it is None or
    empty, the OS family's default, with every placeholder filled in. Raises ValueError naming the
    placeholder and where it is when one cannot be rendered."""
    if isinstance(template, str):
        try:
            template = yaml.safe_load(template) if template.strip() else None
        except yaml.YAMLError as exc:
            raise ValueError(f"the workflow template is not valid YAML: {exc}") from None
        if template is not None and not isinstance(template, dict):
            raise ValueError("the workflow template must be a mapping (version, name, tasks)")
    if not template:
        template = default_template(
            values.os_family,
            name=values.template_name or values.hardware_name,
            os_image_url=values.os_image_url,
            tinkerbell_ip=values.tinkerbell_ip,
        )
    data = _data(values)
    rendered: Obj = {}
    for key, value in template.items():
        if key != "tasks" or not isinstance(value, list):
            rendered[key] = _render(value, data, "the template", str(key))
            continue
        tasks = []
        for task in value:
            task_name = task.get("name") if isinstance(task, dict) else None
            out: Obj = {}
            for tkey, tvalue in task.items() if isinstance(task, dict) else ():
                if tkey == "actions" and isinstance(tvalue, list):
                    out[tkey] = [
                        _render(action, data, f"action {_name(action)!r} of task {task_name!r}", "")
                        for action in tvalue
                    ]
                else:
                    out[tkey] = _render(tvalue, data, f"task {task_name!r}", str(tkey))
            tasks.append(out)
        rendered[key] = tasks
    return rendered


def _name(action: object) -> str:
    return str(action.get("name")) if isinstance(action, dict) else "?"


# --------------------------------------------------------------------------- the Workflow object


def _pending_status(rendered: Mapping[str, Any]) -> Obj:
    tasks = []
    for task in rendered.get("tasks") or []:
        actions = []
        for action in task.get("actions") or []:
            entry: Obj = {"name": action.get("name"), "image": action.get("image"), "status": STATE_PENDING}
            if action.get("timeout") is not None:
                entry["timeout"] = action["timeout"]
            actions.append(entry)
        tasks.append({"name": task.get("name"), "workerID": task.get("worker"), "actions": actions})
    status: Obj = {"state": STATE_PENDING, "tasks": tasks}
    if rendered.get("global_timeout") is not None:
        status["globalTimeout"] = rendered["global_timeout"]
    return status


def workflow_object(
    machine: Mapping[str, Any], hardware: Mapping[str, Any], rendered: Mapping[str, Any]
) -> Obj:
    """The Workflow of TinkerbellMachine ``machine`` on ``hardware``: same name and namespace, owned
    by (and labelled with the cluster of) the machine, the rendered workflow kept as YAML in
    ``spec.rendered``, every action pending."""
    meta = machine.get("metadata") or {}
    cluster = (meta.get("labels") or {}).get(CLUSTER_NAME_LABEL)
    owner = owner_reference(dict(machine), controller=True)
    metadata: Obj = {"name": meta.get("name"), "namespace": meta.get("namespace"), "ownerReferences": [owner]}
    if cluster:
        metadata["labels"] = {CLUSTER_NAME_LABEL: cluster}
    return {
        "apiVersion": TINKERBELL_API_VERSION,
        "kind": "Workflow",
        "metadata": metadata,
        "spec": {
            "templateRef": rendered.get("name") or meta.get("name"),
            "hardwareRef": (hardware.get("metadata") or {}).get("name"),
            "hardwareMap": {"device_1": mac_of(dict(hardware))},
            "rendered": yaml.safe_dump(dict(rendered), sort_keys=False),
        },
        "status": _pending_status(rendered),
    }


# --------------------------------------------------------------------------- the simulated worker


def run_next_action(workflow: Mapping[str, Any], now: str) -> Obj | None:
    """The simulated tink-worker's step: the workflow's status after its next pending action ran
    successfully at ``now`` (``STATE_RUNNING`` while actions remain, ``STATE_SUCCESS`` after the
    last); None when the workflow has finished (or failed) and nothing is left to run. A workflow
    whose status was never written starts from ``spec.rendered``."""
    status = copy.deepcopy(dict(workflow.get("status") or {}))
    if status.get("state") in (STATE_SUCCESS, STATE_FAILED, STATE_TIMEOUT):
        return None
    if not status.get("tasks"):
        rendered = yaml.safe_load(str((workflow.get("spec") or {}).get("rendered") or "")) or {}
        status["tasks"] = _pending_status(rendered if isinstance(rendered, dict) else {})["tasks"]
    remaining = [
        action
        for task in status["tasks"]
        for action in task.get("actions") or []
        if action.get("status") != STATE_SUCCESS
    ]
    if remaining:
        action = remaining[0]
        action.update(
            status=STATE_SUCCESS,
            startedAt=now,
            seconds=0,
            message="finished successfully (simulated tink-worker: no server boots here)",
        )
    status["state"] = STATE_RUNNING if len(remaining) > 1 else STATE_SUCCESS
    return status
