"""One VM: the domain it should be, what changes live or at restart, its run policy
and power, and its phase as the guest moves."""
