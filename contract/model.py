"""The shapes the contract is written in (plain frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Field types of a layout: struct code and size in bytes.
SCALARS = {"u8": ("B", 1), "u16": ("H", 2), "u32": ("I", 4), "u64": ("Q", 8),
           "f32": ("f", 4), "f64": ("d", 8)}


@dataclass(frozen=True)
class Param:
    """One of the four GP parameters of a command."""

    kind: str  # MEMREF_INPUT, VALUE_OUTPUT, ...
    text: str


@dataclass(frozen=True)
class Command:
    """A TA command: its id, what it does, and its parameters [0..3]."""

    name: str
    id: int
    text: str
    params: tuple[Param, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """A refusal or failure class: its Python exception and its short name."""

    exception: str
    base: str
    refusal: str
    doc: str
    # Keyword-only attributes the exception carries besides message/code/origin.
    attrs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Result:
    """A TEE result code the TA or the client returns.

    ``name`` is the C name; ``exception`` the class a refusal maps to in
    Python (None: handled by the binding itself); ``documented`` puts the code
    in the refusal table of docs/formats.md as its class's code.
    """

    name: str
    value: int
    text: str
    exception: str | None = None
    comment: str = ""
    documented: bool = False
    gp: bool = False  # defined by GlobalPlatform, not by edge


@dataclass(frozen=True)
class Constant:
    """A size or limit shared by C and Python; ``expr`` is its C expression."""

    name: str
    value: int
    comment: str = ""
    expr: str = ""


@dataclass(frozen=True)
class Member:
    """One value of an enum or one bit of a flag set."""

    name: str
    value: int
    comment: str = ""


@dataclass(frozen=True)
class Enum:
    """An enum (IntEnum) or a flag set (IntFlag) used in artefacts or blocks.

    C names are ``{c_prefix}{member}``; Python is ``class {py_name}``.
    """

    py_name: str
    c_prefix: str
    doc: str
    members: tuple[Member, ...]
    flag: bool = False


@dataclass(frozen=True)
class Field:
    """One field of a layout.

    ``type`` is a scalar (u8..u64, f32, f64), ``bytes`` (opaque, ``size``
    bytes) or ``reserved`` (``size`` bytes that must be zero). ``lo``/``hi``
    bound an integer or float inclusively; ``lo_open`` makes ``lo``
    exclusive (``> 0``). ``enum`` names an :class:`Enum` whose members (or
    flag bits) are the only values accepted. A float is always checked to be
    finite (``posinf_ok`` also lets +inf through). A value below ``lo`` is
    malformed; one above ``hi`` is refused
    with ``refusal`` (``malformed`` unless said otherwise, ``oversized`` for a
    documented maximum of the package).
    """

    name: str
    type: str
    doc: str
    size: int = 0
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    enum: str | None = None
    refusal: str = "malformed"
    # +inf is a value (the epsilon of a no-DP policy); NaN and -inf never are.
    posinf_ok: bool = False

    @property
    def nbytes(self) -> int:
        """Size of the field in bytes."""
        return SCALARS[self.type][1] if self.type in SCALARS else self.size


@dataclass(frozen=True)
class Tail:
    """A variable part after the fixed fields: only documented, never parsed by a table."""

    offset: str
    size: str
    doc: str


@dataclass(frozen=True)
class Layout:
    """The byte layout of one fixed-size structure, little-endian.

    ``c_prefix`` names C macros (``EDGE_{c_prefix}_OFF_{FIELD}``,
    ``EDGE_{c_prefix}_SIZE``); ``py_name`` the Python layout object.
    ``size_name`` overrides the C size macro (the ABI keeps its old names).
    """

    key: str
    title: str
    c_prefix: str
    py_name: str
    fields: tuple[Field, ...]
    tail: tuple[Tail, ...] = ()
    size_name: str = ""
    docs: bool = True
    fixed: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        """Size of the fixed part in bytes."""
        return sum(f.nbytes for f in self.fields)

    def offsets(self) -> list[tuple[Field, int]]:
        """Each field with its offset."""
        out, off = [], 0
        for f in self.fields:
            out.append((f, off))
            off += f.nbytes
        return out
