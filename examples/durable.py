"""Durable execution: a batch job that survives a crash without repeating its side effects.

    python examples/durable.py --crash-after 3   # dies (like kill -9) while charging order 3
    python examples/durable.py                   # resumes: orders 0-2 are not charged again

Each order is charged through ``ctx.durable_execute_async`` with a reconciler, and the receipt is
mailed with ``ctx.durable_execute``. Both are journaled in ``--journal`` (SQLite). After the
crash, the second run replays what the journal recorded: committed orders are not run again,
the order that was mid-charge is settled by the reconciler (which checks the payment ledger)
instead of being charged twice. ``payments.txt`` ends with every order exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
)

PAYMENTS = Path("payments.txt")
CRASH_AFTER = -1  # set by --crash-after


def charge(order_id: str, amount: float) -> str:
    """The payment provider: not idempotent; charging twice takes the money twice."""
    with PAYMENTS.open("a") as ledger:
        ledger.write(f"{order_id} {amount}\n")
        ledger.flush()
        os.fsync(ledger.fileno())
    if order_id == f"order-{CRASH_AFTER}":
        os._exit(137)  # the process dies right after the money moved
    return f"charged {order_id}"


def already_charged(order_id: str) -> str | None:
    """What the reconciler asks the provider: did this charge go through?"""
    if PAYMENTS.exists() and any(
        line.split()[0] == order_id for line in PAYMENTS.read_text().splitlines()
    ):
        return f"charged {order_id} (found on reconcile)"
    return None


def mail_receipt(order_id: str) -> str:
    return f"receipt for {order_id}"


class CheckoutAgent(Agent):
    @action(InputEvent)
    @staticmethod
    async def checkout(event: InputEvent, ctx: RunnerContext) -> None:
        order = event.input
        order_id = order["id"]

        def reconcile() -> str:
            return already_charged(order_id) or charge(order_id, order["amount"])

        payment = await ctx.durable_execute_async(
            charge, order_id, order["amount"], reconciler=reconcile
        )
        receipt = ctx.durable_execute(mail_receipt, order_id)
        orders = (ctx.short_term_memory.get("orders") or 0) + 1
        ctx.short_term_memory.set("orders", orders)
        ctx.send_event(OutputEvent(output=f"{payment}; {receipt}; order #{orders} of customer"))


async def main(journal: Path) -> None:
    orders = [
        {"key": f"customer-{n % 2}", "value": {"id": f"order-{n}", "amount": 10.0 + n}}
        for n in range(6)
    ]
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=journal)
    outputs = env.from_list(orders).apply(CheckoutAgent()).to_list()
    await env.execute()
    for entry in outputs:
        for key, output in entry.items():
            print(f"{key}: {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journal", type=Path, default=Path("journal-demo"))
    parser.add_argument("--crash-after", type=int, default=-1)
    arguments = parser.parse_args()
    CRASH_AFTER = arguments.crash_after
    asyncio.run(main(arguments.journal))
