"""The journal's msgpack codec: values in and out of journal records, and argument digests.

Native msgpack carries None, bool, int, float, str, bytes, lists and dicts. Extension types carry
tuples, namedtuples, sets, frozensets, UUIDs, datetimes (naive, fixed-offset or in a
``zoneinfo`` zone), dates, times, timedeltas, Decimals, enums, ``Counter``, ``OrderedDict``,
``defaultdict``, pydantic models, dataclasses and exceptions. Every value comes back with the
type it had: anything else, including other subclasses of the built-in types (which would come
back as their base type), is refused with an error naming its type and where it was found,
unless pickling is explicitly allowed.

Decoding never runs code the journal chooses: classes are looked up among modules the program
has already imported (never imported on the journal's say-so), and rebuilt without calling
``__init__``. An exception class that cannot be found comes back as ``ReplayedError`` carrying its
type name, message and attributes (and a class its args or attributes name that cannot be found
as an ``Unresolved`` placeholder: exceptions are rebuilt as well as they can be).

Values nest at most ``MAX_NESTING`` extension levels deep (each level is packed and unpacked by a
nested msgpack call), so that neither side can run out of C stack; decoding turns any malformed
input into a ``JournalError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import pickle
import struct
import sys
import threading
import types
import uuid
import zoneinfo
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
from pydantic import BaseModel

from ..errors import JournalError, ReplayedError
from ..rows import ROW_MODULE, is_row
from ..rows import build as build_row
from ..values import SCALAR_TYPES
from .packer import ThreadPacker

__all__ = [
    "MAX_NESTING",
    "Codec",
    "JournalEncodeError",
    "Unresolved",
    "find_class",
    "rebuild_exception",
]


MAX_NESTING = 100
"""How many extension values (tuples, sets, models, dataclasses, exceptions...) may nest inside
each other. Each level costs a nested msgpack call on the C stack, so deeper values are refused
when written and when read. (Lists and dicts inside one payload are bounded by msgpack: 511
levels when packing, 1024 when unpacking. Unpacking them is iterative, but packing recurses on
the C stack, about 400 bytes a level: a value that nests thousands of lists across many
extension levels can still exhaust a small thread stack when it is encoded.)"""

# Extension codes: new ones are added at the end, existing ones are never renumbered (journals
# written before must still decode).
_TUPLE = 1
_SET = 2
_FROZENSET = 3
_UUID = 4
_DATETIME = 5
_DATE = 6
_TIME = 7
_DECIMAL = 8
_ENUM = 9
_MODEL = 10
_DATACLASS = 11
_EXCEPTION = 12
_PICKLE = 13
_BIGINT = 14
_COUNTER = 15
_ORDERED_DICT = 16
_DEFAULT_DICT = 17
_NAMED_TUPLE = 18
_TIMEDELTA = 19
_ZONED_DATETIME = 20
_ZONED_TIME = 21
_ROW = 22

# PyFlink's table row, the usual output of an agent feeding a Flink table (see ..rows): a
# journal holding one is only read where PyFlink is loaded (the agent that made it imports it).
_ROW_CLASS = f"{ROW_MODULE}:Row"

_TIMEDELTA_STRUCT = struct.Struct("<iII")  # days, seconds, microseconds: all timedeltas fit
_MAX_REPR = 1000  # an unencodable exception argument or attribute is kept as this much repr
_REPLAYED_OWN = frozenset({"type_name", "message", "attributes"})

# C-level fields of built-in exceptions, which live outside ``__dict__``: recorded so that they
# survive even where the built-in ``__init__`` cannot restore them from ``args`` (OSError keeps
# no filename in args, ImportError takes name and path as keywords). Only fields whose C code
# accepts any object are listed; UnicodeError's fields are rebuilt by its own ``__init__``.
_BUILTIN_FIELDS: tuple[tuple[type[BaseException], tuple[str, ...]], ...] = (
    (OSError, ("errno", "strerror", "filename", "filename2")),
    (ImportError, ("name", "path")),
    (NameError, ("name",)),
    (AttributeError, ("name",)),
)

# Subclasses of these come back as the base type if packed natively, so they are refused
# (their conversion named) unless they are one of the subclasses the codec carries itself.
_PLAIN_BASES: tuple[type, ...] = (dict, list, tuple, set, frozenset, str, bytes, int, float)
_CARRIED_SUBCLASSES = frozenset({Counter, OrderedDict, defaultdict, bool})


class JournalEncodeError(JournalError, TypeError):
    """A value cannot be written to the journal. Names the type and where it was found."""


_NESTED_BUFFER = 4096  # initial buffer of a nested Packer (it grows as needed)
_POOLED_PAYLOAD = 4096  # payloads up to this size are unpacked by a reused Unpacker


class _Nesting:
    """One thread's nesting state in one codec: how many extension payloads it is packing, and
    unpacking, inside each other, and its msgpack Packers and Unpackers for them, one per
    level, made on first use. They are reused because making them is what nested values cost
    most (a Packer allocates a 256 KiB buffer, an Unpacker zeroes its 40 KB context); only one
    payload per level is in progress at a time."""

    __slots__ = ("decoding", "encoding", "in_exceptions", "packers", "unpackers")

    def __init__(self) -> None:
        self.encoding = 0
        self.decoding = 0
        self.in_exceptions = 0  # exception records being decoded (see _decode_exception)
        self.packers: list[Callable[[Any], bytes] | None] = [None] * (MAX_NESTING + 1)
        self.unpackers: list[msgpack.Unpacker | None] = [None] * (MAX_NESTING + 1)


class _ThreadNesting(threading.local):
    """A ``_Nesting`` per thread (values are encoded and decoded on the loop and on store
    threads alike); a plain object inside, so that only reaching it costs a thread-local
    lookup."""

    def __init__(self) -> None:
        self.state = _Nesting()


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _type_name(cls: type) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"


def find_class(path: str) -> type | None:
    """The class at ``module:qualname`` if its module is already imported (never imports)."""
    module_name, _, qualname = path.partition(":")
    target: Any = sys.modules.get(module_name)
    if target is None:
        return None
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    return target if isinstance(target, type) else None


def _is_namedtuple(cls: type) -> bool:
    fields = getattr(cls, "_fields", None)
    return issubclass(cls, tuple) and isinstance(fields, tuple)


def _refused_base(cls: type) -> type | None:
    """The built-in type ``cls`` subclasses, if the codec refuses ``cls`` for coming back as
    that base (not an exact built-in type, an enum, or a subclass the codec carries)."""
    if cls in _PLAIN_BASES or cls in _CARRIED_SUBCLASSES or issubclass(cls, enum.Enum):
        return None
    if _is_namedtuple(cls):
        return None
    for base in _PLAIN_BASES:
        if issubclass(cls, base):
            return base
    return None


def _safe_str(value: object) -> str:
    """``str(value)``, or a stand-in if its ``__str__`` fails (an error is still recorded)."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__} object>"


def _bounded_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__} object>"
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {_safe_str(error)}"


def _where(where: str, where_args: tuple[Any, ...]) -> str:
    """``where`` filled with ``where_args``, or as given if formatting them fails (an error
    message must not fail in turn)."""
    try:
        return where.format(*where_args)
    except Exception:
        return where


def _pack_text(text: str) -> bytes:
    """msgpack bytes of a message or repr, which are written whatever they hold (a lone
    surrogate, as in a file name, is escaped)."""
    try:
        return msgpack.packb(text, use_bin_type=True)
    except Exception:
        return msgpack.packb(
            str.encode(text, "utf-8", "backslashreplace").decode("utf-8"), use_bin_type=True
        )


def _array_header(length: int) -> bytes:
    """The msgpack header of an array of ``length`` items (as msgpack's own Packer writes it),
    for arrays assembled from items packed one by one."""
    if length < 16:
        return bytes((0x90 | length,))
    if length < 0x10000:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def _map_header(length: int) -> bytes:
    if length < 16:
        return bytes((0x80 | length,))
    if length < 0x10000:
        return b"\xde" + length.to_bytes(2, "big")
    return b"\xdf" + length.to_bytes(4, "big")


def _too_deep() -> JournalEncodeError:
    return JournalEncodeError(
        f"the value is nested too deeply: more than {MAX_NESTING} tuples, sets, models, "
        "dataclasses or exceptions inside each other; flatten it"
    )


class Unresolved:
    """A journaled value whose class is not loaded here (shown by tools, never replayed)."""

    def __init__(self, path: str, data: Any) -> None:
        self.path = path.replace(":", ".")
        self.data = data

    def __repr__(self) -> str:
        return f"<{self.path} {self.data!r}>"


class Codec:
    """Encodes journal values to msgpack bytes and back. Stateless apart from its settings
    (and the msgpack Packers and Unpackers it keeps per thread for reuse)."""

    def __init__(self, *, allow_pickle: bool = False, lenient: bool = False) -> None:
        """``lenient``: decode what cannot be rebuilt (classes not loaded, pickles) as an
        ``Unresolved`` placeholder instead of failing; for tools that only display records."""
        self.allow_pickle = allow_pickle
        self.lenient = lenient
        self._packer_default = self._encode_default
        # Payloads of extension values are packed and unpacked by Packers and Unpackers of
        # their own, one per nesting level and thread (the thread's Packer is busy).
        self._packer = ThreadPacker(
            default=self._packer_default, use_bin_type=True, strict_types=True
        )
        self._threads = _ThreadNesting()

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, value: Any, where: str = "value", *where_args: Any) -> bytes:
        """msgpack bytes for ``value``. ``where`` (a format string, filled with ``where_args``
        only if needed) names the value in errors, e.g. ``"result of slot {}"``.

        Any failure is a ``JournalEncodeError`` (the runtime treats that as "cannot be
        journaled"; anything else would escape it), with the original exception as its cause.
        """
        try:
            return self._packer.pack(value)
        except JournalEncodeError as error:
            # A refusal already names the type; its cause (if any) is the original failure.
            raise JournalEncodeError(f"{_where(where, where_args)}: {error}") from error.__cause__
        except Exception as error:
            raise JournalEncodeError(
                f"{_where(where, where_args)} cannot be journaled: a "
                f"{_type_name(type(value))} could not be encoded: {_describe(error)}"
            ) from error

    def _pack(self, value: Any) -> bytes:
        """Codec bytes of ``value`` as the payload of an extension value, one nesting level
        down (refused beyond ``MAX_NESTING``: decoding it would need as many nested calls)."""
        return self._pack_each((value,))[0]

    def _pack_each(self, values: Iterable[Any], keep_repr: bool = False) -> list[bytes]:
        """The codec bytes of each of ``values``, one nesting level down (for payloads that are
        assembled from their items, so that no item is packed twice). ``keep_repr``: an item
        the codec cannot encode is kept as its (bounded) repr instead of failing."""
        nesting = self._threads.state
        depth = nesting.encoding + 1
        if depth > MAX_NESTING:
            raise _too_deep()
        nesting.encoding = depth
        try:
            pack = nesting.packers[depth] or self._new_packer(depth)
            if not keep_repr:
                return [pack(value) for value in values]
            return [_pack_or_repr(pack, value) for value in values]
        finally:
            nesting.encoding = depth - 1

    def _new_packer(self, depth: int) -> Callable[[Any], bytes]:
        """The calling thread's Packer for payloads at nesting level ``depth``, made on first
        use. (A failed pack leaves nothing behind in it: msgpack drops the partial bytes.)"""
        packer = msgpack.Packer(
            default=self._packer_default,
            use_bin_type=True,
            strict_types=True,
            buf_size=_NESTED_BUFFER,
        )
        self._threads.state.packers[depth] = packer.pack
        return packer.pack

    def _encode_default(self, value: Any) -> Any:
        """The packers' hook for every value msgpack does not carry itself. Whatever goes wrong
        in here (an attribute that raises, a RecursionError) becomes a JournalEncodeError naming
        the value's type."""
        try:
            return self._extension(value)
        except JournalEncodeError:
            raise
        except Exception as error:
            raise JournalEncodeError(
                f"a {_type_name(type(value))} cannot be journaled: {_describe(error)}"
            ) from error

    def _extension(self, value: Any) -> Any:
        """The extension value for ``value`` (exact types first: they are the common ones)."""
        value_type = type(value)
        if value_type is tuple:
            return msgpack.ExtType(_TUPLE, self._pack(list(value)))
        if value_type is set or value_type is frozenset:
            return msgpack.ExtType(_SET if value_type is set else _FROZENSET, self._pack_set(value))
        if value_type is int:  # the packer asks only for ints beyond 64 bits
            return msgpack.ExtType(_BIGINT, str(value).encode())
        if value_type is uuid.UUID:
            return msgpack.ExtType(_UUID, value.bytes)
        if value_type is dt.datetime or value_type is dt.time:
            tzinfo = value.tzinfo
            if tzinfo is None or type(tzinfo) is dt.timezone:  # ISO text keeps all of it
                code = _DATETIME if value_type is dt.datetime else _TIME
                return msgpack.ExtType(code, value.isoformat().encode())
            return self._encode_zoned(value)
        if value_type is dt.date:
            return msgpack.ExtType(_DATE, value.isoformat().encode())
        if value_type is decimal.Decimal:
            return msgpack.ExtType(_DECIMAL, str(value).encode())
        if value_type is dt.timedelta:
            payload = _TIMEDELTA_STRUCT.pack(value.days, value.seconds, value.microseconds)
            return msgpack.ExtType(_TIMEDELTA, payload)
        if value_type is Counter:
            return msgpack.ExtType(_COUNTER, self._pack(dict(value)))
        if value_type is OrderedDict:
            return msgpack.ExtType(_ORDERED_DICT, self._pack(dict(value)))
        if value_type is defaultdict:
            return self._encode_defaultdict(value)
        if isinstance(value, enum.Enum):
            return msgpack.ExtType(_ENUM, self._pack([_class_path(value_type), value.value]))
        if isinstance(value, BaseModel):
            fields = {name: getattr(value, name) for name in type(value).model_fields}
            if value.__pydantic_extra__:
                fields.update(value.__pydantic_extra__)
            return msgpack.ExtType(_MODEL, self._pack([_class_path(value_type), fields]))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return msgpack.ExtType(_DATACLASS, self._pack([_class_path(value_type), fields]))
        if isinstance(value, BaseException):
            return msgpack.ExtType(_EXCEPTION, self._encode_exception(value))
        if isinstance(value, tuple) and _is_namedtuple(value_type):
            return self._encode_namedtuple(value)
        if is_row(value):
            return self._encode_row(value)
        return self._refuse(value)

    def _encode_row(self, row: Any) -> msgpack.ExtType:
        """A PyFlink ``Row`` as its field names (None for a positional row), values and row
        kind (the ``RowKind`` number)."""
        names = getattr(row, "_fields", None)
        record = [list(names) if names is not None else None, list(row), row.get_row_kind().value]
        return msgpack.ExtType(_ROW, self._pack(record))

    def _pack_set(self, values: set[Any] | frozenset[Any]) -> bytes:
        """A set's payload: its elements in the order of their encodings, so that equal sets
        encode identically whatever their hash order (natural ordering would not do: sets of
        sets compare by inclusion, which is only a partial order). Each element is packed once
        and the array assembled from the sorted bytes: packing for the sort and again for the
        payload would double the work at every level of sets nested in sets."""
        items = self._pack_each(values)
        items.sort()
        return _array_header(len(items)) + b"".join(items)

    def _encode_zoned(self, value: dt.datetime | dt.time) -> msgpack.ExtType:
        """A datetime or time in a ``zoneinfo`` zone: its wall time, fold and zone key (ISO
        text would keep only the offset, and lose the zone's rules for later arithmetic).
        Other tzinfo types cannot be rebuilt, so they are refused unless pickling is allowed."""
        tzinfo = value.tzinfo
        if type(tzinfo) is zoneinfo.ZoneInfo and tzinfo.key is not None:
            naive = value.replace(tzinfo=None).isoformat()
            payload = f"{naive} {value.fold} {tzinfo.key}".encode()
            code = _ZONED_DATETIME if type(value) is dt.datetime else _ZONED_TIME
            return msgpack.ExtType(code, payload)
        if self.allow_pickle:
            return msgpack.ExtType(_PICKLE, pickle.dumps(value))
        raise JournalEncodeError(
            f"a {_type_name(type(value))} with tzinfo {_bounded_repr(tzinfo)} (a "
            f"{_type_name(type(tzinfo))}) "
            "cannot be journaled: it would not come back in the same zone; use a "
            "zoneinfo.ZoneInfo(key) or a datetime.timezone, or convert it to UTC "
            "(value.astimezone(datetime.UTC))"
        )

    def _encode_defaultdict(self, value: defaultdict[Any, Any]) -> msgpack.ExtType:
        factory = value.default_factory
        if factory is None:
            return msgpack.ExtType(_DEFAULT_DICT, self._pack([None, dict(value)]))
        if isinstance(factory, type) and find_class(_class_path(factory)) is factory:
            path = _class_path(factory)
            return msgpack.ExtType(_DEFAULT_DICT, self._pack([path, dict(value)]))
        if self.allow_pickle:
            return msgpack.ExtType(_PICKLE, pickle.dumps(value))
        raise JournalEncodeError(
            f"a collections.defaultdict whose default_factory is {_bounded_repr(factory)} "
            "cannot be journaled: only None or a class found by its module and name (list, "
            "int, set, dict, a class of your own) can be rebuilt on replay; journal "
            "dict(value) instead, or set 'journal.allow-pickle: true' to pickle it"
        )

    def _encode_namedtuple(self, value: tuple[Any, ...]) -> msgpack.ExtType:
        value_type: Any = type(value)
        path = _class_path(value_type)
        fields = value_type._fields
        if find_class(path) is value_type and len(fields) == len(value):
            return msgpack.ExtType(_NAMED_TUPLE, self._pack([path, list(value)]))
        if self.allow_pickle:
            return msgpack.ExtType(_PICKLE, pickle.dumps(value))
        # A class defined in a function could not be found on replay: refuse it now, not when
        # the journal is replayed.
        raise JournalEncodeError(
            f"a namedtuple of class {_type_name(type(value))} cannot be journaled: the class "
            "cannot be found by its module and name on replay (define it at module level), "
            "or journal tuple(value) instead"
        )

    def _refuse(self, value: Any) -> Any:
        if self.allow_pickle:
            return msgpack.ExtType(_PICKLE, pickle.dumps(value))
        value_type = type(value)
        base = _refused_base(value_type)
        if base is not None:
            raise JournalEncodeError(
                f"a {_type_name(value_type)} (a subclass of {base.__name__}) cannot be "
                f"journaled: it would come back as a plain {base.__name__} on replay; journal "
                f"{base.__name__}(value) instead, or set 'journal.allow-pickle: true' to "
                "pickle it"
            )
        raise JournalEncodeError(
            f"a {_type_name(value_type)} cannot be journaled; return plain data (None, bool, "
            "int, float, str, bytes, list, dict, tuple, set, UUID, datetime, timedelta, "
            "Decimal, an enum, a namedtuple, Counter, OrderedDict, defaultdict, a pydantic "
            "model or a dataclass), or set 'journal.allow-pickle: true' to pickle such objects"
        )

    def _encode_exception(self, error: BaseException) -> bytes:
        """The payload ``[class path, args, message, attributes]``, assembled from its parts
        packed one by one: an argument or attribute the codec cannot carry is kept as its
        repr, and nothing is packed twice (testing each part before packing the whole would
        double the work at every level of exceptions held by exceptions)."""
        path, args, message, attributes = _exception_record(error)
        packed_args = self._pack_each(args, keep_repr=True)
        packed_values = self._pack_each(attributes.values(), keep_repr=True)
        parts = [b"\x94", _pack_text(path), _array_header(len(packed_args)), *packed_args]
        parts += [_pack_text(message), _map_header(len(packed_values))]
        for name, packed in zip(attributes, packed_values, strict=True):
            parts += [_pack_text(name), packed]
        return b"".join(parts)

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, data: bytes, where: str = "journal record", *where_args: Any) -> Any:
        """The value encoded in ``data``; ``where`` (filled with ``where_args`` only when
        needed) names it in errors. Whatever ``data`` holds, the outcome is a value or a
        ``JournalError``."""
        try:
            # One unpackb keeps its unpack context (about 40 KB) on the C stack: fine for the
            # top level; nested payloads use heap-allocated Unpackers (see _unpack).
            return msgpack.unpackb(data, ext_hook=self._decode_ext, strict_map_key=False, raw=False)
        except JournalError:
            raise
        except msgpack.StackError as error:  # its message is empty
            raise JournalError(
                f"{_where(where, where_args)} cannot be decoded: it nests lists or dicts more "
                "deeply than msgpack unpacks (StackError)"
            ) from error
        except Exception as error:
            raise JournalError(
                f"{_where(where, where_args)} cannot be decoded: {_describe(error)}"
            ) from error

    def _unpack(self, data: bytes) -> Any:
        """The value in an extension payload, one nesting level down. An Unpacker keeps its
        context on the heap, so a level costs little C stack (nested unpackb calls overflow it
        long before the nesting limit); the limit itself bounds what is left."""
        nesting = self._threads.state
        depth = nesting.decoding + 1
        if depth > MAX_NESTING:
            raise JournalError(
                f"a journal record nests more than {MAX_NESTING} extension values inside each "
                "other; the codec never writes such records"
            )
        size = len(data)
        if size > _POOLED_PAYLOAD or not size:
            return self._unpack_alone(data, depth)
        unpackers = nesting.unpackers
        unpacker = unpackers[depth] or self._new_unpacker(depth)
        nesting.decoding = depth
        try:
            start = unpacker.tell()
            unpacker.feed(data)
            value = unpacker.unpack()
            if unpacker.tell() - start != size:
                raise JournalError("a journal record has extra bytes in an extension payload")
        except BaseException:
            unpackers[depth] = None  # its buffer may hold part of a value: never reused
            raise
        finally:
            nesting.decoding = depth - 1
        return value

    def _new_unpacker(self, depth: int) -> msgpack.Unpacker:
        """The calling thread's Unpacker for small payloads at nesting level ``depth``. Its
        buffer size also bounds the lengths a header may claim (msgpack allocates a list of the
        claimed length up front), as it does for a payload of that size."""
        unpacker = msgpack.Unpacker(
            ext_hook=self._decode_ext,
            strict_map_key=False,
            raw=False,
            max_buffer_size=_POOLED_PAYLOAD,
        )
        self._threads.state.unpackers[depth] = unpacker
        return unpacker

    def _unpack_alone(self, data: bytes, depth: int) -> Any:
        """A large (or empty) payload, with an Unpacker of its own sized to it."""
        if not data:
            raise JournalError("a journal record holds an empty extension payload")
        unpacker = msgpack.Unpacker(
            ext_hook=self._decode_ext, strict_map_key=False, raw=False, max_buffer_size=len(data)
        )
        nesting = self._threads.state
        nesting.decoding = depth
        try:
            unpacker.feed(data)
            value = unpacker.unpack()
            if unpacker.tell() != len(data):
                raise JournalError("a journal record has extra bytes in an extension payload")
        finally:
            nesting.decoding = depth - 1
        return value

    def _decode_ext(self, code: int, data: bytes) -> Any:
        decoder = self._decoders.get(code)
        if decoder is None:
            raise JournalError(f"unknown msgpack extension type {code} in a journal record")
        return decoder(self, data)

    def _unpack_list(self, data: bytes, kind: str, length: int | None = None) -> list[Any]:
        """An extension payload that must be a list (of ``length`` items, if given)."""
        value = self._unpack(data)
        if type(value) is not list or (length is not None and len(value) != length):
            raise JournalError(f"a journal record holds a malformed {kind}")
        return value

    def _unpack_dict(self, data: bytes, kind: str) -> dict[Any, Any]:
        value = self._unpack(data)
        if type(value) is not dict:
            raise JournalError(f"a journal record holds a malformed {kind}")
        return value

    def _unpack_named(self, data: bytes, kind: str) -> tuple[str, Any]:
        """A ``[class path, data]`` payload."""
        record = self._unpack(data)
        if type(record) is not list or len(record) != 2 or type(record[0]) is not str:
            raise JournalError(f"a journal record holds a malformed {kind}")
        return record[0], record[1]

    def _decode_tuple(self, data: bytes) -> Any:
        items = self._unpack(data)
        if type(items) is not list:
            raise JournalError("a journal record holds a malformed tuple")
        return tuple(items)

    def _decode_set(self, data: bytes) -> Any:
        return set(self._unpack_list(data, "set"))

    def _decode_frozenset(self, data: bytes) -> Any:
        return frozenset(self._unpack_list(data, "frozenset"))

    def _decode_uuid(self, data: bytes) -> Any:
        return uuid.UUID(bytes=data)

    def _decode_datetime(self, data: bytes) -> Any:
        return dt.datetime.fromisoformat(data.decode())

    def _decode_date(self, data: bytes) -> Any:
        return dt.date.fromisoformat(data.decode())

    def _decode_time(self, data: bytes) -> Any:
        return dt.time.fromisoformat(data.decode())

    def _decode_zoned(self, data: bytes, parse: Callable[[str], Any]) -> Any:
        naive, fold, key = data.decode().split(" ", 2)
        # ZoneInfo(key) reads the zone's data file (or the tzdata package); it refuses keys
        # that are paths outside the zone directories.
        return parse(naive).replace(tzinfo=zoneinfo.ZoneInfo(key), fold=int(fold))

    def _decode_zoned_datetime(self, data: bytes) -> Any:
        return self._decode_zoned(data, dt.datetime.fromisoformat)

    def _decode_zoned_time(self, data: bytes) -> Any:
        return self._decode_zoned(data, dt.time.fromisoformat)

    def _decode_timedelta(self, data: bytes) -> Any:
        days, seconds, microseconds = _TIMEDELTA_STRUCT.unpack(data)
        return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)

    def _decode_decimal(self, data: bytes) -> Any:
        return decimal.Decimal(data.decode())

    def _decode_bigint(self, data: bytes) -> Any:
        return int(data.decode())

    def _decode_counter(self, data: bytes) -> Any:
        return Counter(self._unpack_dict(data, "Counter"))

    def _decode_ordered_dict(self, data: bytes) -> Any:
        return OrderedDict(self._unpack_dict(data, "OrderedDict"))

    def _decode_defaultdict(self, data: bytes) -> Any:
        path, items = self._unpack_list(data, "defaultdict", 2)
        if (path is not None and type(path) is not str) or type(items) is not dict:
            raise JournalError("a journal record holds a malformed defaultdict")
        if path is None:
            return defaultdict(None, items)
        factory = self._required_class(path, object, "defaultdict factory")
        return Unresolved(path, items) if factory is None else defaultdict(factory, items)

    def _decode_named_tuple(self, data: bytes) -> Any:
        path, values = self._unpack_named(data, "namedtuple")
        cls = self._required_class(path, tuple, "namedtuple")
        if cls is None:
            return Unresolved(path, values)
        fields = getattr(cls, "_fields", None)
        if type(values) is not list or not isinstance(fields, tuple) or len(fields) != len(values):
            raise JournalError(
                f"journal names {path} as a namedtuple of {_bounded_repr(values)}, which does "
                "not fit its fields"
            )
        return tuple.__new__(cls, values)  # no __new__ of the class: no user code runs

    def _decode_row(self, data: bytes) -> Any:
        names, values, kind = self._unpack_list(data, "row", 3)
        well_formed = type(values) is list and type(kind) is int
        if names is not None:
            well_formed = well_formed and (
                type(names) is list
                and len(names) == len(values)
                and all(type(name) is str for name in names)
            )
        if not well_formed:
            raise JournalError("a journal record holds a malformed row")
        cls = self._required_class(_ROW_CLASS, object, "row")
        if cls is None:
            return Unresolved(_ROW_CLASS, values)
        row = build_row(cls, names, values)
        try:
            row.set_row_kind(type(row.get_row_kind())(kind))
        except ValueError:
            raise JournalError(f"a journal record holds a row of unknown kind {kind}") from None
        return row

    def _decode_enum(self, data: bytes) -> Any:
        path, value = self._unpack_named(data, "enum")
        cls = self._required_class(path, enum.Enum, "enum")
        return Unresolved(path, value) if cls is None else cls(value)

    def _decode_model(self, data: bytes) -> Any:
        path, fields = self._unpack_named(data, "pydantic model")
        cls = self._required_class(path, BaseModel, "pydantic model")
        return Unresolved(path, fields) if cls is None else cls.model_construct(**fields)

    def _decode_dataclass(self, data: bytes) -> Any:
        path, fields = self._unpack_named(data, "dataclass")
        cls = self._required_class(path, object, "dataclass")
        if cls is None:
            return Unresolved(path, fields)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise JournalError(f"journal names {path} as a dataclass, but it is not one")
        instance = object.__new__(cls)
        for name, value in fields.items():
            object.__setattr__(instance, name, value)
        return instance

    def _decode_exception(self, data: bytes) -> Any:
        """An exception from ``[path, args, message]`` (journals written before attributes
        were recorded) or ``[path, args, message, attributes]``."""
        # An exception is rebuilt as well as it can be: a class its args or attributes name
        # that is not loaded (a module imported only by the durable function, which is not
        # called on replay) becomes a placeholder rather than failing the replay.
        nesting = self._threads.state
        nesting.in_exceptions += 1
        try:
            record = self._unpack(data)
        finally:
            nesting.in_exceptions -= 1
        if type(record) is not list or len(record) not in (3, 4):
            raise JournalError("a journal record holds a malformed exception")
        path, args, message = record[:3]
        attributes = record[3] if len(record) == 4 else {}
        if not (type(path) is str and type(args) is list and type(message) is str) or (
            type(attributes) is not dict
        ):
            raise JournalError("a journal record holds a malformed exception")
        attributes = {
            name: value for name, value in attributes.items() if _restorable_attribute(name)
        }
        cls = find_class(path)
        if cls is not None and issubclass(cls, BaseException):
            error = rebuild_exception(cls, args, attributes)
            if error is not None:
                return error
        return _replayed_error(path, message, attributes)

    def _decode_pickle(self, data: bytes) -> Any:
        if not self.allow_pickle and (self.lenient or self._threads.state.in_exceptions):
            return Unresolved("pickle", f"{len(data)} bytes")
        if not self.allow_pickle:
            raise JournalError(
                "the journal holds a pickled value; reading it would run code, so it is refused "
                "unless 'journal.allow-pickle: true' is set"
            )
        return pickle.loads(data)

    def _required_class(self, path: str, base: type, kind: str) -> Any:
        cls = find_class(path)
        if cls is None:
            if self.lenient or self._threads.state.in_exceptions:
                return None
            raise JournalError(
                f"the journal holds a {kind} of class {path.replace(':', '.')}, which is not "
                "loaded in this process; import its module before the job starts"
            )
        if not issubclass(cls, base):
            raise JournalError(f"journal names {path} as a {kind}, but it is not one")
        return cls

    _decoders: dict[int, Callable[[Codec, bytes], Any]] = {
        _TUPLE: _decode_tuple,
        _SET: _decode_set,
        _FROZENSET: _decode_frozenset,
        _UUID: _decode_uuid,
        _DATETIME: _decode_datetime,
        _DATE: _decode_date,
        _TIME: _decode_time,
        _DECIMAL: _decode_decimal,
        _ENUM: _decode_enum,
        _MODEL: _decode_model,
        _DATACLASS: _decode_dataclass,
        _EXCEPTION: _decode_exception,
        _PICKLE: _decode_pickle,
        _BIGINT: _decode_bigint,
        _COUNTER: _decode_counter,
        _ORDERED_DICT: _decode_ordered_dict,
        _DEFAULT_DICT: _decode_defaultdict,
        _NAMED_TUPLE: _decode_named_tuple,
        _TIMEDELTA: _decode_timedelta,
        _ZONED_DATETIME: _decode_zoned_datetime,
        _ZONED_TIME: _decode_zoned_time,
        _ROW: _decode_row,
    }

    # -- digests ----------------------------------------------------------------------------

    def digest(self, value: Any) -> bytes:
        """A 16-byte digest of ``value`` computed from its codec bytes, with dict entries in key
        order, so it is stable across processes and equal for equal values. Values the codec
        refuses are digested by their type (subclasses of built-in types also by their
        content), so passing a client object as an argument does not stop a durable call."""
        try:
            data = self.encode(_canonical(value))
        except Exception:  # refused, or a RecursionError of _canonical: digest a stand-in
            data = self.encode(_stand_in(value))
        return hashlib.blake2b(data, digest_size=16).digest()

    def call_digest(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The digest of a durable call's arguments (keyword arguments in name order)."""
        named = [[name, kwargs[name]] for name in sorted(kwargs)] if kwargs else []
        payload: Any = [list(args), named]
        try:
            if not _all_plain(args) or (kwargs and not _all_plain(kwargs.values())):
                payload = _canonical(payload)
            data = self.encode(payload)
        except Exception:  # refused, or a RecursionError of _canonical: stand-ins
            data = self.encode(
                [
                    [_stand_in_if_needed(self, arg) for arg in args],
                    [[name, _stand_in_if_needed(self, value)] for name, value in named],
                ]
            )
        return hashlib.blake2b(data, digest_size=16).digest()


# -- exceptions -------------------------------------------------------------------------------


def _pack_or_repr(pack: Callable[[Any], bytes], value: Any) -> bytes:
    try:
        return pack(value)
    except Exception:  # keep the exception, lose a value we cannot carry
        return _pack_text(_bounded_repr(value))


def _restorable_attribute(name: object) -> bool:
    """Whether an attribute is recorded and restored: any name but dunders (``__class__``,
    ``__dict__``... must not be set from a journal), except ``__notes__`` (``add_note``)."""
    if type(name) is not str:
        return False
    return not (name.startswith("__") and name.endswith("__")) or name == "__notes__"


def _exception_record(error: BaseException) -> tuple[str, tuple[Any, ...], str, dict[str, Any]]:
    """An exception's class path, args, message and attributes (its ``__dict__`` and the C-level
    fields of built-in bases). Never raises: a failing ``__str__`` or ``args`` is replaced by a
    stand-in, since the exception itself is what a durable call's record must hold."""
    error_type = type(error)
    path = f"{getattr(error_type, '__module__', '?')}:{error_type.__qualname__}"
    try:
        args = tuple(error.args)
    except Exception:
        args = ()
    attributes: dict[str, Any] = {}
    try:
        for name, value in list(vars(error).items()):
            if _restorable_attribute(name):
                attributes[name] = value
    except Exception:  # no __dict__, or one that cannot be read: record no attributes
        attributes = {}
    for base, names in _BUILTIN_FIELDS:
        if isinstance(error, base):
            for name in names:
                try:
                    value = getattr(error, name, None)
                except Exception:  # a subclass's property that fails: not recorded
                    continue
                if value is not None:
                    attributes[name] = value
    return path, args, _safe_str(error), attributes


def _builtin_init(cls: type[BaseException]) -> Callable[..., None] | None:
    """``__init__`` of the nearest built-in base of ``cls``: C code that only sets the fields
    of built-in exceptions from args (errno of OSError, the fields of UnicodeDecodeError...),
    never a user's ``__init__``."""
    for base in cls.__mro__:
        if getattr(base, "__module__", None) == "builtins" and issubclass(base, BaseException):
            init = base.__init__
            # A class may claim to be in builtins: only C code counts.
            return init if isinstance(init, types.WrapperDescriptorType) else None
    return None


def rebuild_exception(
    cls: type[BaseException], args: list[Any], attributes: dict[str, Any]
) -> BaseException | None:
    """An instance of ``cls`` with ``args`` and ``attributes``, made without running its
    ``__init__``; None if ``cls`` cannot be made that way."""
    try:
        error = cls.__new__(cls, *args)
        error.args = tuple(args)
    except Exception:
        return None
    init = _builtin_init(cls)
    if init is not None:
        # Args the built-in __init__ does not take: keep what __new__ made.
        with contextlib.suppress(Exception):
            init(error, *args)
    for name, value in attributes.items():
        # A read-only attribute (a property) is derived from others: skip it.
        with contextlib.suppress(Exception):
            setattr(error, name, value)
    return error


def _replayed_error(path: str, message: str, attributes: dict[str, Any]) -> ReplayedError:
    """A ``ReplayedError`` for an exception whose class cannot be rebuilt, carrying its
    attributes in ``attributes`` and, unless they clash with its own, as attributes."""
    error = ReplayedError(path.replace(":", "."), message, attributes)
    for name, value in attributes.items():
        if name in _REPLAYED_OWN or hasattr(ReplayedError, name):
            continue
        with contextlib.suppress(Exception):
            setattr(error, name, value)
    return error


# -- digests ----------------------------------------------------------------------------------


# Copies of a built-in type's content for its subclasses, made by the base type's own C code
# (not by methods the subclass may override).
_PLAIN_COPIES: dict[type, Callable[[Any], Any]] = {
    dict: dict.copy,
    list: list.copy,
    tuple: lambda value: tuple.__getitem__(value, slice(None)),
    set: set.copy,
    frozenset: frozenset.copy,
    str: str.__str__,
    bytes: bytes.__bytes__,
    int: int.__int__,
    float: float.__float__,
}


def _all_plain(values: Any) -> bool:
    """Whether every value is a scalar (nothing for ``_canonical`` to reorder)."""
    for value in values:  # noqa: SIM110 - a loop beats all() over a generator here
        if type(value) not in SCALAR_TYPES:
            return False
    return True


def _sorted_items(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    try:
        items.sort(key=lambda entry: entry[0])
    except TypeError:
        items.sort(key=lambda entry: repr(entry[0]))
    return items


def _canonical(value: Any) -> Any:
    """``value`` with every dict's entries in key order (for digests only: stored values keep
    their order), and each subclass of a built-in type the codec refuses replaced by its type
    and content, so that it is digested by what it holds, not only by its type."""
    value_type = type(value)
    if value_type is dict:
        return dict(_sorted_items([(key, _canonical(item)) for key, item in value.items()]))
    if value_type is list:
        return [_canonical(item) for item in value]
    if value_type is tuple:
        return tuple(_canonical(item) for item in value)
    if value_type in SCALAR_TYPES:
        return value
    if value_type is Counter or value_type is defaultdict:  # equal whatever their order
        items = _sorted_items([(key, _canonical(item)) for key, item in value.items()])
        if value_type is Counter:
            return Counter(dict(items))
        return defaultdict(value.default_factory, items)
    if value_type is OrderedDict:  # order matters to OrderedDict equality: kept
        return OrderedDict((key, _canonical(item)) for key, item in value.items())
    if isinstance(value, tuple) and _is_namedtuple(value_type):
        return tuple.__new__(value_type, [_canonical(item) for item in value])
    base = _refused_base(value_type)
    if base is not None:
        return ["<not journaled>", _type_name(value_type), _canonical(_PLAIN_COPIES[base](value))]
    return value


def _stand_in(value: Any) -> list[str]:
    return ["<not journaled>", _type_name(type(value))]


def _stand_in_if_needed(codec: Codec, value: Any) -> Any:
    """``value`` in canonical form if it encodes, else its stand-in."""
    try:
        canonical = _canonical(value)
        codec.encode(canonical)
    except Exception:
        return _stand_in(value)
    return canonical
