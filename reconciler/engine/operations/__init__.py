"""VirtualMachineOperations: carrying each out once, and their reports."""
