"""Decoding and encoding a fixed-size layout with the checks its table states.

The tables themselves are generated (``edge/formats/layouts.py``, from
contract/spec.py): field order, sizes, ranges, enums, flags and each field's
refusal class. A parser built on them keeps only its cross-field rules.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from edge import errors


@dataclass(frozen=True)
class Field:
    """One field: struct code, offset, human label and the values it may take."""

    name: str
    code: str
    offset: int
    label: str
    reserved: bool = False
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    posinf_ok: bool = False  # +inf is a value here (a no-DP policy's epsilon)
    enum: type[IntEnum] | type[IntFlag] | None = None
    refusal: type[errors.EdgeError] = errors.Malformed  # above ``hi``

    @property
    def is_float(self) -> bool:
        """True for float32/float64 fields."""
        return self.code in ("f", "d")

    def check(self, what: str, value: Any) -> Any:
        """Return the value (as its enum type if it has one) or raise its refusal class."""
        if self.reserved:
            if any(value):
                end = self.offset + len(value) - 1
                raise errors.Malformed(
                    f"{what}: reserved bytes {self.offset}..{end} are not zero")
            return value
        if self.is_float and not math.isfinite(value) and not (
                self.posinf_ok and value == math.inf):
            raise errors.Malformed(f"{what}: {self.name} is not finite")
        self._check_range(what, value)
        if self.enum is not None:
            return self._check_enum(what, value)
        return value

    def _check_range(self, what: str, value: float) -> None:
        lo, hi = self.lo, self.hi
        if lo is not None and (value <= lo if self.lo_open else value < lo):
            cond = (f"> {_num(lo)}" if self.lo_open
                    else "negative" if lo == 0 and self.is_float else f"≥ {_num(lo)}")
            text = f"is {cond}" if cond == "negative" else f"is not {cond}"
            # Below a minimum is always malformed; above a maximum is the field's class.
            raise errors.Malformed(f"{what}: {self.label} {value} {text}")
        if hi is not None and value > hi:
            raise self.refusal(f"{what}: {self.label} {value} is above {_num(hi)}")

    def _check_enum(self, what: str, value: int) -> Any:
        assert self.enum is not None
        if issubclass(self.enum, IntFlag):
            known = 0
            for member in self.enum:
                known |= member.value
            if value & ~known:
                raise errors.Malformed(
                    f"{what}: {self.label} 0x{value:02x} has unknown flag bits")
            return self.enum(value)
        try:
            return self.enum(value)
        except ValueError:
            allowed = ", ".join(f"{m.value} ({m.name.lower()})" for m in self.enum)
            raise errors.Malformed(
                f"{what}: {self.label} {value} is not one of {allowed}") from None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class Layout:
    """A fixed-size little-endian structure: its fields in order."""

    def __init__(self, title: str, fields: tuple[Field, ...], *, size: int) -> None:
        self.title = title
        self.fields = fields
        self.struct = struct.Struct("<" + "".join(f.code for f in fields))
        if self.struct.size != size:
            raise AssertionError(f"{title}: fields make {self.struct.size} bytes, not {size}")
        self.size = size
        self.names = tuple(f.name for f in fields if not f.reserved)

    def offset(self, name: str) -> int:
        """Byte offset of field ``name``."""
        return next(f.offset for f in self.fields if f.name == name)

    def unpack(self, data: bytes | bytearray | memoryview, what: str) -> dict[str, Any]:
        """Decode ``data`` (exactly ``size`` bytes) and check every field; ``what`` names it."""
        if len(data) != self.size:
            raise errors.Malformed(f"{what}: body of {len(data)} bytes, expected {self.size}")
        values = self.struct.unpack(bytes(data))
        out: dict[str, Any] = {}
        for f, v in zip(self.fields, values, strict=True):
            checked = f.check(what, v)
            if not f.reserved:
                out[f.name] = checked
        return out

    def read(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """The raw field values at the start of ``data``, unchecked (tools reading any input)."""
        values = self.struct.unpack_from(bytes(data[:self.size]))
        return {f.name: v for f, v in zip(self.fields, values, strict=True) if not f.reserved}

    def check_reserved(self, data: bytes | bytearray | memoryview, what: str) -> None:
        """Refuse non-zero reserved bytes at the start of ``data`` (``Malformed``)."""
        for f in self.fields:
            if f.reserved:
                f.check(what, bytes(data[f.offset:f.offset + struct.calcsize("<" + f.code)]))

    def check(self, what: str, values: dict[str, Any]) -> None:
        """Run the field checks on values about to be packed (builders refuse what parsers do)."""
        for f in self.fields:
            if not f.reserved:
                f.check(what, values[f.name])

    def pack(self, values: dict[str, Any]) -> bytes:
        """Encode ``values`` (every non-reserved field by name; reserved bytes are zero)."""
        args = []
        for f in self.fields:
            if f.reserved:
                args.append(bytes(struct.calcsize("<" + f.code)))
            else:
                args.append(values[f.name])
        return self.struct.pack(*args)
