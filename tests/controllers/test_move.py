"""The move step of the self-managed flow (``clusterctl move``), between two real `anywhere serve`.

The source is seeded honestly: the plane's own controllers (with the ``sim`` provider) run
in-process against it until a 1 control plane + 1 worker cluster is Ready, so what moves is what
the controllers really make (Cluster API objects, sim infrastructure, kubeconfig and bootstrap
Secrets, finalizers, statuses, owner references) — not a hand-made imitation. A crash is an
exception raised from inside one step (what a killed process leaves behind: some writes done, the
rest not); the move is then run again and must converge.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from anywhere.api.capi import PAUSED_ANNOTATION
from anywhere.api.generate import generate_config
from anywhere.api.loader import dump_config
from anywhere.controllers import move as move_module
from anywhere.controllers.context import Context
from anywhere.controllers.move import MoveError, move
from anywhere.controllers.objects import ANYWHERE_PAUSED_ANNOTATION
from anywhere.controllers.plane import all_controllers
from anywhere.controllers.remote import ClusterCache
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    CONFIGMAPS,
    EKSA_CLUSTERS,
    KUBEADM_CONFIG_TEMPLATES,
    KUBEADM_CONFIGS,
    KUBEADM_CONTROL_PLANES,
    MACHINE_DEPLOYMENTS,
    MACHINE_HEALTH_CHECKS,
    MACHINE_SETS,
    MACHINES,
    SECRETS,
    SIM_CLUSTERS,
    SIM_DATACENTERS,
    SIM_MACHINE_CONFIGS,
    SIM_MACHINE_TEMPLATES,
    SIM_MACHINES,
    anywhere_resource,
)
from anywhere.runtime import NAMESPACES, AlreadyExistsError, Client, Manager, Resource, load_kubeconfig
from tests.conftest import Server, start_server, stop_server
from tests.controllers.conftest import eventually, running

Obj = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace, name
NAME = "mv"

# Every kind a sim cluster's objects can be of: what the snapshots below compare.
KINDS: list[Resource] = [
    EKSA_CLUSTERS,
    SIM_DATACENTERS,
    SIM_MACHINE_CONFIGS,
    CAPI_CLUSTERS,
    KUBEADM_CONTROL_PLANES,
    MACHINE_DEPLOYMENTS,
    MACHINE_SETS,
    MACHINES,
    KUBEADM_CONFIGS,
    KUBEADM_CONFIG_TEMPLATES,
    MACHINE_HEALTH_CHECKS,
    SIM_CLUSTERS,
    SIM_MACHINES,
    SIM_MACHINE_TEMPLATES,
    SECRETS,
    CONFIGMAPS,
]
PAUSE_MARKS = {PAUSED_ANNOTATION, ANYWHERE_PAUSED_ANNOTATION}


@pytest.fixture
def apis(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two management APIs: the bootstrap plane (source) and the cluster's own (target)."""
    first = start_server(tmp_path / "source")
    try:
        second = start_server(tmp_path / "target")
        try:
            yield first, second
        finally:
            stop_server(second)
    finally:
        stop_server(first)


@contextlib.asynccontextmanager
async def plane(server: Server, data_dir: Path) -> AsyncIterator[Context]:
    """A management-plane context against ``server``; ``data_dir`` holds the sim clusters' APIs
    (shared by source and target planes, as the machines are shared by both in real life)."""
    client = Client.from_kubeconfig(server.kubeconfig)
    manager = Manager(client)
    clusters = ClusterCache(client)
    try:
        yield Context(client=client, manager=manager, clusters=clusters, data_dir=data_dir)
    finally:
        await clusters.close()
        await manager.close()
        await client.close()


async def seed(client: Client, name: str) -> None:
    """Apply a sim cluster specification (1 control plane, 1 worker, machines that boot at once)."""
    # What the plane does at start (plane.run): the namespace of the Cluster API objects.
    with contextlib.suppress(AlreadyExistsError):
        await client.create(NAMESPACES, {"metadata": {"name": "eksa-system"}})
    config = generate_config(name, "sim")
    spec = config.cluster.spec
    assert spec.control_plane_configuration is not None
    assert spec.worker_node_group_configurations
    spec.control_plane_configuration.count = 1
    spec.worker_node_group_configurations[0].count = 1
    for machine in config.of_kind("SimMachineConfig"):
        machine.spec.boot_delay = "0s"  # type: ignore[attr-defined]
        machine.spec.boot_jitter = "0s"  # type: ignore[attr-defined]
    for document in yaml.safe_load_all(dump_config(config)):
        document["metadata"]["namespace"] = "default"
        kind = document["kind"]
        await client.create(anywhere_resource(kind.lower() + "s", kind), document)


def ready(generation_seen: bool = False) -> Callable[[list[Obj]], bool]:
    def check(items: list[Obj]) -> bool:
        for item in items:
            status = item.get("status") or {}
            conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
            if conditions.get("Ready") != "True":
                continue
            if generation_seen and status.get("observedGeneration") != item["metadata"].get("generation"):
                continue
            return True
        return False

    return check


async def snapshot(client: Client) -> dict[Key, Obj]:
    out: dict[Key, Obj] = {}
    for resource in KINDS:
        for namespace in ("default", "eksa-system"):
            listing = await client.list_all(resource, namespace)
            for obj in listing.get("items") or ():
                key = (resource.kind, namespace, obj["metadata"]["name"])
                assert key not in out, f"{key} twice"
                out[key] = obj
    return out


def comparable(obj: Obj) -> Obj:
    """What must survive a move unchanged: all but the server's metadata, owner uids, pause marks."""
    meta = obj["metadata"]
    return {
        "labels": meta.get("labels") or {},
        "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if k not in PAUSE_MARKS},
        "finalizers": meta.get("finalizers") or [],
        "owners": [(r["kind"], r["name"], r.get("controller")) for r in meta.get("ownerReferences") or ()],
        "spec": {k: v for k, v in (obj.get("spec") or {}).items() if k != "paused"},
        "status": obj.get("status"),
        "data": obj.get("data"),
    }


async def assert_moved(original: dict[Key, Obj], source: Client, target: Client) -> dict[Key, Obj]:
    """Everything of ``original`` is in ``target`` (nothing more, nothing twice) with owner uids of
    the target and the same content; ``source`` holds none of it; the target is unpaused."""
    there = await snapshot(target)
    assert set(there) == set(original)
    uid_of = {(key[0], key[1], key[2]): obj["metadata"]["uid"] for key, obj in there.items()}
    for key, obj in there.items():
        assert comparable(obj) == comparable(original[key]), key
        for ref in obj["metadata"].get("ownerReferences") or ():
            assert ref["uid"] == uid_of[(ref["kind"], key[1], ref["name"])], (key, ref)
    assert await snapshot(source) == {}
    capi = there[("Cluster", "eksa-system", NAME)]
    assert not capi["spec"].get("paused")
    assert not PAUSE_MARKS & set(capi["metadata"].get("annotations") or {})
    anywhere = there[("Cluster", "default", NAME)]
    assert not PAUSE_MARKS & set(anywhere["metadata"].get("annotations") or {})
    return there


def crash_after(monkeypatch: pytest.MonkeyPatch, step: str, calls: int) -> Callable[[], int]:
    """Make ``move_module.<step>`` raise (a crash) on its call number ``calls + 1``."""
    real: Callable[..., Awaitable[Any]] = getattr(move_module, step)
    count = 0

    async def crashing(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        if count > calls:
            raise RuntimeError(f"crash in {step}")
        return await real(*args, **kwargs)

    monkeypatch.setattr(move_module, step, crashing)
    return lambda: count


async def test_move_round_trip_converges_after_crashes_and_the_target_keeps_the_cluster_ready(
    apis: tuple[Server, Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = apis
    data_dir = tmp_path / "machines"
    data_dir.mkdir()
    async with plane(first, data_dir) as a, plane(second, data_dir) as b:
        await seed(a.client, NAME)
        async with running(a, all_controllers(a)):
            await eventually(a.client, EKSA_CLUSTERS, "default", ready())
            # The source settles (its last status writes) before the controllers stop.
            await eventually(a.client, EKSA_CLUSTERS, "default", ready(generation_seen=True))
        original = await snapshot(a.client)
        kinds = {key[0] for key in original}
        assert {"Machine", "SimMachine", "KubeadmConfig", "Secret", "SimCluster"} <= kinds, kinds
        machines = {key for key in original if key[0] == "Machine"}
        assert len(machines) == 2

        # 1. A crash in the middle of the copy: the source keeps everything, a re-run finishes.
        with monkeypatch.context() as patch:
            crash_after(patch, "_copy_one", 5)
            with pytest.raises(RuntimeError):
                await move(a.client, b.client, NAME, "default")
        assert set(await snapshot(a.client)) == set(original)
        assert len(await snapshot(b.client)) == 5  # half there, and paused
        moved = await move(a.client, b.client, NAME, "default")
        assert len(moved.objects) == len(original)
        await assert_moved(original, a.client, b.client)

        # 2. Back (what delete does), crashing in the middle of deleting from the source.
        with monkeypatch.context() as patch:
            crash_after(patch, "_delete_one", 3)
            with pytest.raises(RuntimeError):
                await move(b.client, a.client, NAME, "default")
        assert set(await snapshot(a.client)) == set(original)
        assert len(original) - 3 == len(await snapshot(b.client))
        await move(b.client, a.client, NAME, "default")
        await assert_moved(original, b.client, a.client)

        # 3. Forth again, crashing after the source is emptied but before the target is unpaused.
        with monkeypatch.context() as patch:
            crash_after(patch, "_unpause", 0)
            with pytest.raises(RuntimeError):
                await move(a.client, b.client, NAME, "default")
        assert await snapshot(a.client) == {}
        moved = await move(a.client, b.client, NAME, "default")
        assert moved.objects == []  # only the last step was left
        there = await assert_moved(original, a.client, b.client)

        assert {key for key in there if key[0] == "Machine"} == machines

        # The target's controllers take over: a change made there (one more worker) is carried
        # out, through the workload API the machines still serve, and no machine is replaced.
        async with running(b, all_controllers(b)):
            cluster = await b.client.get(EKSA_CLUSTERS, NAME, "default")
            cluster["spec"]["workerNodeGroupConfigurations"][0]["count"] = 2
            cluster = await b.client.update(EKSA_CLUSTERS, cluster)
            assert cluster["metadata"]["generation"] == 2  # a new generation: not the copied status
            await eventually(b.client, EKSA_CLUSTERS, "default", ready(generation_seen=True))
            await eventually(b.client, MACHINES, "eksa-system", lambda items: len(items) == len(machines) + 1)
            now = await snapshot(b.client)
        assert machines < {key for key in now if key[0] == "Machine"}


async def test_a_cluster_in_neither_api_is_a_clear_error(apis: tuple[Server, Server]) -> None:
    first, second = apis
    async with Client.from_kubeconfig(first.kubeconfig) as a, Client.from_kubeconfig(second.kubeconfig) as b:
        with pytest.raises(MoveError, match="is in neither API"):
            await move(a, b, "nope", "default")


async def test_an_unreachable_target_is_a_clear_error_and_the_source_keeps_everything(
    apis: tuple[Server, Server], tmp_path: Path
) -> None:
    first, _ = apis
    async with Client.from_kubeconfig(first.kubeconfig) as a:
        await seed(a, NAME)
        before = set(await snapshot(a))
        # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        config = dataclasses.replace(load_kubeconfig(first.kubeconfig), server="https://127.0.0.1:9")
        async with Client(config, timeout=5) as unreachable:
            with pytest.raises(MoveError, match=r"an API could not be reached"):
                await move(a, unreachable, NAME, "default")
        after = await snapshot(a)
        assert set(after) == before
        assert ANYWHERE_PAUSED_ANNOTATION not in (
            after[("Cluster", "default", NAME)]["metadata"].get("annotations") or {}
        )


async def test_a_config_another_cluster_uses_is_refused_before_anything_changes(
    apis: tuple[Server, Server],
) -> None:
    first, second = apis
    async with Client.from_kubeconfig(first.kubeconfig) as a, Client.from_kubeconfig(second.kubeconfig) as b:
        await seed(a, NAME)
        mine = await a.get(EKSA_CLUSTERS, NAME, "default")
        other = {
            "apiVersion": mine["apiVersion"],
            "kind": "Cluster",
            "metadata": {"name": "other", "namespace": "default"},
            "spec": mine["spec"],
        }
        await a.create(EKSA_CLUSTERS, other)
        with pytest.raises(MoveError, match=r"SimDatacenterConfig default/mv is used by cluster other too"):
            await move(a, b, NAME, "default")
        after = await a.get(EKSA_CLUSTERS, NAME, "default")
        assert ANYWHERE_PAUSED_ANNOTATION not in (after["metadata"].get("annotations") or {})
        assert await snapshot(b) == {}


async def test_a_source_that_changes_during_the_copy_is_copied_again(
    apis: tuple[Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source controller that had not seen the pause yet writes during the copy: the move sees
    the source changed and copies again, so the target gets the last word. (The cluster here is
    its anywhere objects only, as before the controllers render it: the smallest source.)"""
    first, second = apis
    async with Client.from_kubeconfig(first.kubeconfig) as a, Client.from_kubeconfig(second.kubeconfig) as b:
        await seed(a, NAME)
        real = move_module._copy
        rounds = 0

        async def copy_while_written(target: Client, items: Any) -> Any:
            nonlocal rounds
            rounds += 1
            moved = await real(target, items)
            if rounds == 1:
                patch = {"metadata": {"labels": {"late": "write"}}}
                await a.patch(SIM_MACHINE_CONFIGS, f"{NAME}-cp", patch, "default")
            return moved

        monkeypatch.setattr(move_module, "_copy", copy_while_written)
        moved = await move(a, b, NAME, "default")
        assert rounds == 2
        assert len(moved.objects) == 4  # the Cluster, its datacenter and two machine configs
        config = await b.get(SIM_MACHINE_CONFIGS, f"{NAME}-cp", "default")
        assert config["metadata"]["labels"]["late"] == "write"
        assert await snapshot(a) == {}
