"""Building blocks shared by every kind of ``anywhere.eks.amazonaws.com/v1alpha1``.

Every model is camelCase on the wire (the YAML users already have) and snake_case in Python.
Unknown fields are refused: a typo in a cluster spec must stop the user, not be dropped.
Optional fields default to ``None`` so that "not set" stays distinguishable from "set to the
default"; defaulting is an explicit step (:mod:`anywhere.api.defaults`), as in EKS Anywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "anywhere.eks.amazonaws.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class Model(BaseModel):
    """Base of every field group: camelCase aliases, unknown fields refused.

    Python code may construct models by field name; YAML and JSON input is validated by alias
    only (the loader passes ``by_name=False``), so ``disk_gib`` in a file is an unknown field.
    Types are strict, as Go's JSON decoding is: ``count: "3"`` is an error, not a 3.
    """

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        strict=True,
        use_attribute_docstrings=True,  # a field's docstring is its description (CRDs, kubectl explain)
    )

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class OwnerReference(Model):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Model):
    """Kubernetes ObjectMeta: what users write plus what an API server sets."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    managed_fields: list[dict[str, Any]] | None = None
    self_link: str | None = None


class Ref(Model):
    """A reference to another object of the same namespace, by kind and name."""

    kind: str | None = None
    name: str | None = None


class Condition(Model):
    """A Cluster API style condition: the contract between controllers and users."""

    type: str
    status: str
    severity: str | None = None
    last_transition_time: str | None = None
    reason: str | None = None
    message: str | None = None


class Object(Model):
    """Base of every top-level kind. Subclasses pin ``kind`` with a ``Literal``."""

    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    # The API group and version of the kind (Cluster API kinds override them).
    GROUP: ClassVar[str] = GROUP
    VERSION: ClassVar[str] = VERSION
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    NAMESPACED: ClassVar[bool] = True

    api_version: str = Field(default=API_VERSION)
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        """The namespace, with EKS Anywhere's reading of an empty one as ``default``."""
        return self.metadata.namespace or "default"

    @property
    def annotations(self) -> dict[str, str]:
        return self.metadata.annotations or {}

    @property
    def ref(self) -> str:
        """``Kind/name``, as errors name objects."""
        return f"{self.kind}/{self.name}"
