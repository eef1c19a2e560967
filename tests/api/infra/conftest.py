"""Helpers shared by the tests of the providers' specification rules."""

from __future__ import annotations

from typing import TypeVar

import yaml
from pydantic import BaseModel

from anywhere.api.errors import FieldError

M = TypeVar("M", bound=BaseModel)

# A self-signed CA certificate (EC P-256), valid until 2126.
CERT = """-----BEGIN CERTIFICATE-----
MIIBjTCCATOgAwIBAgIUH/p/o28x5X3haTr4ioqsbK5pgWwwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQYW55d2hlcmUtdGVzdC1jYTAgFw0yNjExMjMyMjA0MjBaGA8y
MTI2MTAzMDIyMDQyMFowGzEZMBcGA1UEAwwQYW55d2hlcmUtdGVzdC1jYTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABNGcfcQvnfHNrUQxpvCODFG2Vd82iE2rvRuE
AAfH9DCCnWoX3wfiJCRu3arvFKzv9phaJ2PcRVJLCx8dDYbmr2WjUzBRMB0GA1Ud
DgQWBBRk8+rjOHomXRndSip/zw2yJwB5oTAfBgNVHSMEGDAWgBRk8+rjOHomXRnd
Sip/zw2yJwB5oTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIDeY
YuaUwlc9foMzkOLmsycY8rE4VixeqWIvUeBmYxW9AiEAnjmbh3hgtnjUdKULeP+q
e0A6mTOazZ76GOfNTEV7nJ8=
-----END CERTIFICATE-----
"""


def only(errors: list[FieldError], field: str, text: str) -> None:
    """Exactly one error, on ``field``, saying ``text``."""
    assert [e.field for e in errors] == [field], errors
    assert text in errors[0].message, errors[0].message


def load(kind: type[M], text: str) -> M:
    """An object read from YAML the way the loader reads files (by JSON name only)."""
    return kind.model_validate(yaml.safe_load(text), by_name=False)


def cluster_yaml(provider: str, worker_machine: str) -> str:
    """Cluster ``c1`` (Kubernetes 1.31, endpoint 10.0.0.10) on ``provider``'s datacenter ``dc``: three
    control plane machines of machine config ``cp`` and two workers (group ``md-0``) of ``worker_machine``."""
    return f"""
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: Cluster
metadata:
  name: c1
spec:
  kubernetesVersion: "1.31"
  datacenterRef: {{kind: {provider}DatacenterConfig, name: dc}}
  controlPlaneConfiguration:
    count: 3
    endpoint: {{host: 10.0.0.10}}
    machineGroupRef: {{kind: {provider}MachineConfig, name: cp}}
  workerNodeGroupConfigurations:
  - name: md-0
    count: 2
    machineGroupRef: {{kind: {provider}MachineConfig, name: {worker_machine}}}
"""
