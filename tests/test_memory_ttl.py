"""Short-term memory TTL on ``MemoryStore`` with an injected clock (no real time passes)."""

from __future__ import annotations

import pytest

from flink_agents_async import MemoryObject, MemoryType
from flink_agents_async.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ttl_memory(seconds: float, refresh_on_read: bool) -> tuple[MemoryStore, MemoryObject, Clock]:
    clock = Clock()
    store = MemoryStore(MemoryType.SHORT_TERM)
    store.expire_after(seconds, refresh_on_read=refresh_on_read, clock=clock)
    return store, MemoryObject(store), clock


def absent(memory: MemoryObject, path: str) -> bool:
    return memory.get(path) is None and not memory.is_exist(path)


def test_value_expires_after_the_ttl() -> None:
    _, memory, clock = ttl_memory(10, refresh_on_read=False)
    memory.set("a", {"n": [1, 2]})
    memory.set("b", "kept")
    clock.now = 9.9
    assert memory.get("a") == {"n": [1, 2]}
    assert memory.is_exist("a")
    memory.set("b", "rewritten")
    clock.now = 10.1
    assert absent(memory, "a")
    assert memory.get_field_names() == ["b"]
    assert memory.get_fields() == {"b": "rewritten"}
    clock.now = 20.0
    assert absent(memory, "b")
    assert memory.get_field_names() == []
    assert memory.get_fields() == {}


def test_write_refreshes_the_ttl() -> None:
    _, memory, clock = ttl_memory(10, refresh_on_read=False)
    memory.set("a", 1)
    clock.now = 8
    memory.set("a", 2)
    clock.now = 15  # 15 s after creation, 7 s after the last write
    assert memory.get("a") == 2
    clock.now = 18.5
    assert absent(memory, "a")


def test_reads_do_not_refresh_without_refresh_on_read() -> None:
    _, memory, clock = ttl_memory(10, refresh_on_read=False)
    memory.set("a", 1)
    for now in (3, 6, 9):
        clock.now = now
        assert memory.get("a") == 1
        assert memory.is_exist("a")
        assert memory.get_fields() == {"a": 1}
    clock.now = 10.5
    assert absent(memory, "a")


def test_reads_refresh_with_refresh_on_read() -> None:
    _, memory, clock = ttl_memory(10, refresh_on_read=True)
    memory.set("a", 1)
    for now in (8, 16, 24, 32):
        clock.now = now
        assert memory.get("a") == 1
    clock.now = 42.5  # 10.5 s after the last read
    assert absent(memory, "a")


def test_values_in_nested_objects_expire_and_the_objects_stay() -> None:
    _, memory, clock = ttl_memory(10, refresh_on_read=False)
    profile = memory.new_object("profile")
    profile.set("name", "ada")
    profile.new_object("address").set("city", "Berlin")
    clock.now = 5
    profile.set("visits", 3)
    clock.now = 12
    assert memory.is_exist("profile")
    assert absent(memory, "profile.name")
    assert absent(memory, "profile.address.city")
    assert memory.get("profile.visits") == 3
    assert memory.get("profile").get_field_names() == ["address", "visits"]
    assert memory.get("profile.address").get_field_names() == []


def test_snapshot_leaves_out_expired_values() -> None:
    store, memory, clock = ttl_memory(10, refresh_on_read=False)
    memory.set("old", 1)
    clock.now = 6
    memory.set("new", 2)
    clock.now = 11
    values, _ = store.snapshot()
    assert values == {"new": 2}


def test_stamps_given_to_expire_after_are_honoured() -> None:
    store, memory, clock = ttl_memory(10, refresh_on_read=False)
    memory.set("a", 1)
    clock.now = 4
    memory.set("b", 2)
    values, objects = store.snapshot()
    stamps = store.stamps()
    assert stamps == {"a": 0, "b": 4}
    restored = MemoryStore.from_snapshot(MemoryType.SHORT_TERM, values, objects)
    restored.expire_after(10, refresh_on_read=False, clock=clock, stamps=stamps)
    view = MemoryObject(restored)
    clock.now = 12
    assert absent(view, "a")
    assert view.get("b") == 2


def test_expired_path_can_be_written_again() -> None:
    _, memory, clock = ttl_memory(10, refresh_on_read=False)
    memory.set("a", 1)
    clock.now = 11
    assert absent(memory, "a")
    memory.set("a", 2)
    assert memory.get("a") == 2
    clock.now = 20
    assert memory.get("a") == 2


def test_expired_value_does_not_block_an_object_at_its_path() -> None:
    """An expired value is absent (``is_exist`` is False), so an object can be made there and
    a nested path written through it, as for any absent path."""
    _, memory, clock = ttl_memory(10, refresh_on_read=False)
    memory.set("a", 1)
    memory.set("b", 1)
    clock.now = 11
    assert absent(memory, "a") and absent(memory, "b")
    created = memory.new_object("a")
    created.set("x", 1)
    assert memory.get("a.x") == 1
    memory.set("b.c", 2)
    assert memory.get("b.c") == 2


def test_rolled_back_write_does_not_refresh_the_ttl() -> None:
    """A failed run leaves the key as before it, TTL included: a write that was rolled back
    must not keep the committed value alive."""
    store, memory, clock = ttl_memory(10, refresh_on_read=False)
    store.begin()
    memory.set("a", 1)
    store.commit()
    clock.now = 8
    store.begin()
    memory.set("a", 2)
    store.rollback()
    assert memory.get("a") == 1
    clock.now = 12  # 12 s after the only committed write
    assert absent(memory, "a")


def test_no_ttl_keeps_values() -> None:
    store = MemoryStore(MemoryType.SHORT_TERM)
    memory = MemoryObject(store)
    memory.set("a", 1)
    assert store.stamps() == {}
    assert memory.get("a") == 1


@pytest.mark.parametrize("refresh_on_read", [False, True])
def test_expire_after_keeps_earlier_stamps(refresh_on_read: bool) -> None:
    store, memory, clock = ttl_memory(10, refresh_on_read=False)
    memory.set("a", 1)
    store.expire_after(5, refresh_on_read=refresh_on_read, clock=clock)
    clock.now = 6
    assert absent(memory, "a")
