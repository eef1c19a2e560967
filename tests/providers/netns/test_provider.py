"""The netns provider as the generic controllers see it, and the dialer that lets the host's plane
reach addresses that exist only inside a fabric."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from anywhere.api.v1alpha1 import Cluster
from anywhere.api.v1alpha1.netns import NetnsDatacenterConfig, NetnsMachineConfig
from anywhere.api.v1alpha1.sim import SimDatacenterConfig, SimMachineConfig
from anywhere.controllers.resources import NETNS_CLUSTERS, NETNS_MACHINE_TEMPLATES, NETNS_MACHINES
from anywhere.providers.netns import _dial
from anywhere.providers.netns.machines import MachineNamespace
from anywhere.providers.netns.provider import PROVIDER, STATE_ENV, state_dir
from anywhere.providers.registry import all_providers, provider_for_datacenter, provider_for_infra_cluster
from tests.providers.netns.hardware import make_fabric, requires_root
from tests.providers.netns.hardware import state_dir as netns_state_dir

__all__ = ["netns_state_dir"]


def _cluster(management: str | None = None) -> Cluster:
    spec: dict[str, object] = {
        "kubernetesVersion": "1.33",
        "controlPlaneConfiguration": {"count": 1, "endpoint": {"host": "10.231.0.10"}},
        "datacenterRef": {"kind": "NetnsDatacenterConfig", "name": "dc"},
    }
    if management is not None:
        spec["managementCluster"] = {"name": management}
    return Cluster.model_validate(
        {
            "apiVersion": "anywhere.eks.amazonaws.com/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "c1"},
            "spec": spec,
        }
    )


def test_the_provider_is_registered_for_its_kinds() -> None:
    assert PROVIDER in all_providers()
    assert provider_for_datacenter("NetnsDatacenterConfig") is PROVIDER
    assert provider_for_infra_cluster("NetnsCluster") is PROVIDER
    assert PROVIDER.infra_machine is NETNS_MACHINES
    assert PROVIDER.infra_cluster is NETNS_CLUSTERS
    assert PROVIDER.infra_machine_template is NETNS_MACHINE_TEMPLATES


def test_the_infrastructure_cluster_carries_the_fabric_and_the_vip() -> None:
    datacenter = NetnsDatacenterConfig.model_validate(
        {
            "metadata": {"name": "dc"},
            "spec": {
                "bridgeName": "aw-br7",
                "bridgeSubnet": "10.231.0.0/24",
                "gateway": "10.231.0.1",
                "dhcpRange": {"start": "10.231.0.100", "end": "10.231.0.120"},
            },
        }
    )
    assert PROVIDER.infra_cluster_spec(_cluster(), datacenter) == {
        "bridgeName": "aw-br7",
        "bridgeSubnet": "10.231.0.0/24",
        "gateway": "10.231.0.1",
        "dhcpRange": {"start": "10.231.0.100", "end": "10.231.0.120"},
        "controlPlaneVIP": "10.231.0.10",
        "selfManaged": True,
    }
    # the machines of a self-managed cluster run its controllers; a workload cluster's do not
    assert PROVIDER.infra_cluster_spec(_cluster("c1"), datacenter)["selfManaged"] is True
    assert "selfManaged" not in PROVIDER.infra_cluster_spec(_cluster("mgmt"), datacenter)
    with pytest.raises(TypeError, match="NetnsDatacenterConfig"):
        PROVIDER.infra_cluster_spec(
            _cluster(), SimDatacenterConfig.model_validate({"metadata": {"name": "x"}})
        )


def test_the_machine_template_has_the_boot_timeout_defaulted() -> None:
    config = NetnsMachineConfig.model_validate({"metadata": {"name": "m"}, "spec": {}})
    assert PROVIDER.machine_template_spec(config) == {"bootTimeout": "2m"}
    assert config.spec.boot_timeout is None  # defaults apply to a copy
    timed = NetnsMachineConfig.model_validate({"metadata": {"name": "m"}, "spec": {"bootTimeout": "45s"}})
    assert PROVIDER.machine_template_spec(timed) == {"bootTimeout": "45s"}
    with pytest.raises(TypeError, match="NetnsMachineConfig"):
        PROVIDER.machine_template_spec(SimMachineConfig.model_validate({"metadata": {"name": "m"}}))


def test_the_state_folder_is_the_planes_unless_the_environment_names_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Plane:
        data_dir = tmp_path / "plane"

    monkeypatch.delenv(STATE_ENV, raising=False)
    assert state_dir(Plane()) == tmp_path / "plane" / "netns"  # type: ignore[arg-type]
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "shared"))
    assert state_dir(Plane()) == tmp_path / "shared"  # type: ignore[arg-type]


HTTP = (
    "import http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'inside the fabric')\n"
    "http.server.HTTPServer(('0.0.0.0', 7080), H).serve_forever()\n"
)


@requires_root
async def test_a_client_in_the_hosts_namespace_reaches_a_machine_through_the_dialer(
    netns_state_dir: Path,
) -> None:
    fabric = await make_fabric(netns_state_dir)
    machine = MachineNamespace(fabric, "web")
    lease = await machine.ensure()
    await machine.processes.spawn("http", [sys.executable, "-c", HTTP])
    url = f"http://{lease.address}:7080/"
    async with aiohttp.ClientSession(connector=_dial.connector_factory(fabric.namespace)) as session:

        async def answer() -> str:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    return await response.text()
            except aiohttp.ClientError:
                return ""

        # the server may still be starting: polling with a deadline, as for any external process
        text = ""
        for _ in range(100):
            text = await answer()
            if text:
                break
            await asyncio.sleep(0.1)
        assert text == "inside the fabric"
    # the dialer's thread went home: it holds no fabric (which would outlive its deletion)
    home = _dial.dialer()._pool().submit(os.readlink, "/proc/thread-self/ns/net").result()
    assert home == os.readlink("/proc/self/ns/net")


async def test_a_missing_namespace_is_a_connection_error() -> None:
    async with aiohttp.ClientSession(connector=_dial.connector_factory("aw-f-none-such")) as session:
        with pytest.raises(aiohttp.ClientConnectorError, match="aw-f-none-such"):
            await session.get("http://10.231.0.9:1/")
