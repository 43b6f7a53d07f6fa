"""Class sizing policies and the SizingPolicyMatched verdict (dvp-api.md §4.3-4.4)."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.api.quantity import Percent, Quantity, format_bytes
from reconciler.api.vm import VirtualMachineSpec
from reconciler.api.vmclass import SizingPolicy, VirtualMachineClass


@dataclass(frozen=True)
class SizingVerdict:
    """Whether a VM fits its class; `field` names the spec path at fault for errors."""

    matched: bool
    message: str = ""
    field: tuple[str | int, ...] = ()


MATCHED = SizingVerdict(True)


def _grid(low: int, high: int, step: int) -> list[int]:
    values = list(range(low, high, step))
    values.append(high)
    return values


def _nearest_on_grid(value: int, grid: list[int]) -> tuple[int | None, int | None]:
    below = max((g for g in grid if g < value), default=None)
    above = min((g for g in grid if g > value), default=None)
    return below, above


def _fmt(value: int) -> str:
    return format_bytes(value)


def policy_for_cores(vmclass: VirtualMachineClass, cores: int) -> SizingPolicy | None:
    """The first policy whose core range holds `cores`, as the platform picks it."""
    for policy in vmclass.spec.sizing_policies:
        if policy.cores.min <= cores <= policy.cores.max:
            return policy
    return None


def effective_core_fraction(
    spec: VirtualMachineSpec, vmclass: VirtualMachineClass | None
) -> Percent:
    """The coreFraction the VM runs with: its own, else the class default, else 100%
    (the platform's mutating webhook, dvp-api.md §4.4)."""
    if "core_fraction" in spec.cpu.model_fields_set or vmclass is None:
        return spec.cpu.core_fraction
    policy = policy_for_cores(vmclass, spec.cpu.cores)
    if policy is not None and policy.default_core_fraction is not None:
        return Percent(policy.default_core_fraction.value)
    return Percent(100)


def sizing_verdict(spec: VirtualMachineSpec, vmclass: VirtualMachineClass) -> SizingVerdict:
    cores = spec.cpu.cores
    policies = vmclass.spec.sizing_policies
    if not policies:
        return MATCHED
    policy = policy_for_cores(vmclass, cores)
    hint = f"check the sizing policies of VirtualMachineClass {vmclass.name}"
    if policy is None:
        ranges = ", ".join(str(p.cores) for p in policies)
        return SizingVerdict(
            False,
            f"does not match any sizing policy of VirtualMachineClass {vmclass.name}:"
            f" its {cores} CPU core(s) fall outside the allowed ranges ({ranges})",
            ("spec", "cpu", "cores"),
        )
    failures: list[tuple[tuple[str | int, ...], str]] = []
    explicit_fraction = "core_fraction" in spec.cpu.model_fields_set
    fraction = effective_core_fraction(spec, vmclass)
    if policy.core_fractions and fraction not in policy.core_fractions:
        allowed = ", ".join(str(Percent(p.value)) for p in policy.core_fractions)
        if explicit_fraction:
            message = (
                f"coreFraction {fraction} is not allowed for {policy.cores} cores"
                f" (allowed: {allowed})"
            )
        else:
            message = (
                f"coreFraction is not set and the policy for {policy.cores} cores has no"
                f" default and does not allow 100%; set one of: {allowed}"
            )
        failures.append(
            (("spec", "cpu", "coreFraction" if explicit_fraction else "cores"), message)
        )
    step = policy.cores.step
    if step:
        grid = _grid(policy.cores.min, policy.cores.max, step)
        if cores not in grid:
            below, above = _nearest_on_grid(cores, grid)
            near = " or ".join(str(v) for v in (below, above) if v is not None)
            failures.append(
                (
                    ("spec", "cpu", "cores"),
                    f"{cores} cores is not on the policy's step of {step} from {policy.cores.min};"
                    f" nearest allowed: {near}",
                )
            )
    failures.extend(_memory_failures(spec.memory.size, cores, policy))
    if not failures:
        return MATCHED
    messages = "; ".join(message for _, message in failures)
    return SizingVerdict(
        False,
        f"does not match the sizing policy of VirtualMachineClass {vmclass.name} for"
        f" {policy.cores} cores: {messages}; {hint}",
        failures[0][0],
    )


def _memory_failures(
    size: Quantity, cores: int, policy: SizingPolicy
) -> list[tuple[tuple[str | int, ...], str]]:
    memory = policy.memory
    if memory is None:
        return []
    where: tuple[str | int, ...] = ("spec", "memory", "size")
    failures = []
    value = size.bytes
    low = memory.min.bytes if memory.min else 0
    high = memory.max.bytes if memory.max else 0
    if low and value < low:
        failures.append((where, f"memory {size} is below the minimum {_fmt(low)}"))
    if high and value > high:
        failures.append((where, f"memory {size} is above the maximum {_fmt(high)}"))
    if high and memory.step and low <= value <= high:
        grid = _grid(low, high, memory.step.bytes)
        if value not in grid:
            below, above = _nearest_on_grid(value, grid)
            near = " or ".join(_fmt(v) for v in (below, above) if v is not None)
            failures.append(
                (
                    where,
                    f"memory {size} is not on the step of {memory.step}; nearest allowed: {near}",
                )
            )
    per_core = memory.per_core
    if per_core is not None:
        share = value // cores
        pc_low = per_core.min.bytes if per_core.min else 0
        pc_high = per_core.max.bytes if per_core.max else 0
        if pc_low and share < pc_low:
            failures.append(
                (
                    where,
                    f"memory per core {_fmt(share)} is below the minimum {_fmt(pc_low)} per core",
                )
            )
        if pc_high and share > pc_high:
            failures.append(
                (
                    where,
                    f"memory per core {_fmt(share)} is above the maximum {_fmt(pc_high)} per core",
                )
            )
        if pc_high and memory.step and pc_low <= share <= pc_high:
            grid = _grid(pc_low, pc_high, memory.step.bytes)
            if share not in grid:
                failures.append(
                    (where, f"memory per core {_fmt(share)} is not on the step of {memory.step}")
                )
    return failures
