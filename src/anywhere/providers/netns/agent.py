"""The agents a netns machine runs, as one entry point (what kube-vip and the kubelet are on a node).

The machine controller starts them inside the machine's network namespace (``nsenter --net``,
through :class:`~anywhere.providers.netns.processes.ProcessTable`), each with a kubeconfig for the
cluster's API::

    python -m anywhere.providers.netns.agent vip --kubeconfig FILE --vip ADDRESS --identity MACHINE
        [--interface eth0] [--lease-namespace kube-system] [--lease-name anywhere-cp-vip]
        [--lease-duration 2] [--renew-deadline 1.5] [--retry-period 0.5] [--address-lifetime 2]

    python -m anywhere.providers.netns.agent node --kubeconfig FILE --node-name NAME
        --node-ip ADDRESS --kubelet-version vX.Y.Z --cluster NAME [--cluster-namespace default]
        [--machine NAME] [--provider-id ID] [--control-plane] [--heartbeat-period 10]

Both run until SIGTERM or SIGINT and then exit 0 (the VIP agent removes the VIP and releases
its Lease first). Bad arguments, an unreadable kubeconfig, a missing interface or a missing
``arping`` end the process at start with status 2 and one line saying what is wrong; the API
being unreachable is never a reason to exit. Logs go to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from anywhere._signals import until_signalled
from anywhere.providers.kubelet import HEARTBEAT_PERIOD
from anywhere.providers.netns._host import NetnsError, tool
from anywhere.providers.netns.node import NodeAgent, NodeSettings
from anywhere.providers.netns.vip import (
    DEFAULT_LEASE_NAME,
    DEFAULT_LEASE_NAMESPACE,
    VipAgent,
    VipError,
    VipTimings,
)
from anywhere.runtime import Client, KubeConfigError, load_kubeconfig

__all__ = ["main", "parser"]

log = logging.getLogger("anywhere.netns.agent")
USAGE_ERROR = 2
# Requests of the VIP agent must not outlive a renewal: the elector bounds renewals itself, and
# this bounds the attempts of a candidate, so an API that hangs costs one attempt, not 30 s.
VIP_REQUEST_TIMEOUT = 1.5
NODE_REQUEST_TIMEOUT = 10.0


class _Usage(Exception):
    """A bad argument or environment, reported as one line and exit status 2."""


def _ipv4(text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not positive")
    return value


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is less than 1 second")
    return value


def parser() -> argparse.ArgumentParser:
    defaults = VipTimings()
    top = argparse.ArgumentParser(
        prog="python -m anywhere.providers.netns.agent",
        description="The agents of a netns machine: the VIP agent (kube-vip) and the node agent (kubelet).",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="{vip,node}")

    vip = commands.add_parser("vip", help="hold the control plane VIP while leading (control plane machines)")
    vip.add_argument(
        "--kubeconfig", type=Path, required=True, help="the cluster's API (this machine's own server)"
    )
    vip.add_argument("--vip", type=_ipv4, required=True, help="the control plane endpoint address")
    vip.add_argument("--identity", required=True, help="this candidate's unique name: the machine's name")
    vip.add_argument("--interface", default="eth0", help="where the VIP goes (default: eth0)")
    vip.add_argument("--lease-namespace", default=DEFAULT_LEASE_NAMESPACE)
    vip.add_argument("--lease-name", default=DEFAULT_LEASE_NAME)
    vip.add_argument("--lease-duration", type=_seconds, default=defaults.lease_duration, help="seconds")
    vip.add_argument("--renew-deadline", type=_positive, default=defaults.renew_deadline, help="seconds")
    vip.add_argument("--retry-period", type=_positive, default=defaults.retry_period, help="seconds")
    vip.add_argument(
        "--address-lifetime",
        type=_seconds,
        default=defaults.address_lifetime,
        help="seconds (kernel lifetime)",
    )

    node = commands.add_parser("node", help="register the machine's Node and keep it alive (every machine)")
    node.add_argument("--kubeconfig", type=Path, required=True, help="the cluster's API")
    node.add_argument("--node-name", required=True, help="the Node's name: the machine's name")
    node.add_argument("--node-ip", type=_ipv4, required=True, help="the machine's DHCP address")
    node.add_argument(
        "--kubelet-version", required=True, help="reported as nodeInfo.kubeletVersion, e.g. v1.33.1"
    )
    node.add_argument("--cluster", required=True, help="the cluster's name")
    node.add_argument("--cluster-namespace", default="default", help="the namespace of the cluster's objects")
    node.add_argument("--machine", default="", help="the Cluster API Machine (default: the node name)")
    node.add_argument("--provider-id", default="", help="default: netns://NAMESPACE/CLUSTER/NODE")
    node.add_argument("--control-plane", action="store_true", help="a control plane machine")
    node.add_argument(
        "--heartbeat-period", type=_positive, default=HEARTBEAT_PERIOD, help="seconds (default 10)"
    )
    return top


def _client(path: Path, timeout: float) -> Client:
    try:
        return Client(load_kubeconfig(path), timeout=timeout)
    except KubeConfigError as exc:
        raise _Usage(f"kubeconfig {path}: {exc}") from None


async def _vip(options: argparse.Namespace) -> None:
    try:
        timings = VipTimings(
            lease_duration=options.lease_duration,
            renew_deadline=options.renew_deadline,
            retry_period=options.retry_period,
            address_lifetime=options.address_lifetime,
            refresh_period=min(VipTimings.refresh_period, options.address_lifetime / 4),
        )
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    try:
        tool("arping")
    except NetnsError as exc:
        raise _Usage(str(exc)) from None
    client = _client(options.kubeconfig, VIP_REQUEST_TIMEOUT)
    agent = VipAgent(
        client,
        options.vip,
        options.identity,
        interface=options.interface,
        lease_namespace=options.lease_namespace,
        lease_name=options.lease_name,
        timings=timings,
    )
    try:
        await agent.address.check()
    except VipError as exc:
        await client.close()
        raise _Usage(str(exc)) from None
    log.info("starting the VIP agent: %s", agent.describe())
    try:
        await until_signalled(agent.run())
    finally:
        await client.close()
    log.info("VIP agent stopped")


async def _node(options: argparse.Namespace) -> None:
    try:
        settings = NodeSettings(
            name=options.node_name,
            address=options.node_ip,
            kubelet_version=options.kubelet_version,
            cluster=options.cluster,
            cluster_namespace=options.cluster_namespace,
            machine=options.machine,
            provider_id=options.provider_id,
            control_plane=options.control_plane,
            heartbeat_period=options.heartbeat_period,
        )
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    client = _client(options.kubeconfig, NODE_REQUEST_TIMEOUT)
    agent = NodeAgent(client, settings)
    log.info("starting the node agent: %s", agent.describe())
    try:
        await until_signalled(agent.run())
    finally:
        await client.close()
    log.info("node agent stopped")


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        asyncio.run(_vip(options) if options.command == "vip" else _node(options))
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
