"""What every manifest shares: strict models, object metadata and identity."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from reconciler.api.names import is_dns_label, is_dns_subdomain

GROUP_VERSION = "virtualization.deckhouse.io/v1alpha2"
DEFAULT_NAMESPACE = "default"
# The integer types of the platform's CRDs (crds/virtualmachines.yaml: cores int32,
# bootOrder and terminationGracePeriodSeconds int64): the API server refuses larger
# numbers, and here none reaches libvirt or a timer.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def empty_list() -> list[Any]:
    """A new empty list: the default of list fields. pydantic asks a default_factory's
    signature as it builds a validator, and `list`'s is parsed from its text signature
    (tokenize), some 3 ms of each command that validates a VM (issue 16); a function's
    is read at once."""
    return []


class Strict(BaseModel):
    """Base of every manifest model: camelCase fields, unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        arbitrary_types_allowed=True,
        # A model's validator is built when it first validates, not at import: a command
        # reading one file pays only for the kinds in it (issue 13, start-up).
        defer_build=True,
    )


class ObjectMeta(Strict):
    # Built at import, unlike the kinds: every kind's validator embeds it, and a deferred
    # one would be generated again inside each of them.
    model_config = ConfigDict(defer_build=False)

    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_is_dns_subdomain(cls, value: str) -> str:
        if not is_dns_subdomain(value):
            raise ValueError(
                f"{value!r} is not a valid name: lower-case letters, digits, '-' and '.',"
                " starting and ending with a letter or digit"
            )
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace_is_dns_label(cls, value: str | None) -> str | None:
        if value is not None and not is_dns_label(value):
            raise ValueError(f"{value!r} is not a valid namespace name")
        return value

    @field_validator("labels", "annotations")
    @classmethod
    def _no_kubevirt_keys(cls, value: dict[str, str]) -> dict[str, str]:
        # dvp-api.md §1: keys containing kubevirt.io are reserved by the platform.
        for key in value:
            if "kubevirt.io" in key:
                raise ValueError(
                    f"key {key!r} is reserved: keys containing kubevirt.io are refused"
                )
        return value


class ObjectId(NamedTuple):
    """Identity of an object: (kind, namespace, name); namespace is '' for cluster kinds."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


class Manifest(Strict):
    """A top-level object. Subclasses set KIND, API_VERSIONS, NAMESPACED and PLURAL."""

    KIND: ClassVar[str]
    API_VERSIONS: ClassVar[tuple[str, ...]] = (GROUP_VERSION,)
    NAMESPACED: ClassVar[bool] = True
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()

    api_version: str
    kind: str
    metadata: ObjectMeta

    @field_validator("api_version")
    @classmethod
    def _known_api_version(cls, value: str) -> str:
        if value not in cls.API_VERSIONS:
            raise ValueError(
                f"apiVersion {value!r} is not served for {cls.KIND}; use "
                + " or ".join(repr(v) for v in cls.API_VERSIONS)
            )
        return value

    @field_validator("metadata")
    @classmethod
    def _namespace_matches_scope(cls, value: ObjectMeta) -> ObjectMeta:
        if not cls.NAMESPACED and value.namespace is not None:
            raise ValueError(f"{cls.KIND} is cluster-scoped and takes no metadata.namespace")
        return value

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        if not self.NAMESPACED:
            return ""
        return self.metadata.namespace or DEFAULT_NAMESPACE

    @cached_property
    def id(self) -> ObjectId:
        # Cached: a pass asks every object for it many times. Models are frozen and
        # never copied with changes, so it cannot go stale.
        return ObjectId(self.KIND, self.namespace, self.name)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest as its author would write it (defaults left out)."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class FieldError(ValueError):
    """A cross-field rule that names the field at fault, relative to the model checking it.

    Pydantic keeps the raised exception in the error's context, so the loader can
    point the user at this field's line instead of the whole object's.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
