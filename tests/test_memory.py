"""MemoryObject, MemoryStore and MemoryRef: paths, nesting, validation, copies, transactions."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid

import pydantic
import pytest

from flink_agents_async import MemoryObject, MemoryRef, MemoryType
from flink_agents_async.memory import DELETED, MemoryStore


def short_term() -> MemoryObject:
    return MemoryObject(MemoryStore(MemoryType.SHORT_TERM))


def sensory() -> MemoryObject:
    return MemoryObject(MemoryStore(MemoryType.SENSORY))


def state(memory: MemoryObject) -> tuple[dict, dict]:
    """The committed state and the visible tree of a memory, to compare before/after."""
    return memory._store.snapshot(), memory.to_dict()


class Colour(enum.Enum):
    RED = "red"


class Point(pydantic.BaseModel):
    x: int


@dataclasses.dataclass
class Pair:
    a: int
    b: int


# -- paths and nesting -------------------------------------------------------------------------


def test_dotted_set_creates_parent_objects() -> None:
    memory = short_term()
    memory.set("a.b.c", 1)

    assert memory.get("a.b.c") == 1
    assert isinstance(memory.get("a"), MemoryObject)
    assert isinstance(memory.get("a.b"), MemoryObject)
    assert memory.is_exist("a")
    assert memory.is_exist("a.b")
    assert memory.get_field_names() == ["a"]
    assert memory.get("a").get_field_names() == ["b"]
    assert memory.get("a.b").get_field_names() == ["c"]
    assert memory.to_dict() == {"a": {"b": {"c": 1}}}


def test_new_object_and_relative_paths_from_nested_object() -> None:
    memory = short_term()
    user = memory.new_object("user")
    assert isinstance(user, MemoryObject)

    user.set("name", "ada")
    user.set("address.city", "London")

    assert memory.get("user.name") == "ada"
    assert memory.get("user.address.city") == "London"
    nested = memory.get("user")
    assert isinstance(nested, MemoryObject)
    assert nested.get("name") == "ada"
    address = nested.get("address")
    assert isinstance(address, MemoryObject)
    assert address.get("city") == "London"
    # A relative path from the nested object does not see root-level fields.
    memory.set("name", "root")
    assert nested.get("name") == "ada"
    assert address.get("name") is None
    assert address.is_exist("city")
    assert not address.is_exist("address")


def test_new_object_below_nested_object() -> None:
    memory = short_term()
    outer = memory.new_object("outer")
    inner = outer.new_object("inner")
    inner.set("v", 5)
    assert memory.get("outer.inner.v") == 5
    assert memory.to_dict() == {"outer": {"inner": {"v": 5}}}


def test_get_missing_path_is_none() -> None:
    memory = short_term()
    memory.set("a.b", 1)
    assert memory.get("missing") is None
    assert memory.get("a.missing") is None
    assert memory.get("a.b.c") is None  # below a value
    assert memory.get("x.y.z") is None


def test_get_missing_does_not_create_anything() -> None:
    memory = short_term()
    memory.get("x.y")
    memory.is_exist("x.y")
    assert memory.get_field_names() == []
    assert not memory.is_exist("x")


def test_is_exist() -> None:
    memory = short_term()
    memory.set("a.b", None)
    memory.new_object("empty")
    assert memory.is_exist("a")
    assert memory.is_exist("a.b")  # a stored None still exists
    assert memory.is_exist("empty")
    assert not memory.is_exist("a.c")
    assert not memory.is_exist("b")


def test_get_field_names_sorted() -> None:
    memory = short_term()
    for name in ["zeta", "alpha", "mid", "Beta"]:
        memory.set(name, 1)
    memory.new_object("obj")
    assert memory.get_field_names() == sorted(["zeta", "alpha", "mid", "Beta", "obj"])


def test_get_fields() -> None:
    memory = short_term()
    memory.set("b", [1, 2])
    memory.set("a", "x")
    memory.set("obj.inner", 3)

    fields = memory.get_fields()
    assert list(fields) == ["a", "b", "obj"]
    assert fields["a"] == "x"
    assert fields["b"] == [1, 2]
    assert fields["obj"] == "NestedObject"  # upstream's marker, in every release
    assert memory.get("obj").get_fields() == {"inner": 3}
    assert memory.to_dict() == {"a": "x", "b": [1, 2], "obj": {"inner": 3}}


def test_set_overwrites_value() -> None:
    memory = short_term()
    memory.set("a", 1)
    memory.set("a", {"k": "v"})
    assert memory.get("a") == {"k": "v"}
    assert memory.get_field_names() == ["a"]


def test_all_allowed_value_types_round_trip() -> None:
    memory = short_term()
    value = {
        "none": None,
        "bool": True,
        "int": 7,
        "float": 1.5,
        "str": "s",
        "bytes": b"\x00\x01",
        "list": [1, [2, {"deep": b"x"}]],
        "dict": {"k": {"k2": [None]}},
    }
    memory.set("v", value)
    assert memory.get("v") == value


# -- new_object / set conflicts ----------------------------------------------------------------


def test_new_object_on_existing_object_raises() -> None:
    memory = short_term()
    memory.new_object("a")
    with pytest.raises(ValueError, match=r"'a'.*overwrite=True"):
        memory.new_object("a")


def test_new_object_on_existing_value_raises() -> None:
    memory = short_term()
    memory.set("a", 1)
    with pytest.raises(ValueError, match=r"'a'.*overwrite=True"):
        memory.new_object("a")
    assert memory.get("a") == 1


def test_new_object_overwrite_drops_old_subtree() -> None:
    memory = short_term()
    memory.set("a.b.c", 1)
    memory.set("a.d", 2)
    memory.set("keep", 3)

    fresh = memory.new_object("a", overwrite=True)

    assert isinstance(fresh, MemoryObject)
    assert fresh.get_field_names() == []
    assert memory.get("a").get_field_names() == []
    assert not memory.is_exist("a.b")
    assert not memory.is_exist("a.b.c")
    assert not memory.is_exist("a.d")
    assert memory.get("a.b.c") is None
    assert memory.get("keep") == 3
    assert memory.get_field_names() == ["a", "keep"]
    # The dropped entries are really gone from the store, not just hidden.
    values, objects = memory._store.snapshot()
    assert set(values) == {"keep"}
    assert objects["a"] == []
    # Writing the old path again starts from scratch.
    memory.set("a.b.x", 9)
    assert memory.to_dict() == {"a": {"b": {"x": 9}}, "keep": 3}


def test_new_object_overwrite_replaces_value() -> None:
    memory = short_term()
    memory.set("a", [1, 2])
    memory.new_object("a", overwrite=True).set("b", 1)
    assert memory.to_dict() == {"a": {"b": 1}}


def test_new_object_overwrite_is_keyword_only() -> None:
    memory = short_term()
    with pytest.raises(TypeError):
        memory.new_object("a", True)  # type: ignore[misc]


def test_set_on_object_path_raises() -> None:
    memory = short_term()
    memory.set("a.b", 1)
    before = state(memory)
    with pytest.raises(ValueError, match=r"'a'.*nested object"):
        memory.set("a", 5)
    assert state(memory) == before
    assert memory.get("a.b") == 1


def test_set_under_value_raises() -> None:
    memory = short_term()
    memory.set("a", 1)
    before = state(memory)
    with pytest.raises(ValueError, match=r"'a\.b'.*'a' holds a value"):
        memory.set("a.b", 2)
    assert state(memory) == before


def test_set_deep_under_value_creates_nothing() -> None:
    memory = short_term()
    memory.set("a", 1)
    before = state(memory)
    with pytest.raises(ValueError, match=r"'a' holds a value"):
        memory.set("a.b.c.d", 2)
    assert state(memory) == before
    assert not memory.is_exist("a.b")
    assert not memory.is_exist("a.b.c")


def test_new_object_under_value_raises() -> None:
    memory = short_term()
    memory.set("a", 1)
    before = state(memory)
    with pytest.raises(ValueError, match=r"'a' holds a value"):
        memory.new_object("a.b")
    assert state(memory) == before


# -- value validation --------------------------------------------------------------------------

BAD_VALUES = [
    pytest.param((1, 2), "tuple", "list(value)", id="tuple"),
    pytest.param({1, 2}, "set", "sorted(value)", id="set"),
    pytest.param(frozenset({1}), "frozenset", "sorted(value)", id="frozenset"),
    pytest.param(datetime.datetime(2024, 1, 2, 3, 4, 5), "datetime", "isoformat()", id="datetime"),
    pytest.param(datetime.date(2024, 1, 2), "date", "isoformat()", id="date"),
    pytest.param(uuid.UUID(int=1), "UUID", "str(value)", id="uuid"),
    pytest.param(decimal.Decimal("1.5"), "Decimal", "str(value)", id="decimal"),
    pytest.param(Point(x=1), "Point", "model_dump()", id="pydantic"),
    pytest.param(Pair(1, 2), "Pair", "dataclasses.asdict(value)", id="dataclass"),
    pytest.param(Colour.RED, "Colour", "value.value", id="enum"),
    pytest.param(bytearray(b"x"), "bytearray", "bytes(value)", id="bytearray"),
    pytest.param(object(), "object", "convert it to", id="object"),
]


@pytest.mark.parametrize(("value", "type_name", "hint"), BAD_VALUES)
def test_bad_value_at_top_level(value: object, type_name: str, hint: str) -> None:
    memory = short_term()
    with pytest.raises(TypeError) as info:
        memory.set("a.b", value)
    message = str(info.value)
    assert "'a.b'" in message
    assert type_name in message
    assert hint in message
    assert memory.get_field_names() == []
    assert not memory.is_exist("a")


@pytest.mark.parametrize(("value", "type_name", "hint"), BAD_VALUES)
def test_bad_value_inside_list_names_index(value: object, type_name: str, hint: str) -> None:
    memory = short_term()
    with pytest.raises(TypeError) as info:
        memory.set("a.b", [0, 1, value])
    message = str(info.value)
    assert "'a.b'[2] " in message  # upstream's breadcrumb
    assert type_name in message
    assert hint in message
    assert not memory.is_exist("a")


@pytest.mark.parametrize(("value", "type_name", "hint"), BAD_VALUES)
def test_bad_value_inside_dict_names_key(value: object, type_name: str, hint: str) -> None:
    memory = short_term()
    with pytest.raises(TypeError) as info:
        memory.set("a", {"ok": 1, "inner": {"bad": value}})
    message = str(info.value)
    assert "'a'['inner']['bad'] " in message  # upstream's breadcrumb
    assert type_name in message
    assert hint in message
    assert not memory.is_exist("a")


def test_bad_value_deep_in_mixed_nesting_names_full_path() -> None:
    memory = short_term()
    with pytest.raises(TypeError, match=r"'x\.y'\[1\]\['z'\]\[0\] .*tuple"):
        memory.set("x.y", [{}, {"z": [(1,)]}])


def test_type_error_names_qualified_type() -> None:
    memory = short_term()
    with pytest.raises(TypeError, match=r"datetime\.datetime"):
        memory.set("t", datetime.datetime.now())
    with pytest.raises(TypeError, match=r"uuid\.UUID"):
        memory.set("t", uuid.uuid4())


@pytest.mark.parametrize("key", [1, 1.5, None, ("t",), b"bytes"])
def test_dict_with_non_str_key(key: object) -> None:
    memory = short_term()
    with pytest.raises(TypeError) as info:
        memory.set("a.b", {"fine": {key: 1}})
    message = str(info.value)
    assert "'a.b'['fine'] has a non-str key" in message
    assert type(key).__name__ in message
    assert "str(key)" in message
    assert not memory.is_exist("a")


def test_subclasses_of_allowed_types_are_rejected() -> None:
    class MyList(list):
        pass

    class MyDict(dict):
        pass

    memory = short_term()
    with pytest.raises(TypeError, match="MyList"):
        memory.set("a", MyList([1]))
    with pytest.raises(TypeError, match="MyDict"):
        memory.set("a", MyDict(k=1))
    assert memory.get_field_names() == []


def test_rejected_set_changes_nothing() -> None:
    memory = short_term()
    memory.set("a.b", 1)
    memory.set("a.c", [1, 2])
    before = state(memory)

    with pytest.raises(TypeError):
        memory.set("a.b", (1, 2))  # would overwrite
    with pytest.raises(TypeError):
        memory.set("a.new.deep", {1: 2})  # would create parents a.new
    with pytest.raises(TypeError):
        memory.set("fresh.x.y", [1, {2}])  # would create fresh, fresh.x

    assert state(memory) == before
    assert memory.get("a.b") == 1
    assert not memory.is_exist("a.new")
    assert not memory.is_exist("fresh")
    assert memory.get("a").get_field_names() == ["b", "c"]


def test_rejected_set_inside_transaction_changes_nothing_after_commit() -> None:
    memory = short_term()
    memory.set("a", 1)
    store = memory._store
    store.begin()
    with pytest.raises(TypeError):
        memory.set("p.q", (1,))
    delta = store.commit()
    assert delta == {}
    assert memory.to_dict() == {"a": 1}


# -- copies ------------------------------------------------------------------------------------


def test_value_is_copied_on_set() -> None:
    memory = short_term()
    original = [1, {"k": [2]}]
    memory.set("v", original)
    original.append(3)
    original[1]["k"].append(99)
    original[1]["new"] = 1
    assert memory.get("v") == [1, {"k": [2]}]


def test_value_is_copied_on_get() -> None:
    memory = short_term()
    memory.set("v", {"list": [1, 2], "d": {"x": 1}})
    got = memory.get("v")
    got["list"].append(3)
    got["d"]["x"] = 2
    got["extra"] = True
    assert memory.get("v") == {"list": [1, 2], "d": {"x": 1}}


def test_get_fields_and_to_dict_are_copies() -> None:
    memory = short_term()
    memory.set("v", [1])
    memory.set("o.w", [2])
    memory.get_fields()["v"].append(9)
    memory.to_dict()["o"]["w"].append(9)
    assert memory.get("v") == [1]
    assert memory.get("o.w") == [2]


# -- bad paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a.", "."])
@pytest.mark.parametrize("operation", ["get", "set", "new_object", "is_exist"])
def test_bad_path_raises_value_error(path: str, operation: str) -> None:
    memory = short_term()
    call = {
        "get": lambda: memory.get(path),
        "set": lambda: memory.set(path, 1),
        "new_object": lambda: memory.new_object(path),
        "is_exist": lambda: memory.is_exist(path),
    }[operation]
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert repr(path) in message
    assert operation in message
    assert "dot-separated" in message
    assert memory.get_field_names() == []


@pytest.mark.parametrize("path", [1, None, b"a", ["a"]])
def test_non_str_path_raises_type_error(path: object) -> None:
    memory = short_term()
    with pytest.raises(TypeError, match=type(path).__name__):
        memory.get(path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=type(path).__name__):
        memory.set(path, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=type(path).__name__):
        memory.is_exist(path)  # type: ignore[arg-type]
    assert memory.get_field_names() == []


def test_bad_relative_path_from_nested_object() -> None:
    memory = short_term()
    nested = memory.new_object("n")
    with pytest.raises(ValueError):
        nested.set("", 1)
    with pytest.raises(ValueError):
        nested.set(".x", 1)
    assert memory.to_dict() == {"n": {}}


# -- MemoryRef ---------------------------------------------------------------------------------


def test_memory_type_members_are_strings() -> None:
    assert MemoryType.SENSORY == "sensory"
    assert MemoryType.SHORT_TERM == "short_term"
    assert isinstance(MemoryType.SENSORY, str)


def test_memory_ref_create_equality_and_hash() -> None:
    a = MemoryRef.create(MemoryType.SENSORY, "x.y")
    b = MemoryRef.create("sensory", "x.y")
    c = MemoryRef(memory_type=MemoryType.SENSORY, path="x.y")
    assert a == b == c
    assert hash(a) == hash(b) == hash(c)
    assert len({a, b, c}) == 1
    assert a.memory_type is MemoryType.SENSORY
    assert a.path == "x.y"
    assert MemoryRef.create("short_term", "x.y") != a
    assert MemoryRef.create("sensory", "x.z") != a


def test_memory_ref_defaults_to_short_term() -> None:
    ref = MemoryRef(path="a.b")
    assert ref.memory_type == MemoryType.SHORT_TERM
    assert ref == MemoryRef.create(MemoryType.SHORT_TERM, "a.b")


def test_memory_ref_is_frozen() -> None:
    ref = MemoryRef.create("sensory", "a")
    with pytest.raises(pydantic.ValidationError):
        ref.path = "b"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        ref.memory_type = MemoryType.SHORT_TERM  # type: ignore[misc]
    assert ref.path == "a"


def test_memory_ref_rejects_unknown_memory_type() -> None:
    with pytest.raises(ValueError):
        MemoryRef.create("long_term", "a")


def test_memory_ref_json_round_trip() -> None:
    ref = MemoryRef.create("sensory", "a.b")
    assert MemoryRef.model_validate_json(ref.model_dump_json()) == ref


def test_set_returns_ref_with_absolute_path() -> None:
    memory = short_term()
    ref = memory.set("a.b", 1)
    assert ref == MemoryRef.create(MemoryType.SHORT_TERM, "a.b")
    nested = memory.new_object("outer").new_object("inner")
    nested_ref = nested.set("leaf", 2)
    assert nested_ref.path == "outer.inner.leaf"
    assert nested_ref.memory_type == MemoryType.SHORT_TERM
    assert sensory().set("s", 1).memory_type == MemoryType.SENSORY


def test_get_by_ref_from_nested_object_resolves_absolute_path() -> None:
    memory = short_term()
    ref = memory.set("top.value", "T")
    memory.set("n.top.value", "relative")
    nested = memory.get("n")
    assert nested.get("top.value") == "relative"
    assert nested.get(ref) == "T"
    assert memory.get(ref) == "T"


def test_get_by_ref_to_object_and_missing() -> None:
    memory = short_term()
    memory.set("o.x", 1)
    got = memory.get(MemoryRef(path="o"))
    assert isinstance(got, MemoryObject)
    assert got.get("x") == 1
    assert memory.get(MemoryRef(path="missing.path")) is None


def test_get_by_ref_of_wrong_memory_type_raises() -> None:
    memory = short_term()
    memory.set("a", 1)
    wrong = MemoryRef.create(MemoryType.SENSORY, "a")
    with pytest.raises(ValueError, match="sensory"):
        memory.get(wrong)
    sense = sensory()
    with pytest.raises(ValueError, match="short_term"):
        sense.get(MemoryRef(path="a"))


def test_get_by_ref_with_bad_path_raises() -> None:
    memory = short_term()
    with pytest.raises(ValueError, match="dot-separated"):
        memory.get(MemoryRef(path="a..b"))


# -- transactions ------------------------------------------------------------------------------


def test_rollback_restores_exactly() -> None:
    memory = short_term()
    memory.set("a.b", 1)
    memory.set("a.c", [1, 2])
    memory.set("z", "keep")
    store = memory._store
    before = state(memory)

    store.begin()
    memory.set("a.b", 2)
    memory.set("a.new.deep", 3)
    memory.set("brand.new", {"k": 1})
    memory.new_object("a.c", overwrite=True).set("x", 1)
    memory.new_object("z", overwrite=True)
    # Reads inside the transaction see the writes.
    assert memory.get("a.b") == 2
    assert memory.get("a.new.deep") == 3
    assert memory.get("a.c.x") == 1
    assert isinstance(memory.get("z"), MemoryObject)
    assert memory.get_field_names() == ["a", "brand", "z"]
    store.rollback()

    assert state(memory) == before
    assert memory.get("a.b") == 1
    assert memory.get("a.c") == [1, 2]
    assert memory.get("z") == "keep"
    assert not memory.is_exist("brand")
    assert not memory.is_exist("a.new")
    assert memory.get("a").get_field_names() == ["b", "c"]


def test_rollback_of_overwrite_restores_subtree() -> None:
    memory = short_term()
    memory.set("a.b.c", 1)
    memory.set("a.d", 2)
    before = state(memory)
    store = memory._store
    store.begin()
    memory.new_object("a", overwrite=True)
    assert not memory.is_exist("a.b.c")
    store.rollback()
    assert state(memory) == before
    assert memory.get("a.b.c") == 1


def test_commit_returns_delta_and_keeps_values() -> None:
    memory = short_term()
    memory.set("old", 0)
    store = memory._store
    store.begin()
    memory.set("a.b", 1)
    memory.set("old", 5)
    delta = store.commit()

    assert delta["a.b"] == 1
    assert delta["old"] == 5
    assert "a" in delta  # the created parent object is part of the delta
    assert "" in delta  # and so is the root, which gained a child
    assert memory.get("a.b") == 1
    assert memory.get("old") == 5
    assert memory.to_dict() == {"a": {"b": 1}, "old": 5}

    # After commit, a new transaction rolled back keeps the committed state.
    store.begin()
    memory.set("a.b", 2)
    store.rollback()
    assert memory.get("a.b") == 1


def test_commit_delta_marks_deleted_paths() -> None:
    memory = short_term()
    memory.set("a.b", 1)
    memory.set("a.c.d", 2)
    store = memory._store
    store.begin()
    memory.new_object("a", overwrite=True)
    delta = store.commit()
    assert delta["a.b"] is DELETED
    assert delta["a.c"] is DELETED
    assert delta["a.c.d"] is DELETED
    assert "a" in delta and delta["a"] is not DELETED
    values, objects = store.snapshot()
    assert values == {}
    assert objects["a"] == []


def test_commit_without_writes_is_empty_delta() -> None:
    memory = short_term()
    memory.set("a", 1)
    store = memory._store
    store.begin()
    assert memory.get("a") == 1
    assert store.commit() == {}
    assert memory.get("a") == 1


def test_snapshot_excludes_open_transaction() -> None:
    memory = short_term()
    memory.set("a", 1)
    store = memory._store
    committed = store.snapshot()
    store.begin()
    memory.set("b", 2)
    memory.set("a", 3)
    assert store.snapshot() == committed
    store.commit()
    values, _ = store.snapshot()
    assert values == {"a": 3, "b": 2}


def test_snapshot_round_trip() -> None:
    memory = short_term()
    memory.set("a.b", [1, {"x": b"y"}])
    memory.set("a.c", None)
    memory.new_object("empty")
    memory.set("z", "z")
    values, objects = memory._store.snapshot()

    restored = MemoryObject(MemoryStore.from_snapshot(MemoryType.SHORT_TERM, values, objects))

    assert restored.to_dict() == memory.to_dict()
    assert restored._store.snapshot() == (values, objects)
    assert restored.get_field_names() == ["a", "empty", "z"]
    assert isinstance(restored.get("empty"), MemoryObject)
    assert restored.memory_type == MemoryType.SHORT_TERM
    # The restored store keeps working and is independent of the original.
    restored.set("a.b", 2)
    assert memory.get("a.b") == [1, {"x": b"y"}]


def test_from_snapshot_of_empty_memory() -> None:
    values, objects = short_term()._store.snapshot()
    restored = MemoryObject(MemoryStore.from_snapshot(MemoryType.SENSORY, values, objects))
    assert restored.get_field_names() == []
    restored.set("a", 1)
    assert restored.get("a") == 1
    restored2 = MemoryObject(MemoryStore.from_snapshot(MemoryType.SENSORY, {}, {}))
    restored2.set("x.y", 1)
    assert restored2.to_dict() == {"x": {"y": 1}}


def test_commit_delta_keeps_a_none_value_apart_from_a_deletion() -> None:
    memory = short_term()
    store = memory._store
    store.begin()
    memory.set("maybe", None)
    delta = store.commit()
    assert delta["maybe"] is None
    restored = MemoryStore(MemoryType.SHORT_TERM)
    from flink_agents_async.memory import split_delta

    restored.apply_delta(*split_delta(delta))
    assert restored.exists("maybe") and restored.get("maybe") is None
