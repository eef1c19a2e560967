"""The hardware pool: what is free, who holds what, and the patches that claim and release."""

from __future__ import annotations

import copy
from typing import Any

from anywhere.api.capi.tinkerbell import HARDWARE_OWNER_NAME_LABEL, HARDWARE_OWNER_NAMESPACE_LABEL
from anywhere.apiserver.patch import merge_patch
from anywhere.providers.tinkerbell import pool


def hardware(
    name: str, *, owner: str | None = None, bmc: bool = True, deleting: bool = False
) -> dict[str, Any]:
    labels = {"type": "worker"}
    if owner:
        labels |= {HARDWARE_OWNER_NAME_LABEL: owner, HARDWARE_OWNER_NAMESPACE_LABEL: "eksa-system"}
    metadata: dict[str, Any] = {"name": name, "namespace": "eksa-system", "labels": labels}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-24T00:00:00Z"
    spec: dict[str, Any] = {
        "interfaces": [
            {
                "dhcp": {"mac": "52:54:00:AA:00:01", "ip": {"address": "10.0.0.5"}},
                "netboot": {"allowPXE": False, "allowWorkflow": False},
            }
        ]
    }
    if bmc:
        spec["bmc"] = {"host": "10.0.1.5"}
    return {"metadata": metadata, "spec": spec}


def test_the_pool_is_free_hardware_with_a_bmc_by_name() -> None:
    items = [
        hardware("hw-3"),
        hardware("hw-1"),
        hardware("held", owner="m1"),
        hardware("manual", bmc=False),
        hardware("going", deleting=True),
    ]
    assert [h["metadata"]["name"] for h in pool.free(items)] == ["hw-1", "hw-3"]


def test_owner_and_holder() -> None:
    held = hardware("hw-1", owner="m1")
    assert pool.owner_of(held) == ("eksa-system", "m1")
    assert pool.owner_of(hardware("hw-2")) is None
    assert pool.owned_by([hardware("hw-2"), held], "eksa-system", "m1") is held
    assert pool.owned_by([held], "other", "m1") is None


def test_claim_then_release_returns_the_hardware_as_it_was() -> None:
    free = hardware("hw-1")
    claimed = merge_patch(copy.deepcopy(free), pool.claim_patch(free, "eksa-system", "m1", "#cloud-config"))
    assert pool.owner_of(claimed) == ("eksa-system", "m1")
    assert claimed["spec"]["interfaces"][0]["netboot"] == {"allowPXE": True, "allowWorkflow": True}
    assert pool.netboot_allowed(claimed)
    assert not pool.netboot_allowed(free)
    assert claimed["spec"]["userData"] == "#cloud-config"
    assert pool.mac_of(claimed) == "52:54:00:aa:00:01"
    assert pool.address_of(claimed) == "10.0.0.5"
    released = merge_patch(claimed, pool.release_patch(claimed))
    assert released == free
