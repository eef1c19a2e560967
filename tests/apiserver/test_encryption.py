"""Encryption at rest: the EncryptionConfiguration, the transforms, the storage wrapper, and a real
`anywhere serve` whose SQLite file is read directly while kubectl writes and reads Secrets."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from anywhere.apiserver.encryption import (
    DecryptionError,
    EncryptedStorage,
    EncryptionConfig,
    EncryptionConfigError,
    _Unreadable,
    parse_config,
)
from anywhere.storage.sqlite import SQLiteStorage
from tests.apiserver.conftest import Server, start_server, stop_server
from tests.etcd_fixtures import EtcdCluster, etcd_member, etcdctl, start_etcd_server

__all__ = ["etcd_member"]  # a fixture, used by name

KEY1 = base64.b64encode(b"1" * 32).decode()
KEY2 = base64.b64encode(b"2" * 32).decode()
SECRET_KEY = "/registry/core/secrets/default/s"


def aes(kind: str, *keys: tuple[str, str]) -> dict[str, Any]:
    return {kind: {"keys": [{"name": name, "secret": secret} for name, secret in keys]}}


IDENTITY: dict[str, Any] = {"identity": {}}


def document(*providers: dict[str, Any], resources: tuple[str, ...] = ("secrets",)) -> dict[str, Any]:
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": list(resources), "providers": list(providers)}],
    }


def config(*providers: dict[str, Any], resources: tuple[str, ...] = ("secrets",)) -> EncryptionConfig:
    return parse_config(document(*providers, resources=resources))


def chain(cfg: EncryptionConfig, group: str = "", resource: str = "secrets") -> Any:
    found = cfg.chain_for(group, resource)
    assert found is not None
    return found


# ---- the transforms ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["aescbc", "aesgcm"])
@given(plain=st.binary(max_size=2048))
def test_round_trip_with_kubernetes_prefix(kind: str, plain: bytes) -> None:
    providers = chain(config(aes(kind, ("k1", KEY1))))
    sealed = providers.seal(plain, SECRET_KEY)
    assert sealed.startswith(f"k8s:enc:{kind}:v1:k1:".encode())
    assert providers.open(sealed, SECRET_KEY) == plain
    assert providers.seal(plain, SECRET_KEY) != sealed  # a fresh IV/nonce every time


@given(plain=st.binary(min_size=1, max_size=256), key_size=st.sampled_from([16, 24, 32]))
def test_every_aes_key_size_works(plain: bytes, key_size: int) -> None:
    secret = base64.b64encode(os.urandom(key_size)).decode()
    for kind in ("aescbc", "aesgcm"):
        providers = chain(config(aes(kind, ("k", secret))))
        assert providers.open(providers.seal(plain, SECRET_KEY), SECRET_KEY) == plain


def test_plain_text_is_not_in_the_sealed_value() -> None:
    plain = b'{"data":{"password":"aHVudGVyMg=="},"note":"hunter2 in clear"}'
    for kind in ("aescbc", "aesgcm"):
        sealed = chain(config(aes(kind, ("k1", KEY1)))).seal(plain, SECRET_KEY)
        assert b"hunter2" not in sealed
        assert b"aHVudGVyMg" not in sealed


def test_aesgcm_binds_the_value_to_its_storage_key() -> None:
    providers = chain(config(aes("aesgcm", ("k1", KEY1))))
    sealed = providers.seal(b"value", SECRET_KEY)
    with pytest.raises(_Unreadable, match="cannot decrypt"):
        providers.open(sealed, "/registry/core/secrets/default/other")


def test_rotation_new_key_first_reads_old_data_and_writes_with_the_new_key() -> None:
    old = chain(config(aes("aescbc", ("old", KEY1))))
    sealed_old = old.seal(b"v", SECRET_KEY)
    rotated = chain(config(aes("aescbc", ("new", KEY2), ("old", KEY1))))
    assert rotated.open(sealed_old, SECRET_KEY) == b"v"
    assert rotated.seal(b"v", SECRET_KEY).startswith(b"k8s:enc:aescbc:v1:new:")
    across = chain(config(aes("aesgcm", ("g", KEY2)), aes("aescbc", ("old", KEY1))))
    assert across.open(sealed_old, SECRET_KEY) == b"v"  # another provider's key still reads


def test_identity_first_reads_encrypted_data_and_writes_plain() -> None:
    sealed = chain(config(aes("aescbc", ("k1", KEY1)))).seal(b'{"a":1}', SECRET_KEY)
    providers = chain(config(IDENTITY, aes("aescbc", ("k1", KEY1))))
    assert providers.open(sealed, SECRET_KEY) == b'{"a":1}'
    assert providers.seal(b'{"a":1}', SECRET_KEY) == b'{"a":1}'
    assert providers.open(b'{"a":1}', SECRET_KEY) == b'{"a":1}'


def test_a_key_no_longer_configured_is_a_clear_error_without_key_material() -> None:
    sealed = chain(config(aes("aescbc", ("gone", KEY1)))).seal(b"v", SECRET_KEY)
    for providers in (
        chain(config(aes("aescbc", ("k2", KEY2)))),
        chain(config(aes("aescbc", ("k2", KEY2)), IDENTITY)),
        chain(config(aes("aesgcm", ("gone", KEY1)))),
        chain(config(IDENTITY)),
    ):
        with pytest.raises(_Unreadable) as caught:
            providers.open(sealed, SECRET_KEY)
        message = str(caught.value)
        assert "aescbc" in message
        assert KEY1 not in message
        assert KEY2 not in message


def test_same_key_name_with_another_secret_fails_cleanly() -> None:
    for kind in ("aescbc", "aesgcm"):
        sealed = chain(config(aes(kind, ("k", KEY1)))).seal(b"some value here", SECRET_KEY)
        with pytest.raises(_Unreadable, match=f'{kind} key "k" cannot decrypt'):
            chain(config(aes(kind, ("k", KEY2)))).open(sealed, SECRET_KEY)


def test_plain_data_without_identity_is_refused() -> None:
    with pytest.raises(_Unreadable, match=r"no matching prefix found.*identity"):
        chain(config(aes("aescbc", ("k", KEY1)))).open(b'{"a":1}', SECRET_KEY)


def test_resource_patterns_select_rules_in_order() -> None:
    cfg = parse_config(
        {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [
                {"resources": ["secrets", "deployments.apps"], "providers": [aes("aescbc", ("a", KEY1))]},
                {"resources": ["*."], "providers": [aes("aesgcm", ("b", KEY1))]},
                {"resources": ["*.*"], "providers": [IDENTITY]},
            ],
        }
    )
    assert chain(cfg, "", "secrets").providers[0].name == "aescbc"
    assert chain(cfg, "apps", "deployments").providers[0].name == "aescbc"
    assert chain(cfg, "", "configmaps").providers[0].name == "aesgcm"
    assert chain(cfg, "apps", "statefulsets").providers[0].name == "identity"
    assert config(aes("aescbc", ("a", KEY1))).chain_for("", "configmaps") is None


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ({"apiVersion": "v1", "kind": "EncryptionConfig"}, "apiVersion/kind must be"),
        ({**document(IDENTITY), "extra": 1}, "extra: unknown field"),
        ({**document(IDENTITY), "resources": []}, "resources: at least one entry"),
        (document(), "resources[0].providers: at least one provider"),
        (document(IDENTITY, resources=()), "resources[0].resources: at least one resource"),
        (document(IDENTITY, resources=("*",)), 'use "*.*"'),
        (document(IDENTITY, resources=("Secrets",)), "lower case"),
        (document(IDENTITY, resources=("sec*rets",)), "wildcard"),
        (document(IDENTITY, resources=("secrets", "secrets")), "already covered"),
        (document(IDENTITY, resources=("*.", "secrets")), "already covered"),
        (document(aes("aescbc")), "keys: at least one key"),
        (document(aes("aescbc", ("k", "not base64!"))), "keys[0].secret: not valid base64"),
        (document(aes("aescbc", ("k", base64.b64encode(b"short").decode()))), "the key is 5 bytes"),
        (document(aes("aesgcm", ("k", KEY1), ("k", KEY2))), "used twice"),
        (document(aes("aescbc", ("", KEY1))), "keys[0].name: required"),
        (document({"secretbox": {"keys": []}}), "secretbox is not supported"),
        (document({"kms": {"name": "x"}}), "kms providers are not supported"),
        (document({"aescbc": {"keys": []}, "identity": {}}), "exactly one of"),
        (document({"identity": {"x": 1}}), "takes no settings"),
        ("just text", "one EncryptionConfiguration"),
    ],
)
def test_malformed_configurations_name_the_problem(broken: Any, expected: str) -> None:
    with pytest.raises(EncryptionConfigError) as caught:
        parse_config(broken)
    assert expected in str(caught.value)
    assert KEY1 not in str(caught.value)


# ---- the storage wrapper over a real SQLite store -----------------------------------------------


@pytest.fixture
async def stores(tmp_path: Path) -> Any:
    inner = await SQLiteStorage.open(tmp_path / "state.db")
    wrapped = EncryptedStorage(inner, config(aes("aescbc", ("k1", KEY1)), IDENTITY))
    yield inner, wrapped
    await wrapped.close()


async def test_values_are_sealed_in_the_store_and_plain_through_the_wrapper(stores: Any) -> None:
    inner, wrapped = stores
    created = await wrapped.create(SECRET_KEY, b'{"v":1}')
    assert created.value == b'{"v":1}'
    assert (await inner.get(SECRET_KEY)).value.startswith(b"k8s:enc:aescbc:v1:k1:")
    assert (await wrapped.get(SECRET_KEY)).value == b'{"v":1}'
    watch = await wrapped.watch("/registry/core/secrets/", created.mod_rv)
    updated = await wrapped.update(SECRET_KEY, b'{"v":2}', expected_rv=created.mod_rv)
    assert updated.value == b'{"v":2}'
    listed = await wrapped.list("/registry/core/secrets/")
    assert [r.value for r in listed.records] == [b'{"v":2}']
    deleted = await wrapped.delete(SECRET_KEY)
    assert deleted.value == b'{"v":2}'
    events = [await watch.next(5), await watch.next(5)]
    watch.close()
    assert [(e.type, e.value) for e in events if e] == [("MODIFIED", b'{"v":2}'), ("DELETED", b'{"v":2}')]
    # other resources are left alone
    await wrapped.create("/registry/core/configmaps/default/c", b'{"c":1}')
    assert (await inner.get("/registry/core/configmaps/default/c")).value == b'{"c":1}'


async def test_an_unreadable_value_fails_its_resource_but_not_a_sweep(stores: Any) -> None:
    inner, wrapped = stores
    foreign = chain(config(aes("aescbc", ("other", KEY2)))).seal(b'{"x":1}', SECRET_KEY)
    await inner.create(SECRET_KEY, foreign)
    await inner.create("/registry/core/configmaps/default/c", b'{"c":1}')
    with pytest.raises(DecryptionError) as caught:
        await wrapped.get(SECRET_KEY)
    status = caught.value.status()
    assert status["code"] == 500
    assert status["reason"] == "InternalError"
    assert status["message"].startswith(f'Internal error occurred: unable to transform key "{SECRET_KEY}"')
    assert KEY2 not in status["message"]
    with pytest.raises(DecryptionError):
        await wrapped.list("/registry/core/secrets/")
    swept = await wrapped.list("/registry/")  # what the garbage collector reads
    assert [r.key for r in swept.records] == ["/registry/core/configmaps/default/c"]
    revision = await inner.revision()
    resource_watch = await wrapped.watch("/registry/core/secrets/", revision)
    sweep_watch = await wrapped.watch("/registry/", revision)
    await inner.update(SECRET_KEY, foreign)
    await wrapped.create("/registry/core/secrets/default/t", b'{"t":1}')
    with pytest.raises(StopAsyncIteration):
        await resource_watch.next(5)
    assert "unable to transform key" in (resource_watch.closed_reason or "")
    event = await sweep_watch.next(5)
    assert event is not None
    assert (event.key, event.value) == ("/registry/core/secrets/default/t", b'{"t":1}')
    sweep_watch.close()


# ---- a real server -------------------------------------------------------------------------------


def write_config(path: Path, *providers: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document(*providers)))
    return path


def stored_values(data_dir: Path, key: str) -> list[bytes]:
    """Every value the SQLite file holds for ``key``: the current one and its history."""
    db = sqlite3.connect(data_dir / "state.db")
    try:
        current = [bytes(v) for (v,) in db.execute("SELECT value FROM kv WHERE key = ?", (key,))]
        history = [bytes(v) for (v,) in db.execute("SELECT value FROM log WHERE key = ?", (key,))]
    finally:
        db.close()
    return current + history


def everything_stored(data_dir: Path) -> bytes:
    """The whole database file and its write-ahead log, as bytes."""
    return b"".join(p.read_bytes() for p in data_dir.glob("state.db*"))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start (and restart) a server on one data dir with a given encryption configuration."""
    running: list[Server] = []

    def start(config_file: Path) -> Server:
        for old in running:
            stop_server(old)
        running.clear()
        server = start_server(tmp_path / "data", args=("--encryption-provider-config", str(config_file)))
        running.append(server)
        return server

    yield start
    for server in running:
        stop_server(server)


def secret_value(server: Server, name: str, field: str = "password") -> str:
    encoded = server.kubectl("get", "secret", name, "-o", f"jsonpath={{.data.{field}}}").stdout
    return base64.b64decode(encoded).decode()


def test_kubectl_secrets_are_encrypted_at_rest_and_keys_rotate(serve: Any, tmp_path: Path) -> None:
    key = "/registry/core/secrets/default/db"
    server = serve(write_config(tmp_path / "one.yaml", aes("aescbc", ("key1", KEY1))))
    server.kubectl("create", "secret", "generic", "db", "--from-literal=password=hunter2-at-rest")
    server.kubectl("create", "secret", "generic", "stale", "--from-literal=password=left-behind")
    values = stored_values(server.data_dir, key)
    assert values
    assert all(v.startswith(b"k8s:enc:aescbc:v1:key1:") for v in values)
    stored_bytes = everything_stored(server.data_dir)
    for plain in (b"hunter2-at-rest", b"left-behind"):
        assert plain not in stored_bytes
        assert base64.b64encode(plain) not in stored_bytes
    assert secret_value(server, "db") == "hunter2-at-rest"

    # rotation: the new key first, the old one after it: old data reads, a rewrite uses the new key
    server = serve(write_config(tmp_path / "two.yaml", aes("aescbc", ("key2", KEY2), ("key1", KEY1))))
    assert secret_value(server, "db") == "hunter2-at-rest"
    current = server.kubectl("get", "secret", "db", "-o", "json").stdout
    server.kubectl("replace", "-f", "-", input=current)
    assert stored_values(server.data_dir, key)[0].startswith(b"k8s:enc:aescbc:v1:key2:")

    # the old key removed: what was rewritten reads; what was not is a clear 500, no key material
    server = serve(write_config(tmp_path / "three.yaml", aes("aescbc", ("key2", KEY2)), IDENTITY))
    assert secret_value(server, "db") == "hunter2-at-rest"
    for args in (("get", "secret", "stale"), ("get", "secrets")):
        failed = server.kubectl(*args, check=False)
        assert failed.returncode != 0
        assert "InternalError" in failed.stderr or "Internal error occurred" in failed.stderr, failed.stderr
        assert "unable to transform key" in failed.stderr
        assert KEY1 not in failed.stderr
        assert KEY2 not in failed.stderr
    server.kubectl("create", "configmap", "still-served", "--from-literal=a=b")  # the rest still works


def test_identity_first_reads_encrypted_secrets_and_writes_plain(serve: Any, tmp_path: Path) -> None:
    server = serve(write_config(tmp_path / "enc.yaml", aes("aesgcm", ("g1", KEY1))))
    server.kubectl("create", "secret", "generic", "sealed", "--from-literal=password=sealed-value")
    assert stored_values(server.data_dir, "/registry/core/secrets/default/sealed")[0].startswith(
        b"k8s:enc:aesgcm:v1:g1:"
    )
    server = serve(write_config(tmp_path / "dec.yaml", IDENTITY, aes("aesgcm", ("g1", KEY1))))
    assert secret_value(server, "sealed") == "sealed-value"
    server.kubectl("create", "secret", "generic", "open", "--from-literal=password=open-value")
    plain = stored_values(server.data_dir, "/registry/core/secrets/default/open")[0]
    assert json.loads(plain)["data"]["password"] == base64.b64encode(b"open-value").decode()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n",
            "resources: at least one",
        ),
        (yaml.safe_dump(document(aes("aescbc", ("k", "c2hvcnQ=")))), "the key is 5 bytes"),
        ("resources: [unclosed", "not valid YAML"),
        (None, "cannot read the encryption provider configuration"),
    ],
)
def test_a_malformed_configuration_stops_the_start(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    config_file = tmp_path / "enc.yaml"
    if content is not None:
        config_file.write_text(content)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "anywhere", "serve", "--data-dir", str(tmp_path / "d"), "--port", "0"),
            *("--encryption-provider-config", str(config_file)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr
    assert str(config_file) in result.stderr
    assert "Traceback" not in result.stderr
    assert not result.stdout


def test_secrets_in_etcd_are_encrypted(etcd_member: EtcdCluster, tmp_path: Path) -> None:
    """Over etcd the same wrapper applies: etcdctl reads only the sealed value."""
    config_file = write_config(tmp_path / "enc.yaml", aes("aescbc", ("key1", KEY1)), IDENTITY)
    prefix = f"/enc-{tmp_path.name}/"
    server = start_etcd_server(
        tmp_path / "data",
        etcd_member,
        *("--etcd-prefix", prefix, "--encryption-provider-config", str(config_file)),
    )
    try:
        server.kubectl("create", "secret", "generic", "in-etcd", "--from-literal=password=etcd-held-value")
        assert secret_value(server, "in-etcd") == "etcd-held-value"
        listed = json.loads(etcdctl(etcd_member, "get", "--prefix", prefix, "-w", "json"))
        stored = {base64.b64decode(kv["key"]): base64.b64decode(kv["value"]) for kv in listed["kvs"]}
        sealed = [v for k, v in stored.items() if k.endswith(b"/secrets/default/in-etcd")]
        assert len(sealed) == 1
        assert sealed[0].startswith(b"k8s:enc:aescbc:v1:key1:")
        everything = b"".join(stored.values())
        assert b"etcd-held-value" not in everything
        assert base64.b64encode(b"etcd-held-value") not in everything
    finally:
        stop_server(server)
