"""The kubeadm bootstrap controller: a KubeadmConfig becomes the machine's bootstrap data.

What Cluster API's bootstrap provider does: the config's files, users, NTP settings and commands,
and the kubeadm configuration file that ``kubeadm init`` (the first control plane machine) or
``kubeadm join`` (every other machine) reads, rendered into the Secret ``<config name>`` that the
Machine then names in ``spec.bootstrap.dataSecretName``. The infrastructure provider waits for that
name before it boots, and hands the Secret's ``value`` to the machine as its user data; the
Secret's ``format`` says which of the two renderings it is (``spec.format``, by default
``cloud-config``):

- ``cloud-config``: cloud-init user data (``#cloud-config`` YAML) for general-purpose distributions
  (Ubuntu, Red Hat), which write the files, create the users and run the commands themselves.
- ``bottlerocket``: Bottlerocket's TOML settings, as EKS Anywhere's Cluster API renders them.
  Bottlerocket has no cloud-init, no package manager and a read-only root, so kubeadm runs in a
  superpowered ``kubeadm-bootstrap`` host container whose user data is the cloud-config rendering
  of the same files and commands; SSH keys go to the ``admin`` host container; what Bottlerocket's
  own kubelet configuration needs (node labels and taints, cluster domain, API server) and NTP
  servers are Bottlerocket settings. :func:`render_bottlerocket` documents the layout.

:func:`render_bootstrap_data` picks the rendering; Cluster API's ``ignition`` (and anything else)
is refused with a condition.

Bootstrap data is rendered once: a ready config whose Secret exists is never rendered again, so a
machine boots with the data it was promised even if its config is edited later (Cluster API's rule).
The data can hold secrets (file contents from Secrets, password hashes), so it is never logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

import tomli_w
import yaml

from anywhere.api.capi import BOOTSTRAP_API_VERSION, CLUSTER_NAME_LABEL
from anywhere.api.capi.kubeadm import FORMAT_BOTTLEROCKET, FORMAT_CLOUD_CONFIG, FORMAT_IGNITION
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
    "ADMIN_CONTAINER",
    "BOOTSTRAP_CONTAINER",
    "DATA_SECRET_AVAILABLE",
    "INIT_CONFIG_PATH",
    "JOIN_CONFIG_PATH",
    "RENDERED_FORMATS",
    "SECRET_TYPE",
    "MissingSecretError",
    "UnsupportedFormatError",
    "bootstrap_format",
    "controller",
    "is_init",
    "render_bootstrap_data",
    "render_bottlerocket",
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
# The formats this controller renders, the default first.
RENDERED_FORMATS: Final = (FORMAT_CLOUD_CONFIG, FORMAT_BOTTLEROCKET)
# Bottlerocket's host container for SSH access (its image is the variant's default), and the one
# EKS Anywhere names for running kubeadm.
ADMIN_CONTAINER: Final = "admin"
BOOTSTRAP_CONTAINER: Final = "kubeadm-bootstrap"
DEFAULT_CLUSTER_DOMAIN: Final = "cluster.local"


class MissingSecretError(Exception):
    """A file's or user's content comes from a Secret (or a key) that does not exist (yet)."""


class UnsupportedFormatError(ValueError):
    """``spec.format`` names a format this controller does not render (the message says which do)."""


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


# Cloud-config fields a Bottlerocket host cannot act on from inside a container: users (SSH keys
# go to the admin container instead, and passwords have no use there), NTP (a setting), mounts.
_NOT_FOR_BOTTLEROCKET: Final = frozenset({"users", "ntp", "mounts"})


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _node_registration(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """The nodeRegistration of the kubeadm document this machine runs (init or join)."""
    document = spec.get("initConfiguration" if is_init(spec) else "joinConfiguration") or {}
    return document.get("nodeRegistration") or {}


def _node_labels(registration: Mapping[str, Any]) -> dict[str, str]:
    """kubelet's ``--node-labels`` (``k=v,k2=v2``) as a table: Bottlerocket's kubelet is not started
    with kubeadm's flags file, so the labels must be its own settings."""
    extra = registration.get("kubeletExtraArgs")
    raw = str(extra.get("node-labels") or "") if isinstance(extra, Mapping) else ""
    labels: dict[str, str] = {}
    for item in raw.split(","):
        key, _, value = item.strip().partition("=")
        if key:
            labels[key] = value
    return labels


def _node_taints(registration: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """The registration taints as Bottlerocket's ``key = "value:Effect"``; a key tainted with more
    than one effect gets the list form."""
    grouped: dict[str, list[str]] = {}
    for taint in registration.get("taints") or ():
        key, effect = taint.get("key"), taint.get("effect")
        if key and effect:
            grouped.setdefault(str(key), []).append(f"{taint.get('value') or ''}:{effect}")
    return {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}


def _api_server(spec: Mapping[str, Any]) -> str:
    """The API server URL the node talks to: the control plane endpoint at init, the discovery
    endpoint at join; empty when the spec does not say."""
    if is_init(spec):
        endpoint = str((spec.get("clusterConfiguration") or {}).get("controlPlaneEndpoint") or "")
    else:
        discovery = (spec.get("joinConfiguration") or {}).get("discovery") or {}
        endpoint = str((discovery.get("bootstrapToken") or {}).get("apiServerEndpoint") or "")
    if not endpoint or "://" in endpoint:
        return endpoint
    return f"https://{endpoint}"


def _kubernetes_settings(spec: Mapping[str, Any]) -> Obj:
    cluster_configuration = spec.get("clusterConfiguration") or {}
    networking = cluster_configuration.get("networking") or {}
    settings: Obj = {
        # kubelet starts without an API server (none exists before ``kubeadm init`` has run the
        # control plane's static pods) and is joined to the cluster by kubeadm in the bootstrap
        # container; it authenticates with the client certificates kubeadm issues, not AWS IAM.
        "standalone-mode": True,
        "authentication-mode": "tls",
        "cluster-domain": str(networking.get("dnsDomain") or DEFAULT_CLUSTER_DOMAIN),
    }
    api_server = _api_server(spec)
    if api_server:
        settings["api-server"] = api_server
    cluster_name = cluster_configuration.get("clusterName")
    if cluster_name:
        settings["cluster-name"] = str(cluster_name)
    registration = _node_registration(spec)
    labels = _node_labels(registration)
    if labels:
        settings["node-labels"] = labels
    taints = _node_taints(registration)
    if taints:
        settings["node-taints"] = taints
    return settings


def _hostname(spec: Mapping[str, Any]) -> str:
    """The node name when the spec gives a literal one; a cloud-init template such as
    ``{{ ds.meta_data.hostname }}`` means nothing to Bottlerocket, which then keeps its own."""
    name = str(_node_registration(spec).get("name") or "")
    return "" if "{{" in name else name


def render_bottlerocket(spec: Mapping[str, Any]) -> str:
    """Bottlerocket user data (TOML) of a KubeadmConfig spec whose secret sources are resolved.

    The layout (tables in this order; the optional ones only when the spec says)::

        [settings.host-containers.admin]              enabled, superpowered, user-data
        [settings.host-containers.kubeadm-bootstrap]  enabled, superpowered, user-data
        [settings.kubernetes]                         standalone-mode, authentication-mode,
                                                      cluster-domain, api-server?, cluster-name?
        [settings.kubernetes.node-labels]?            label = "value"
        [settings.kubernetes.node-taints]?            key = "value:Effect" (or a list of them)
        [settings.network]?                           hostname
        [settings.ntp]?                               time-servers

    The admin user data is base64 JSON ``{"ssh": {"authorized-keys": [...]}}`` with every user's
    keys (explicit, even empty, so the container never looks for keys elsewhere). The bootstrap
    user data is base64 of :func:`render_cloud_config` of the spec without what Bottlerocket
    handles itself or cannot do (users, NTP, mounts): the same files and kubeadm
    command a cloud-init machine gets, rendered by the same code.

    No ``source`` (image) is written for either container: the admin container's comes with the
    Bottlerocket variant, and the bootstrap container's is the provider's or the release's to add.
    """
    keys: list[str] = []
    for user in spec.get("users") or ():
        for key in user.get("sshAuthorizedKeys") or ():
            if key and key not in keys:
                keys.append(str(key))
    admin_data = json.dumps({"ssh": {"authorized-keys": keys}}, separators=(",", ":"))
    payload = render_cloud_config({k: v for k, v in spec.items() if k not in _NOT_FOR_BOTTLEROCKET})
    settings: Obj = {
        "host-containers": {
            ADMIN_CONTAINER: {"enabled": True, "superpowered": True, "user-data": _base64(admin_data)},
            BOOTSTRAP_CONTAINER: {"enabled": True, "superpowered": True, "user-data": _base64(payload)},
        },
        "kubernetes": _kubernetes_settings(spec),
    }
    hostname = _hostname(spec)
    if hostname:
        settings["network"] = {"hostname": hostname}
    ntp = spec.get("ntp") or {}
    if ntp.get("servers") and ntp.get("enabled") is not False:
        settings["ntp"] = {"time-servers": [str(s) for s in ntp["servers"]]}
    return tomli_w.dumps({"settings": settings})


def bootstrap_format(spec: Mapping[str, Any]) -> str:
    """The format a spec's bootstrap data is rendered in (``cloud-config`` when none is named).
    Raises :class:`UnsupportedFormatError` for any other, before anything is rendered or read."""
    fmt = str(spec.get("format") or FORMAT_CLOUD_CONFIG)
    if fmt not in RENDERED_FORMATS:
        hint = FORMAT_IGNITION if fmt == FORMAT_IGNITION else repr(fmt)
        raise UnsupportedFormatError(
            f"bootstrap format {hint} is not supported; use {' or '.join(RENDERED_FORMATS)}"
        )
    return fmt


def render_bootstrap_data(spec: Mapping[str, Any]) -> tuple[str, str]:
    """The bootstrap data of a KubeadmConfig spec whose secret sources are resolved, and its format
    (what the Secret's ``format`` key says), rendered as ``spec.format`` asks: one entry point, so
    every infrastructure provider boots with the same data for the same spec."""
    fmt = bootstrap_format(spec)
    if fmt == FORMAT_BOTTLEROCKET:
        return render_bottlerocket(spec), fmt
    return render_cloud_config(spec), fmt


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
        try:
            # Checked before the Secrets are read: an unrenderable config must not wait on them.
            bootstrap_format(spec)
        except UnsupportedFormatError as exc:
            await write_status(ctx.client, KUBEADM_CONFIGS, config, _failed_status(config, str(exc), "Error"))
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
        data, fmt = render_bootstrap_data(resolved)
        # AlreadyExists: made by an earlier run the cache had not seen; that one stands.
        with contextlib.suppress(AlreadyExistsError):
            await ctx.client.create(SECRETS, _secret(config, data, fmt), field_manager=FIELD_MANAGER)
        log.info(
            "bootstrap data of %s written to Secret %s (%s, %s)",
            key,
            name,
            fmt,
            "init" if is_init(spec) else "join",
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
