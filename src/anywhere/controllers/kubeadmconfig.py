"""The kubeadm bootstrap controller: a KubeadmConfig becomes the machine's bootstrap data.

What Cluster API's bootstrap provider does, for the ``cloud-config`` format: the config's files,
users, NTP settings and commands, and the kubeadm configuration file that ``kubeadm init`` (the
first control plane machine) or ``kubeadm join`` (every other machine) reads, rendered as
cloud-init user data into the Secret ``<config name>`` that the Machine then names in
``spec.bootstrap.dataSecretName``. The infrastructure provider waits for that name before it boots.

Bootstrap data is rendered once: a ready config whose Secret exists is never rendered again, so a
machine boots with the data it was promised even if its config is edited later (Cluster API's rule).
The data can hold secrets (file contents from Secrets, password hashes), so it is never logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

import yaml

from anywhere.api.capi import BOOTSTRAP_API_VERSION, CLUSTER_NAME_LABEL
from anywhere.api.capi.kubeadm import FORMAT_CLOUD_CONFIG, FORMAT_IGNITION
from anywhere.controllers import conditions
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    FIELD_MANAGER,
    cluster_paused,
    deleting,
    is_paused,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    owner_reference,
    write_status,
)
from anywhere.controllers.resources import CAPI_CLUSTERS, KUBEADM_CONFIGS, SECRETS
from anywhere.runtime import AlreadyExistsError, Controller, Result, enqueue_mapped, enqueue_owner

__all__ = [
    "DATA_SECRET_AVAILABLE",
    "INIT_CONFIG_PATH",
    "JOIN_CONFIG_PATH",
    "SECRET_TYPE",
    "MissingSecretError",
    "controller",
    "is_init",
    "render_cloud_config",
    "resolve_secret_sources",
]

log = logging.getLogger("anywhere.controllers.kubeadmconfig")
Obj = dict[str, Any]

DATA_SECRET_AVAILABLE: Final = "DataSecretAvailable"
GENERATION_FAILED: Final = "DataSecretGenerationFailed"
SECRET_TYPE: Final = "cluster.x-k8s.io/secret"
INIT_CONFIG_PATH: Final = "/run/kubeadm/kubeadm.yaml"
JOIN_CONFIG_PATH: Final = "/run/kubeadm/kubeadm-join-config.yaml"
KUBEADM_API_VERSION: Final = "kubeadm.k8s.io/v1beta3"
SUCCESS_SENTINEL: Final = "/run/cluster-api/bootstrap-success.complete"
# How soon to look again for a Secret a file's content comes from (its creation is not watched).
MISSING_SECRET_RETRY: Final = 5.0


class MissingSecretError(Exception):
    """A file's or user's content comes from a Secret (or a key) that does not exist (yet)."""


# -- rendering (pure) --------------------------------------------------------------------------------


def is_init(spec: Mapping[str, Any]) -> bool:
    """Whether the machine runs ``kubeadm init`` (an init configuration, or nothing to join with)."""
    return spec.get("initConfiguration") is not None or spec.get("joinConfiguration") is None


def _secret_value(secrets: Mapping[str, Obj], ref: Mapping[str, Any], what: str) -> str:
    name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
    secret = secrets.get(name)
    if secret is None:
        raise MissingSecretError(f"{what}: Secret {name!r} not found")
    encoded = (secret.get("data") or {}).get(key)
    if encoded is None:
        raise MissingSecretError(f"{what}: Secret {name!r} has no key {key!r}")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise MissingSecretError(f"{what}: Secret {name!r} key {key!r} is not base64") from None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise MissingSecretError(f"{what}: Secret {name!r} key {key!r} is not UTF-8 text") from None


def resolve_secret_sources(spec: Mapping[str, Any], secrets: Mapping[str, Obj]) -> Obj:
    """A copy of ``spec`` whose files' ``contentFrom.secret`` and users' ``passwdFrom.secret`` are
    replaced by the values (from ``secrets``: name -> Secret of the config's namespace).
    Raises :class:`MissingSecretError` naming what is missing."""
    out: Obj = dict(spec)
    files: list[Obj] = []
    for file in spec.get("files") or ():
        entry = {k: v for k, v in file.items() if k != "contentFrom"}
        source = (file.get("contentFrom") or {}).get("secret")
        if source is not None:
            entry["content"] = _secret_value(secrets, source, f"file {file.get('path')}")
        files.append(entry)
    if files:
        out["files"] = files
    users: list[Obj] = []
    for user in spec.get("users") or ():
        entry = {k: v for k, v in user.items() if k != "passwdFrom"}
        source = (user.get("passwdFrom") or {}).get("secret")
        if source is not None:
            entry["passwd"] = _secret_value(secrets, source, f"password of user {user.get('name')}")
        users.append(entry)
    if users:
        out["users"] = users
    return out


def _secret_names(spec: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for item, field in [(f, "contentFrom") for f in spec.get("files") or ()] + [
        (u, "passwdFrom") for u in spec.get("users") or ()
    ]:
        source = (item.get(field) or {}).get("secret")
        if source is not None:
            names.add(str(source.get("name") or ""))
    return names


def _kubeadm_document(config: Mapping[str, Any] | None, kind: str) -> Obj:
    document: Obj = {"apiVersion": KUBEADM_API_VERSION, "kind": kind}
    document.update(config or {})
    return document


def kubeadm_config_file(spec: Mapping[str, Any]) -> tuple[str, str]:
    """The path and YAML content of the kubeadm configuration: ClusterConfiguration and
    InitConfiguration for init, JoinConfiguration for join."""
    if is_init(spec):
        documents = [
            _kubeadm_document(spec.get("clusterConfiguration"), "ClusterConfiguration"),
            _kubeadm_document(spec.get("initConfiguration"), "InitConfiguration"),
        ]
        return INIT_CONFIG_PATH, _dump_all(documents)
    return JOIN_CONFIG_PATH, _dump_all(
        [_kubeadm_document(spec.get("joinConfiguration"), "JoinConfiguration")]
    )


_FILE_FIELDS: Final = (
    ("path", "path"),
    ("owner", "owner"),
    ("permissions", "permissions"),
    ("encoding", "encoding"),
    ("append", "append"),
    ("content", "content"),
)
_USER_FIELDS: Final = (
    ("name", "name"),
    ("gecos", "gecos"),
    ("groups", "groups"),
    ("homeDir", "homedir"),
    ("inactive", "inactive"),
    ("shell", "shell"),
    ("passwd", "passwd"),
    ("primaryGroup", "primary_group"),
    ("lockPassword", "lock_passwd"),
    ("sudo", "sudo"),
    ("sshAuthorizedKeys", "ssh_authorized_keys"),
)


def _pick(obj: Mapping[str, Any], fields: Iterable[tuple[str, str]]) -> Obj:
    return {out: obj[key] for key, out in fields if obj.get(key) is not None}


def render_cloud_config(spec: Mapping[str, Any]) -> str:
    """The cloud-init user data (``#cloud-config``) of a KubeadmConfig spec whose secret sources are
    resolved (see :func:`resolve_secret_sources`)."""
    init = is_init(spec)
    config_path, config_content = kubeadm_config_file(spec)
    write_files = [_pick(f, _FILE_FIELDS) for f in spec.get("files") or ()]
    write_files.append(
        {"path": config_path, "owner": "root:root", "permissions": "0640", "content": config_content}
    )
    verbosity = spec.get("verbosity")
    flags = f" --v {verbosity}" if verbosity is not None else ""
    command = "init" if init else "join"
    runcmd = [
        *(str(c) for c in spec.get("preKubeadmCommands") or ()),
        f"kubeadm {command} --config {config_path}{flags} && echo success > {SUCCESS_SENTINEL}",
        *(str(c) for c in spec.get("postKubeadmCommands") or ()),
    ]
    document: Obj = {}
    ntp = spec.get("ntp")
    if ntp:
        document["ntp"] = {k: ntp[k] for k in ("enabled", "servers") if ntp.get(k) is not None}
    users = [_pick(u, _USER_FIELDS) for u in spec.get("users") or ()]
    if users:
        document["users"] = users
    if spec.get("mounts"):
        document["mounts"] = [list(m) for m in spec["mounts"]]
    document["write_files"] = write_files
    document["runcmd"] = runcmd
    return "#cloud-config\n" + _dump(document)


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks: user data people read."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(value: Any) -> str:
    return yaml.dump(value, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=100_000)


def _dump_all(documents: list[Obj]) -> str:
    return yaml.dump_all(
        documents, Dumper=_Dumper, default_flow_style=False, sort_keys=False, explicit_start=True
    )


# -- the controller ----------------------------------------------------------------------------------


def _secret(config: Obj, data: str, fmt: str) -> Obj:
    labels: dict[str, str] = {}
    cluster = labels_of(config).get(CLUSTER_NAME_LABEL)
    if cluster:
        labels[CLUSTER_NAME_LABEL] = cluster
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": name_of(config),
            "namespace": namespace_of(config),
            "labels": labels,
            "ownerReferences": [owner_reference(config, controller=True)],
        },
        "data": {
            "value": base64.b64encode(data.encode()).decode(),
            "format": base64.b64encode(fmt.encode()).decode(),
        },
    }


def _ready_status(config: Obj, secret_name: str) -> Obj:
    status: Obj = dict(config.get("status") or {})
    status["ready"] = True
    status["dataSecretName"] = secret_name
    status.pop("failureReason", None)
    status.pop("failureMessage", None)
    conditions.set_true(status, DATA_SECRET_AVAILABLE)
    conditions.set_true(status, conditions.READY)
    status["observedGeneration"] = int(config["metadata"].get("generation") or 0)
    return status


def _failed_status(config: Obj, message: str, severity: str) -> Obj:
    status: Obj = dict(config.get("status") or {})
    conditions.set_false(status, DATA_SECRET_AVAILABLE, GENERATION_FAILED, message, severity)
    conditions.set_false(status, conditions.READY, GENERATION_FAILED, message, severity)
    status["observedGeneration"] = int(config["metadata"].get("generation") or 0)
    return status


def controller(ctx: Context, *, workers: int = 2) -> Controller:
    """Renders every KubeadmConfig's bootstrap data into its Secret."""
    configs = ctx.manager.informer(KUBEADM_CONFIGS)
    secrets = ctx.manager.informer(SECRETS)
    clusters = ctx.manager.informer(CAPI_CLUSTERS)

    def of_paused_cluster(config: Obj) -> bool:
        name = labels_of(config).get(CLUSTER_NAME_LABEL)
        return cluster_paused(clusters.get(f"{namespace_of(config)}/{name}") if name else None)

    async def reconcile(key: str) -> Result | None:
        config = configs.get(key)
        if config is None or deleting(config) or is_paused(config) or of_paused_cluster(config):
            return None
        namespace, name = namespace_of(config), name_of(config)
        spec: Obj = config.get("spec") or {}
        existing = secrets.get(key)
        if existing is not None:
            # Rendered already (maybe by a run that died before writing status): never again.
            await write_status(ctx.client, KUBEADM_CONFIGS, config, _ready_status(config, name))
            return None
        fmt = spec.get("format") or FORMAT_CLOUD_CONFIG
        if fmt != FORMAT_CLOUD_CONFIG:
            hint = "ignition" if fmt == FORMAT_IGNITION else repr(fmt)
            message = f"bootstrap format {hint} is not supported; use {FORMAT_CLOUD_CONFIG}"
            await write_status(ctx.client, KUBEADM_CONFIGS, config, _failed_status(config, message, "Error"))
            return None
        sources = {n: s for n in _secret_names(spec) if (s := secrets.get(f"{namespace}/{n}")) is not None}
        try:
            resolved = resolve_secret_sources(spec, sources)
        except MissingSecretError as exc:
            message = f"Failed to read content from secrets: {exc}"
            await write_status(
                ctx.client, KUBEADM_CONFIGS, config, _failed_status(config, message, "Warning")
            )
            return Result(requeue_after=MISSING_SECRET_RETRY)
        data = render_cloud_config(resolved)
        # AlreadyExists: made by an earlier run the cache had not seen; that one stands.
        with contextlib.suppress(AlreadyExistsError):
            await ctx.client.create(SECRETS, _secret(config, data, fmt), field_manager=FIELD_MANAGER)
        log.info(
            "bootstrap data of %s written to Secret %s (%s)", key, name, "init" if is_init(spec) else "join"
        )
        await write_status(ctx.client, KUBEADM_CONFIGS, config, _ready_status(config, name))
        return None

    def configs_of_cluster(cluster: Obj) -> list[str]:
        """Unpausing a Cluster concerns its configs not yet rendered; other changes do not (an update
        maps the old object too, so the paused one of an unpause is seen here)."""
        if not cluster_paused(cluster):
            return []
        namespace, name = namespace_of(cluster), name_of(cluster)
        return [
            f"{namespace}/{name_of(c)}"
            for c in of_cluster(configs, namespace, name)
            if labels_of(c).get(CLUSTER_NAME_LABEL) == name and not (c.get("status") or {}).get("ready")
        ]

    return (
        Controller("kubeadmconfig", reconcile, workers=workers)
        .watch(KUBEADM_CONFIGS)
        .watch(SECRETS, enqueue_owner(KUBEADM_CONFIGS.kind, BOOTSTRAP_API_VERSION))
        .watch(CAPI_CLUSTERS, enqueue_mapped(configs_of_cluster))
    )
