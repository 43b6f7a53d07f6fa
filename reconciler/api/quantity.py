"""Kubernetes quantities (`1Gi`, `512Mi`, `1.5G`) and CPU percentages (`10%`).

Both keep the text the author wrote, so a manifest round-trips unchanged, and
expose the exact number the rules compare.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Annotated, Any

from pydantic import AfterValidator, GetCoreSchemaHandler
from pydantic_core import core_schema

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(r"^([+]?[0-9]+(?:\.[0-9]*)?|[+]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


class QuantityError(ValueError):
    pass


# Far beyond any size a bound below allows, yet short enough to parse in no time (and
# under Python's 4,300-digit limit on reading an integer).
_LONGEST_QUANTITY = 100


def parse_quantity(text: str) -> Fraction:
    """The exact value of a Kubernetes quantity (no exponent forms)."""
    match = _QUANTITY.match(text.strip()) if len(text) <= _LONGEST_QUANTITY else None
    if not match:
        shown = (
            repr(text)
            if len(text) <= _LONGEST_QUANTITY
            else f"{text[:20]!r}... ({len(text)} characters)"
        )
        raise QuantityError(
            f"{shown} is not a quantity; use a number with an optional suffix such as 512Mi or 1Gi"
        )
    number, suffix = match.groups()
    multiplier = Fraction(_BINARY[suffix]) if suffix in _BINARY else _DECIMAL[suffix]
    return Fraction(number) * multiplier


def format_bytes(value: int) -> str:
    """The shortest exact binary-suffixed form of a byte count (`1073741824` -> `1Gi`)."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


class Quantity:
    """A quantity as written, with its exact value; memory and disk sizes use it."""

    __slots__ = ("text", "value")

    def __init__(self, text: str) -> None:
        self.text = text
        self.value = parse_quantity(text)

    @property
    def bytes(self) -> int:
        """Whole bytes, rounded up as Kubernetes rounds a fractional byte count."""
        return -((-self.value.numerator) // self.value.denominator)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Quantity({self.text!r})"

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def from_input(raw: Any) -> Quantity:
            if isinstance(raw, Quantity):
                return raw
            if isinstance(raw, bool) or not isinstance(raw, (str, int)):
                raise ValueError("a quantity must be a string such as 1Gi or a whole number")
            return cls(str(raw))

        return core_schema.no_info_plain_validator_function(
            from_input,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda q: q.text, when_used="always"
            ),
        )


# Upper bounds, checked by `validate`: a larger value passed the schema and failed only
# inside libvirt, in the middle of a pass.
# A disk: at most 1 PiB, the product's bound; no host this project runs on holds more.
MAX_DISK_BYTES = 2**50
# Guest memory: at most 4 PiB (2**52 bytes), the whole 52-bit guest physical address
# space of x86-64 and AArch64. libvirt's own ceiling is just above: its domain XML
# takes `<memory unit='KiB'>` up to 2**53 - 1 KiB and refuses 2**53 KiB ("numerical
# overflow", tried on the test driver), and QEMU cannot map more than the address space.
MAX_MEMORY_BYTES = 2**52


def _at_most(limit: int, what: str) -> AfterValidator:
    def check(value: Quantity) -> Quantity:
        if value.bytes > limit:
            raise ValueError(f"{what} {value} is more than the {format_bytes(limit)} allowed")
        return value

    return AfterValidator(check)


DiskSize = Annotated[Quantity, _at_most(MAX_DISK_BYTES, "a disk size of")]
MemorySize = Annotated[Quantity, _at_most(MAX_MEMORY_BYTES, "a memory size of")]


_PERCENT = re.compile(r"^(100|[1-9][0-9]?)%$")


class Percent:
    """A CPU share such as `10%`, 1..100."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        if not 1 <= value <= 100:
            raise ValueError(f"{value}% is outside 1%..100%")
        self.value = value

    @classmethod
    def parse(cls, raw: object) -> Percent:
        if isinstance(raw, Percent):
            return raw
        # A VM's coreFraction is a string `N%` (dvp-api.md §1.1); a bare number is
        # refused rather than read as a percentage, as the platform's CRD refuses it.
        if isinstance(raw, str):
            if raw == "Auto":
                raise ValueError(
                    "coreFraction Auto needs the platform's autoscaler, which a libvirt host does"
                    " not have; give a percentage such as 50%"
                )
            match = _PERCENT.match(raw.strip())
            if match:
                return cls(int(match.group(1)))
        raise ValueError(f"{raw!r} is not a percentage between 1% and 100% such as 10%")

    @property
    def fraction(self) -> Fraction:
        return Fraction(self.value, 100)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Percent) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Percent({self.value})"

    def __str__(self) -> str:
        return f"{self.value}%"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="always"),
        )


class ClassPercent(Percent):
    """A percentage in a class sizing policy: `10` (v1alpha2) or `"10%"` (v1alpha3).

    It serializes back in the form it was written.
    """

    __slots__ = ("written_as_int",)

    def __init__(self, value: int, written_as_int: bool = False) -> None:
        super().__init__(value)
        self.written_as_int = written_as_int

    @classmethod
    def parse(cls, raw: object) -> ClassPercent:
        if isinstance(raw, ClassPercent):
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            return cls(raw, written_as_int=True)
        return cls(Percent.parse(raw).value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda p: p.value if p.written_as_int else str(p), when_used="always"
            ),
        )
