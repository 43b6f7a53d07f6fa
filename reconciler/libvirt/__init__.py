"""The libvirt side of the engine: render, observe and apply, through libvirt-python."""
