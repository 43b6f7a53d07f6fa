"""Placement vocabulary shared by VMs and classes: selectors, affinity, tolerations.

The shapes are Kubernetes' own (dvp-api.md §1.1 `affinity`, §4.1), with the VM
affinity keys renamed as the platform renames them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reconciler.api.meta import Strict, empty_list


class LabelSelectorRequirement(Strict):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=empty_list)


class LabelSelector(Strict):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=empty_list)


class NodeSelectorRequirement(Strict):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] = Field(default_factory=empty_list)


class NodeSelectorTerm(Strict):
    match_expressions: list[NodeSelectorRequirement] = Field(default_factory=empty_list)
    match_fields: list[NodeSelectorRequirement] = Field(default_factory=empty_list)


class NodeSelector(Strict):
    node_selector_terms: list[NodeSelectorTerm]


class PreferredSchedulingTerm(Strict):
    weight: int = Field(ge=1, le=100)
    preference: NodeSelectorTerm


class NodeAffinity(Strict):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = Field(
        default_factory=empty_list
    )


class VirtualMachineAndPodAffinityTerm(Strict):
    label_selector: LabelSelector | None = None
    namespaces: list[str] = Field(default_factory=empty_list)
    namespace_selector: LabelSelector | None = None
    topology_key: str
    match_label_keys: list[str] = Field(default_factory=empty_list)
    mismatch_label_keys: list[str] = Field(default_factory=empty_list)


class WeightedVirtualMachineAndPodAffinityTerm(Strict):
    weight: int = Field(ge=1, le=100)
    virtual_machine_and_pod_affinity_term: VirtualMachineAndPodAffinityTerm


class VirtualMachineAndPodAffinity(Strict):
    required_during_scheduling_ignored_during_execution: list[VirtualMachineAndPodAffinityTerm] = (
        Field(default_factory=empty_list)
    )
    preferred_during_scheduling_ignored_during_execution: list[
        WeightedVirtualMachineAndPodAffinityTerm
    ] = Field(default_factory=empty_list)


class VMAffinity(Strict):
    node_affinity: NodeAffinity | None = None
    virtual_machine_and_pod_affinity: VirtualMachineAndPodAffinity | None = None
    virtual_machine_and_pod_anti_affinity: VirtualMachineAndPodAffinity | None = None


class Toleration(Strict):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class TopologySpreadConstraint(Strict):
    max_skew: int = Field(ge=1)
    topology_key: str
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"]
    label_selector: LabelSelector | None = None
    min_domains: int | None = None
    match_label_keys: list[str] = Field(default_factory=empty_list)
