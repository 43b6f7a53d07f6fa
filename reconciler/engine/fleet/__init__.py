"""The fleet: which host runs each VM, the same answer on every host."""
