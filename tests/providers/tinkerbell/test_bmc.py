"""BMC control over Redfish (``anywhere.providers.tinkerbell.bmc``) against the real sushy-tools
emulator: finding a Hardware's system by MAC, power and one-time PXE boot, and failures that say
what to fix without ever showing the password.

The emulator applies a power change 1 to 11 s after it is asked, so the power test drives several
systems at once and polls them all.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from anywhere.providers.tinkerbell import bmc
from anywhere.providers.tinkerbell.bmc import (
    AUTHENTICATION_FAILED,
    MISSING_CREDENTIALS,
    NOT_CONFIGURED,
    OFF,
    ON,
    SYSTEM_NOT_FOUND,
    UNREACHABLE,
    BMCEndpoint,
    BMCError,
    BMCs,
    SystemInfo,
    auth_secret_ref,
    endpoint_of,
    power_reached,
)
from anywhere.storage.etcd_server import free_ports
from tests.redfish import Emulator, FakeSystem, start

# The emulator takes up to 11 s for a power change; polling sees it within a fifth of a second.
POWER_TIMEOUT = 30.0
POLL = 0.2


def endpoint(emulator: Emulator, name: str, **secret: str) -> BMCEndpoint:
    return endpoint_of(emulator.hardware(name), emulator.secret(name, **secret))


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on."""
    return free_ports(1)[0]


@pytest.fixture
def power_lab() -> Iterator[Emulator]:
    """An emulator of its own for the power test, with systems on and off at start."""
    emulator = start(
        [
            FakeSystem("off-on", "52:54:00:00:01:01", OFF),
            FakeSystem("on-off", "52:54:00:00:01:02", ON),
            FakeSystem("on-cycle", "52:54:00:00:01:03", ON),
            FakeSystem("off-cycle", "52:54:00:00:01:04", OFF),
            FakeSystem("on-on", "52:54:00:00:01:05", ON),
            FakeSystem("off-off", "52:54:00:00:01:06", OFF),
        ]
    )
    try:
        yield emulator
    finally:
        emulator.stop()


# -- endpoints from Hardware and Secrets --------------------------------------------------------------


def hardware(**bmc: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "hw-1", "namespace": "eksa-system"},
        "spec": {"bmc": {"authSecretRef": {"name": "bmc-hw-1-auth", "namespace": "eksa-system"}, **bmc}},
    }


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_endpoint_of_reads_the_bmc_and_its_secret() -> None:
    secret = {"data": {"username": b64("root"), "password": b64("calvin-1234")}}
    e = endpoint_of(hardware(host="10.0.0.5", port="8443"), secret)
    assert (e.host, e.port, e.username, e.password) == ("10.0.0.5", 8443, "root", "calvin-1234")
    assert e.url == "https://10.0.0.5:8443"
    assert (e.hardware, e.secret) == ("hw-1", "eksa-system/bmc-hw-1-auth")
    assert "calvin-1234" not in repr(e)
    assert "calvin-1234" not in str(e)

    plain = endpoint_of(hardware(host="10.0.0.5"), {"stringData": {"username": "root", "password": "pw-42"}})
    assert plain.port is None
    assert plain.url == "https://10.0.0.5:443"  # HTTPS on its default port
    assert endpoint_of(hardware(host="fd00::5"), secret).url == "https://[fd00::5]:443"


def test_the_secret_of_a_hardware() -> None:
    assert auth_secret_ref(hardware(host="10.0.0.5")) == ("eksa-system", "bmc-hw-1-auth")
    unnamed = {"metadata": {"name": "hw-7", "namespace": "eksa-system"}, "spec": {"bmc": {"host": "h"}}}
    assert auth_secret_ref(unnamed) == ("eksa-system", "bmc-hw-7-auth")


@pytest.mark.parametrize(
    "secret",
    [
        None,
        {"data": {"username": b64("root")}},
        {"stringData": {"password": "pw-42"}},
        {"data": {"username": "not base64!", "password": b64("pw-42")}},
    ],
)
def test_missing_credentials_name_the_secret(secret: dict[str, Any] | None) -> None:
    with pytest.raises(BMCError) as caught:
        endpoint_of(hardware(host="10.0.0.5"), secret)
    assert caught.value.reason == MISSING_CREDENTIALS
    assert "eksa-system/bmc-hw-1-auth" in caught.value.message
    assert "hw-1" in caught.value.message
    assert "pw-42" not in caught.value.message


@pytest.mark.parametrize(
    "bmc", [{}, {"host": ""}, {"host": "10.0.0.5", "port": "https"}, {"host": "h", "port": 0}]
)
def test_a_hardware_without_a_usable_bmc(bmc: dict[str, Any]) -> None:
    with pytest.raises(BMCError) as caught:
        endpoint_of(hardware(**bmc), {"stringData": {"username": "root", "password": "pw-42"}})
    assert caught.value.reason == NOT_CONFIGURED
    assert "bmc_ip of hw-1" in caught.value.message


def test_power_reached() -> None:
    assert power_reached("On", ON)
    assert power_reached("off", OFF)
    assert not power_reached("PoweringOn", ON)
    assert not power_reached("On", OFF)


# -- against the emulator -------------------------------------------------------------------------------


async def test_check_finds_each_system_by_its_mac(redfish: Emulator, bmcs: BMCs) -> None:
    infos = await asyncio.gather(
        *(bmcs.check(endpoint(redfish, s.name), s.mac.upper()) for s in redfish.systems)
    )
    assert infos == [SystemInfo(s.name, s.uuid, redfish.power_state(s.name)) for s in redfish.systems]


async def test_the_only_system_of_a_bmc_is_not_taken_for_another_mac(bmcs: BMCs) -> None:
    """A BMC's lone system that reports another MAC is another server (a copy-pasted bmc_ip): it
    is never the hardware's, so a boot of one server cannot reset the other."""
    with start([FakeSystem("lone", "52:54:00:00:02:01")]) as emulator:
        assert (await bmcs.check(endpoint(emulator, "lone"), "52:54:00:00:02:01")).name == "lone"
        with pytest.raises(BMCError) as caught:
            await bmcs.check(endpoint(emulator, "lone"), "52:54:00:ff:ff:ff")
    assert caught.value.reason == SYSTEM_NOT_FOUND
    assert "52:54:00:00:02:01" in caught.value.message


async def test_an_unknown_mac_lists_the_macs_the_bmc_has(redfish: Emulator, bmcs: BMCs) -> None:
    with pytest.raises(BMCError) as caught:
        await bmcs.power_state(endpoint(redfish, "hw-1"), "52:54:00:00:00:99")
    error = caught.value
    assert error.reason == SYSTEM_NOT_FOUND
    assert "52:54:00:00:00:99" in error.message
    for system in redfish.systems:
        assert system.mac in error.message
    assert "check the mac of hw-1 in the hardware CSV" in error.message


async def test_set_pxe_once(redfish: Emulator, bmcs: BMCs) -> None:
    assert redfish.boot_override("hw-5")[0] == "Hdd"
    await bmcs.set_pxe_once(endpoint(redfish, "hw-5"), "52:54:00:00:00:05")
    # The emulator keeps the target but reads back "Continuous" whatever was asked: it ignores
    # BootSourceOverrideEnabled.
    assert redfish.boot_override("hw-5")[0] == "Pxe"
    assert redfish.boot_override("hw-4")[0] == "Hdd"


async def test_power_operations_reach_their_state(
    power_lab: Emulator, bmcs: BMCs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="anywhere.providers.tinkerbell.bmc")

    async def drive(name: str, operation: str, wanted: str) -> str:
        e = endpoint(power_lab, name)
        mac = power_lab.system(name).mac
        await getattr(bmcs, operation)(e, mac)
        return await bmcs.wait_for_power(e, mac, wanted, timeout=POWER_TIMEOUT, interval=POLL)

    cases = {
        "off-on": ("power_on", ON),
        "on-off": ("power_off", OFF),
        "on-cycle": ("power_cycle", ON),
        "off-cycle": ("power_cycle", ON),
        "on-on": ("power_on", ON),
        "off-off": ("power_off", OFF),
    }
    reached = await asyncio.gather(*(drive(name, op, wanted) for name, (op, wanted) in cases.items()))

    assert reached == [wanted for _, wanted in cases.values()]
    for name, (_, wanted) in cases.items():
        assert power_lab.power_state(name) == wanted  # as the emulator itself says
    asked = {r.getMessage() for r in caplog.records}
    # What each system was asked: a cycle restarts a system that is on and powers on one that is
    # off; a system already in the wanted state is left alone.
    assert asked == {
        f"the BMC of off-on (127.0.0.1:{power_lab.port}): On",
        f"the BMC of on-off (127.0.0.1:{power_lab.port}): ForceOff",
        f"the BMC of on-cycle (127.0.0.1:{power_lab.port}): ForceRestart",
        f"the BMC of off-cycle (127.0.0.1:{power_lab.port}): On",
    }


async def test_wait_for_power_times_out_naming_the_state(redfish: Emulator, bmcs: BMCs) -> None:
    with pytest.raises(BMCError) as caught:
        await bmcs.wait_for_power(
            endpoint(redfish, "hw-3"), "52:54:00:00:00:03", ON, timeout=0, interval=POLL
        )
    assert caught.value.message.startswith(
        f"the server with MAC 52:54:00:00:00:03 behind the BMC of hw-3 (127.0.0.1:{redfish.port}) is still Off"
    )


async def test_wrong_credentials_are_refused(redfish: Emulator, bmcs: BMCs) -> None:
    wrong = endpoint(redfish, "hw-2", password="not-the-password")
    with pytest.raises(BMCError) as caught:
        await bmcs.power_state(wrong, "52:54:00:00:00:02")
    error = caught.value
    assert error.reason == AUTHENTICATION_FAILED
    assert error.message == (
        f"the BMC of hw-2 (127.0.0.1:{redfish.port}) refused the user name 'admin' or its password (kept "
        "in Secret eksa-system/bmc-hw-2-auth); check bmc_username and bmc_password of hw-2 in the "
        "hardware CSV"
    )
    # The same pool logs in afresh with the right credentials.
    assert await bmcs.power_state(endpoint(redfish, "hw-2"), "52:54:00:00:00:02") == OFF


async def test_an_unreachable_bmc(caplog: pytest.LogCaptureFixture, bmcs: BMCs) -> None:
    caplog.set_level(logging.DEBUG, logger="anywhere.providers.tinkerbell.bmc")
    port = closed_port()
    e = BMCEndpoint("127.0.0.1", port, "admin", "pw-42", hardware="hw-9", secret="eksa-system/bmc-hw-9-auth")
    with pytest.raises(BMCError) as caught:
        await bmcs.power_on(e, "52:54:00:00:00:09")
    assert caught.value.reason == UNREACHABLE
    assert caught.value.message.startswith(
        f"cannot reach the BMC of hw-9 (127.0.0.1:{port}) at https://127.0.0.1:{port}: Connection refused; "
        "check bmc_ip of hw-9 in the hardware CSV"
    )
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retries) == 2  # a connection that could not be made is tried three times in all


@asynccontextmanager
async def plain_http_server() -> AsyncIterator[int]:
    """A server that answers HTTP without TLS, as a BMC configured for HTTP only would."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_bmc_without_tls(bmcs: BMCs) -> None:
    async with plain_http_server() as port:
        with pytest.raises(BMCError) as caught:
            await bmcs.check(BMCEndpoint("127.0.0.1", port, "admin", "pw-42"), "52:54:00:00:00:01")
    assert caught.value.reason == UNREACHABLE
    assert "TLS handshake failed" in caught.value.message
    assert "serves Redfish over HTTPS" in caught.value.message


async def test_the_password_is_in_no_message_and_no_log(
    redfish: Emulator, bmcs: BMCs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything: ours, sushy's, urllib3's
    wrong_password = "wrong-" + redfish.password[::-1]
    messages = []
    good = endpoint(redfish, "hw-1")
    await bmcs.check(good, "52:54:00:00:00:01")
    await bmcs.set_pxe_once(good, "52:54:00:00:00:01")
    for failing in (
        bmcs.check(endpoint(redfish, "hw-1", password=wrong_password), "52:54:00:00:00:01"),
        bmcs.check(good, "52:54:00:00:00:99"),
        bmcs.check(BMCEndpoint("127.0.0.1", closed_port(), "admin", redfish.password), "52:54:00:00:00:01"),
    ):
        with pytest.raises(BMCError) as caught:
            await failing
        messages.append(caught.value.message)
    messages += [repr(good), str(good)]

    assert any(r.name.startswith("sushy") and r.levelno == logging.DEBUG for r in caplog.records)
    for secret in (redfish.password, wrong_password):
        assert secret not in caplog.text
        assert not [r for r in caplog.records if secret in r.getMessage()]
        assert not [m for m in messages if secret in m]


@pytest.mark.parametrize("password", ["s3cret-pw", "abc", "x"])
def test_an_echoed_password_never_reaches_a_message(password: str) -> None:
    echoed = f"Base.1.0.GeneralError: bad request body {{'Password': '{password}'}}"
    redacted = bmc._redact(echoed, password)
    assert password not in redacted
    assert redacted  # still says something
    assert bmc._redact("PowerState is Off", password) == "PowerState is Off"
    assert bmc._redact("anything", "") == "anything"


async def test_a_closed_pool_refuses_calls(redfish: Emulator) -> None:
    pool = BMCs()
    pool.close()
    with pytest.raises(BMCError) as caught:
        await pool.power_state(endpoint(redfish, "hw-1"), "52:54:00:00:00:01")
    assert caught.value.reason == UNREACHABLE
