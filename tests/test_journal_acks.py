"""Durability acknowledgements: callbacks run in commit order, so outputs are released in it."""

from __future__ import annotations

import asyncio
import threading

from flink_agents_async.journal.store import DurabilityTracker


async def test_a_group_made_durable_before_earlier_callbacks_ran_waits_behind_them() -> None:
    loop = asyncio.get_running_loop()
    tracker = DurabilityTracker()
    tracker.bind_loop(loop)
    released: list[int] = []
    tracker.when_durable(1, lambda error: released.append(1))
    # The writer thread makes groups 1 and 2 durable; group 1's callback now waits for the
    # loop notification that this schedules, when the run of group 2 commits.
    writer = threading.Thread(target=tracker.mark_durable, args=(2,))
    writer.start()
    writer.join()
    last = loop.create_future()
    tracker.when_durable(2, lambda error: (released.append(2), last.set_result(None)))
    assert released == []  # not ahead of group 1
    await asyncio.wait_for(last, 5.0)
    assert released == [1, 2]


async def test_a_durable_group_with_nothing_waiting_is_acknowledged_at_once() -> None:
    tracker = DurabilityTracker()
    tracker.bind_loop(asyncio.get_running_loop())
    tracker.mark_durable(3)
    released: list[int] = []
    tracker.when_durable(3, lambda error: released.append(3))
    assert released == [3]


async def test_a_failed_store_fails_the_waiting_callbacks_in_order() -> None:
    loop = asyncio.get_running_loop()
    tracker = DurabilityTracker()
    tracker.bind_loop(loop)
    seen: list[tuple[int, str]] = []
    last = loop.create_future()
    tracker.when_durable(1, lambda error: seen.append((1, str(error))))
    tracker.when_durable(2, lambda error: (seen.append((2, str(error))), last.set_result(None)))
    writer = threading.Thread(target=tracker.mark_failed, args=(OSError("disk full"),))
    writer.start()
    writer.join()
    await asyncio.wait_for(last, 5.0)
    assert seen == [(1, "disk full"), (2, "disk full")]
