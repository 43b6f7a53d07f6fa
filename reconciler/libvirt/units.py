"""libvirt's memory units, as a domain's `<memory unit='...'>` may give them.

Apart from facts.py so that the QEMU hook (hook.py), which libvirt starts for every
domain it starts, stops or receives, reads them without importing the rest.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

_KIB_PER_UNIT = {
    "b": 1 / 1024,
    "bytes": 1 / 1024,
    "k": 1,
    "kib": 1,
    "kb": 1000 / 1024,
    "m": 1024,
    "mib": 1024,
    "mb": 1000**2 / 1024,
    "g": 1024**2,
    "gib": 1024**2,
    "gb": 1000**3 / 1024,
    "t": 1024**3,
    "tib": 1024**3,
    "tb": 1000**4 / 1024,
}


def memory_kib(element: ET.Element | None) -> int:
    """The KiB an element such as `<memory unit='GiB'>2</memory>` states; 0 when it is
    missing or no whole number (an unknown unit counts as libvirt's default, KiB)."""
    if element is None:
        return 0
    factor = _KIB_PER_UNIT.get(element.get("unit", "KiB").lower(), 1)
    try:
        return int(int(element.text or "") * factor)
    except ValueError:
        return 0
