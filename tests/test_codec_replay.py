"""Values and exceptions of durable calls, replayed after a crash: the action sees exactly what
the first attempt saw (same types, same attributes), and the function is not called again."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import subprocess
import sys
import types
import zoneinfo
from collections import Counter, OrderedDict, defaultdict, namedtuple
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from journal_helpers import crash_job, make_store, run_job

from flink_agents_async import Agent, InputEvent, OutputEvent, ReplayedError, RunnerContext

STORES = ["memory", "sqlite"]
INPUTS = [{"key": "a", "value": 1}]

Pair = namedtuple("Pair", "left right")


class Span(NamedTuple):
    start: int
    end: int = 0


class PaymentError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__("payment failed")
        self.code = code


class Declined(Exception):
    """An exception whose message is made from its attributes."""

    def __init__(self, card: str, reason: str) -> None:
        super().__init__()
        self.card = card
        self.reason = reason

    def __str__(self) -> str:
        return f"card {self.card} declined: {self.reason}"


def crash_once_agent(
    function: Callable[[], Any], describe: Callable[[Any], Any], stop: dict[str, bool]
) -> tuple[Agent, asyncio.Event]:
    """An agent whose action makes one durable call of ``function`` and outputs ``describe``
    of its result or exception; while ``stop["now"]``, it stops (like a crash) after the call
    was recorded."""
    crashed = asyncio.Event()

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        try:
            seen = describe(await ctx.durable_execute_async(function))
        except Exception as error:
            seen = describe(error)
        if stop["now"]:
            crashed.set()
            await asyncio.Event().wait()  # never finishes: the job is stopped here
        ctx.send_event(OutputEvent(output=seen))

    return Agent().add_action("act", [InputEvent], act), crashed


async def replayed_output(
    kind: str, tmp_path: Path, function: Callable[[], Any], describe: Callable[[Any], Any]
) -> Any:
    """What the action outputs when its recorded call is replayed after a crash."""
    store = make_store(kind, tmp_path)
    stop = {"now": True}
    agent, crashed = crash_once_agent(function, describe, stop)
    assert await crash_job(store(), agent, INPUTS, crashed) == []
    stop["now"] = False
    outputs = await run_job(store(), agent, INPUTS)
    assert len(outputs) == 1 and list(outputs[0]) == ["a"]
    return outputs[0]["a"]


# -- exceptions -------------------------------------------------------------------------------


def describe_error(error: Any) -> list[Any]:
    """What an action would read from an exception (all as plain data, to be output)."""
    seen: list[Any] = [type(error).__name__, str(error), repr(error.args)]
    for name in ("returncode", "cmd", "output", "stderr", "code", "card", "reason", "errno"):
        seen.append([name, repr(getattr(error, name, "<missing>"))])
    seen.append(repr(getattr(error, "__notes__", None)))
    return seen


def called_process_error() -> BaseException:
    return subprocess.CalledProcessError(2, ["ls", "missing"], output=b"o", stderr=b"e")


def payment_error() -> BaseException:
    error = PaymentError(402)
    error.add_note("charging order 7")
    return error


def file_not_found() -> BaseException:
    return OSError(2, "No such file", "x.txt")


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize(
    "make_error",
    [called_process_error, payment_error, lambda: Declined("4242", "expired"), file_not_found],
    ids=["CalledProcessError", "PaymentError", "Declined", "FileNotFoundError"],
)
async def test_replayed_exceptions_keep_their_attributes(
    kind: str, make_error: Callable[[], BaseException], tmp_path: Path
) -> None:
    calls = Counter[str]()

    def fails() -> None:
        calls["fails"] += 1
        raise make_error()

    seen = await replayed_output(kind, tmp_path, fails, describe_error)
    assert seen == describe_error(make_error())  # what the first attempt saw
    assert calls["fails"] == 1  # replayed, not called again


@pytest.mark.parametrize("kind", STORES)
async def test_called_process_error_is_caught_by_its_type_on_replay(
    kind: str, tmp_path: Path
) -> None:
    """The case that broke: ``except CalledProcessError as e: e.returncode``."""
    store = make_store(kind, tmp_path)
    calls = Counter[str]()
    crashed = asyncio.Event()
    stop = {"now": True}

    def run_tool() -> None:
        calls["run_tool"] += 1
        raise subprocess.CalledProcessError(3, ["tool", "--check"], output=b"out", stderr=b"err")

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        try:
            await ctx.durable_execute_async(run_tool)
        except subprocess.CalledProcessError as error:
            seen = [error.returncode, str(error), error.cmd, error.output, error.stderr]
        if stop["now"]:
            crashed.set()
            await asyncio.Event().wait()
        ctx.send_event(OutputEvent(output=seen))

    agent = Agent().add_action("act", [InputEvent], act)
    await crash_job(store(), agent, INPUTS, crashed)
    stop["now"] = False
    outputs = await run_job(store(), agent, INPUTS)
    message = "Command '['tool', '--check']' returned non-zero exit status 3."
    assert outputs == [{"a": [3, message, ["tool", "--check"], b"out", b"err"]}]
    assert calls["run_tool"] == 1


async def test_exception_whose_class_is_gone_on_replay_carries_its_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A class that is not loaded when replaying (a module the durable function imported
    itself) comes back as ReplayedError, with the attributes it had; an attribute of a class
    that is not loaded either becomes a placeholder."""
    module = types.ModuleType("vanishing_errors")
    vanishing = type("QuotaError", (Exception,), {"__module__": "vanishing_errors"})
    usage = dataclasses.make_dataclass("Usage", [("used", int)])
    usage.__module__ = "vanishing_errors"
    module.QuotaError = vanishing  # type: ignore[attr-defined]
    module.Usage = usage  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vanishing_errors", module)
    calls = Counter[str]()

    def fails() -> None:
        calls["fails"] += 1
        error = vanishing("quota of 10 exceeded")
        error.limit = 10
        error.usage = usage(12)
        raise error

    def describe(error: Any) -> list[Any]:
        attributes = getattr(error, "attributes", {})
        return [type(error).__name__, str(error), getattr(error, "limit", None), repr(attributes)]

    store = make_store("memory", tmp_path)
    stop = {"now": True}
    agent, crashed = crash_once_agent(fails, describe, stop)
    await crash_job(store(), agent, INPUTS, crashed)
    monkeypatch.delitem(sys.modules, "vanishing_errors")
    stop["now"] = False
    outputs = await run_job(store(), agent, INPUTS)
    name = ReplayedError.__name__
    message = "vanishing_errors.QuotaError: quota of 10 exceeded"
    attributes = "{'limit': 10, 'usage': <vanishing_errors.Usage {'used': 12}>}"
    assert outputs == [{"a": [name, message, 10, attributes]}]
    assert calls["fails"] == 1


# -- types ------------------------------------------------------------------------------------


def describe_value(value: Any) -> list[Any]:
    """The exact type and value as an action sees them (as plain data, to be output)."""
    seen: list[Any] = [f"{type(value).__module__}.{type(value).__qualname__}", repr(value)]
    if isinstance(value, defaultdict):
        seen.append(repr(value.default_factory))
    if isinstance(value, dt.datetime):
        seen += [repr(value.tzinfo), value.fold, value.timestamp()]
    if isinstance(value, (list, tuple)):
        seen.append([describe_value(item) for item in value])
    return seen


PARIS = zoneinfo.ZoneInfo("Europe/Paris")
RESULTS: dict[str, Callable[[], Any]] = {
    "Counter": lambda: Counter({"b": 2, "a": 5}),
    "defaultdict(list)": lambda: defaultdict(list, {"x": [1, 2], "y": []}),
    "ZoneInfo datetime": lambda: dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS),
    "namedtuple": lambda: Pair(1, Span(2, 3)),
    "OrderedDict": lambda: OrderedDict([("z", 1), ("a", (2, 3))]),
    "timedelta": lambda: dt.timedelta(days=-1, seconds=5, microseconds=6),
    "mixed": lambda: [Counter("aab"), defaultdict(int, {"n": 1}), Span(4), dt.timedelta(1)],
}


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("name", list(RESULTS))
async def test_replayed_results_keep_their_types(kind: str, name: str, tmp_path: Path) -> None:
    make = RESULTS[name]
    calls = Counter[str]()

    def produce() -> Any:
        calls["produce"] += 1
        return make()

    seen = await replayed_output(kind, tmp_path, produce, describe_value)
    assert seen == describe_value(make())  # what the first attempt saw
    assert calls["produce"] == 1  # replayed, not called again
