"""What ``execute()`` raises when runs failed: the original exception of the earliest input.

Upstream scripts catch what their actions raise (``try: env.execute() except ValueError:``),
so the job does not wrap it. Which failure is raised depends only on input order, never on
which key happened to finish first. The exception gains PEP 678 notes naming the key, run,
action and event type, and listing the other failed runs, and an ``execution_failures``
attribute holding every failure (each an ``ActionFailedError``, in input order), so that none
is lost to the reader of one traceback.

A cause that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``, a
``CancelledError`` an action raised) is not re-raised: it would end the program, or cancel the
caller, as if the caller itself had been interrupted. An ``ExecutionError`` carrying the same
notes and failures is raised instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ..errors import ActionFailedError, ExecutionError, text_of

__all__ = ["FAILURES_ATTRIBUTE", "error_to_raise", "in_input_order"]

FAILURES_ATTRIBUTE = "execution_failures"

# Other failures listed by name in a note; the attribute holds all of them.
_LISTED = 10

_NOTE_PREFIX = "flink-agents-async: "


def in_input_order(failures: Sequence[ActionFailedError]) -> list[ActionFailedError]:
    """``failures`` sorted by input position (those without one last, in the order given)."""
    unknown = len(failures)
    return sorted(
        failures,
        key=lambda failure: unknown if failure.input_index is None else failure.input_index,
    )


def error_to_raise(failures: Sequence[ActionFailedError]) -> BaseException:
    """The exception ``execute()`` raises for ``failures`` (not empty): the original exception
    of the earliest input, annotated."""
    ordered = in_input_order(failures)
    first = ordered[0]
    error: BaseException = first.cause
    if not isinstance(error, Exception):
        error = ExecutionError(ordered)
    # An exception object raised again (by a later job) keeps one set of these notes.
    kept = [note for note in getattr(error, "__notes__", ()) if not note.startswith(_NOTE_PREFIX)]
    with contextlib.suppress(AttributeError, TypeError):
        error.__notes__ = kept
    for note in _notes(first, ordered[1:]):
        error.add_note(note)
    with contextlib.suppress(AttributeError, TypeError):  # a class that refuses attributes
        setattr(error, FAILURES_ATTRIBUTE, ordered)
    return error


def _notes(first: ActionFailedError, others: list[ActionFailedError]) -> list[str]:
    notes = [f"{_NOTE_PREFIX}{_where(first)}"]
    if first.input_kept:
        notes.append(
            f"{_NOTE_PREFIX}its input and journaled calls are kept: fix the cause and start "
            "again to finish it"
        )
    if others:
        lines = [
            f"{_NOTE_PREFIX}{len(others)} other run(s) failed too (every failure is in the "
            f"exception's `{FAILURES_ATTRIBUTE}` and in `env.failures`):"
        ]
        lines += [f"  - {_where(other)}: {_summary(other)}" for other in others[:_LISTED]]
        if len(others) > _LISTED:
            lines.append(f"  - ... and {len(others) - _LISTED} more")
        notes.append("\n".join(lines))
    return notes


def _where(failure: ActionFailedError) -> str:
    position = "" if failure.input_index is None else f"input {failure.input_index}, "
    return (
        f"{position}run {failure.run} of key {failure.key!r} failed in action "
        f"{failure.action!r} handling event type {failure.event_type!r}"
    )


def _summary(failure: ActionFailedError) -> str:
    return f"{type(failure.cause).__name__}: {text_of(failure.cause)}"
