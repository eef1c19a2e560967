"""The async client against a real `anywhere serve`: kubeconfig, CRUD, list paging, watch, 410."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest
import yaml

from anywhere.runtime import (
    CONFIGMAPS,
    NAMESPACES,
    NODES,
    AlreadyExistsError,
    APIError,
    Client,
    ConflictError,
    Expired,
    KubeConfig,
    KubeConfigError,
    NotFoundError,
    Resource,
    TransportError,
    load_kubeconfig,
)
from tests.conftest import Server
from tests.runtime.conftest import compact_offline, configmap, start, stop, within


def test_resource_paths() -> None:
    assert CONFIGMAPS.path("ns", "a b") == "/api/v1/namespaces/ns/configmaps/a%20b"
    assert CONFIGMAPS.path() == "/api/v1/configmaps"
    assert NODES.path("ignored", "n1", "status") == "/api/v1/nodes/n1/status"
    deployments = Resource("apps", "v1", "deployments")
    assert deployments.path("ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert deployments.api_version == "apps/v1"
    assert CONFIGMAPS.api_version == "v1"


def test_kubeconfig_keeps_secrets_out_of_repr_and_leaves_no_key_file(server: Server) -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    config = load_kubeconfig(server.kubeconfig)
    assert config.server == server.url
    assert config.client_key_data is not None
    assert config.ssl_context() is not None
    assert "PRIVATE" not in repr(config)
    assert "client-certificate" in repr(config)
    leftovers = {
        name for name in set(os.listdir(tempfile.gettempdir())) - before if "anywhere-client" in name
    }
    assert leftovers == set()


def test_without_memfd_the_key_file_is_removed_at_once(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where there is no anonymous in-memory file, the key goes through a private temporary file."""
    monkeypatch.delattr(os, "memfd_create", raising=False)
    before = set(os.listdir(tempfile.gettempdir()))
    assert load_kubeconfig(server.kubeconfig).ssl_context() is not None
    leftovers = {
        name for name in set(os.listdir(tempfile.gettempdir())) - before if "anywhere-client" in name
    }
    assert leftovers == set()


@pytest.mark.parametrize("section", ["exec", "auth-provider"])
def test_kubeconfig_refuses_plugins(tmp_path: Path, section: str) -> None:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {section: {"command": "x"}}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    with pytest.raises(KubeConfigError, match=section):
        load_kubeconfig(path)


async def test_kubeconfig_with_file_paths(server: Server, tmp_path: Path) -> None:
    """certificate-authority / client-certificate / client-key as paths relative to the file."""
    data = server.data_dir
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": server.url, "certificate-authority": str(data / "ca.crt")},
                    }
                ],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "client-certificate": os.path.relpath(data / "admin.crt", tmp_path),
                            "client-key": os.path.relpath(data / "admin.key", tmp_path),
                        },
                    }
                ],
                "contexts": [
                    {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "kube-system"}}
                ],
                "current-context": "x",
            }
        )
    )
    config = load_kubeconfig(path)
    assert config.namespace == "kube-system"
    async with Client(config) as client:
        assert (await client.get(NAMESPACES, "default"))["metadata"]["name"] == "default"


async def test_bearer_token(server: Server) -> None:
    ca = (server.data_dir / "ca.crt").read_bytes()
    token = (server.data_dir / "token").read_text().strip()
    async with Client(KubeConfig(server=server.url, ca_data=ca, token=token)) as client:
        listed = await client.list(NODES)
        assert listed["kind"] == "NodeList"
    async with Client(KubeConfig(server=server.url, ca_data=ca, token="wrong")) as client:
        with pytest.raises(APIError) as caught:
            await client.list(NODES)
        assert caught.value.code == 401


async def test_crud_and_errors(client: Client, namespace: str) -> None:
    created = await client.create(CONFIGMAPS, configmap("a", {"k": "1"}), namespace)
    assert created["metadata"]["namespace"] == namespace
    assert (await client.get(CONFIGMAPS, "a", namespace))["data"] == {"k": "1"}

    with pytest.raises(AlreadyExistsError) as exists:
        await client.create(CONFIGMAPS, configmap("a"), namespace)
    assert isinstance(exists.value, ConflictError)
    assert exists.value.code == 409
    assert exists.value.reason == "AlreadyExists"

    created["data"] = {"k": "2"}
    updated = await client.update(CONFIGMAPS, created)
    assert updated["data"] == {"k": "2"}
    created["data"] = {"k": "stale"}
    with pytest.raises(ConflictError) as stale:
        await client.update(CONFIGMAPS, created)  # created's resourceVersion is the old one
    assert stale.value.reason == "Conflict"
    assert stale.value.status["kind"] == "Status"

    merged = await client.patch(CONFIGMAPS, "a", {"data": {"m": "x"}}, namespace)
    assert merged["data"] == {"k": "2", "m": "x"}
    patched = await client.patch(
        CONFIGMAPS, "a", [{"op": "remove", "path": "/data/k"}], namespace, type="json"
    )
    assert patched["data"] == {"m": "x"}
    strategic = await client.patch(
        CONFIGMAPS, "a", {"metadata": {"labels": {"s": "1"}}}, namespace, type="strategic"
    )
    assert strategic["metadata"]["labels"] == {"s": "1"}

    deleted = await client.delete(CONFIGMAPS, "a", namespace)
    assert deleted["metadata"]["name"] == "a"
    with pytest.raises(NotFoundError) as gone:
        await client.get(CONFIGMAPS, "a", namespace)
    assert gone.value.code == 404
    with pytest.raises(NotFoundError):
        await client.delete(CONFIGMAPS, "a", namespace)
    with pytest.raises(ValueError, match="namespaced"):
        await client.get(CONFIGMAPS, "a")


async def test_server_side_apply(client: Client, namespace: str) -> None:
    applied = await client.patch(
        CONFIGMAPS, "sa", configmap("sa", {"a": "1"}), namespace, type="apply", field_manager="one"
    )
    assert applied["data"] == {"a": "1"}
    with pytest.raises(ConflictError) as conflict:
        await client.patch(
            CONFIGMAPS, "sa", configmap("sa", {"a": "2"}), namespace, type="apply", field_manager="two"
        )
    assert conflict.value.code == 409
    forced = await client.patch(
        CONFIGMAPS,
        "sa",
        configmap("sa", {"a": "2"}),
        namespace,
        type="apply",
        field_manager="two",
        force=True,
    )
    assert forced["data"] == {"a": "2"}
    managers = {entry["manager"] for entry in forced["metadata"]["managedFields"]}
    assert "two" in managers
    with pytest.raises(ValueError, match="field_manager"):
        await client.patch(CONFIGMAPS, "sa", {}, namespace, type="apply")


async def test_update_status_of_a_cluster_scoped_object(client: Client) -> None:
    name = f"node-{os.getpid()}"
    node = await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    try:
        node["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        node["spec"] = {"unschedulable": True}
        written = await client.update_status(NODES, node)
        assert written["status"]["conditions"][0]["type"] == "Ready"
        assert not (written.get("spec") or {}).get("unschedulable")  # the status subresource ignores spec
    finally:
        await client.delete(NODES, name)


async def test_list_selectors_and_paging(client: Client, namespace: str) -> None:
    for i in range(5):
        labels = {"parity": "even" if i % 2 == 0 else "odd"}
        await client.create(CONFIGMAPS, configmap(f"p{i}", labels=labels), namespace)
    even = await client.list(CONFIGMAPS, namespace, label_selector="parity=even")
    assert sorted(item["metadata"]["name"] for item in even["items"]) == ["p0", "p2", "p4"]
    one = await client.list(CONFIGMAPS, namespace, field_selector="metadata.name=p3")
    assert [item["metadata"]["name"] for item in one["items"]] == ["p3"]

    first = await client.list(CONFIGMAPS, namespace, limit=2)
    assert len(first["items"]) == 2
    names = [item["metadata"]["name"] for item in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = await client.list(CONFIGMAPS, namespace, limit=2, continue_token=token)
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
    assert names == [f"p{i}" for i in range(5)]

    everything = await client.list_all(CONFIGMAPS, namespace, page_size=2)
    assert [item["metadata"]["name"] for item in everything["items"]] == names
    assert everything["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert "continue" not in everything["metadata"]


async def test_connections_probe_a_quiet_server_with_tcp_keepalive(server: Server) -> None:
    """A watch sends nothing after its request; only keepalive probes notice a server that vanished
    (its machine deleted, its VIP moved), as Go's dialer does for client-go. Also for sockets from a
    socket factory (how a netns cluster's VIP is reached)."""
    made: list[socket.socket] = []

    def factory(addr_info: tuple[int, int, int, str, tuple[object, ...]]) -> socket.socket:
        made.append(socket.socket(addr_info[0], addr_info[1], addr_info[2]))
        return made[-1]

    def probed(sock: socket.socket) -> tuple[int, int, int, int]:
        return (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        )

    async with Client(load_kubeconfig(server.kubeconfig), socket_factory=factory) as client:
        await client.list(NAMESPACES)
        assert made, "the socket factory was not used"
        assert [probed(sock) for sock in made] == [(1, 10, 5, 3)] * len(made)
    async with Client(load_kubeconfig(server.kubeconfig)) as client:
        with client._make_socket((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 0))) as sock:
            assert probed(sock) == (1, 10, 5, 3)


async def test_watch_from_a_list(client: Client, namespace: str) -> None:
    await client.create(CONFIGMAPS, configmap("before"), namespace)
    listed = await client.list(CONFIGMAPS, namespace)
    seen: list[tuple[str, str]] = []
    async with client.watch(
        CONFIGMAPS, namespace, resource_version=listed["metadata"]["resourceVersion"]
    ) as stream:
        await client.create(CONFIGMAPS, configmap("w", {"v": "1"}), namespace)
        await client.patch(CONFIGMAPS, "w", {"data": {"v": "2"}}, namespace)
        await client.delete(CONFIGMAPS, "w", namespace)

        async def collect() -> None:
            async for kind, obj in stream:
                if kind != "BOOKMARK":
                    seen.append((kind, obj["metadata"]["name"]))
                if kind == "DELETED":
                    return

        await within(collect())
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_watch_without_a_version_starts_with_the_current_objects(
    client: Client, namespace: str
) -> None:
    await client.create(CONFIGMAPS, configmap("now"), namespace)
    async with client.watch(CONFIGMAPS, namespace) as stream:
        kind, obj = await within(anext(stream))
    assert (kind, obj["metadata"]["name"]) == ("ADDED", "now")


async def test_watch_ends_when_the_server_says_so(client: Client, namespace: str) -> None:
    listed = await client.list(CONFIGMAPS, namespace)
    events = [
        event
        async for event in client.watch(
            CONFIGMAPS,
            namespace,
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=1,
            allow_bookmarks=False,
        )
    ]
    assert events == []


async def test_large_objects_cross_a_watch(client: Client, namespace: str) -> None:
    """One event line far beyond aiohttp's readline limit (128 KiB)."""
    listed = await client.list(CONFIGMAPS, namespace)
    big = "x" * 600_000
    async with client.watch(
        CONFIGMAPS, namespace, resource_version=listed["metadata"]["resourceVersion"]
    ) as s:
        await client.create(CONFIGMAPS, configmap("big", {"big": big}), namespace)
        kind, obj = await within(anext(s))
    assert kind == "ADDED"
    assert obj["data"]["big"] == big


async def test_unknown_resource_and_unreachable_server(client: Client) -> None:
    with pytest.raises(NotFoundError):
        await client.list(Resource("example.com", "v1", "nothings"))
    with pytest.raises(NotFoundError):
        await anext(client.watch(Resource("example.com", "v1", "nothings")))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    async with Client(KubeConfig(server=f"https://127.0.0.1:{port}"), timeout=5) as nowhere:
        with pytest.raises(TransportError):
            await nowhere.list(NODES)
        with pytest.raises(TransportError):
            await anext(nowhere.watch(NODES))


async def test_delete_propagation(client: Client, namespace: str) -> None:
    """Background deletes dependents (the server's garbage collector), Orphan keeps them."""

    def owned_by(owner: dict[str, object], name: str) -> dict[str, object]:
        meta = owner["metadata"]
        assert isinstance(meta, dict)
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": meta["name"], "uid": meta["uid"]}
        return configmap(name, ownerReferences=[{**ref, "controller": True}])

    kept_owner = await client.create(CONFIGMAPS, configmap("orphaning"), namespace)
    await client.create(CONFIGMAPS, owned_by(kept_owner, "orphan"), namespace)
    owner = await client.create(CONFIGMAPS, configmap("owner"), namespace)
    await client.create(CONFIGMAPS, owned_by(owner, "dependent"), namespace)
    listed = await client.list(CONFIGMAPS, namespace)

    async with client.watch(
        CONFIGMAPS, namespace, resource_version=listed["metadata"]["resourceVersion"]
    ) as s:
        await client.delete(CONFIGMAPS, "orphaning", namespace, propagation_policy="Orphan")
        await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Background")

        async def dependent_deleted() -> None:
            async for kind, obj in s:
                if kind == "DELETED" and obj["metadata"]["name"] == "dependent":
                    return

        await within(dependent_deleted())

    orphan = await client.get(CONFIGMAPS, "orphan", namespace)
    assert not orphan["metadata"].get("ownerReferences")
    with pytest.raises(NotFoundError):
        await client.get(CONFIGMAPS, "orphaning", namespace)


async def test_a_real_410(tmp_path: Path) -> None:
    """A real 410 from a real server: the history is compacted offline between two runs of the
    server (it compacts by itself only every 300 s), then a watch resumes from before it."""
    data = tmp_path / "data"
    first = await start(data)
    try:
        async with Client.from_kubeconfig(first.kubeconfig) as api:
            made = await api.create(CONFIGMAPS, configmap("old"), "default")
            for i in range(3):
                await api.patch(CONFIGMAPS, "old", {"data": {"i": str(i)}}, "default")
    finally:
        await stop(first)
    oldest = await compact_offline(data)
    assert int(made["metadata"]["resourceVersion"]) < oldest
    second = await start(data)
    try:
        async with Client.from_kubeconfig(second.kubeconfig) as api:
            with pytest.raises(Expired) as expired:
                async with api.watch(
                    CONFIGMAPS, "default", resource_version=made["metadata"]["resourceVersion"]
                ) as stream:
                    await within(anext(stream))
            assert expired.value.code == 410
            assert isinstance(expired.value, APIError)
            # What an informer does next: list, and watch from the list.
            listed = await api.list(CONFIGMAPS, "default")
            async with api.watch(
                CONFIGMAPS, "default", resource_version=listed["metadata"]["resourceVersion"]
            ) as s:
                await api.delete(CONFIGMAPS, "old", "default")
                kind, _ = await within(anext(s))
                assert kind == "DELETED"
    finally:
        await stop(second)
