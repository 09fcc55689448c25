"""The journal codec (values in and out of msgpack, digests) and the versioned journal records."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import msgpack
import pydantic
import pytest

import flink_agents_async
from flink_agents_async.errors import JournalError, ReplayedError
from flink_agents_async.journal.codec import Codec, JournalEncodeError
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
