"""Input items of the local environment: ``{"key"|"k": ..., "value"|"v": ...}`` dicts.

A list source is checked as a whole before anything runs, so a malformed item never leaves half a
batch done; an open-ended iterable is checked item by item as it is read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Hashable, Iterable, Mapping
from typing import Any

from ..errors import InputError
from ..keys import check_key
from ..logging import library_logger

__all__ = ["CheckedInput", "InputReader"]

logger = library_logger()

_KEY_FIELDS = ("key", "k")
_VALUE_FIELDS = ("value", "v")
_KNOWN_FIELDS = frozenset(_KEY_FIELDS + _VALUE_FIELDS)
_PLAIN_KEY_TYPES = frozenset({str, int})

CheckedInput = tuple[int, Hashable, Any, Hashable | None]
"""A checked input item: (index in the source, key, value, the key as given or None)."""
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

    def normalize(self, item: Any, index: int) -> CheckedInput:
        """The (index, key, value, given key) of one input item; a missing (or None) key gets
        a fresh uuid4 (and a given key of None)."""
        if type(item) is dict and len(item) == 2 and "key" in item and "value" in item:
            key = item["key"]  # the common shape, checked without the general path below
            if key is not None and type(key) in _PLAIN_KEY_TYPES:
                return index, key, item["value"], key
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
        _, given = _one_of(item, _KEY_FIELDS, index)
        key = given
        if key is None:
            key = uuid.uuid4()
        else:
            check_key(key, f"input item {index}")
        unknown = [str(name) for name in item if name not in _KNOWN_FIELDS]
        if unknown:
            self._warn_unknown_fields(unknown, index)
        return index, key, value, given

    def _warn_unknown_fields(self, fields: list[str], index: int) -> None:
        new = [name for name in fields if name not in self._warned_fields]
        if new:
            self._warned_fields.update(new)
            logger.warning(
                "input fields other than key/k and value/v are ignored",
                fields=sorted(new),
                first_index=index,
            )

    async def validate_list(self, items: list[Any]) -> list[CheckedInput]:
        """Check every item of a list before any runs.

        Yields to the loop between chunks, so that a huge batch does not freeze the program
        while it is being checked.
        """
        checked = []
        for index, item in enumerate(items):
            checked.append(self.normalize(item, index))
            if index % _CHECK_CHUNK == _CHECK_CHUNK - 1:
                await asyncio.sleep(0)
        return checked

    async def read(self, source: Any) -> AsyncIterator[CheckedInput]:
        """Each item of a list (checked as a whole first), iterable or async iterable."""
        if isinstance(source, list | tuple):
            for checked in await self.validate_list(list(source)):
                yield checked
            return
        if isinstance(source, AsyncIterable):
            index = 0
            async for item in source:
                yield self.normalize(item, index)
                index += 1
            return
        if isinstance(source, Iterable):
            for index, item in enumerate(source):
                yield self.normalize(item, index)
            return
        raise InputError(
            f"inputs must be a list, an iterable or an async iterable of dicts, got "
            f"{type(source).__name__}"
        )
