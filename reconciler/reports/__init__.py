"""Status reports: documents per object, written byte-stable (SPEC §7)."""
