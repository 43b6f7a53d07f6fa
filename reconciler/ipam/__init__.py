"""IP address management: which vmip holds which address, decided identically on every host.

`allocate` is pure (no I/O, no clock, no libvirt); see allocate.py for the rules.
"""

from reconciler.ipam.allocate import allocate, with_leases
from reconciler.ipam.manifests import has_main_network, vm_requests, vmip_requests
from reconciler.ipam.model import (
    RETENTION,
    Allocation,
    AllocationRequest,
    Lease,
    PreviousLease,
    VMAddress,
    VMIPRequest,
    VMIPStatus,
    VMRequest,
)
from reconciler.ipam.naming import generated_vmip_name, lease_address, lease_name
from reconciler.ipam.pool import AddressPool

__all__ = [
    "RETENTION",
    "AddressPool",
    "Allocation",
    "AllocationRequest",
    "Lease",
    "PreviousLease",
    "VMAddress",
    "VMIPRequest",
    "VMIPStatus",
    "VMRequest",
    "allocate",
    "generated_vmip_name",
    "has_main_network",
    "lease_address",
    "lease_name",
    "vm_requests",
    "vmip_requests",
    "with_leases",
]
