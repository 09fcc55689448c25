"""Input items of the local environment: ``{"key"|"k": ..., "value"|"v": ...}`` dicts.

A list source is checked as a whole before anything runs, so a malformed item never leaves half a
batch done; an open-ended iterable is checked item by item as it is read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Hashable, Iterable, Mapping
from typing import Any

import structlog

from ..errors import InputError

__all__ = ["InputReader"]

logger = structlog.get_logger("flink_agents_async")

_KEY_FIELDS = ("key", "k")
_VALUE_FIELDS = ("value", "v")
_KNOWN_FIELDS = frozenset(_KEY_FIELDS + _VALUE_FIELDS)
_PLAIN_KEY_TYPES = frozenset({str, int})
_CHECK_CHUNK = 1024


def _one_of(item: Mapping[str, Any], names: tuple[str, str], index: int) -> tuple[bool, Any]:
    present = [name for name in names if name in item]
    if len(present) > 1:
        raise InputError(
            f"input item {index} has both {names[0]!r} and {names[1]!r}; give only one of them"
        )
    return (True, item[present[0]]) if present else (False, None)


class InputReader:
    """Reads the input items of one environment; warns once per unknown field name."""

    def __init__(self) -> None:
        self._warned_fields: set[str] = set()

    def normalize(self, item: Any, index: int) -> tuple[Hashable, Any]:
        """The (key, value) of one input item; a missing (or None) key gets a fresh uuid4."""
        if type(item) is dict and len(item) == 2 and "key" in item and "value" in item:
            key = item["key"]  # the common shape, checked without the general path below
            if key is not None and type(key) in _PLAIN_KEY_TYPES:
                return key, item["value"]
        if not isinstance(item, Mapping):
            raise InputError(
                f"input item {index} is a {type(item).__name__}, not a dict: every input must "
                f"look like {{'key': ..., 'value': ...}} (got {item!r:.200})"
            )
        has_value, value = _one_of(item, _VALUE_FIELDS, index)
        if not has_value:
            raise InputError(
                f"input item {index} has no 'value' (or 'v') field: got fields "
                f"{sorted(map(str, item))}"
            )
        _, key = _one_of(item, _KEY_FIELDS, index)
        if key is None:
            key = uuid.uuid4()
        else:
            try:
                hash(key)
            except TypeError:
                raise InputError(
                    f"input item {index} has key {key!r:.200} of type {type(key).__name__}, "
                    "which cannot be a key because it is not hashable; use a str, int or tuple"
                ) from None
        unknown = [str(name) for name in item if name not in _KNOWN_FIELDS]
        if unknown:
            self._warn_unknown_fields(unknown, index)
        return key, value

    def _warn_unknown_fields(self, fields: list[str], index: int) -> None:
        new = [name for name in fields if name not in self._warned_fields]
        if new:
            self._warned_fields.update(new)
            logger.warning(
                "input fields other than key/k and value/v are ignored",
                fields=sorted(new),
                first_index=index,
            )

    async def validate_list(self, items: list[Any]) -> list[tuple[int, Hashable, Any]]:
        """Check every item of a list before any runs; returns (index, key, value) triples.

        Yields to the loop between chunks, so that a huge batch does not freeze the program
        while it is being checked.
        """
        checked = []
        for index, item in enumerate(items):
            key, value = self.normalize(item, index)
            checked.append((index, key, value))
            if index % _CHECK_CHUNK == _CHECK_CHUNK - 1:
                await asyncio.sleep(0)
        return checked

    async def read(self, source: Any) -> AsyncIterator[tuple[int, Hashable, Any]]:
        """(index, key, value) for each item of a list, iterable or async iterable."""
        if isinstance(source, list | tuple):
            for triple in await self.validate_list(list(source)):
                yield triple
            return
        if isinstance(source, AsyncIterable):
            index = 0
            async for item in source:
                key, value = self.normalize(item, index)
                yield index, key, value
                index += 1
            return
        if isinstance(source, Iterable):
            for index, item in enumerate(source):
                key, value = self.normalize(item, index)
                yield index, key, value
            return
        raise InputError(
            f"inputs must be a list, an iterable or an async iterable of dicts, got "
            f"{type(source).__name__}"
        )
