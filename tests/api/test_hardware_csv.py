"""The hardware CSV: what EKS Anywhere accepts is read, every problem is reported at once with its
line and column, and the Hardware objects and BMC Secrets made from it are what the design says."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from anywhere.api.capi.tinkerbell import Hardware
from anywhere.api.crds import crd_for
from anywhere.api.infra.hardware import (
    COLUMNS,
    HardwareCSVError,
    HardwareEntry,
    hardware_objects,
    parse_hardware_csv,
)
from anywhere.apiserver import structural

HEADER = "hostname,bmc_ip,bmc_username,bmc_password,mac,ip_address,netmask,gateway,nameservers,labels,disk"
PASSWORD = "S3cr3t-pw!"
# EKS Anywhere's documented example, with our sushy-tools style endpoint on one row.
DOCS_CSV = f"""{HEADER}
eksa-cp01,10.10.44.1,root,PrZ8W93i,CC:48:3A:00:00:01,10.10.50.2,255.255.254.0,10.10.50.1,8.8.8.8|8.8.4.4,type=cp,/dev/sda
eksa-cp02,10.10.44.2,root,Me9xQf93,CC:48:3A:00:00:02,10.10.50.3,255.255.254.0,10.10.50.1,8.8.8.8|8.8.4.4,type=cp,/dev/sda
eksa-wk01,127.0.0.1:8443,admin,{PASSWORD},CC:48:3A:00:00:04,10.10.50.5,255.255.254.0,10.10.50.1,8.8.8.8,type=worker|rack=r1,/dev/nvme0n1
"""

GOOD = {
    "hostname": "hw-1",
    "bmc_ip": "127.0.0.1:8443",
    "bmc_username": "admin",
    "bmc_password": PASSWORD,
    "mac": "52:54:00:00:00:01",
    "ip_address": "10.10.0.11",
    "netmask": "255.255.255.0",
    "gateway": "10.10.0.1",
    "nameservers": "1.1.1.1|8.8.8.8",
    "labels": "type=cp",
    "disk": "/dev/sda",
}


def row(**changes: str) -> str:
    values = {**GOOD, **changes}
    return ",".join(values[column] for column in HEADER.split(","))


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def problems_of(text: str, source: str = "hardware.csv") -> list[str]:
    with pytest.raises(HardwareCSVError) as caught:
        parse_hardware_csv(text, source)
    assert str(caught.value).startswith(f"{source}: {len(caught.value.problems)} problem")
    return caught.value.problems


def only_problem(text: str) -> str:
    [problem] = problems_of(text)
    return problem


# ---- what is accepted ---------------------------------------------------------------------------


def test_eks_anywhere_example_is_read() -> None:
    entries = parse_hardware_csv(DOCS_CSV, "hardware.csv")
    assert [e.hostname for e in entries] == ["eksa-cp01", "eksa-cp02", "eksa-wk01"]
    first, _, worker = entries
    assert first == HardwareEntry(
        hostname="eksa-cp01",
        mac="cc:48:3a:00:00:01",  # lower-case, as Tinkerbell matches it
        ip_address="10.10.50.2",
        netmask="255.255.254.0",
        gateway="10.10.50.1",
        nameservers=("8.8.8.8", "8.8.4.4"),
        disk="/dev/sda",
        labels={"type": "cp"},
        bmc_host="10.10.44.1",
        bmc_username="root",
        bmc_password="PrZ8W93i",
        line=2,
    )
    assert (worker.bmc_host, worker.bmc_port, worker.bmc_endpoint) == ("127.0.0.1", 8443, "127.0.0.1:8443")
    assert worker.labels == {"type": "worker", "rack": "r1"}
    assert worker.line == 4


def test_bmc_and_labels_columns_may_be_empty_or_absent() -> None:
    """As in EKS Anywhere: a machine without BMC is powered on by hand; labels may be empty."""
    required_only = "hostname,mac,ip_address,netmask,gateway,nameservers,labels,disk"
    text = f"{required_only}\nhw-1,52:54:00:00:00:01,10.10.0.11,255.255.255.0,10.10.0.1,1.1.1.1,,/dev/sda\n"
    [entry] = parse_hardware_csv(text, "h.csv")
    assert not entry.has_bmc
    assert (entry.bmc_endpoint, entry.bmc_username, entry.bmc_password, entry.labels) == (
        None,
        None,
        None,
        {},
    )
    [entry] = parse_hardware_csv(csv_text(row(bmc_ip="", bmc_username="", bmc_password="")), "h.csv")
    assert not entry.has_bmc


def test_rows_may_share_a_bmc_endpoint() -> None:
    """One Redfish service (a sushy-tools emulator, a chassis manager) serves several systems."""
    text = csv_text(row(), row(hostname="hw-2", mac="52:54:00:00:00:02", ip_address="10.10.0.12"))
    entries = parse_hardware_csv(text, "h.csv")
    assert {e.bmc_endpoint for e in entries} == {"127.0.0.1:8443"}


@pytest.mark.parametrize(
    ("bmc_ip", "host", "port"),
    [
        ("10.10.44.1", "10.10.44.1", None),
        ("10.10.44.1:623", "10.10.44.1", 623),
        ("BMC-1.Example.com", "bmc-1.example.com", None),
        ("bmc-1:8000", "bmc-1", 8000),
        ("fd00::1", "fd00::1", None),
        ("[fd00::1]:8443", "fd00::1", 8443),
    ],
)
def test_bmc_addresses(bmc_ip: str, host: str, port: int | None) -> None:
    [entry] = parse_hardware_csv(csv_text(row(bmc_ip=bmc_ip)), "h.csv")
    assert (entry.bmc_host, entry.bmc_port) == (host, port)


def test_lenient_spelling() -> None:
    """Spaces after commas, upper-case header names, a byte-order mark, CRLF line ends, blank lines
    and a hyphenated MAC are all read as meant; quoted fields keep their commas."""
    header = HEADER.upper().replace(",", ", ")
    line = row(mac="52-54-00-AA-BB-CC", labels='"type=cp"').replace(",", ", ")
    text = "\ufeff" + header + "\r\n\r\n" + line + "\r\n,,,,,,,,,,\r\n"
    [entry] = parse_hardware_csv(text, "h.csv")
    assert (entry.mac, entry.labels, entry.bmc_password) == ("52:54:00:aa:bb:cc", {"type": "cp"}, PASSWORD)
    [entry] = parse_hardware_csv(csv_text(row(bmc_password='"pa,ss"')), "h.csv")
    assert entry.bmc_password == "pa,ss"


def test_optional_vlan_column() -> None:
    text = csv_text(row() + ",42", header=HEADER + ",vlan_id")
    [entry] = parse_hardware_csv(text, "h.csv")
    assert entry.vlan_id == "42"
    [hardware] = [o for o in hardware_objects([entry]) if o["kind"] == "Hardware"]
    assert hardware["spec"]["interfaces"][0]["dhcp"]["vlanID"] == "42"
    assert "vlan_id" in COLUMNS


def test_device_paths() -> None:
    for disk in ("/dev/sda", "/dev/nvme0n1", "/dev/disk/by-id/wwn-0x5000c500a0b1c2d3", "/dev/md0"):
        [entry] = parse_hardware_csv(csv_text(row(disk=disk)), "h.csv")
        assert entry.disk == disk


# ---- what is refused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("hostname", "", "column hostname: hostname is required"),
        ("hostname", "HW_1", "column hostname: 'HW_1' is not a valid hostname"),
        ("hostname", "h" * 64, "column hostname: 'hhhh"),
        ("hostname", "-hw", "is not a valid hostname"),
        ("mac", "", "column mac: mac is required"),
        (
            "mac",
            "zz:54:00:00:00:01",
            "'zz:54:00:00:00:01' is not a MAC address (six hex pairs, e.g. 52:54:00:12:34:56)",
        ),
        ("mac", "52:54:00:00:00", "is not a MAC address"),
        ("mac", "52:54-00:00:00:01", "is not a MAC address"),
        ("ip_address", "10.10.0.300", "column ip_address: '10.10.0.300' is not an IPv4 address"),
        ("ip_address", "fd00::5", "is not an IPv4 address"),
        ("ip_address", "10.10.0.0", "10.10.0.0 is the network address of 10.10.0.0/24"),
        ("ip_address", "10.10.0.255", "10.10.0.255 is the broadcast address of 10.10.0.0/24"),
        ("netmask", "255.0.255.0", "column netmask: '255.0.255.0' is not a netmask"),
        ("netmask", "0.0.0.255", "is not a netmask"),  # a host mask, which ipaddress would accept
        ("netmask", "0.0.0.0", "is not a netmask"),
        ("netmask", "24", "is not an IPv4 address"),
        ("gateway", "10.10.1.1", "column gateway: 10.10.1.1 is not in the machine's subnet 10.10.0.0/24"),
        ("gateway", "10.10.0.12", "10.10.0.12 is the machine's own ip_address"),
        ("gateway", "", "column gateway: gateway is required"),
        ("nameservers", "", "column nameservers: nameservers is required"),
        ("nameservers", "1.1.1.1||8.8.8.8", "column nameservers: an empty entry"),
        ("nameservers", "dns.example.com", "'dns.example.com' is not an IPv4 address"),
        ("labels", "type", "column labels: 'type' is not a label; write key=value"),
        ("labels", "a=b=c", "'a=b=c' is not a label"),
        ("labels", "type=cp|type=worker", "label type is given twice"),
        ("labels", "-bad=x", "'-bad=x': not a valid label key"),
        ("labels", "Example.com/rack=r1", "the key's prefix must be a DNS subdomain"),
        ("labels", "type=" + "v" * 64, "not a valid label value"),
        ("labels", "=cp", "the key is empty"),
        (
            "labels",
            "v1alpha1.tinkerbell.org/ownerName=x",
            "v1alpha1.tinkerbell.org/ownerName is set by the TinkerbellMachine that takes the hardware",
        ),
        ("disk", "", "column disk: disk is required"),
        ("disk", "sda", "column disk: 'sda' is not a device path"),
        ("disk", "/dev/", "is not a device path"),
        ("bmc_ip", "10.10.44.300", "column bmc_ip: '10.10.44.300' is not a BMC address"),
        (
            "bmc_ip",
            "https://10.10.44.1",
            "'https://10.10.44.1' is not a BMC address: leave out the URL scheme",
        ),
        ("bmc_ip", "10.10.44.1:0", "the port of '10.10.44.1:0' is not a TCP port"),
        ("bmc_ip", "10.10.44.1:", "is not a TCP port"),
        ("bmc_ip", "[fd00::1]:x", "is not a TCP port"),
        ("bmc_ip", "[10.0.0.1]", "is not a BMC address"),
        ("bmc_ip", "", "column bmc_ip: bmc_ip is required when any BMC column is set"),
        ("bmc_username", "", "column bmc_username: bmc_username is required when any BMC column is set"),
        ("bmc_password", "", "column bmc_password: bmc_password is required when any BMC column is set"),
    ],
)
def test_one_bad_field(column: str, value: str, expected: str) -> None:
    second = {"hostname": "hw-2", "mac": "52:54:00:00:00:02", "ip_address": "10.10.0.12", column: value}
    problem = only_problem(csv_text(row(), row(**second)))
    assert problem.startswith(f"hardware.csv line 3, column {column}: ")
    assert expected in problem


def test_bad_vlan() -> None:
    problem = only_problem(csv_text(row() + ",4095", header=HEADER + ",vlan_id"))
    assert problem.startswith("hardware.csv line 2, column vlan_id: '4095' is not a VLAN ID")


def test_every_problem_at_once() -> None:
    text = csv_text(
        row(hostname="Bad_Name", mac="nope", gateway="10.99.0.1"),
        row(hostname="hw-2", mac="52:54:00:00:00:02", ip_address="10.10.0.12", disk="sda", labels="x"),
        row(hostname="hw-3", mac="52:54:00:00:00:03", ip_address="10.10.0.13"),
        "too,few,fields",
    )
    problems = problems_of(text)
    assert problems == [
        "hardware.csv line 2, column hostname: 'Bad_Name' is not a valid hostname; use at most 63 lower-case "
        "letters, digits and '-', starting and ending with a letter or digit (e.g. eksa-cp01)",
        "hardware.csv line 2, column mac: 'nope' is not a MAC address (six hex pairs, e.g. 52:54:00:12:34:56)",
        "hardware.csv line 2, column gateway: 10.99.0.1 is not in the machine's subnet 10.10.0.0/24 "
        "(ip_address 10.10.0.11, netmask 255.255.255.0); the machine could not reach it: fix the gateway, "
        "ip_address or netmask",
        "hardware.csv line 3, column labels: 'x' is not a label; write key=value, pairs separated by '|' "
        "(e.g. type=cp|rack=r1)",
        "hardware.csv line 3, column disk: 'sda' is not a device path; give the disk the OS is installed on "
        "as /dev/..., e.g. /dev/sda or /dev/nvme0n1",
        "hardware.csv line 5: 3 fields, but the header (line 1) has 11; give every column a value (empty "
        "ones too) in the header's order",
    ]


def test_duplicates() -> None:
    text = csv_text(
        row(),
        row(mac="52:54:00:00:00:02", ip_address="10.10.0.12"),  # same hostname
        row(hostname="hw-3", mac="52:54:00:00:00:01".upper(), ip_address="10.10.0.13"),  # same MAC
        row(hostname="hw-4", mac="52:54:00:00:00:04"),  # same IP
        row(hostname="HW-5", mac="52:54:00:00:00:05", ip_address="10.10.0.12"),  # bad row, same IP
    )
    assert problems_of(text) == [
        "hardware.csv line 3, column hostname: hw-1 is also the hostname of line 2; it names the Hardware "
        "object, so each machine needs its own",
        "hardware.csv line 4, column mac: 52:54:00:00:00:01 is also the MAC of line 2 (hw-1); each machine's "
        "NIC has its own MAC",
        "hardware.csv line 5, column ip_address: 10.10.0.11 is also the IP address of line 2 (hw-1); each "
        "machine needs its own",
        "hardware.csv line 6, column hostname: 'HW-5' is not a valid hostname; use at most 63 lower-case "
        "letters, digits and '-', starting and ending with a letter or digit (e.g. eksa-cp01)",
        "hardware.csv line 6, column ip_address: 10.10.0.12 is also the IP address of line 3 (hw-1); each "
        "machine needs its own",
    ]


def test_header_problems() -> None:
    header = "hostname,mac,ip_address,netmask,nameservers,disk,colour,mac,"
    problems = problems_of(
        f"{header}\nhw-1,52:54:00:00:00:01,10.10.0.11,255.255.255.0,1.1.1.1,/dev/sda,red,x,\n"
    )
    where = "hardware.csv line 1 (the header)"
    assert problems[:3] == [
        f"{where}, column colour: unknown column; the columns are {', '.join(COLUMNS)}",
        f"{where}, column mac: the column is named twice; keep one",
        f"{where}, field 9: a column without a name; name it or remove it",
    ]
    assert problems[3].startswith(f"{where}: missing required columns gateway, labels (required: hostname,")


def test_a_missing_header_is_named_and_the_line_not_echoed() -> None:
    [problem] = problems_of(row() + "\n" + row(hostname="hw-2") + "\n")
    assert problem.startswith("hardware.csv line 1: not a header (none of its fields is a column name)")
    assert PASSWORD not in problem


def test_empty_and_header_only_files() -> None:
    assert problems_of("") == [
        f"hardware.csv: the file is empty; its first line must be the header: {HEADER}",
    ]
    assert problems_of("\n\n") == problems_of("")
    assert problems_of(HEADER + "\n") == [
        "hardware.csv: no machines are listed; add one line per machine after the header"
    ]


def test_bad_quoting() -> None:
    problems = problems_of(csv_text(row(), row(hostname='"hw-2"x')))
    assert problems == [
        "hardware.csv line 3: not valid CSV (',' expected after '\"'); a quoted field must end with a quote "
        'before the next comma, and a quote inside it is written twice ("")'
    ]
    assert problems_of(csv_text(row(), row(labels='"type=cp')))[0].startswith(
        "hardware.csv line 3: not valid CSV (unexpected end of data)"
    )


def test_the_source_names_the_file_in_messages() -> None:
    [problem] = problems_of(csv_text(row(mac="x")), source="/tmp/racks/hw.csv")
    assert problem.startswith("/tmp/racks/hw.csv line 2, column mac: ")


# ---- passwords never show -----------------------------------------------------------------------


def test_passwords_are_never_shown() -> None:
    entries = parse_hardware_csv(csv_text(row()), "h.csv")
    assert PASSWORD not in repr(entries)
    assert PASSWORD not in str(entries[0])
    assert entries[0].bmc_password == PASSWORD
    # A password in other columns, of its row or of another row; rows with a field too many or too few.
    texts = [
        csv_text(row(labels=f"type={PASSWORD}", mac=PASSWORD, nameservers=PASSWORD, hostname=PASSWORD)),
        csv_text(row(), row(hostname="hw-2", bmc_password="other", disk=PASSWORD, labels=f"{PASSWORD}=x")),
        csv_text(row().replace(",/dev/sda", ""), row(hostname=PASSWORD, bmc_password="x") + ",extra"),
        csv_text(row(bmc_ip=PASSWORD, vlan_id=PASSWORD) + f",{PASSWORD}", header=HEADER + ",vlan_id"),
        csv_text(row(bmc_ip=f"{PASSWORD}:1"), row(hostname="hw-2", bmc_password=PASSWORD, disk=PASSWORD)),
    ]
    for text in texts:
        with pytest.raises(HardwareCSVError) as caught:
            parse_hardware_csv(text, "h.csv")
        shown = "\n".join([str(caught.value), *caught.value.problems])
        assert caught.value.problems
        assert PASSWORD not in shown, shown
    assert "<redacted>" in "\n".join(problems_of(csv_text(row(labels=f"type={PASSWORD}", mac="x"))))


# ---- the objects --------------------------------------------------------------------------------


def test_hardware_and_secret_objects() -> None:
    [entry] = parse_hardware_csv(csv_text(row()), "h.csv")
    secret, hardware = hardware_objects([entry])
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bmc-hw-1-auth", "namespace": "eksa-system"},
        "type": "kubernetes.io/basic-auth",
        "data": {
            "username": base64.b64encode(b"admin").decode(),
            "password": base64.b64encode(PASSWORD.encode()).decode(),
        },
    }
    assert hardware == {
        "apiVersion": "tinkerbell.org/v1alpha1",
        "kind": "Hardware",
        "metadata": {"name": "hw-1", "namespace": "eksa-system", "labels": {"type": "cp"}},
        "spec": {
            "bmc": {
                "host": "127.0.0.1",
                "port": 8443,
                "authSecretRef": {"name": "bmc-hw-1-auth", "namespace": "eksa-system"},
            },
            "disks": [{"device": "/dev/sda"}],
            "interfaces": [
                {
                    "dhcp": {
                        "mac": "52:54:00:00:00:01",
                        "hostname": "hw-1",
                        "ip": {"address": "10.10.0.11", "netmask": "255.255.255.0", "gateway": "10.10.0.1"},
                        "nameServers": ["1.1.1.1", "8.8.8.8"],
                        "arch": "x86_64",
                        "uefi": True,
                    },
                    "netboot": {"allowPXE": False, "allowWorkflow": False},
                }
            ],
        },
    }


def test_objects_without_bmc_and_in_another_namespace() -> None:
    [entry] = parse_hardware_csv(csv_text(row(bmc_ip="", bmc_username="", bmc_password="", labels="")), "h")
    [hardware] = hardware_objects([entry], namespace="racks")
    assert hardware["metadata"] == {"name": "hw-1", "namespace": "racks"}
    assert "bmc" not in hardware["spec"]


def test_objects_are_admitted_by_the_hardware_crd() -> None:
    entries = parse_hardware_csv(DOCS_CSV, "hardware.csv")
    objects = hardware_objects(entries)
    assert [o["kind"] for o in objects] == ["Secret", "Hardware"] * 3
    schema: dict[str, Any] = crd_for(Hardware)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for obj in objects[1::2]:
        assert structural.unknown_fields(obj, schema) == []
        stored, causes = structural.admit(obj, schema)
        assert causes == []
        assert stored == obj
        assert Hardware.model_validate(obj, by_name=False).to_dict() == obj
    # Plain YAML types only: the documents dump and load unchanged.
    assert list(yaml.safe_load_all(yaml.safe_dump_all(objects))) == objects
