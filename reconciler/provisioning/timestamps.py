"""Every date of an ISO 9660 image set to one fixed instant, so equal inputs give equal bytes.

pycdlib stamps the wall clock, in the host's time zone, into the volume descriptors
(one of them at write time), every directory record and every Rock Ridge TF entry,
and offers no option to fix them. Rewriting them in the finished image relies only
on the formats (ECMA-119 §8.4, §9.1; SUSP 1.12 §5; RRIP 1.12 §4.1.6), not on
pycdlib's internals.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

SECTOR = 2048
FIRST_DESCRIPTOR = 16
_PRIMARY, _SUPPLEMENTARY, _TERMINATOR = 1, 2, 255
# The instant every date is set to: 1980-01-01 00:00:00 UTC, the start of the
# DOS/zip calendar, used by reproducible-build tools where 1970 reads as "unset".
_RECORD_DATE = bytes((80, 1, 1, 0, 0, 0, 0))
_DESCRIPTOR_DATE = b"1980010100000000\x00"
_UNSET_DESCRIPTOR_DATE = b"0" * 16 + b"\x00"
# Offsets in a primary or supplementary volume descriptor (ECMA-119 §8.4).
_ROOT_RECORD = 156
_CREATION, _MODIFICATION, _EXPIRATION, _EFFECTIVE = 813, 830, 847, 864
# Offsets in a directory record (ECMA-119 §9.1).
_RECORD_EXTENT, _RECORD_SIZE, _RECORD_DATE_AT, _RECORD_FLAGS, _RECORD_NAME_LEN = 2, 10, 18, 25, 32
_DIRECTORY_FLAG = 0x02


def with_fixed_timestamps(image: bytes) -> bytes:
    """The image with every volume, directory-record and Rock Ridge date fixed."""
    fixed = bytearray(image)
    for descriptor in _volume_descriptors(fixed):
        for offset in (_CREATION, _MODIFICATION, _EFFECTIVE):
            _put(fixed, descriptor + offset, _DESCRIPTOR_DATE)
        _put(fixed, descriptor + _EXPIRATION, _UNSET_DESCRIPTOR_DATE)
        _fix_tree(fixed, descriptor + _ROOT_RECORD)
    return bytes(fixed)


def _volume_descriptors(image: bytearray) -> Iterator[int]:
    """Offsets of the primary and supplementary (Joliet) volume descriptors."""
    sector = FIRST_DESCRIPTOR
    while (sector + 1) * SECTOR <= len(image):
        offset = sector * SECTOR
        kind = image[offset]
        if image[offset + 1 : offset + 6] != b"CD001" or kind == _TERMINATOR:
            return
        if kind in (_PRIMARY, _SUPPLEMENTARY):
            yield offset
        sector += 1


def _fix_tree(image: bytearray, root_record: int) -> None:
    """Fixes the root record and, depth first, every record below it."""
    _put(image, root_record + _RECORD_DATE_AT, _RECORD_DATE)
    pending = [_extent(image, root_record)]
    seen: set[int] = set()
    while pending:
        start, size = pending.pop()
        if start in seen:
            continue
        seen.add(start)
        for record in _records(image, start, size):
            _put(image, record + _RECORD_DATE_AT, _RECORD_DATE)
            _fix_system_use(image, record)
            name_length = image[record + _RECORD_NAME_LEN]
            is_self_or_parent = name_length == 1 and image[record + 33] in (0, 1)
            if image[record + _RECORD_FLAGS] & _DIRECTORY_FLAG and not is_self_or_parent:
                pending.append(_extent(image, record))


def _extent(image: bytearray, record: int) -> tuple[int, int]:
    block = struct.unpack_from("<I", image, record + _RECORD_EXTENT)[0]
    size = struct.unpack_from("<I", image, record + _RECORD_SIZE)[0]
    return block * SECTOR, size


def _records(image: bytearray, start: int, size: int) -> Iterator[int]:
    # A record never crosses a sector boundary; a zero length byte pads to the next.
    offset, end = start, min(start + size, len(image))
    while offset < end:
        length = image[offset]
        if length == 0:
            offset = (offset // SECTOR + 1) * SECTOR
            continue
        yield offset
        offset += length


def _fix_system_use(image: bytearray, record: int) -> None:
    """Fixes the TF entries of a record's SUSP area and of its continuation areas."""
    name_length = image[record + _RECORD_NAME_LEN]
    # The identifier is padded to an even record offset (ECMA-119 §9.1.12); pycdlib
    # sets no SUSP skip bytes (SP's LEN_SKP is 0), so the area starts right after.
    start = record + 33 + name_length + (1 - name_length % 2)
    areas = [(start, record + image[record])]
    while areas:
        offset, end = areas.pop()
        while offset + 4 <= end:
            signature, length = bytes(image[offset : offset + 2]), image[offset + 2]
            if length < 4 or signature == b"ST":
                break
            if signature == b"TF":
                _fix_tf(image, offset)
            elif signature == b"CE":
                block, skip, ce_length = struct.unpack_from("<I4xI4xI", image, offset + 4)
                area = block * SECTOR + skip
                areas.append((area, area + ce_length))
            offset += length


def _fix_tf(image: bytearray, entry: int) -> None:
    flags = image[entry + 4]
    long_form = bool(flags & 0x80)
    stamp = _DESCRIPTOR_DATE if long_form else _RECORD_DATE
    count = bin(flags & 0x7F).count("1")
    for index in range(count):
        _put(image, entry + 5 + index * len(stamp), stamp)


def _put(image: bytearray, offset: int, value: bytes) -> None:
    image[offset : offset + len(value)] = value
