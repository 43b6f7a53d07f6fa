"""vm-reconciler: GitOps for virtual machines on plain libvirt/KVM hosts."""

__version__ = "0.1.0"
