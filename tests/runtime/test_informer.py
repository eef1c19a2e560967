"""Informers against a real `anywhere serve`: the cache follows the server, handlers hear every
change, resync re-delivers, and a 410 (a real one) relists and delivers what was missed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from anywhere.runtime import CONFIGMAPS, Client, Informer, InformerFactory, object_key, split_key
from tests.runtime.conftest import compact_offline, configmap, port_of, start, stop, within


class Recorder:
    """Handler callbacks that queue what they hear, so a test can await each event."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()

    def on_add(self, obj: dict[str, Any]) -> None:
        self.events.put_nowait(("add", object_key(obj), (obj.get("data") or {}).get("v")))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.put_nowait(("update", object_key(new), (new.get("data") or {}).get("v")))

    def on_delete(self, obj: dict[str, Any]) -> None:
        self.events.put_nowait(("delete", object_key(obj), (obj.get("data") or {}).get("v")))

    async def next(self) -> tuple[str, str, Any]:
        return await within(self.events.get())

    async def take(self, count: int) -> list[tuple[str, str, Any]]:
        return [await self.next() for _ in range(count)]

    def register(self, informer: Informer) -> None:
        informer.add_handler(self.on_add, self.on_update, self.on_delete)


@pytest.fixture
async def informer(client: Client, namespace: str) -> AsyncIterator[Informer]:
    running = Informer(client, CONFIGMAPS, namespace=namespace)
    yield running
    await running.stop()


def test_keys() -> None:
    assert object_key({"metadata": {"name": "a", "namespace": "n"}}) == "n/a"
    assert object_key({"metadata": {"name": "node"}}) == "node"
    assert split_key("n/a") == ("n", "a")
    assert split_key("node") == (None, "node")


async def test_cache_follows_creates_updates_and_deletes(
    client: Client, namespace: str, informer: Informer
) -> None:
    await client.create(CONFIGMAPS, configmap("pre", {"v": "0"}), namespace)
    recorder = Recorder()
    recorder.register(informer)
    informer.start()
    await within(informer.wait_synced())
    assert informer.synced
    assert await recorder.next() == ("add", f"{namespace}/pre", "0")
    assert informer.keys() == [f"{namespace}/pre"]

    await client.create(CONFIGMAPS, configmap("a", {"v": "1"}), namespace)
    assert await recorder.next() == ("add", f"{namespace}/a", "1")
    cached = informer.get(f"{namespace}/a")
    assert cached is not None
    assert cached["kind"] == "ConfigMap"
    await client.patch(CONFIGMAPS, "a", {"data": {"v": "2"}}, namespace)
    assert await recorder.next() == ("update", f"{namespace}/a", "2")
    cached = informer.get(f"{namespace}/a")
    assert cached is not None
    assert cached["data"] == {"v": "2"}
    assert informer.resource_version == cached["metadata"]["resourceVersion"]
    await client.delete(CONFIGMAPS, "a", namespace)
    assert await recorder.next() == ("delete", f"{namespace}/a", "2")
    assert informer.get(f"{namespace}/a") is None
    assert len(informer) == 1


async def test_a_late_handler_hears_the_cache_first(
    client: Client, namespace: str, informer: Informer
) -> None:
    for name in ("x", "y"):
        await client.create(CONFIGMAPS, configmap(name, {"v": name}), namespace)
    informer.start()
    await within(informer.wait_synced())
    late = Recorder()
    late.register(informer)
    assert sorted(await late.take(2)) == [("add", f"{namespace}/x", "x"), ("add", f"{namespace}/y", "y")]
    await client.patch(CONFIGMAPS, "x", {"data": {"v": "x2"}}, namespace)
    assert await late.next() == ("update", f"{namespace}/x", "x2")


def _by_value(obj: dict[str, Any]) -> list[str]:
    value = (obj.get("data") or {}).get("v")
    return [value] if value else []


def _names(objs: list[dict[str, Any]]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


async def test_an_index_follows_the_cache(client: Client, namespace: str, informer: Informer) -> None:
    """Objects are filed under their index values as they come, move when they change, and
    leave when deleted; an index added late files what is cached already."""
    await client.create(CONFIGMAPS, configmap("a", {"v": "x"}), namespace)
    await client.create(CONFIGMAPS, configmap("unfiled"), namespace)
    recorder = Recorder()
    recorder.register(informer)
    informer.start()
    await recorder.take(2)
    informer.add_index("v", _by_value)
    informer.add_index("v", lambda obj: ["ignored: the first function of a name stays"])
    assert _names(informer.by_index("v", "x")) == ["a"]

    await client.create(CONFIGMAPS, configmap("b", {"v": "x"}), namespace)
    await recorder.next()
    assert _names(informer.by_index("v", "x")) == ["a", "b"]
    await client.patch(CONFIGMAPS, "a", {"data": {"v": "y"}}, namespace)
    await recorder.next()
    assert _names(informer.by_index("v", "x")) == ["b"]
    assert _names(informer.by_index("v", "y")) == ["a"]
    await client.delete(CONFIGMAPS, "b", namespace)
    await recorder.next()
    assert informer.by_index("v", "x") == []
    assert informer.by_index("v", "nothing") == []


async def test_resync_redelivers_every_object_as_an_update(client: Client, namespace: str) -> None:
    await client.create(CONFIGMAPS, configmap("r", {"v": "1"}), namespace)
    informer = Informer(client, CONFIGMAPS, namespace=namespace, resync_period=0.05)
    recorder = Recorder()
    recorder.register(informer)
    informer.start()
    try:
        assert await recorder.next() == ("add", f"{namespace}/r", "1")
        assert await recorder.next() == ("update", f"{namespace}/r", "1")
        assert await recorder.next() == ("update", f"{namespace}/r", "1")
    finally:
        await informer.stop()


async def test_label_selected_informer(client: Client, namespace: str) -> None:
    informer = Informer(client, CONFIGMAPS, namespace=namespace, label_selector="app=web")
    recorder = Recorder()
    recorder.register(informer)
    informer.start()
    try:
        await within(informer.wait_synced())
        await client.create(CONFIGMAPS, configmap("other", {"v": "o"}, labels={"app": "db"}), namespace)
        await client.create(CONFIGMAPS, configmap("web", {"v": "w"}, labels={"app": "web"}), namespace)
        assert await recorder.next() == ("add", f"{namespace}/web", "w")
        # Entering the selection is an add to a selected informer.
        await client.patch(CONFIGMAPS, "other", {"metadata": {"labels": {"app": "web"}}}, namespace)
        assert await recorder.next() == ("add", f"{namespace}/other", "o")
        assert sorted(informer.keys()) == [f"{namespace}/other", f"{namespace}/web"]
        # Leaving it is a delete (for an object this watch has sent: see the next test).
        await client.patch(CONFIGMAPS, "other", {"metadata": {"labels": {"app": "db"}}}, namespace)
        assert await recorder.next() == ("delete", f"{namespace}/other", "o")
        assert informer.keys() == [f"{namespace}/web"]
    finally:
        await informer.stop()


async def test_leaving_the_selection_is_a_delete(client: Client, namespace: str) -> None:
    await client.create(CONFIGMAPS, configmap("listed", {"v": "l"}, labels={"app": "web"}), namespace)
    informer = Informer(client, CONFIGMAPS, namespace=namespace, label_selector="app=web")
    recorder = Recorder()
    recorder.register(informer)
    informer.start()
    try:
        assert await recorder.next() == ("add", f"{namespace}/listed", "l")
        await client.patch(CONFIGMAPS, "listed", {"metadata": {"labels": {"app": "db"}}}, namespace)
        assert await within(recorder.events.get(), timeout=3) == ("delete", f"{namespace}/listed", "l")
        assert informer.keys() == []
    finally:
        await informer.stop()


async def test_factory_shares_informers(client: Client) -> None:
    factory = InformerFactory(client)
    assert factory.informer(CONFIGMAPS, namespace="a") is factory.informer(CONFIGMAPS, namespace="a")
    assert factory.informer(CONFIGMAPS, namespace="a") is not factory.informer(CONFIGMAPS, namespace="b")
    assert factory.informer(CONFIGMAPS) is not factory.informer(CONFIGMAPS, label_selector="x=y")
    assert len(list(factory)) == 4


async def test_a_real_410_relists_and_delivers_what_was_missed(tmp_path: Path) -> None:
    """The informer's server goes away; meanwhile objects are created, changed and deleted
    through a second run of the server on another port, and the history is compacted offline.
    When the server is back on the informer's port, its resumed watch gets a real 410, and the
    informer must list again and tell its handlers the difference, the deletion included."""
    data = tmp_path / "data"
    first = await start(data)
    port = port_of(first)
    api = Client.from_kubeconfig(first.kubeconfig)
    informer = Informer(api, CONFIGMAPS, namespace="default", max_retry_delay=0.2)
    recorder = Recorder()
    try:
        for name in ("keep", "change", "remove"):
            await api.create(CONFIGMAPS, configmap(name, {"v": "1"}), "default")
        recorder.register(informer)
        informer.add_index("v", _by_value)
        informer.start()
        assert len(await recorder.take(3)) == 3
        assert _names(informer.by_index("v", "1")) == ["change", "keep", "remove"]
        stale_version = informer.resource_version
        await stop(first)

        elsewhere = await start(data)  # a different port: the informer cannot see this one
        async with Client.from_kubeconfig(elsewhere.kubeconfig) as other:
            await other.patch(CONFIGMAPS, "change", {"data": {"v": "2"}}, "default")
            await other.delete(CONFIGMAPS, "remove", "default")
            await other.create(CONFIGMAPS, configmap("new", {"v": "1"}), "default")
        await stop(elsewhere)
        assert int(stale_version) < await compact_offline(data)

        back = await start(data, port)
        try:
            missed = sorted(await recorder.take(3))
            assert missed == [
                ("add", "default/new", "1"),
                ("delete", "default/remove", "1"),
                ("update", "default/change", "2"),
            ]
            assert sorted(informer.keys()) == ["default/change", "default/keep", "default/new"]
            assert _names(informer.by_index("v", "1")) == ["keep", "new"]  # the relist refiled all
            assert _names(informer.by_index("v", "2")) == ["change"]
            assert int(informer.resource_version) > int(stale_version)
            # And it watches again.
            await api.delete(CONFIGMAPS, "keep", "default")
            assert await recorder.next() == ("delete", "default/keep", "1")
        finally:
            await informer.stop()
            await stop(back)
    finally:
        await informer.stop()
        await api.close()
        if first.process.poll() is None:
            await stop(first)


async def test_bookmarks_keep_the_resource_version_fresh(
    client: Client, namespace: str, informer: Informer
) -> None:
    """Nothing changes in the informer's namespace while another namespace is written to: the
    server's bookmarks (every 5 s of quiet) still carry the informer's resourceVersion forward,
    so a later resumption is not needlessly old."""
    informer.start()
    await within(informer.wait_synced())
    listed = await client.list(CONFIGMAPS, namespace)
    elsewhere = await client.create(CONFIGMAPS, configmap(f"elsewhere-{namespace}"), "default")
    try:
        written = int(elsewhere["metadata"]["resourceVersion"])
        async with client.watch(
            CONFIGMAPS, namespace, resource_version=listed["metadata"]["resourceVersion"]
        ) as s:
            kind, bookmark = await within(anext(s))
        assert kind == "BOOKMARK"
        assert int(bookmark["metadata"]["resourceVersion"]) >= written

        async def fresh() -> None:  # no event to await here: the bookmark changes nothing but the version
            while int(informer.resource_version) < written:
                await asyncio.sleep(0.05)

        await within(fresh())
        assert len(informer) == 0
    finally:
        await client.delete(CONFIGMAPS, f"elsewhere-{namespace}", "default")
