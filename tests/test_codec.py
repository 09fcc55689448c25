"""The journal codec (values in and out of msgpack, digests) and the versioned journal records."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
import zoneinfo
from collections import Counter, OrderedDict, defaultdict, namedtuple
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
import pydantic
import pytest

import flink_agents_async
from flink_agents_async.errors import JournalError, ReplayedError
from flink_agents_async.journal.codec import MAX_NESTING, Codec, JournalEncodeError
from flink_agents_async.journal.packer import ThreadPacker
from flink_agents_async.journal.records import (
    COMPLETED,
    FORMAT_VERSION,
    INPUT_COMMITTED,
    PENDING,
    CallRecord,
    CommitRecord,
    FailureRecord,
    InputRecord,
    OutputsRecord,
    SnapshotRecord,
)

REPO_ROOT = Path(flink_agents_async.__file__).resolve().parents[1]


# -- values defined at module level, so that the codec can find their classes -----------------


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(pydantic.BaseModel):
    street: str
    number: int


class Customer(pydantic.BaseModel):
    id: uuid.UUID
    name: str
    address: Address
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: float
    label: str = "p"


@dataclasses.dataclass(frozen=True)
class FrozenPair:
    left: tuple[int, ...]
    right: frozenset[str]


@dataclasses.dataclass
class Holder:
    value: Any


class QuotaExceeded(Exception):
    """A custom exception of the test module."""


class Opaque:
    """An arbitrary object the codec does not know."""

    def __init__(self, value: int = 1) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Opaque and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


class Wrapper(pydantic.BaseModel):
    inner: Any


Pair = namedtuple("Pair", "left right")


class Span(NamedTuple):
    start: int
    end: int = 0


class Guarded(namedtuple("Guarded", "x y")):
    """A namedtuple whose ``__new__`` counts its calls (decoding must not make any)."""

    __slots__ = ()
    created = 0

    def __new__(cls, x: int, y: int) -> Guarded:
        Guarded.created += 1
        return super().__new__(cls, x, y)


@dataclasses.dataclass
class Tally:
    count: int = 0


class PaymentError(Exception):
    """A user exception whose ``__init__`` takes other arguments than its args."""

    init_calls = 0

    def __init__(self, code: int) -> None:
        PaymentError.init_calls += 1
        super().__init__("payment failed")
        self.code = code


class ShowsCode(Exception):
    """An exception whose ``str()`` reads an attribute, not its args."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def __str__(self) -> str:
        return f"failed with code {self.code}"


class Unprintable(Exception):
    """An exception whose ``__str__`` reads an attribute it never set."""

    def __str__(self) -> str:
        return f"failed with {self.detail}"  # type: ignore[attr-defined]


class ConfigMissing(FileNotFoundError):
    """An OSError subclass whose ``__init__`` fills errno, strerror and filename itself."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ENOENT, "config missing", path)


class BadArgs(Exception):
    @property
    def args(self) -> Any:  # type: ignore[override]
        raise RuntimeError("no args here")


class Verbose:
    def __repr__(self) -> str:
        return "v" * 5000


@dataclasses.dataclass
class Faulty:
    """A dataclass whose field raises ``failure`` when read."""

    name: str

    def __getattribute__(self, attribute: str) -> Any:
        if attribute == "name":
            raise object.__getattribute__(self, "failure")
        return object.__getattribute__(self, attribute)


def faulty(failure: Exception) -> Faulty:
    value = Faulty("x")
    object.__setattr__(value, "failure", failure)
    return value


class FixedTz(dt.tzinfo):
    """A tzinfo of neither kind the codec carries."""

    def utcoffset(self, when: Any) -> dt.timedelta:
        return dt.timedelta(hours=1)

    def dst(self, when: Any) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, when: Any) -> str:
        return "FIX"


class MyDict(dict):  # type: ignore[type-arg]
    pass


class MyList(list):  # type: ignore[type-arg]
    pass


class MyTuple(tuple):  # type: ignore[type-arg]
    __slots__ = ()


class MySet(set):  # type: ignore[type-arg]
    pass


class MyFrozenSet(frozenset):  # type: ignore[type-arg]
    pass


class MyStr(str):
    __slots__ = ()


class MyBytes(bytes):
    __slots__ = ()


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyCounter(Counter):  # type: ignore[type-arg]
    pass


PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def round_trip(value: Any, codec: Codec | None = None) -> Any:
    codec = codec or Codec()
    return codec.decode(codec.encode(value))


def assert_same(value: Any, decoded: Any) -> None:
    """Equal, and of the same type all the way down (True is not 1, a tuple is not a list)."""
    assert decoded == value
    assert type(decoded) is type(value)
    if isinstance(value, (list, tuple)):
        for item, decoded_item in zip(value, decoded, strict=True):
            assert_same(item, decoded_item)
    elif isinstance(value, dict):
        assert list(decoded) == list(value)
        for key in value:
            decoded_key = next(k for k in decoded if k == key)
            assert type(decoded_key) is type(key)
            assert_same(value[key], decoded[key])
    elif isinstance(value, (set, frozenset)):
        assert sorted(map(repr, decoded)) == sorted(map(repr, value))


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        42,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        1.5,
        -0.0,
        float("inf"),
        "",
        "héllo ✓",
        b"",
        b"\x00\xff bytes",
    ],
    ids=repr,
)
def test_native_scalars_round_trip(value: Any) -> None:
    assert_same(value, round_trip(value))


@pytest.mark.parametrize("value", [2**64, 2**200, -(2**63) - 1, -(2**100)], ids=str)
def test_ints_beyond_64_bits_round_trip(value: int) -> None:
    assert_same(value, round_trip(value))


def test_big_ints_nested_in_lists_dicts_and_tuples_round_trip() -> None:
    value = [1, 2**70, {"big": -(2**90), "small": 3}, (2**65, [2**66])]
    assert_same(value, round_trip(value))


@pytest.mark.parametrize(
    "value",
    [
        {1, 2**70},
        frozenset({-(2**80)}),
        Point(2**70, 1.0),
        Address(street="s", number=2**70),
        {2**70: "a big key"},
    ],
    ids=["in a set", "in a frozenset", "in a dataclass", "in a pydantic model", "as a dict key"],
)
def test_big_ints_inside_extension_values_round_trip(value: Any) -> None:
    """Ints beyond 64 bits are supported; so they must be wherever values may be."""
    assert_same(value, round_trip(value))


def test_codec_still_works_after_a_big_int_and_after_a_refusal() -> None:
    codec = Codec()
    assert codec.decode(codec.encode(2**70)) == 2**70
    with pytest.raises(JournalEncodeError):
        codec.encode([1, 2, Opaque()])
    assert codec.decode(codec.encode([1, 2, 3])) == [1, 2, 3]
    assert codec.decode(codec.encode("after")) == "after"


def test_nested_lists_and_dicts_round_trip() -> None:
    value = {
        "list": [1, [2, [3, [4, None]]], {"deep": [True, b"x"]}],
        "dict": {"a": {"b": {"c": 1.25}}},
        "empty": [[], {}],
    }
    assert_same(value, round_trip(value))


def test_dict_with_non_string_keys_round_trips() -> None:
    value = {1: "one", -2: "minus two", 2**40: [1], 2.5: "float", None: "none", b"k": 1}
    decoded = round_trip(value)
    assert decoded == value
    assert [type(key) for key in decoded] == [type(key) for key in value]


def test_tuples_round_trip_as_tuples() -> None:
    value = (1, "a", (2, (3,)), [4, (5,)], ())
    assert_same(value, round_trip(value))
    decoded = round_trip({"t": (1, 2)})
    assert type(decoded["t"]) is tuple


def test_dict_with_tuple_keys_round_trips() -> None:
    value = {(1, 2): "pair", ("a",): "single"}
    decoded = round_trip(value)
    assert decoded == value
    assert all(type(key) is tuple for key in decoded)


@pytest.mark.parametrize(
    "value",
    [
        set(),
        {1, 2, 3},
        {"b", "a", "c"},
        frozenset(),
        frozenset({1.5, 2.5}),
        {1, "a", 2.5, (1, 2), None, b"x"},
        frozenset({"a", 1, (2, "b")}),
        {frozenset({1, 2}), frozenset({"x"})},
    ],
    ids=repr,
)
def test_sets_and_frozensets_round_trip(value: Any) -> None:
    decoded = round_trip(value)
    assert decoded == value
    assert type(decoded) is type(value)
    assert {type(item) for item in decoded} == {type(item) for item in value}


def test_set_inside_a_list_stays_a_set() -> None:
    value = [{1, 2}, frozenset({3}), ({4},)]
    decoded = round_trip(value)
    assert decoded == value
    assert [type(item) for item in decoded] == [set, frozenset, tuple]
    assert type(decoded[2][0]) is set


def test_uuid_round_trips() -> None:
    for value in (uuid.uuid4(), uuid.UUID(int=0), uuid.uuid5(uuid.NAMESPACE_DNS, "example.org")):
        assert_same(value, round_trip(value))


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        dt.datetime(
            2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
        ),
        dt.datetime(1999, 12, 31, tzinfo=dt.timezone(dt.timedelta(hours=-8))),
        dt.date(2024, 2, 29),
        dt.date(1, 1, 1),
        dt.time(0, 0),
        dt.time(23, 59, 59, 999999),
        dt.time(12, 30, tzinfo=dt.UTC),
    ],
    ids=repr,
)
def test_datetimes_dates_and_times_round_trip(value: Any) -> None:
    decoded = round_trip(value)
    assert_same(value, decoded)
    assert decoded.isoformat() == value.isoformat()
    if isinstance(value, (dt.datetime, dt.time)):
        assert decoded.utcoffset() == value.utcoffset()
        assert (decoded.tzinfo is None) == (value.tzinfo is None)


def test_naive_datetime_stays_naive_and_aware_stays_aware() -> None:
    naive = round_trip(dt.datetime(2024, 5, 6, 7, 8, 9))
    aware = round_trip(dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC))
    assert naive.tzinfo is None
    assert aware.utcoffset() == dt.timedelta(0)


def test_date_does_not_come_back_as_a_datetime() -> None:
    assert type(round_trip(dt.date(2024, 1, 1))) is dt.date
    assert type(round_trip(dt.datetime(2024, 1, 1))) is dt.datetime


@pytest.mark.parametrize(
    "value", ["0", "1.10", "-0.000", "3.14159265358979323846264338327950288", "1E+30", "-Infinity"]
)
def test_decimals_round_trip_exactly(value: str) -> None:
    number = decimal.Decimal(value)
    decoded = round_trip(number)
    assert type(decoded) is decimal.Decimal
    assert str(decoded) == str(number)  # precision and exponent kept, not just equality
    assert decoded.as_tuple() == number.as_tuple()


def test_decimal_nan_round_trips_as_nan() -> None:
    decoded = round_trip(decimal.Decimal("NaN"))
    assert type(decoded) is decimal.Decimal and decoded.is_nan()


def test_enums_round_trip_to_the_same_member() -> None:
    assert round_trip(Color.GREEN) is Color.GREEN
    assert round_trip(Priority.HIGH) is Priority.HIGH
    decoded = round_trip({"color": Color.RED, "priorities": [Priority.LOW, Priority.HIGH]})
    assert decoded["color"] is Color.RED
    assert decoded["priorities"][0] is Priority.LOW and decoded["priorities"][1] is Priority.HIGH


def test_pydantic_model_with_nested_model_and_uuid_round_trips() -> None:
    customer = Customer(
        id=uuid.uuid4(),
        name="Ada",
        address=Address(street="Main Street", number=7),
        tags=["vip", "early"],
    )
    decoded = round_trip(customer)
    assert type(decoded) is Customer
    assert decoded == customer
    assert type(decoded.id) is uuid.UUID and decoded.id == customer.id
    assert type(decoded.address) is Address and decoded.address.number == 7
    assert decoded.model_dump() == customer.model_dump()


def test_pydantic_models_in_containers_round_trip() -> None:
    value = [Address(street="a", number=1), {"home": Address(street="b", number=2)}]
    decoded = round_trip(value)
    assert decoded == value
    assert type(decoded[0]) is Address and type(decoded[1]["home"]) is Address


def test_dataclasses_round_trip() -> None:
    point = Point(1, 2.5, "origin-ish")
    decoded = round_trip(point)
    assert type(decoded) is Point and decoded == point

    frozen = FrozenPair((1, 2, 3), frozenset({"a", "b"}))
    decoded_frozen = round_trip(frozen)
    assert type(decoded_frozen) is FrozenPair and decoded_frozen == frozen
    assert type(decoded_frozen.left) is tuple and type(decoded_frozen.right) is frozenset
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded_frozen.left = ()  # type: ignore[misc]
    assert hash(decoded_frozen) == hash(frozen)


def test_dataclass_holding_other_codec_values_round_trips() -> None:
    value = Holder(
        {"when": dt.date(2020, 1, 1), "amount": decimal.Decimal("9.99"), "p": Point(1, 2)}
    )
    decoded = round_trip(value)
    assert decoded == value
    assert type(decoded.value["p"]) is Point


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad value", 42),
        ValueError(),
        KeyError("missing"),
        QuotaExceeded("quota of 10 exceeded", {"limit": 10}),
        RuntimeError("with a tuple", (1, 2)),
    ],
    ids=repr,
)
def test_exceptions_round_trip_with_type_args_and_message(error: BaseException) -> None:
    decoded = round_trip(error)
    assert type(decoded) is type(error)
    assert decoded.args == error.args
    assert str(decoded) == str(error)


def test_exception_with_an_argument_the_codec_cannot_carry_keeps_its_type_and_message() -> None:
    error = ValueError(Opaque(3))
    decoded = round_trip(error)
    assert type(decoded) is ValueError
    assert len(decoded.args) == 1 and "Opaque" in str(decoded)


def test_exception_class_that_cannot_be_found_comes_back_as_replayed_error() -> None:
    gone = type("Gone", (Exception,), {"__module__": "no_such_module"})
    decoded = round_trip(gone("it went away"))
    assert type(decoded) is ReplayedError
    assert decoded.type_name == "no_such_module.Gone"
    assert decoded.message == "it went away"
    assert "Gone" in str(decoded) and "it went away" in str(decoded)
    assert "no_such_module" not in sys.modules  # decoding never imports


def test_name_of_a_non_exception_class_in_an_exception_record_comes_back_as_replayed_error() -> (
    None
):
    # A journal naming a class that exists but is not an exception must not instantiate it.
    data = msgpack.packb(
        msgpack.ExtType(12, msgpack.packb([f"{__name__}:Opaque", [5], "msg"], use_bin_type=True)),
        use_bin_type=True,
    )
    decoded = Codec().decode(data)
    assert type(decoded) is ReplayedError
    assert decoded.message == "msg"


def test_pydantic_model_whose_module_is_not_loaded_is_refused_by_name() -> None:
    ghost = pydantic.create_model("Ghost", value=(int, ...), __module__="ghost_models")
    data = Codec().encode(ghost(value=5))
    with pytest.raises(JournalError, match=r"ghost_models\.Ghost"):
        Codec().decode(data)
    assert "ghost_models" not in sys.modules

    placeholder = Codec(lenient=True).decode(data)
    assert "ghost_models.Ghost" in repr(placeholder)
    assert "5" in repr(placeholder)


def test_enum_and_dataclass_whose_class_is_not_loaded_are_refused_by_name() -> None:
    ghost_enum = enum.Enum("GhostEnum", {"A": 1}, module="ghost_enums")
    ghost_dataclass = dataclasses.make_dataclass("GhostData", [("x", int)])
    ghost_dataclass.__module__ = "ghost_dataclasses"
    for value, name in [(ghost_enum.A, "ghost_enums.GhostEnum"), (ghost_dataclass(1), "GhostData")]:
        data = Codec().encode(value)
        with pytest.raises(JournalError, match=name):
            Codec().decode(data)
        assert name in repr(Codec(lenient=True).decode(data))


# -- refusal and pickling ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        (lambda: None, "function"),
        (Opaque(), "Opaque"),
        ([1, {"nested": Opaque()}], "Opaque"),
        ((1, Opaque()), "Opaque"),
        (Holder(Opaque()), "Opaque"),
        (range(3), "range"),
    ],
    ids=[
        "object",
        "lambda",
        "custom instance",
        "nested in dict",
        "in a tuple",
        "in dataclass",
        "range",
    ],
)
def test_arbitrary_objects_are_refused_naming_type_and_where(value: Any, type_name: str) -> None:
    with pytest.raises(JournalEncodeError) as caught:
        Codec().encode(value, "the result of slot {}", 3)
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, JournalError)
    message = str(caught.value)
    assert type_name in message
    assert "slot 3" in message
    assert "allow-pickle" in message


def test_refusal_names_the_fully_qualified_type() -> None:
    with pytest.raises(JournalEncodeError) as caught:
        Codec().encode(Opaque(), "argument {} of {}", 0, "fetch")
    assert f"{Opaque.__module__}.{Opaque.__qualname__}" in str(caught.value)
    assert "argument 0 of fetch" in str(caught.value)


def test_allow_pickle_round_trips_arbitrary_objects() -> None:
    codec = Codec(allow_pickle=True)
    value = {"thing": Opaque(7), "list": [Opaque(8)]}
    decoded = codec.decode(codec.encode(value))
    assert decoded == value
    assert type(decoded["thing"]) is Opaque and decoded["thing"].value == 7


def test_pickled_value_is_refused_by_a_default_codec() -> None:
    data = Codec(allow_pickle=True).encode([1, Opaque(7)])
    with pytest.raises(JournalError, match="allow-pickle"):
        Codec().decode(data)
    placeholder = Codec(lenient=True).decode(data)
    assert placeholder[0] == 1 and "pickle" in repr(placeholder[1])


def test_unknown_extension_type_and_garbage_are_journal_errors() -> None:
    with pytest.raises(JournalError, match="extension type 99"):
        Codec().decode(msgpack.packb(msgpack.ExtType(99, b"x")))
    for garbage in (b"\xc1", b"\x92\x01", b"\xd9\x05ab"):
        with pytest.raises(JournalError):
            Codec().decode(garbage)


# -- digests ----------------------------------------------------------------------------------


def test_digest_is_equal_for_equal_values() -> None:
    codec = Codec()
    assert codec.digest([1, "a", (2, 3)]) == Codec().digest([1, "a", (2, 3)])
    assert len(codec.digest(None)) == 16
    assert codec.digest(
        Customer(id=uuid.UUID(int=1), name="n", address=Address(street="s", number=1))
    ) == (
        codec.digest(Customer(id=uuid.UUID(int=1), name="n", address=Address(street="s", number=1)))
    )


def test_digest_of_sets_does_not_depend_on_insertion_order() -> None:
    codec = Codec()
    forwards = set()
    backwards = set()
    items = [f"item-{i}" for i in range(50)]
    for item in items:
        forwards.add(item)
    for item in reversed(items):
        backwards.add(item)
    assert codec.digest(forwards) == codec.digest(backwards)
    assert codec.digest(frozenset([3, 1, 2])) == codec.digest(frozenset([2, 3, 1]))
    mixed_one = {1, "a", 2.5, (1, "x"), None}
    mixed_two = {None, (1, "x"), 2.5, "a", 1}
    assert codec.digest(mixed_one) == codec.digest(mixed_two)


def test_digest_of_dicts_does_not_depend_on_insertion_order() -> None:
    codec = Codec()
    assert {"a": 1, "b": 2} == {"b": 2, "a": 1}
    assert codec.digest({"a": 1, "b": 2}) == codec.digest({"b": 2, "a": 1})
    assert codec.digest({"outer": {"x": 1, "y": 2}}) == codec.digest({"outer": {"y": 2, "x": 1}})


def test_digest_differs_for_different_values() -> None:
    codec = Codec()
    values = [
        None,
        0,
        1,
        True,
        "1",
        b"1",
        1.0,
        [1],
        (1,),
        {1},
        frozenset({1}),
        {"a": 1},
        {"a": 2},
        decimal.Decimal("1"),
        uuid.UUID(int=1),
        Point(1, 2),
        Point(1, 3),
        Color.RED,
        Priority.LOW,
    ]
    digests = [codec.digest(value) for value in values]
    assert len(set(digests)) == len(values)


def test_call_digest_ignores_keyword_order_but_not_values() -> None:
    codec = Codec()
    first = codec.call_digest((1, "x"), {"alpha": 1, "beta": [2]})
    second = codec.call_digest((1, "x"), {"beta": [2], "alpha": 1})
    assert first == second
    assert first != codec.call_digest((1, "x"), {"alpha": 1, "beta": [3]})
    assert first != codec.call_digest(("x", 1), {"alpha": 1, "beta": [2]})
    # A positional argument is not the same call as a keyword argument.
    assert codec.call_digest((1,), {}) != codec.call_digest((), {"a": 1})


def test_call_digest_of_arguments_that_cannot_be_encoded_is_stable_by_type() -> None:
    codec = Codec()
    first = codec.call_digest((object(), 1), {"client": Opaque(1)})
    second = codec.call_digest((object(), 1), {"client": Opaque(2)})
    assert first == second  # stands in by type
    assert first != codec.call_digest((object(), 2), {"client": Opaque(1)})
    assert first != codec.call_digest((Opaque(), 1), {"client": Opaque(1)})
    assert codec.digest(object()) == codec.digest(object())
    assert codec.digest(object()) != codec.digest(Opaque())


_DIGEST_SCRIPT = """
import datetime, decimal, uuid
from flink_agents_async.journal.codec import Codec
codec = Codec()
value = {VALUE}
print(codec.digest(value).hex())
print(codec.call_digest((value, 1), {{"b": 2, "a": value}}).hex())
"""


def _digests_in_subprocess(value_source: str, hash_seed: int) -> list[str]:
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    completed = subprocess.run(
        [sys.executable, "-c", _DIGEST_SCRIPT.format(VALUE=value_source)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=True,
    )
    return completed.stdout.split()


def _digests_here(value_source: str) -> list[str]:
    value = eval(value_source, {"datetime": dt, "decimal": decimal, "uuid": uuid})
    codec = Codec()
    return [
        codec.digest(value).hex(),
        codec.call_digest((value, 1), {"b": 2, "a": value}).hex(),
    ]


STABLE_VALUE = (
    "{'names': {'zeta', 'alpha', 'mu', 'beta', 'omega', 'kappa', 'x', 'y'}, "
    "'frozen': frozenset({'p', 'q', 'r', 's'}), 'mixed': {1, 'one', 2.5, (3, 'x')}, "
    "'id': uuid.UUID(int=12345), 'when': datetime.datetime(2024, 1, 1, 12, 0), "
    "'price': decimal.Decimal('1.50'), 'pair': ('a', 2), 'big': 2**70}"
)


def test_digest_is_stable_across_processes_and_hash_seeds() -> None:
    here = _digests_here(STABLE_VALUE)
    for seed in (0, 1, 2, 12345):
        assert _digests_in_subprocess(STABLE_VALUE, seed) == here


def test_digest_of_a_set_of_frozensets_is_stable_across_hash_seeds() -> None:
    """Frozensets compare by subset, not by a total order, so sorting them leaves the set's
    hash-dependent order in place unless the codec orders them some other way."""
    value = "{frozenset({'a'}), frozenset({'b'}), frozenset({'c'}), frozenset({'d', 'e'})}"
    here = _digests_here(value)
    for seed in (0, 1, 2, 3, 4):
        assert _digests_in_subprocess(value, seed) == here


# -- records ----------------------------------------------------------------------------------


def test_records_round_trip() -> None:
    codec = Codec()
    key = codec.encode("user-1")
    item = codec.encode(["user-1", {"q": "hello"}])

    input_record = InputRecord(7, key, item)
    unpacked_input = InputRecord.unpack(7, INPUT_COMMITTED, input_record.pack())
    assert (unpacked_input.seq, unpacked_input.key, unpacked_input.item) == (7, key, item)
    assert unpacked_input.status == INPUT_COMMITTED
    assert unpacked_input.digest == input_record.digest
    assert codec.decode(unpacked_input.item) == ["user-1", {"q": "hello"}]

    digest = codec.call_digest((1,), {"a": 2})
    call = CallRecord(3, "pkg.mod.fetch", digest, COMPLETED, False, codec.encode(ValueError("x")))
    assert CallRecord.unpack(3, call.pack()) == call
    pending = CallRecord(4, "pkg.mod.fetch", digest, PENDING)
    assert CallRecord.unpack(4, pending.pack()) == pending
    assert CallRecord.unpack(4, pending.pack()).payload == b""

    commit = CommitRecord(7, 2, key, 5, codec.encode([{"a": 1}, {}, ["gone"]]), calls=3)
    assert CommitRecord.unpack(7, 2, key, commit.pack()) == commit

    failure = FailureRecord(8, 1, "act", "_input_event", "builtins.ValueError", "bad ✗")
    assert FailureRecord.unpack(8, failure.pack()) == failure

    snapshot = SnapshotRecord(key, 9, 4, codec.encode([{"count": 4}, {}]))
    assert SnapshotRecord.unpack(key, snapshot.pack()) == snapshot

    outputs = OutputsRecord(5, 2, codec.encode([{"user-1": "out"}]))
    assert OutputsRecord.unpack(outputs.pack()) == outputs


def test_every_record_starts_with_the_format_version() -> None:
    packed = [
        InputRecord(0, b"k", b"i").pack(),
        CallRecord(0, "f", b"d", COMPLETED).pack(),
        CommitRecord(0, 0, b"k", 1, b"").pack(),
        FailureRecord(0, 1, "a", "e", "t", "m").pack(),
        SnapshotRecord(b"k", 0, 1, b"").pack(),
        OutputsRecord(1, 0, b"").pack(),
    ]
    for data in packed:
        assert msgpack.unpackb(data)[0] == FORMAT_VERSION


def _with_version(data: bytes, version: Any) -> bytes:
    fields = msgpack.unpackb(data, raw=False)
    fields[0] = version
    return msgpack.packb(fields, use_bin_type=True)


@pytest.mark.parametrize(
    ("record", "unpack"),
    [
        (InputRecord(0, b"k", b"i"), lambda data: InputRecord.unpack(0, 0, data)),
        (CallRecord(0, "f", b"d", COMPLETED), lambda data: CallRecord.unpack(0, data)),
        (CommitRecord(0, 0, b"k", 1, b""), lambda data: CommitRecord.unpack(0, 0, b"k", data)),
        (FailureRecord(0, 1, "a", "e", "t", "m"), lambda data: FailureRecord.unpack(0, data)),
        (SnapshotRecord(b"k", 0, 1, b""), lambda data: SnapshotRecord.unpack(b"k", data)),
        (OutputsRecord(1, 0, b""), OutputsRecord.unpack),
    ],
    ids=["input", "call", "commit", "failure", "snapshot", "outputs"],
)
def test_records_of_another_format_version_or_garbage_are_refused(record: Any, unpack: Any) -> None:
    with pytest.raises(JournalError, match="version 99"):
        unpack(_with_version(record.pack(), 99))
    for garbage in (b"\xc1\xc1", b"", msgpack.packb(5), msgpack.packb([]), b"\x95\x01"):
        with pytest.raises(JournalError):
            unpack(garbage)
    fields = msgpack.unpackb(record.pack(), raw=False)
    with pytest.raises(JournalError):
        unpack(msgpack.packb([*fields, "extra"], use_bin_type=True))


def test_a_failed_encode_leaves_nothing_behind_for_the_next_one() -> None:
    codec = Codec()
    with pytest.raises(JournalEncodeError, match="cannot be journaled"):
        codec.encode(["kept in the buffer?", object()])
    assert codec.decode(codec.encode({"n": 1})) == {"n": 1}


def test_each_thread_packs_with_a_packer_of_its_own() -> None:
    packer = ThreadPacker(use_bin_type=True)
    values = {f"thread-{n}": list(range(n * 1000, n * 1000 + 500)) for n in range(8)}
    barrier = threading.Barrier(len(values))
    packed: dict[str, bytes] = {}
    owners: dict[str, Any] = {}  # the Packers, kept alive so that their ids stay distinct

    def pack_many(name: str) -> None:
        barrier.wait()  # all threads pack at the same time
        for _ in range(200):
            packed[name] = packer.pack(values[name])
        owners[name] = packer.pack.__self__

    threads = [threading.Thread(target=pack_many, args=(name,)) for name in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {name: msgpack.unpackb(data) for name, data in packed.items()} == values
    assert len({id(owner) for owner in owners.values()}) == len(values)
    assert all(packer.pack.__self__ is not owner for owner in owners.values())  # nor this one


# -- any failure while encoding is a JournalEncodeError ---------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        AttributeError("gone"),
        KeyError("k"),
        RuntimeError("boom"),
        RecursionError("too deep"),
        ZeroDivisionError("zero"),
        TypeError("typed"),
    ],
    ids=lambda failure: type(failure).__name__,
)
def test_any_failure_while_encoding_is_a_journal_encode_error_naming_where_and_type(
    failure: Exception,
) -> None:
    for value in (faulty(failure), [1, {"nested": faulty(failure)}], (2, faulty(failure))):
        with pytest.raises(JournalEncodeError) as caught:
            Codec().encode(value, "the result of slot {}", 4)
        message = str(caught.value)
        assert "the result of slot 4" in message
        assert "Faulty" in message
        assert type(failure).__name__ in message
        assert caught.value.__cause__ is failure  # the original, for its traceback


def test_pydantic_model_whose_field_cannot_be_read_is_a_journal_encode_error() -> None:
    address = Address(street="s", number=1)
    del address.__dict__["street"]
    with pytest.raises(JournalEncodeError, match=r"output 1.*Address") as caught:
        Codec().encode({"a": [address]}, "output {}", 1)
    assert isinstance(caught.value.__cause__, AttributeError)


def test_where_whose_arguments_cannot_be_formatted_still_gives_a_journal_encode_error() -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with pytest.raises(JournalEncodeError, match="the result of"):
        Codec().encode(object(), "the result of {!r}", BadRepr())


def test_recording_an_exception_never_fails() -> None:
    """A durable call's exception is what its record must hold, whatever its ``__str__`` or
    ``args`` do."""
    decoded = round_trip(Unprintable("x"))
    assert type(decoded) is Unprintable and decoded.args == ("x",)

    ghost = type("Unprintable", (Unprintable,), {"__module__": "ghost_errors"})
    replayed = round_trip(ghost("x"))
    assert type(replayed) is ReplayedError
    assert replayed.message == "<unprintable Unprintable object>"

    # Its args cannot be read (nor set, so it cannot be rebuilt): its type and message remain.
    replayed = round_trip([1, BadArgs("y")])
    assert replayed[0] == 1 and type(replayed[1]) is ReplayedError
    assert replayed[1].type_name == f"{__name__}.BadArgs" and replayed[1].message == "y"


# -- nesting ----------------------------------------------------------------------------------


def nested(kind: str, depth: int) -> Any:
    """``depth`` extension values of ``kind`` inside each other around ``1``."""
    makers: dict[str, Any] = {
        "tuple": lambda inner: (inner,),
        "frozenset": lambda inner: frozenset({inner}),
        "model": lambda inner: Wrapper(inner=inner),
        "dataclass": Holder,
        "namedtuple": lambda inner: Pair(inner, 0),
        # (not Counter: its == compares every value twice, so nested ones take 2**depth)
        "ordered": lambda inner: OrderedDict({"k": inner}),
    }
    # Mixed: each kind inside the others (not frozensets: their elements must be hashable).
    kinds = [name for name in makers if name != "frozenset"] if kind == "mixed" else [kind]
    value: Any = 1
    for level in range(depth):
        value = makers[kinds[level % len(kinds)]](value)
    return value


@pytest.mark.parametrize(
    "kind", ["tuple", "frozenset", "model", "dataclass", "namedtuple", "ordered", "mixed"]
)
def test_values_nested_up_to_the_limit_round_trip_and_deeper_ones_are_refused(kind: str) -> None:
    deepest = nested(kind, MAX_NESTING)
    assert round_trip(deepest) == deepest
    with pytest.raises(JournalEncodeError) as caught:
        Codec().encode([nested(kind, MAX_NESTING + 1)], "the result of slot {}", 2)
    message = str(caught.value)
    assert "the result of slot 2" in message
    assert "nested too deeply" in message and "flatten" in message


def test_exceptions_nested_beyond_the_limit_keep_the_outer_ones() -> None:
    """An exception's argument that cannot be carried is kept as its repr, so a chain of
    exceptions deeper than the limit is recorded (its innermost ones as text)."""
    error: Any = ValueError("innermost")
    for level in range(MAX_NESTING + 20):
        error = RuntimeError(f"level {level}", error)
    decoded = round_trip(error)
    assert type(decoded) is RuntimeError and decoded.args[0] == error.args[0]
    depth, inner = 0, decoded
    while isinstance(inner, BaseException):
        depth, inner = depth + 1, inner.args[1] if len(inner.args) > 1 else None
    assert depth == MAX_NESTING
    assert isinstance(inner, str) and inner.startswith("RuntimeError(")


def test_nesting_is_counted_per_thread() -> None:
    """Threads decoding and encoding deep values at once do not add up their depths."""
    codec = Codec()
    deep = nested("mixed", MAX_NESTING)
    data = codec.encode(deep)
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(30):
                assert codec.decode(data) == deep
                assert codec.encode(deep) == data
        except BaseException as error:
            failures.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, in the middle of values
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []


def test_a_failed_nested_decode_or_encode_leaves_nothing_behind_for_the_next_one() -> None:
    codec = Codec()
    value = [(1, (2, "x")), {3}, Point(1, 2.0), Counter(a=1)]
    good = codec.encode(value)
    ext = msgpack.ExtType
    broken = [
        msgpack.packb(ext(1, msgpack.packb([1]) + b"\x01")),  # extra bytes in a payload
        msgpack.packb(ext(1, b"\x93\x01")),  # a payload that ends early
        msgpack.packb([ext(1, msgpack.packb([ext(1, b"\x92\x01")]))]),
        msgpack.packb(ext(1, msgpack.packb([ext(99, b"x")]))),  # unknown type inside
        msgpack.packb(ext(1, b"")),
        msgpack.packb(ext(1, msgpack.packb(["x" * 5000]) + b"\x01")),  # large, extra bytes
    ]
    for data in broken:
        with pytest.raises(JournalError):
            codec.decode(data)
        assert codec.decode(good) == value
    with pytest.raises(JournalEncodeError):
        codec.encode([(1, (2, Opaque()))])
    assert codec.encode(value) == good


def test_sets_nested_in_sets_and_exceptions_in_exceptions_encode_in_linear_time() -> None:
    """Each element is packed once: packing every set's elements for sorting and again for the
    payload (and every exception's arguments to test them, then again) doubled the work at
    each level. Run apart, with a timeout, so that exponential time fails instead of hanging."""
    script = """
from flink_agents_async.journal.codec import Codec
codec = Codec()
sets = 1
errors = ValueError("innermost")
for level in range(40):
    sets = frozenset({sets, level})
    errors = RuntimeError(level, errors)
assert codec.decode(codec.encode(sets)) == sets
assert codec.decode(codec.encode(errors)).args[0] == 39
print("done")
"""
    completed = run_isolated(script, timeout=60)
    assert completed.stdout.split() == ["done"], completed.stderr


def run_isolated(source: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs ``source`` in a fresh interpreter: a crash (SIGSEGV) fails the test instead of
    killing pytest."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout,
    )


_CRAFTED = """
import random, sys, threading
import msgpack
from flink_agents_async.errors import JournalError
from flink_agents_async.journal.codec import MAX_NESTING, Codec


def ext_header(code, length):
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if length in fixed:
        return bytes([fixed[length], code])
    if length < 256:
        return bytes([0xC7, length, code])
    if length < 65536:
        return b"\\xc8" + length.to_bytes(2, "big") + bytes([code])
    return b"\\xc9" + length.to_bytes(4, "big") + bytes([code])


def wrapped(levels, code, inner=b"\\x01", prefix=b""):
    # levels extension values of type code inside each other, each payload starting with
    # prefix (b"\\x91": a one-item array, as in a tuple); built in linear time
    parts, size = [inner], len(inner)
    for _ in range(levels):
        header = ext_header(code, size + len(prefix))
        parts += [prefix, header]
        size += len(prefix) + len(header)
    return b"".join(reversed(parts))


def check(name, data, codec):
    try:
        codec.decode(data)
    except JournalError:
        return
    except BaseException as error:
        print("BAD", name, type(error).__name__, error)
        sys.exit(1)
"""


def test_crafted_nesting_never_crashes_decoding_even_on_a_small_stack() -> None:
    """Records nested far deeper than the codec writes (as a corrupt or hostile journal might
    hold) are JournalErrors, decoded on a thread with a 1 MiB stack; values at the limit still
    decode there."""
    script = (
        _CRAFTED
        + """
def run():
    codec = Codec()
    cases = {
        "tuples just beyond the limit": wrapped(MAX_NESTING + 1, 1, prefix=b"\\x91"),
        "200 tuples": wrapped(200, 1, prefix=b"\\x91"),
        "100000 tuples": wrapped(100_000, 1, prefix=b"\\x91"),
        "100000 bare extension levels": wrapped(100_000, 1),
        "100000 nested sets": wrapped(100_000, 2, prefix=b"\\x91"),
        "100000 nested exceptions": wrapped(100_000, 12, prefix=b"\\x91"),
        "100000 nested arrays": b"\\x91" * 100_000 + b"\\x01",
        "100000 nested maps": b"\\x81\\x01" * 100_000 + b"\\x01",
        "100000 arrays in a payload": wrapped(1, 1, b"\\x91" * 100_000 + b"\\x01"),
        "100000 arrays at depth 50": wrapped(50, 1, b"\\x91" * 100_000 + b"\\x01", b"\\x91"),
    }
    for name, data in cases.items():
        check(name, data, codec)
        check(name, data, Codec(lenient=True))
    value = 1
    for _ in range(MAX_NESTING):
        value = (value,)
    assert codec.decode(codec.encode(value)) == value
    assert codec.decode(wrapped(MAX_NESTING, 1, prefix=b"\\x91")) == value
    print("survived")


threading.stack_size(1024 * 1024)
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""
    )
    completed = run_isolated(script)
    assert completed.returncode == 0, (completed.returncode, completed.stdout, completed.stderr)
    assert completed.stdout.split() == ["survived"], completed.stderr


def test_random_mutations_of_valid_records_decode_to_a_value_or_a_journal_error() -> None:
    """A seeded fuzz over valid encodings of varied values: flipped, inserted, dropped and
    truncated bytes must only ever give a value or a JournalError (never a crash or another
    exception)."""
    script = (
        _CRAFTED
        + """
import collections, dataclasses, datetime as dt, decimal, enum, uuid, zoneinfo
from typing import NamedTuple


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: tuple


class Span(NamedTuple):
    start: int
    end: dt.timedelta


codec = Codec()
values = [
    {"list": [1, -2, 2**70, 1.5, None, True, "text", b"bytes"], "nested": {"k": [[{}]]}},
    (1, ("a", (2.5, frozenset({3, "x"}))), {1, (2, 3)}),
    [uuid.UUID(int=7), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), dt.date(2024, 2, 29)],
    [dt.time(1, 2, 3), decimal.Decimal("-1.25"), dt.timedelta(days=-2, microseconds=7)],
    dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    [Color.RED, Point(1, (2, 3)), Span(1, dt.timedelta(seconds=3))],
    collections.Counter("abracadabra"),
    collections.OrderedDict([("b", 1), ("a", (2,))]),
    collections.defaultdict(list, {"x": [1, 2]}),
    KeyError("missing"),
    OSError(2, "No such file", "x.txt"),
    {"error": ValueError("bad", {"detail": [1, 2]}), "when": dt.time(9, tzinfo=dt.UTC)},
]
encodings = [codec.encode(value) for value in values]
for data, value in zip(encodings, values):
    assert repr(codec.decode(data)) == repr(value)  # (exceptions do not compare equal)

rng = random.Random(20240601)
cases = 0
for round_ in range(300):
    for data in encodings:
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            position = rng.randrange(len(mutated) + 1)
            if choice < 0.4 and mutated:
                mutated[min(position, len(mutated) - 1)] = rng.randrange(256)
            elif choice < 0.6:
                mutated.insert(position, rng.randrange(256))
            elif choice < 0.8 and mutated:
                del mutated[min(position, len(mutated) - 1)]
            else:
                mutated = mutated[:position]
        check(f"mutation {round_}", bytes(mutated), codec)
        check(f"mutation {round_}", bytes(mutated), Codec(lenient=True))
        cases += 1
for data in encodings:
    for end in range(len(data)):
        check(f"truncated at {end}", data[:end], codec)
        cases += 1
for _ in range(1000):
    check("random bytes", rng.randbytes(rng.randrange(1, 64)), codec)
    cases += 1
print("cases", cases)
"""
    )
    completed = run_isolated(script)
    assert completed.returncode == 0, (completed.returncode, completed.stdout, completed.stderr)
    assert completed.stdout.split()[0] == "cases", completed.stderr
    assert int(completed.stdout.split()[1]) > 3000


# -- exceptions keep their attributes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "attributes"),
    [
        (
            subprocess.CalledProcessError(2, ["ls", "x"], output=b"o", stderr=b"e"),
            {"returncode": 2, "cmd": ["ls", "x"], "output": b"o", "stderr": b"e"},
        ),
        (PaymentError(402), {"code": 402}),
        (ShowsCode(7), {"code": 7}),
        (
            OSError(2, "No such file", "x.txt"),
            {"errno": 2, "strerror": "No such file", "filename": "x.txt"},
        ),
        (
            ConfigMissing("/etc/app.yaml"),
            {"errno": errno.ENOENT, "strerror": "config missing", "filename": "/etc/app.yaml"},
        ),
        (KeyError("k"), {}),
        (
            UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
            {"encoding": "utf-8", "object": b"\xff", "start": 0, "end": 1, "reason": "bad"},
        ),
        (ModuleNotFoundError("No module named 'x'", name="x"), {"name": "x"}),
        (
            json.JSONDecodeError("bad", '{"a": ', 6),
            {"msg": "bad", "doc": '{"a": ', "pos": 6, "lineno": 1, "colno": 7},
        ),
        (
            subprocess.TimeoutExpired(["sleep", "9"], 5, output=b"partial"),
            {"cmd": ["sleep", "9"], "timeout": 5, "output": b"partial"},
        ),
        (StopIteration(5), {"value": 5}),
    ],
    ids=lambda item: type(item).__name__ if isinstance(item, BaseException) else "",
)
def test_exceptions_round_trip_with_their_attributes(
    error: BaseException, attributes: dict[str, Any]
) -> None:
    init_calls = PaymentError.init_calls
    decoded = round_trip(error)
    assert type(decoded) is type(error)
    assert decoded.args == error.args
    assert str(decoded) == str(error)
    for name, value in attributes.items():
        assert getattr(decoded, name) == value, name
    assert PaymentError.init_calls == init_calls  # decoding never runs a user's __init__


def test_notes_survive_a_round_trip() -> None:
    error = PaymentError(1)
    error.add_note("while charging card 42")
    assert round_trip(error).__notes__ == ["while charging card 42"]


def test_attribute_the_codec_cannot_carry_is_kept_as_a_bounded_repr() -> None:
    error = PaymentError(3)
    error.client = Opaque(3)  # type: ignore[attr-defined]
    error.verbose = Verbose()  # type: ignore[attr-defined]
    decoded = round_trip(error)
    assert decoded.code == 3
    assert isinstance(decoded.client, str) and "Opaque" in decoded.client
    assert isinstance(decoded.verbose, str) and decoded.verbose.startswith("vvv")
    assert len(decoded.verbose) <= 1000 and decoded.verbose.endswith("...")

    pickling = Codec(allow_pickle=True)
    assert round_trip(error, pickling).client == Opaque(3)  # pickled only when allowed


def test_exception_records_without_attributes_still_decode() -> None:
    """Journals written before attributes were recorded hold [path, args, message]."""
    record = msgpack.packb(["builtins:ValueError", ["x", 1], "('x', 1)"], use_bin_type=True)
    decoded = Codec().decode(msgpack.packb(msgpack.ExtType(12, record)))
    assert type(decoded) is ValueError and decoded.args == ("x", 1)


def test_exception_whose_class_is_gone_comes_back_as_replayed_error_with_its_attributes() -> None:
    gone = type(
        "GhostPayment",
        (PaymentError,),
        {"__module__": "ghost_payments", "__str__": lambda self: f"card {self.code} declined"},
    )
    error = gone(9)
    error.message = "own message"  # clashes with ReplayedError's own attribute
    error.retry_after = 30
    decoded = round_trip(error)
    assert type(decoded) is ReplayedError
    assert decoded.type_name == "ghost_payments.GhostPayment"
    assert decoded.message == "card 9 declined"
    assert decoded.attributes == {"code": 9, "message": "own message", "retry_after": 30}
    assert decoded.code == 9 and decoded.retry_after == 30
    assert "ghost_payments" not in sys.modules


def test_exception_attributes_of_classes_not_loaded_become_placeholders() -> None:
    """A durable function may import the module of its exception's attributes itself; it is
    not called on replay, so an attribute whose class is not loaded must not fail the replay."""
    detail_class = dataclasses.make_dataclass("GhostDetail", [("status", int)])
    detail_class.__module__ = "ghost_details"
    error = PaymentError(5)
    error.detail = detail_class(503)  # type: ignore[attr-defined]
    decoded = round_trip(error)
    assert type(decoded) is PaymentError and decoded.code == 5
    assert "ghost_details.GhostDetail" in repr(decoded.detail) and "503" in repr(decoded.detail)

    gone = type("GhostError", (Exception,), {"__module__": "ghost_errors"})
    replayed = round_trip({"error": gone("down", detail_class(1))})["error"]
    assert type(replayed) is ReplayedError and replayed.type_name == "ghost_errors.GhostError"
    with pytest.raises(JournalError, match="GhostDetail"):  # outside exceptions: refused
        round_trip([detail_class(2)])
    assert "ghost_details" not in sys.modules


def test_exception_record_cannot_set_special_attributes() -> None:
    record = msgpack.packb(
        ["builtins:ValueError", ["x"], "x", {"__class__": "KeyError", "__dict__": {}, "ok": 2}],
        use_bin_type=True,
    )
    decoded = Codec().decode(msgpack.packb(msgpack.ExtType(12, record)))
    assert type(decoded) is ValueError and decoded.ok == 2


# -- types do not change on replay ------------------------------------------------------------


def test_counter_ordered_dict_and_defaultdict_round_trip_with_their_types() -> None:
    ordered = OrderedDict([("z", 1), ("a", (2,)), ("m", {3})])
    ordered.move_to_end("z")
    values: list[Any] = [
        Counter({"b": 2, "a": 5, ("t", 1): 1}),
        Counter(),
        ordered,
        defaultdict(list, {"x": [1, 2], 3: [(1, 2)]}),
        defaultdict(int, {"n": 1}),
        defaultdict(set, {"s": {1}}),
        defaultdict(dict),
        defaultdict(None, {"k": "v"}),
        defaultdict(Counter, {"c": Counter("aab")}),
        defaultdict(Tally, {"t": Tally(2)}),
    ]
    for value in values:
        decoded = round_trip(value)
        assert type(decoded) is type(value)
        assert decoded == value
        assert list(decoded.items()) == list(value.items())  # and in the same order
        if isinstance(value, defaultdict):
            assert decoded.default_factory is value.default_factory
    decoded = round_trip([values[0], {"o": ordered}])
    assert type(decoded[0]) is Counter and type(decoded[1]["o"]) is OrderedDict


def test_defaultdict_whose_factory_cannot_be_found_is_refused_at_encode() -> None:
    for factory in (lambda: 0, faulty):
        with pytest.raises(JournalEncodeError) as caught:
            Codec().encode(defaultdict(factory, {"a": 1}), "the result of slot {}", 3)
        message = str(caught.value)
        assert "the result of slot 3" in message and "dict(value)" in message
    pickling = Codec(allow_pickle=True)
    decoded = round_trip(defaultdict(faulty), pickling)
    assert type(decoded) is defaultdict and decoded.default_factory is faulty


def test_defaultdict_whose_factory_is_not_loaded_is_refused_by_name() -> None:
    payload = msgpack.packb(["ghost_factories:Factory", {"a": 1}], use_bin_type=True)
    data = msgpack.packb(msgpack.ExtType(17, payload))
    with pytest.raises(JournalError, match=r"ghost_factories\.Factory"):
        Codec().decode(data)
    assert "ghost_factories" not in sys.modules
    assert "ghost_factories.Factory" in repr(Codec(lenient=True).decode(data))


def test_namedtuples_round_trip_without_running_their_code() -> None:
    values = [Pair(1, "a"), Pair((1, 2), Pair(3, [4])), Span(1, 2), Span(5), Guarded(1, 2)]
    created = Guarded.created
    for value in values:
        decoded = round_trip(value)
        assert type(decoded) is type(value)
        assert decoded == value
        assert decoded._asdict() == value._asdict()
    assert type(round_trip(values[1]).right) is Pair
    assert Guarded.created == created  # rebuilt with tuple.__new__, not the class's __new__


def test_namedtuple_whose_class_is_not_loaded_is_a_journal_error_or_a_placeholder() -> None:
    payload = msgpack.packb(["ghost_tuples:Ghost", [1, 2]], use_bin_type=True)
    data = msgpack.packb(msgpack.ExtType(18, payload))
    with pytest.raises(JournalError, match=r"ghost_tuples\.Ghost"):
        Codec().decode(data)
    assert "ghost_tuples" not in sys.modules
    assert "ghost_tuples.Ghost" in repr(Codec(lenient=True).decode(data))
    wrong_length = msgpack.packb(["test_codec:Pair", [1, 2, 3]], use_bin_type=True)
    with pytest.raises(JournalError, match="namedtuple"):
        Codec().decode(msgpack.packb(msgpack.ExtType(18, wrong_length)))


def test_namedtuple_defined_in_a_function_is_refused_at_encode() -> None:
    local = namedtuple("Local", "x")
    with pytest.raises(JournalEncodeError, match="module level") as caught:
        Codec().encode(local(1), "the result of slot {}", 1)
    assert "tuple(value)" in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        dt.timedelta(0),
        dt.timedelta(days=-3, seconds=5, microseconds=7),
        dt.timedelta(microseconds=-1),
        dt.timedelta.max,
        dt.timedelta.min,
    ],
    ids=repr,
)
def test_timedeltas_round_trip(value: dt.timedelta) -> None:
    assert_same(value, round_trip(value))


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 7, 1, 12, 0, tzinfo=PARIS),
        dt.datetime(2024, 10, 27, 2, 30, tzinfo=PARIS),  # ambiguous: the first 02:30
        dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS),  # ambiguous: the second
        dt.datetime(2024, 3, 31, 2, 30, tzinfo=PARIS),  # in the gap of the spring change
        dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=zoneinfo.ZoneInfo("UTC")),
        dt.datetime(2024, 3, 10, 1, 59, 59, 999999, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
        dt.time(9, 30, tzinfo=PARIS),
        dt.time(23, 59, 59, fold=1, tzinfo=PARIS),
    ],
    ids=repr,
)
def test_datetimes_in_a_zoneinfo_zone_round_trip_to_the_same_zone(value: Any) -> None:
    decoded = round_trip(value)
    assert type(decoded) is type(value)
    assert decoded.tzinfo is value.tzinfo  # the same zone, not a fixed offset
    assert decoded.fold == value.fold
    assert decoded.replace(tzinfo=None) == value.replace(tzinfo=None)
    if isinstance(value, dt.datetime):
        assert decoded == value
        assert decoded.timestamp() == value.timestamp()  # the same instant
        assert decoded.utcoffset() == value.utcoffset()
        assert decoded + dt.timedelta(days=180) == value + dt.timedelta(days=180)


def test_datetimes_with_other_tzinfo_types_are_refused_unless_pickled() -> None:
    values = [dt.datetime(2024, 1, 1, tzinfo=FixedTz()), dt.time(1, tzinfo=FixedTz())]
    for value in values:
        with pytest.raises(JournalEncodeError) as caught:
            Codec().encode({"when": value}, "the result of slot {}", 1)
        message = str(caught.value)
        assert "FixedTz" in message and "zoneinfo" in message and "UTC" in message
        assert "the result of slot 1" in message
        decoded = round_trip(value, Codec(allow_pickle=True))
        assert type(decoded.tzinfo) is FixedTz and decoded.utcoffset() == value.utcoffset()


@pytest.mark.parametrize(
    ("value", "conversion"),
    [
        (MyDict(a=1), "dict(value)"),
        (MyCounter("aa"), "dict(value)"),
        (MyList([1]), "list(value)"),
        (MyTuple((1, 2)), "tuple(value)"),
        (MySet({1}), "set(value)"),
        (MyFrozenSet({1}), "frozenset(value)"),
        (MyStr("s"), "str(value)"),
        (MyBytes(b"b"), "bytes(value)"),
        (MyInt(3), "int(value)"),
        (MyFloat(1.5), "float(value)"),
    ],
    ids=lambda item: type(item).__name__ if not isinstance(item, str) else "",
)
def test_other_subclasses_of_built_in_types_are_refused_naming_the_conversion(
    value: Any, conversion: str
) -> None:
    with pytest.raises(JournalEncodeError) as caught:
        Codec().encode({"k": [value]}, "the result of slot {}", 5)
    message = str(caught.value)
    assert type(value).__qualname__ in message
    assert conversion in message
    assert "the result of slot 5" in message and "allow-pickle" in message
    assert_same(value, round_trip(value, Codec(allow_pickle=True)))


def test_enum_subclasses_of_built_in_types_are_still_carried() -> None:
    assert round_trip([Color.RED, Priority.HIGH, {Color.GREEN: Priority.LOW}]) == [
        Color.RED,
        Priority.HIGH,
        {Color.GREEN: Priority.LOW},
    ]


# -- digests of the new types and of refused subclasses ---------------------------------------


def test_digests_of_supported_values_are_unchanged() -> None:
    """Set encodings are now assembled from their packed elements; the bytes (and so the
    digests of journals written before) are those of the codec that sorted and packed twice."""
    codec = Codec()
    value = eval(STABLE_VALUE, {"datetime": dt, "decimal": decimal, "uuid": uuid})
    assert codec.digest(value).hex() == "2ab7da89fe71ad0e63773832d6ca6c8b"
    assert codec.call_digest((value, 1), {"b": 2, "a": value}).hex() == (
        "f639fd19a6fa26aa8b7e6b3b1886720b"
    )
    sets = {frozenset({1, 2}), frozenset({"x"}), frozenset()}
    assert codec.encode(sets).hex() == "d80293c7030391a178c70303920102d40390"
    assert codec.encode([{"b", "a", 2**70}, (1, (2,))]).hex() == (
        "92c71e0293a161a162c7160e31313830353931363230373137343131333033343234c706019201d5019102"
    )


@pytest.mark.slow
def test_payloads_assembled_from_packed_parts_are_valid_at_every_header_size() -> None:
    """Set and exception payloads are assembled from their packed items behind a header the
    codec writes itself: it must match msgpack's for short, 16-bit and 32-bit lengths."""
    for size in (0, 15, 16, 65535, 65536):
        value = set(range(size))
        data = Codec().encode(value)
        items = sorted(Codec().encode(item) for item in value)
        expected = msgpack.packb(msgpack.ExtType(2, msgpack.packb([*map(msgpack.unpackb, items)])))
        assert data == expected
        assert round_trip(value) == value
    error = PaymentError(1)
    for index in range(20):
        setattr(error, f"field_{index}", index)
    decoded = round_trip(RuntimeError(*range(20), error))
    assert decoded.args[:20] == tuple(range(20))
    assert decoded.args[20].field_19 == 19


def test_refused_subclasses_are_digested_by_type_and_content() -> None:
    codec = Codec()
    assert codec.digest(MyDict(a=1, b=2)) == codec.digest(MyDict(b=2, a=1))
    assert codec.digest(MyDict(a=1)) != codec.digest(MyDict(a=2))
    assert codec.digest(MyDict(a=1)) != codec.digest({"a": 1})
    assert codec.digest(MyStr("x")) != codec.digest("x")
    assert codec.digest(MyList([MyStr("x")])) != codec.digest(MyList([MyStr("y")]))
    first = codec.call_digest((MyStr("x"), Opaque()), {"n": MyInt(1)})
    assert first == codec.call_digest((MyStr("x"), Opaque()), {"n": MyInt(1)})
    assert first != codec.call_digest((MyStr("y"), Opaque()), {"n": MyInt(1)})
    assert first != codec.call_digest((MyStr("x"), Opaque()), {"n": MyInt(2)})


def test_digests_of_the_new_types_are_by_content_and_ignore_insertion_order() -> None:
    codec = Codec()
    assert codec.digest(Counter(a=1, b=2)) == codec.digest(Counter(b=2, a=1))
    assert codec.digest(Counter(a=1)) != codec.digest({"a": 1})
    lists = defaultdict(list, {"a": [1], "b": [2]})
    assert codec.digest(lists) == codec.digest(defaultdict(list, {"b": [2], "a": [1]}))
    assert codec.digest(lists) != codec.digest(defaultdict(set, {"a": [1], "b": [2]}))
    assert codec.digest(OrderedDict(a=1, b=2)) != codec.digest(OrderedDict(b=2, a=1))
    assert codec.digest(Pair(1, {"x": 1, "y": 2})) == codec.digest(Pair(1, {"y": 2, "x": 1}))
    assert codec.digest(Pair(1, 2)) != codec.digest(Pair(1, 3))
    assert codec.digest(Pair(1, 2)) != codec.digest((1, 2))
    assert codec.digest(dt.timedelta(1)) != codec.digest(dt.timedelta(2))
    paris = dt.datetime(2024, 7, 1, tzinfo=PARIS)
    assert codec.digest(paris) != codec.digest(paris.astimezone(dt.UTC))


def test_digest_of_values_too_deep_to_encode_does_not_fail() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    codec = Codec()
    assert len(codec.digest(deep)) == 16
    assert len(codec.call_digest((deep, 1), {"k": deep})) == 16
    assert codec.digest(nested("tuple", MAX_NESTING + 1)) == codec.digest(
        nested("tuple", MAX_NESTING + 1)
    )
