"""API semantics checked in-process (the real server over real storage, without TLS), where a test
needs to reach behind the API: compacting history to provoke 410 Gone, shortening bookmark intervals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from anywhere.apiserver import server as server_module
from anywhere.apiserver.server import APIServer, User
from anywhere.storage.sqlite import SQLiteStorage

CM = "/api/v1/namespaces/default/configmaps"


async def _admin(_: Any) -> User:
    return User("admin", ("system:masters",))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient, APIServer, SQLiteStorage]]:
    storage = await SQLiteStorage.open(tmp_path / "state.db")
    server = APIServer(storage, _admin)
    await server.start()
    client = TestClient(TestServer(server.app()))
    await client.start_server()
    yield client, server, storage
    await client.close()
    await server.stop()
    await storage.close()


async def post(client: TestClient, body: dict[str, Any], query: str = "") -> tuple[int, dict[str, Any]]:
    response = await client.post(
        CM + query, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )
    return response.status, await response.json()


async def test_generate_name_and_dry_run(api: tuple[TestClient, APIServer, SQLiteStorage]) -> None:
    client, _, _ = api
    status, created = await post(client, {"metadata": {"generateName": "job-"}, "data": {"a": "1"}})
    assert status == 201
    assert created["metadata"]["name"].startswith("job-")
    assert len(created["metadata"]["name"]) == len("job-") + 5
    status, dry = await post(client, {"metadata": {"name": "dry"}}, "?dryRun=All")
    assert status == 201
    assert (await client.get(f"{CM}/dry")).status == 404
    assert dry["metadata"]["name"] == "dry"


async def test_limit_and_continue(api: tuple[TestClient, APIServer, SQLiteStorage]) -> None:
    client, _, _ = api
    for i in range(7):
        await post(client, {"metadata": {"name": f"p{i}", "labels": {"odd": str(i % 2)}}})
    pages: list[list[str]] = []
    token = ""
    while True:
        query = f"?limit=3&labelSelector=odd%3D1{'&continue=' + token if token else ''}"
        body = await (await client.get(CM + query)).json()
        pages.append([item["metadata"]["name"] for item in body["items"]])
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert pages[0] == ["p1", "p3", "p5"]  # the server fills a page with matching items first
    assert [name for page in pages for name in page] == ["p1", "p3", "p5"]
    body = await (await client.get(CM + "?limit=2")).json()
    assert len(body["items"]) == 2
    assert body["metadata"]["continue"]
    bad = await client.get(CM + "?continue=garbage")
    assert bad.status == 400


async def test_watch_from_compacted_revision_is_410_gone(
    api: tuple[TestClient, APIServer, SQLiteStorage],
) -> None:
    client, _, storage = api
    _, first = await post(client, {"metadata": {"name": "old"}})
    for i in range(5):
        await post(client, {"metadata": {"name": f"later{i}"}})
    await storage.compact(keep=2)
    storage.hub._recent.clear()  # the in-memory ring would still serve it; reach the compacted log
    response = await client.get(f"{CM}?watch=1&resourceVersion={first['metadata']['resourceVersion']}")
    assert response.status == 200
    event = orjson.loads(await response.content.readline())
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"


async def test_watch_bookmarks_and_timeout(
    api: tuple[TestClient, APIServer, SQLiteStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, _ = api
    monkeypatch.setattr(server_module, "BOOKMARK_INTERVAL", 0.05)
    _, created = await post(client, {"metadata": {"name": "bm"}})
    rv = created["metadata"]["resourceVersion"]
    response = await client.get(
        f"{CM}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"
    )
    events = [orjson.loads(line) for line in (await response.read()).splitlines() if line]
    assert events, "expected at least one bookmark before the timeout ended the stream"
    assert all(e["type"] == "BOOKMARK" for e in events)
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)


async def test_watch_with_label_selector_sees_objects_enter_and_leave(
    api: tuple[TestClient, APIServer, SQLiteStorage],
) -> None:
    client, _, _ = api
    response = await client.get(f"{CM}?watch=1&labelSelector=team%3Dblue&timeoutSeconds=5")
    await post(client, {"metadata": {"name": "w", "labels": {"team": "red"}}})
    patch = {"metadata": {"labels": {"team": "blue"}}}
    headers = {"Content-Type": "application/merge-patch+json"}
    await client.patch(f"{CM}/w", data=orjson.dumps(patch), headers=headers)
    await client.patch(
        f"{CM}/w", data=orjson.dumps({"metadata": {"labels": {"team": "red"}}}), headers=headers
    )
    seen = []
    while len(seen) < 2:
        line = await response.content.readline()
        seen.append(orjson.loads(line)["type"])
    assert seen == ["ADDED", "DELETED"]  # entering the selection, then leaving it
    response.close()


async def test_deletecollection_with_selector(api: tuple[TestClient, APIServer, SQLiteStorage]) -> None:
    client, _, _ = api
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        await post(client, {"metadata": {"name": name, "labels": {"team": team}}})
    response = await client.delete(CM + "?labelSelector=team%3Dx")
    assert response.status == 200
    body = await (await client.get(CM)).json()
    assert [item["metadata"]["name"] for item in body["items"]] == ["c"]


async def test_builtin_kinds_get_basic_schema_checks(
    api: tuple[TestClient, APIServer, SQLiteStorage],
) -> None:
    client, _, _ = api
    status, body = await post(client, {"metadata": {"name": "typed"}, "data": {"a": 1}})
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "data.a"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": "three",
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": 0.5}}}]},
            },
        },
    }
    response = await client.post(
        "/apis/apps/v1/namespaces/default/deployments",
        data=orjson.dumps(deployment),
        headers={"Content-Type": "application/json"},
    )
    body = await response.json()
    assert response.status == 422
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.replicas"]  # cpu 0.5 is a fine quantity
