"""The kubeadm bootstrap controller: cloud-config and Bottlerocket rendering (pure, checked by
parsing what it writes; tests/controllers/test_bootstrap_golden.py pins whole documents) and the
controller writing it into the config's Secret, refusing ignition, and waiting for the Secrets file
contents come from."""

from __future__ import annotations

import base64
import json
import tomllib
from typing import Any

import pytest
import yaml

from anywhere.api.capi import BOOTSTRAP_API_VERSION, CLUSTER_NAME_LABEL
from anywhere.controllers import kubeadmconfig
from anywhere.controllers.conditions import get_condition, is_true
from anywhere.controllers.context import Context
from anywhere.controllers.kubeadmconfig import (
    INIT_CONFIG_PATH,
    JOIN_CONFIG_PATH,
    MissingSecretError,
    UnsupportedFormatError,
    bootstrap_format,
    is_init,
    render_bootstrap_data,
    render_bottlerocket,
    render_cloud_config,
    resolve_secret_sources,
)
from anywhere.controllers.resources import KUBEADM_CONFIGS, SECRETS
from anywhere.runtime import Client
from tests.controllers.conftest import eventually, running

Obj = dict[str, Any]

INIT_SPEC: Obj = {
    "clusterConfiguration": {"clusterName": "demo", "kubernetesVersion": "v1.33.1"},
    "initConfiguration": {"nodeRegistration": {"name": "demo-cp-abcde"}},
    "files": [
        {"path": "/etc/demo/multi", "owner": "root:root", "permissions": "0600", "content": "a\nb\n"},
        {"path": "/etc/demo/b64", "encoding": "base64", "content": "aGVsbG8="},
    ],
    "users": [
        {"name": "ec2-user", "sudo": "ALL=(ALL) NOPASSWD:ALL", "sshAuthorizedKeys": ["ssh-ed25519 AAA"]}
    ],
    "ntp": {"enabled": True, "servers": ["time.example.com"]},
    "preKubeadmCommands": ["echo pre"],
    "postKubeadmCommands": ["echo post"],
}
JOIN_SPEC: Obj = {
    "joinConfiguration": {"discovery": {"bootstrapToken": {"apiServerEndpoint": "10.0.0.1:6443"}}},
    "preKubeadmCommands": ["echo pre"],
}


def _parse(text: str) -> Obj:
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def _file(document: Obj, path: str) -> Obj:
    matches = [f for f in document["write_files"] if f["path"] == path]
    assert len(matches) == 1, document["write_files"]
    return matches[0]


# -- rendering ---------------------------------------------------------------------------------------


def test_init_is_chosen_by_init_configuration_or_the_lack_of_a_join_one() -> None:
    assert is_init({"initConfiguration": {}})
    assert is_init({})
    assert is_init({"initConfiguration": {}, "joinConfiguration": {}})
    assert not is_init({"joinConfiguration": {}})


def test_an_init_config_renders_files_users_ntp_and_kubeadm_init() -> None:
    document = _parse(render_cloud_config(INIT_SPEC))
    assert _file(document, "/etc/demo/multi") == {
        "path": "/etc/demo/multi",
        "owner": "root:root",
        "permissions": "0600",
        "content": "a\nb\n",
    }
    assert _file(document, "/etc/demo/b64")["encoding"] == "base64"
    kubeadm = _file(document, INIT_CONFIG_PATH)
    assert kubeadm["permissions"] == "0640"
    cluster_config, init_config = yaml.safe_load_all(kubeadm["content"])
    assert cluster_config == {
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "ClusterConfiguration",
        "clusterName": "demo",
        "kubernetesVersion": "v1.33.1",
    }
    assert init_config["kind"] == "InitConfiguration"
    assert init_config["nodeRegistration"] == {"name": "demo-cp-abcde"}
    assert document["users"] == [
        {"name": "ec2-user", "sudo": "ALL=(ALL) NOPASSWD:ALL", "ssh_authorized_keys": ["ssh-ed25519 AAA"]}
    ]
    assert document["ntp"] == {"enabled": True, "servers": ["time.example.com"]}
    runcmd = document["runcmd"]
    assert runcmd[0] == "echo pre"
    assert runcmd[1].startswith(f"kubeadm init --config {INIT_CONFIG_PATH}")
    assert runcmd[2] == "echo post"


def test_a_join_config_renders_kubeadm_join_with_the_join_configuration() -> None:
    document = _parse(render_cloud_config(JOIN_SPEC))
    kubeadm = _file(document, JOIN_CONFIG_PATH)
    (join_config,) = yaml.safe_load_all(kubeadm["content"])
    assert join_config["kind"] == "JoinConfiguration"
    assert join_config["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "10.0.0.1:6443"
    assert [c.split(" --")[0] for c in document["runcmd"]] == ["echo pre", "kubeadm join"]
    assert "users" not in document
    assert "ntp" not in document


def test_rendering_is_deterministic() -> None:
    assert render_cloud_config(INIT_SPEC) == render_cloud_config(INIT_SPEC)


# -- the format, and Bottlerocket --------------------------------------------------------------------


def test_the_format_picks_the_rendering_and_cloud_config_is_the_default() -> None:
    assert render_bootstrap_data(INIT_SPEC) == (render_cloud_config(INIT_SPEC), "cloud-config")
    cloud = {**INIT_SPEC, "format": "cloud-config"}
    assert render_bootstrap_data(cloud) == (render_cloud_config(INIT_SPEC), "cloud-config")
    bottlerocket = {**INIT_SPEC, "format": "bottlerocket"}
    assert render_bootstrap_data(bottlerocket) == (render_bottlerocket(bottlerocket), "bottlerocket")


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("ignition", "bootstrap format ignition is not supported; use cloud-config or bottlerocket"),
        ("toml", "bootstrap format 'toml' is not supported; use cloud-config or bottlerocket"),
    ],
)
def test_other_formats_are_refused_naming_the_rendered_ones(fmt: str, message: str) -> None:
    with pytest.raises(UnsupportedFormatError) as raised:
        bootstrap_format({"format": fmt})
    assert str(raised.value) == message
    with pytest.raises(UnsupportedFormatError):
        render_bootstrap_data({**INIT_SPEC, "format": fmt})


def _bottlerocket(spec: Obj) -> Obj:
    settings = tomllib.loads(render_bottlerocket(spec))["settings"]
    assert isinstance(settings, dict)
    return settings


def _user_data(settings: Obj, container: str) -> str:
    return base64.b64decode(settings["host-containers"][container]["user-data"]).decode()


def test_bottlerocket_runs_the_cloud_config_of_files_and_commands_in_the_bootstrap_container() -> None:
    settings = _bottlerocket(INIT_SPEC)
    payload = _user_data(settings, "kubeadm-bootstrap")
    without = {k: v for k, v in INIT_SPEC.items() if k not in ("users", "ntp")}
    assert payload == render_cloud_config(without)
    assert json.loads(_user_data(settings, "admin")) == {"ssh": {"authorized-keys": ["ssh-ed25519 AAA"]}}
    assert settings["ntp"] == {"time-servers": ["time.example.com"]}
    assert settings["network"] == {"hostname": "demo-cp-abcde"}
    assert settings["kubernetes"]["cluster-name"] == "demo"


def test_bottlerocket_settings_of_a_bare_spec_are_the_defaults_only() -> None:
    settings = _bottlerocket({"ntp": {"enabled": False, "servers": ["time.example.com"]}})
    assert settings["kubernetes"] == {
        "standalone-mode": True,
        "authentication-mode": "tls",
        "cluster-domain": "cluster.local",
    }
    # No keys is said explicitly: the admin container must not go looking for others.
    assert json.loads(_user_data(settings, "admin")) == {"ssh": {"authorized-keys": []}}
    assert set(settings) == {"host-containers", "kubernetes"}


def test_bottlerocket_reads_domain_endpoint_labels_and_taints_from_the_kubeadm_documents() -> None:
    spec = {
        "clusterConfiguration": {"networking": {"dnsDomain": "corp.internal"}},
        "joinConfiguration": {
            "discovery": {"bootstrapToken": {"apiServerEndpoint": "https://api.example.com:6443"}},
            "nodeRegistration": {
                "kubeletExtraArgs": {"node-labels": "a=1, b=2,,empty="},
                "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            },
        },
        "users": [
            {"name": "one", "sshAuthorizedKeys": ["ssh-ed25519 K1", "ssh-ed25519 K2"], "passwd": "$6$x"},
            {"name": "two", "sshAuthorizedKeys": ["ssh-ed25519 K1", ""]},
        ],
    }
    settings = _bottlerocket(spec)
    kubernetes = settings["kubernetes"]
    assert kubernetes["cluster-domain"] == "corp.internal"
    assert kubernetes["api-server"] == "https://api.example.com:6443"
    assert kubernetes["node-labels"] == {"a": "1", "b": "2", "empty": ""}
    assert kubernetes["node-taints"] == {"node-role.kubernetes.io/control-plane": ":NoSchedule"}
    keys = json.loads(_user_data(settings, "admin"))["ssh"]["authorized-keys"]
    assert keys == ["ssh-ed25519 K1", "ssh-ed25519 K2"]
    assert "$6$x" not in _user_data(settings, "kubeadm-bootstrap")


def test_bottlerocket_rendering_is_deterministic() -> None:
    assert render_bottlerocket(INIT_SPEC) == render_bottlerocket(INIT_SPEC)


def _secret(name: str, **data: str) -> Obj:
    return {
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_contents_from_secrets_are_resolved() -> None:
    spec = {
        "files": [{"path": "/etc/ca.crt", "contentFrom": {"secret": {"name": "ca", "key": "tls.crt"}}}],
        "users": [{"name": "admin", "passwdFrom": {"secret": {"name": "pw", "key": "hash"}}}],
    }
    resolved = resolve_secret_sources(
        spec, {"ca": _secret("ca", **{"tls.crt": "CERT"}), "pw": _secret("pw", hash="$6$x")}
    )
    assert resolved["files"] == [{"path": "/etc/ca.crt", "content": "CERT"}]
    assert resolved["users"] == [{"name": "admin", "passwd": "$6$x"}]
    assert "contentFrom" not in str(resolved)
    document = _parse(render_cloud_config(resolved))
    assert _file(document, "/etc/ca.crt")["content"] == "CERT"
    assert document["users"][0]["passwd"] == "$6$x"


@pytest.mark.parametrize(
    ("secrets", "message"),
    [({}, "Secret 'ca' not found"), ({"ca": _secret("ca", other="x")}, "Secret 'ca' has no key 'tls.crt'")],
)
def test_a_missing_secret_or_key_is_named(secrets: dict[str, Obj], message: str) -> None:
    spec = {"files": [{"path": "/etc/ca.crt", "contentFrom": {"secret": {"name": "ca", "key": "tls.crt"}}}]}
    with pytest.raises(MissingSecretError, match=message):
        resolve_secret_sources(spec, secrets)


# -- the controller ----------------------------------------------------------------------------------


def _config(namespace: str, name: str, spec: Obj) -> Obj:
    return {
        "apiVersion": BOOTSTRAP_API_VERSION,
        "kind": "KubeadmConfig",
        "metadata": {"name": name, "namespace": namespace, "labels": {CLUSTER_NAME_LABEL: "demo"}},
        "spec": spec,
    }


def _named(name: str) -> Any:
    return lambda items: next((i for i in items if i["metadata"]["name"] == name), None)


async def test_the_bootstrap_data_goes_into_the_configs_secret(
    client: Client, namespace: str, context: Context
) -> None:
    config = await client.create(KUBEADM_CONFIGS, _config(namespace, "m1", INIT_SPEC))
    async with running(context, [kubeadmconfig.controller(context)]):
        items = await eventually(
            client,
            KUBEADM_CONFIGS,
            namespace,
            lambda items: bool((items[0].get("status") or {}).get("ready")),
        )
    status = items[0]["status"]
    assert status["dataSecretName"] == "m1"
    assert is_true(items[0], "DataSecretAvailable")
    assert is_true(items[0], "Ready")
    secret = await client.get(SECRETS, "m1", namespace)
    assert secret["type"] == "cluster.x-k8s.io/secret"
    assert secret["metadata"]["labels"] == {CLUSTER_NAME_LABEL: "demo"}
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "KubeadmConfig",
        config["metadata"]["uid"],
        True,
    )
    assert base64.b64decode(secret["data"]["format"]) == b"cloud-config"
    assert base64.b64decode(secret["data"]["value"]).decode() == render_cloud_config(INIT_SPEC)


async def test_ignition_is_refused_with_a_clear_condition(
    client: Client, namespace: str, context: Context
) -> None:
    await client.create(KUBEADM_CONFIGS, _config(namespace, "m2", {**JOIN_SPEC, "format": "ignition"}))
    async with running(context, [kubeadmconfig.controller(context)]):
        items = await eventually(
            client,
            KUBEADM_CONFIGS,
            namespace,
            lambda items: get_condition(items[0], "DataSecretAvailable") is not None,
        )
    condition = get_condition(items[0], "DataSecretAvailable")
    assert condition is not None
    assert (condition["status"], condition["reason"], condition["severity"]) == (
        "False",
        "DataSecretGenerationFailed",
        "Error",
    )
    assert (
        condition["message"] == "bootstrap format ignition is not supported; use cloud-config or bottlerocket"
    )
    assert not (items[0].get("status") or {}).get("ready")
    listing = await client.list(SECRETS, namespace)
    assert [s["metadata"]["name"] for s in listing["items"] if s["metadata"]["name"] == "m2"] == []


async def test_a_bottlerocket_config_gets_bottlerocket_data_and_format(
    client: Client, namespace: str, context: Context
) -> None:
    spec = {**JOIN_SPEC, "format": "bottlerocket"}
    await client.create(KUBEADM_CONFIGS, _config(namespace, "m4", spec))
    async with running(context, [kubeadmconfig.controller(context)]):
        await eventually(
            client,
            KUBEADM_CONFIGS,
            namespace,
            lambda items: bool((items[0].get("status") or {}).get("ready")),
        )
    secret = await client.get(SECRETS, "m4", namespace)
    assert base64.b64decode(secret["data"]["format"]) == b"bottlerocket"
    assert base64.b64decode(secret["data"]["value"]).decode() == render_bottlerocket(spec)


async def test_a_file_from_a_missing_secret_waits_for_it(
    client: Client, namespace: str, context: Context
) -> None:
    spec = {
        **JOIN_SPEC,
        "files": [{"path": "/etc/ca.crt", "contentFrom": {"secret": {"name": "ca", "key": "tls.crt"}}}],
    }
    await client.create(KUBEADM_CONFIGS, _config(namespace, "m3", spec))
    async with running(context, [kubeadmconfig.controller(context)]):
        items = await eventually(
            client,
            KUBEADM_CONFIGS,
            namespace,
            lambda items: get_condition(items[0], "DataSecretAvailable") is not None,
        )
        condition = get_condition(items[0], "DataSecretAvailable")
        assert condition is not None
        assert condition["status"] == "False"
        assert "Secret 'ca' not found" in condition["message"]
        await client.create(
            SECRETS,
            {
                "metadata": {"name": "ca", "namespace": namespace},
                "data": {"tls.crt": base64.b64encode(b"CERT").decode()},
            },
        )
        await eventually(
            client, KUBEADM_CONFIGS, namespace, lambda items: is_true(items[0], "DataSecretAvailable")
        )
    secret = await client.get(SECRETS, "m3", namespace)
    document = _parse(base64.b64decode(secret["data"]["value"]).decode())
    assert _file(document, "/etc/ca.crt")["content"] == "CERT"
