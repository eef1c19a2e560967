"""Kinds of the docker provider: nodes are containers on the local Docker engine (development only)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object


class DockerDatacenterConfigSpec(Model):
    """Empty: the local Docker engine needs no settings."""


class DockerDatacenterConfigStatus(Model):
    pass


class DockerDatacenterConfig(Object):
    """Selects the docker provider for a cluster; it has no settings and no machine config kind."""

    KIND: ClassVar[str] = "DockerDatacenterConfig"
    PLURAL: ClassVar[str] = "dockerdatacenterconfigs"
    kind: Literal["DockerDatacenterConfig"] = "DockerDatacenterConfig"
    spec: DockerDatacenterConfigSpec = Field(default_factory=DockerDatacenterConfigSpec)
    status: DockerDatacenterConfigStatus | None = None
