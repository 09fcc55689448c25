"""The journal's msgpack codec: values in and out of journal records, and argument digests.

Native msgpack carries None, bool, int, float, str, bytes, lists and dicts. Extension types carry
tuples, sets, frozensets, UUIDs, datetimes, dates, times, Decimals, enums, pydantic models,
dataclasses and exceptions. Anything else is refused with an error naming its type and where it
was found, unless pickling is explicitly allowed.

Decoding never runs code the journal chooses: classes are looked up among modules the program
has already imported (never imported on the journal's say-so), and rebuilt without calling
``__init__``. An exception class that cannot be found comes back as ``ReplayedError`` carrying its
type name and message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import pickle
import sys
import uuid
from collections.abc import Callable
from typing import Any

import msgpack
from pydantic import BaseModel

from ..errors import JournalError, ReplayedError
from .packer import ThreadPacker

__all__ = ["ALWAYS_ENCODABLE", "Codec", "JournalEncodeError"]

ALWAYS_ENCODABLE = frozenset({type(None), bool, int, float, str, bytes})
"""Exact types whose values every codec encodes, whatever they hold (an int beyond 64 bits is
widened)."""

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

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


class JournalEncodeError(JournalError, TypeError):
    """A value cannot be written to the journal. Names the type and where it was found."""


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _find_class(path: str) -> type | None:
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


class Unresolved:
    """A journaled value whose class is not loaded here (shown by tools, never replayed)."""

    def __init__(self, path: str, data: Any) -> None:
        self.path = path.replace(":", ".")
        self.data = data

    def __repr__(self) -> str:
        return f"<{self.path} {self.data!r}>"


class Codec:
    """Encodes journal values to msgpack bytes and back. Stateless apart from its settings."""

    def __init__(self, *, allow_pickle: bool = False, lenient: bool = False) -> None:
        """``lenient``: decode what cannot be rebuilt (classes not loaded, pickles) as an
        ``Unresolved`` placeholder instead of failing; for tools that only display records."""
        self.allow_pickle = allow_pickle
        self.lenient = lenient
        self._packer_default = self._encode_default
        # Values nested in extension types use packb instead (the thread's Packer is busy).
        self._packer = ThreadPacker(
            default=self._packer_default, use_bin_type=True, strict_types=True
        )

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, value: Any, where: str = "value", *where_args: Any) -> bytes:
        """msgpack bytes for ``value``. ``where`` (a format string, filled with ``where_args``
        only if needed) names the value in errors, e.g. ``"result of slot {}"``."""
        try:
            return self._packer.pack(value)
        except OverflowError:
            return self._pack(_widen_ints(value))
        except JournalEncodeError as error:
            raise JournalEncodeError(f"{where.format(*where_args)}: {error}") from None
        except (TypeError, ValueError) as error:
            raise JournalEncodeError(
                f"{where.format(*where_args)} cannot be journaled: {error}"
            ) from None

    def _pack(self, value: Any) -> bytes:
        try:
            return msgpack.packb(
                value, default=self._packer_default, use_bin_type=True, strict_types=True
            )
        except OverflowError:  # an int beyond 64 bits somewhere inside
            return msgpack.packb(
                _widen_ints(value),
                default=self._packer_default,
                use_bin_type=True,
                strict_types=True,
            )

    def _encode_default(self, value: Any) -> Any:
        value_type = type(value)
        if value_type is tuple:
            return msgpack.ExtType(_TUPLE, self._pack(list(value)))
        if value_type is set or value_type is frozenset:
            code = _SET if value_type is set else _FROZENSET
            return msgpack.ExtType(code, self._pack(self._sorted(value)))
        if value_type is uuid.UUID:
            return msgpack.ExtType(_UUID, value.bytes)
        if value_type is dt.datetime:
            return msgpack.ExtType(_DATETIME, value.isoformat().encode())
        if value_type is dt.date:
            return msgpack.ExtType(_DATE, value.isoformat().encode())
        if value_type is dt.time:
            return msgpack.ExtType(_TIME, value.isoformat().encode())
        if value_type is decimal.Decimal:
            return msgpack.ExtType(_DECIMAL, str(value).encode())
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
            return msgpack.ExtType(_EXCEPTION, self._pack(self._exception_record(value)))
        if isinstance(value, dict):  # dict subclasses (defaultdict, OrderedDict): as a dict
            return dict(value)
        if isinstance(value, list):
            return list(value)
        if isinstance(value, int) and not isinstance(value, bool):  # int subclasses
            return int(value)
        if isinstance(value, str):
            return str(value)
        if self.allow_pickle:
            return msgpack.ExtType(_PICKLE, pickle.dumps(value))
        raise JournalEncodeError(
            f"a {value_type.__module__}.{value_type.__qualname__} cannot be journaled; return "
            "plain data (None, bool, int, float, str, bytes, list, dict, tuple, set, UUID, "
            "datetime, Decimal, an enum, a pydantic model or a dataclass), or set "
            "'journal.allow-pickle: true' to pickle such objects"
        )

    def _sorted(self, values: set[Any] | frozenset[Any]) -> list[Any]:
        """A set's elements in the order of their encodings, so that equal sets encode
        identically whatever their hash order (natural ordering would not do: sets of sets
        compare by inclusion, which is only a partial order)."""
        return sorted(values, key=self._pack)

    def _exception_record(self, error: BaseException) -> list[Any]:
        args = []
        for arg in error.args:
            try:
                self._pack(arg)
                args.append(arg)
            except Exception:  # keep the exception, lose an argument we cannot carry
                args.append(repr(arg))
        return [_class_path(type(error)), args, str(error)]

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, data: bytes, where: str = "journal record", *where_args: Any) -> Any:
        """The value encoded in ``data``; ``where`` (filled with ``where_args`` only when
        needed) names it in errors."""
        try:
            return msgpack.unpackb(data, ext_hook=self._decode_ext, strict_map_key=False, raw=False)
        except JournalError:
            raise
        except Exception as error:
            raise JournalError(
                f"{where.format(*where_args)} cannot be decoded: {type(error).__name__}: {error}"
            ) from error

    def _unpack(self, data: bytes) -> Any:
        return msgpack.unpackb(data, ext_hook=self._decode_ext, strict_map_key=False, raw=False)

    def _decode_ext(self, code: int, data: bytes) -> Any:
        decoder = self._decoders.get(code)
        if decoder is None:
            raise JournalError(f"unknown msgpack extension type {code} in a journal record")
        return decoder(self, data)

    def _decode_tuple(self, data: bytes) -> Any:
        return tuple(self._unpack(data))

    def _decode_set(self, data: bytes) -> Any:
        return set(self._unpack(data))

    def _decode_frozenset(self, data: bytes) -> Any:
        return frozenset(self._unpack(data))

    def _decode_uuid(self, data: bytes) -> Any:
        return uuid.UUID(bytes=data)

    def _decode_datetime(self, data: bytes) -> Any:
        return dt.datetime.fromisoformat(data.decode())

    def _decode_date(self, data: bytes) -> Any:
        return dt.date.fromisoformat(data.decode())

    def _decode_time(self, data: bytes) -> Any:
        return dt.time.fromisoformat(data.decode())

    def _decode_decimal(self, data: bytes) -> Any:
        return decimal.Decimal(data.decode())

    def _decode_bigint(self, data: bytes) -> Any:
        return int(data.decode())

    def _decode_enum(self, data: bytes) -> Any:
        path, value = self._unpack(data)
        cls = self._required_class(path, enum.Enum, "enum")
        return Unresolved(path, value) if cls is None else cls(value)

    def _decode_model(self, data: bytes) -> Any:
        path, fields = self._unpack(data)
        cls = self._required_class(path, BaseModel, "pydantic model")
        return Unresolved(path, fields) if cls is None else cls.model_construct(**fields)

    def _decode_dataclass(self, data: bytes) -> Any:
        path, fields = self._unpack(data)
        cls = self._required_class(path, object, "dataclass")
        if cls is None:
            return Unresolved(path, fields)
        if not dataclasses.is_dataclass(cls):
            raise JournalError(f"journal names {path} as a dataclass, but it is not one")
        instance = object.__new__(cls)
        for name, value in fields.items():
            object.__setattr__(instance, name, value)
        return instance

    def _decode_exception(self, data: bytes) -> Any:
        path, args, message = self._unpack(data)
        cls = _find_class(path)
        if cls is None or not issubclass(cls, BaseException):
            return ReplayedError(path.replace(":", "."), message)
        try:
            error = cls.__new__(cls, *args)
            error.args = tuple(args)
        except Exception:
            return ReplayedError(path.replace(":", "."), message)
        return error

    def _decode_pickle(self, data: bytes) -> Any:
        if not self.allow_pickle and self.lenient:
            return Unresolved("pickle", f"{len(data)} bytes")
        if not self.allow_pickle:
            raise JournalError(
                "the journal holds a pickled value; reading it would run code, so it is refused "
                "unless 'journal.allow-pickle: true' is set"
            )
        return pickle.loads(data)

    def _required_class(self, path: str, base: type, kind: str) -> Any:
        cls = _find_class(path)
        if cls is None:
            if self.lenient:
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
    }

    # -- digests ----------------------------------------------------------------------------

    def digest(self, value: Any) -> bytes:
        """A 16-byte digest of ``value`` computed from its codec bytes, with dict entries in key
        order, so it is stable across processes and equal for equal values. Values the codec
        refuses are digested by their type, so passing a client object as an argument does not
        stop a durable call."""
        try:
            data = self.encode(_canonical(value))
        except JournalEncodeError:
            data = self.encode(_stand_in(value))
        return hashlib.blake2b(data, digest_size=16).digest()

    def call_digest(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The digest of a durable call's arguments (keyword arguments in name order)."""
        named = [[name, kwargs[name]] for name in sorted(kwargs)] if kwargs else []
        payload = [list(args), named]
        if not _all_plain(args) or (kwargs and not _all_plain(kwargs.values())):
            payload = _canonical(payload)
        try:
            data = self.encode(payload)
        except JournalEncodeError:
            data = self.encode(
                [
                    [_stand_in_if_needed(self, arg) for arg in args],
                    [[name, _stand_in_if_needed(self, value)] for name, value in named],
                ]
            )
        return hashlib.blake2b(data, digest_size=16).digest()


_PLAIN_TYPES = frozenset({type(None), bool, int, float, str, bytes})


def _all_plain(values: Any) -> bool:
    """Whether every value is a scalar (nothing for ``_canonical`` to reorder)."""
    for value in values:  # noqa: SIM110 - a loop beats all() over a generator here
        if type(value) not in _PLAIN_TYPES:
            return False
    return True


def _canonical(value: Any) -> Any:
    """``value`` with every dict's entries in key order (for digests only: stored values keep
    their order)."""
    value_type = type(value)
    if value_type is dict:
        items = [(key, _canonical(item)) for key, item in value.items()]
        try:
            items.sort(key=lambda entry: entry[0])
        except TypeError:
            items.sort(key=lambda entry: repr(entry[0]))
        return dict(items)
    if value_type is list:
        return [_canonical(item) for item in value]
    if value_type is tuple:
        return tuple(_canonical(item) for item in value)
    return value


def _stand_in(value: Any) -> list[str]:
    value_type = type(value)
    return ["<not journaled>", f"{value_type.__module__}.{value_type.__qualname__}"]


def _stand_in_if_needed(codec: Codec, value: Any) -> Any:
    try:
        codec.encode(value)
    except JournalEncodeError:
        return _stand_in(value)
    return value


def _widen_ints(value: Any) -> Any:
    """``value`` with ints outside msgpack's 64-bit range as extension values."""
    value_type = type(value)
    if value_type is int and not (_INT64_MIN <= value <= _UINT64_MAX):
        return msgpack.ExtType(_BIGINT, str(value).encode())
    if value_type is list or value_type is tuple:
        return value_type(_widen_ints(item) for item in value)
    if value_type is dict:
        return {_widen_ints(key): _widen_ints(item) for key, item in value.items()}
    return value
