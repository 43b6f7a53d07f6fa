"""`allocate()` for a fleet of VMs, as a ratio to the 1 s target.

    python bench/ipam.py                  # 10,000 VMs in 10.0.0.0/16
    python bench/ipam.py --vms 60000 --repeat 3

Times, best of --repeat runs:

  cold          no previous leases: every vmip is generated and probes from its hash
  warm          every previous lease present (the steady state of the daemon)
  scaling       cold at a quarter, half and all of --vms: the time per VM stays flat
  nearly full   cold, but Released leases of a deleted namespace hold one block of all
                addresses but as many as there are Auto VMs: the VMs must find the
                last holes (where plain linear probing would go quadratic)

A mix of Static vmips (every 50th VM) rides along. The target is reported, never
asserted: the exit code is non-zero only when an allocation is wrong (an address twice,
outside the pool, reserved, or a VM left without one while addresses remain), which
would make the timings meaningless.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from reconciler.api.network import IPAddressType
from reconciler.ipam import (
    Allocation,
    AllocationRequest,
    PreviousLease,
    VMIPRequest,
    VMRequest,
    allocate,
)
from reconciler.model.phases import LeasePhase

TARGET_SECONDS = 1.0
POOL = ipaddress.IPv4Network("10.0.0.0/16")
GATEWAY = ipaddress.IPv4Address("10.0.0.1")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _request(vms: int) -> AllocationRequest:
    machines = []
    vmips = []
    for i in range(vms):
        namespace = f"ns-{i % 20}"
        name = f"vm-{i}"
        if i % 50 == 0:
            # Statics spread over the pool, away from the gateway.
            static = POOL.network_address + 256 + i
            vmips.append(VMIPRequest(namespace, f"{name}-ip", IPAddressType.STATIC, str(static)))
            machines.append(VMRequest(namespace, name, f"{name}-ip"))
        else:
            machines.append(VMRequest(namespace, name))
    return AllocationRequest(
        pool=(POOL,),
        vms=tuple(machines),
        vmips=tuple(vmips),
        now=NOW,
        reserved=(GATEWAY,),
    )


def _problems(request: AllocationRequest, result: Allocation, expect_all: bool) -> list[str]:
    problems = []
    seen: set[str] = set()
    for lease in result.leases:
        address = ipaddress.IPv4Address(lease.address)
        if lease.address in seen:
            problems.append(f"{address} leased twice")
        seen.add(lease.address)
        if address == GATEWAY or address in (POOL.network_address, POOL.broadcast_address):
            problems.append(f"{address} is reserved, network or broadcast")
        if address not in POOL:
            problems.append(f"{address} is outside the pool")
    if expect_all:
        missing = [vm.name for vm in result.vms if vm.address is None]
        if missing:
            problems.append(f"{len(missing)} VMs without an address, e.g. {missing[:3]}")
    if len(result.vms) != len(request.vms):
        problems.append("a VM is missing from the result")
    return problems


def _best(repeat: int, run: Callable[[], Allocation]) -> tuple[float, Allocation]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    cold_request = _request(args.vms)
    cold, first = _best(args.repeat, lambda: allocate(cold_request))
    warm_request = replace(cold_request, leases=first.previous_leases())
    warm, second = _best(args.repeat, lambda: allocate(warm_request))

    # Nearly full: Released leases of a deleted namespace hold one contiguous block of all
    # but exactly as many addresses as there are Auto VMs, so most hashed offsets land
    # inside the block and have to find the holes past its end.
    autos = sum(1 for vm in cold_request.vms if vm.vmip_name is None)
    statics = {vmip.static_ip for vmip in cold_request.vmips}
    blocked = []
    for address in POOL.hosts():
        if len(blocked) == POOL.num_addresses - 3 - autos - len(statics):
            break
        if address != GATEWAY and str(address) not in statics:
            blocked.append(PreviousLease(str(address), "deleted", "gone", LeasePhase.RELEASED, NOW))
    full_request = replace(cold_request, leases=tuple(blocked))
    full, third = _best(args.repeat, lambda: allocate(full_request))

    problems = _problems(cold_request, first, True)
    problems += _problems(warm_request, second, True)
    problems += _problems(full_request, third, True)
    if [vm.address for vm in first.vms] != [vm.address for vm in second.vms]:
        problems.append("addresses moved between the cold and the warm run")
    if len(third.leases) != POOL.num_addresses - 3:
        problems.append("the nearly full pool was not filled to the last address")

    print(f"allocate(), {args.vms} VMs, pool {POOL} (best of {args.repeat})")
    for label, seconds in (("cold", cold), ("warm", warm)):
        print(f"  {label:<12} {seconds:8.3f} s   {seconds / TARGET_SECONDS:6.2f} x target")
    print(
        f"  {'nearly full':<12} {full:8.3f} s   {full / TARGET_SECONDS:6.2f} x target"
        f"   ({len(blocked)} released leases, {autos} Auto VMs for the {autos} holes left)"
    )
    # Linear: the time per VM stays flat as the fleet grows.
    print("  scaling (cold, time per VM):")
    for share in (4, 2, 1):
        count = args.vms // share
        sized = _request(count)
        seconds, result = _best(args.repeat, lambda sized=sized: allocate(sized))
        problems += _problems(sized, result, True)
        print(f"    {count:>7} VMs {seconds:8.3f} s   {seconds / count * 1e6:6.1f} µs per VM")
    for problem in problems:
        print(f"WRONG: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
