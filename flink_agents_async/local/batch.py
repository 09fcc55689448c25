"""Feeding a batch job (``from_list`` / ``from_iterable``) into the actor system, resumably.

An input of a batch is identified by its position in the source plus the digest of the item.
Against a journal left by an earlier, interrupted run of the same job:

* a committed (or failed-for-good) position is not run again; its outputs are already in the
  recovered journal;
* an accepted but uncommitted position runs again under its journaled key, replaying the
  durable calls recorded for it;
* a new position is journaled (accepted) and runs.

A journal that belongs to other input (a digest differs, or it knows more positions than a list
has) is refused before anything runs when the source is a list, and before the offending item
otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ..errors import JournalError, JournalWriteError
from ..host_api import INPUT_ACCEPTED, ActorSystem, OutputHub, RecoveredJournal, item_digest
from .inputs import CheckedInput, InputReader

__all__ = ["feed_batch"]

# Inputs dispatched between two yields to the loop, so that a batch of runs that never await
# cannot starve the other tasks of the program (an outputs() consumer, a web server).
_YIELD_EVERY = 64


async def feed_batch(
    system: ActorSystem,
    source: Any,
    reader: InputReader,
    recovered: RecoveredJournal,
    outputs: OutputHub | None = None,
) -> None:
    """Dispatch every input of ``source`` that still has to run, in source order (waiting
    while an ``outputs()`` reader that asked for backpressure is full; stopping if the
    journal fails)."""
    journal = system.journal
    if isinstance(source, list | tuple):
        checked = await reader.validate_list(list(source))
        identified = [_identify(system, item) for item in checked]
        _check_known_positions(system, recovered, len(identified))
        for index, _, _, item in identified:
            _check_digest(system, recovered, index, item)
        items: Any = _from_list(identified)
    else:
        items = _CountingItems(system, reader.read(source))
    dispatched = 0
    async for index, key, value, item in items:
        if system.broken is not None:
            return  # the job raises the journal's error; what was accepted stays journaled
        if outputs is not None and not outputs.has_room():
            await outputs.wait_for_room()
        entry = recovered.inputs.get(index)
        if entry is not None:
            _check_digest(system, recovered, index, item)
            if entry.record.status != INPUT_ACCEPTED:
                continue  # committed (or failed for good) before the restart
            await system.dispatch(entry.key, value, index, calls=entry.calls)
        else:
            if journal.recording:
                try:
                    journal.accept(index, system.actor(key).key_bytes, item)
                except JournalWriteError as error:
                    system.journal_failed(error)
                    return
            await system.dispatch(key, value, index)
        dispatched += 1
        if dispatched % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
    if isinstance(items, _CountingItems):
        _check_known_positions(system, recovered, items.count)


def _identify(system: ActorSystem, checked: CheckedInput) -> tuple[int, Any, Any, bytes]:
    index, key, value, given_key = checked
    item = system.journal.encode_item(given_key, value, index)
    return index, key, value, item


async def _from_list(
    identified: list[tuple[int, Any, Any, bytes]],
) -> AsyncIterator[tuple[int, Any, Any, bytes]]:
    for entry in identified:
        yield entry


class _CountingItems:
    """Identifies the items of an open-ended source as they come, counting them."""

    def __init__(self, system: ActorSystem, items: AsyncIterator[CheckedInput]) -> None:
        self._system = system
        self._items = items
        self.count = 0

    def __aiter__(self) -> _CountingItems:
        return self

    async def __anext__(self) -> tuple[int, Any, Any, bytes]:
        checked = await self._items.__anext__()
        self.count += 1
        return _identify(self._system, checked)


def _check_digest(
    system: ActorSystem, recovered: RecoveredJournal, index: int, item: bytes
) -> None:
    entry = recovered.inputs.get(index)
    if entry is not None and entry.record.digest != item_digest(item):
        raise JournalError(
            f"{system.journal.store.describe()} belongs to different input: item {index} of "
            "this job differs from the item journaled at that position. Use another journal "
            "directory for this input (or delete the old journal to start over)"
        )


def _check_known_positions(
    system: ActorSystem, recovered: RecoveredJournal, source_length: int
) -> None:
    beyond = [seq for seq in recovered.inputs if seq >= source_length]
    if beyond:
        raise JournalError(
            f"{system.journal.store.describe()} holds input item {max(beyond)}, but this job's "
            f"source has only "
            f"{source_length} items: it belongs to different input. Use another journal "
            "directory for this input (or delete the old journal to start over)"
        )
