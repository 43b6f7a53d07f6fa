"""VirtualMachineClass (`vmclass`): dvp-api.md §4."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field, model_validator

from reconciler.api.meta import GROUP_VERSION, FieldError, Manifest, Strict, empty_list
from reconciler.api.quantity import ClassPercent, MemorySize
from reconciler.api.scheduling import LabelSelector, NodeSelectorRequirement, Toleration

DEFAULT_CLASS_ANNOTATION = "virtualmachineclass.virtualization.deckhouse.io/is-default-class"


class CPUType(StrEnum):
    HOST = "Host"
    HOST_PASSTHROUGH = "HostPassthrough"
    MODEL = "Model"
    FEATURES = "Features"
    DISCOVERY = "Discovery"


class ClassCPUDiscovery(Strict):
    node_selector: LabelSelector | None = None


class ClassCPU(Strict):
    type: CPUType
    model: str | None = Field(default=None, min_length=1)
    features: list[str] = Field(default_factory=empty_list)
    discovery: ClassCPUDiscovery | None = None

    @model_validator(mode="after")
    def _fields_match_type(self) -> ClassCPU:
        # dvp-api.md §4.2: each type requires and forbids its own fields.
        if self.type is CPUType.MODEL and self.model is None:
            raise FieldError(("model",), "cpu type Model needs cpu.model")
        if self.type is CPUType.FEATURES and not self.features:
            raise FieldError(("features",), "cpu type Features needs at least one feature")
        if self.model is not None and self.type is not CPUType.MODEL:
            raise FieldError(("model",), f"cpu type {self.type.value} takes no cpu.model")
        if self.features and self.type is not CPUType.FEATURES:
            raise FieldError(("features",), f"cpu type {self.type.value} takes no cpu.features")
        if self.discovery is not None and self.type is not CPUType.DISCOVERY:
            raise FieldError(("discovery",), f"cpu type {self.type.value} takes no cpu.discovery")
        return self


class CoresRange(Strict):
    min: int = Field(ge=1)
    max: int = Field(le=1024)
    step: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> CoresRange:
        if self.max <= self.min:
            raise FieldError(
                ("max",), f"cores.max ({self.max}) must be above cores.min ({self.min})"
            )
        if self.step is not None and self.max <= self.step:
            raise FieldError(("step",), f"cores.step ({self.step}) must be below cores.max")
        return self

    def __str__(self) -> str:
        return f"{self.min}-{self.max}"


class PerCoreMemory(Strict):
    min: MemorySize | None = None
    max: MemorySize | None = None


class MemoryPolicy(Strict):
    min: MemorySize | None = None
    max: MemorySize | None = None
    step: MemorySize | None = None
    per_core: PerCoreMemory | None = None


class SizingPolicy(Strict):
    cores: CoresRange
    memory: MemoryPolicy | None = None
    core_fractions: list[ClassPercent] = Field(default_factory=empty_list)
    default_core_fraction: ClassPercent | None = None
    dedicated_cores: list[bool] = Field(default_factory=empty_list)

    @model_validator(mode="after")
    def _default_is_allowed(self) -> SizingPolicy:
        if (
            self.default_core_fraction is not None
            and self.core_fractions
            and self.default_core_fraction not in self.core_fractions
        ):
            raise FieldError(
                ("defaultCoreFraction",),
                f"defaultCoreFraction {self.default_core_fraction} is not among coreFractions",
            )
        return self


class ClassNodeSelector(Strict):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[NodeSelectorRequirement] = Field(default_factory=empty_list)


class VirtualMachineClassSpec(Strict):
    cpu: ClassCPU
    node_selector: ClassNodeSelector | None = None
    tolerations: list[Toleration] = Field(default_factory=empty_list)
    sizing_policies: list[SizingPolicy] = Field(default_factory=empty_list, max_length=16)

    @model_validator(mode="after")
    def _ranges_do_not_overlap(self) -> VirtualMachineClassSpec:
        # The platform's webhook misses a range strictly containing a later one
        # (dvp-api.md §10b); we check every pair both ways.
        for i, first in enumerate(self.sizing_policies):
            for j in range(i + 1, len(self.sizing_policies)):
                second = self.sizing_policies[j].cores
                if first.cores.min <= second.max and second.min <= first.cores.max:
                    raise FieldError(
                        ("sizingPolicies", j, "cores"),
                        f"sizing policy cores {second} overlaps policy {i + 1} ({first.cores})",
                    )
        return self


class VirtualMachineClass(Manifest):
    KIND: ClassVar[str] = "VirtualMachineClass"
    API_VERSIONS: ClassVar[tuple[str, ...]] = (
        GROUP_VERSION,
        "virtualization.deckhouse.io/v1alpha3",
    )
    NAMESPACED: ClassVar[bool] = False
    PLURAL: ClassVar[str] = "virtualmachineclasses"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("vmclass", "vmc")

    spec: VirtualMachineClassSpec

    @property
    def is_default(self) -> bool:
        return self.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
