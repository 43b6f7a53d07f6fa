"""The XML namespace of the project's `<metadata>` element in a domain.

A module of its own, importing nothing, so that the QEMU hook (libvirt/hook.py) knows
our domains without the value types of domain.py.
"""

METADATA_NAMESPACE = "https://vm-reconciler.io/xmlns/domain/1"
METADATA_PREFIX = "vmr"
