"""Replay: a run's durable calls matched against what the journal recorded for its input.

A ``RunRecorder`` replays a recorded call instead of calling the function again, records new
calls (pending, then their outcome), reports divergences, and keeps what an attempt recorded
so that a retry replays it too.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ..durable import RECONCILE, DurableCall, Outcome, Reconcile
from ..errors import JournalError, NonDeterminismError, ReplayedError
from ..logging import library_logger
from .codec import JournalEncodeError, find_class, rebuild_exception
from .records import COMPLETED, PENDING, CallRecord
from .store import Ack, Durability

if TYPE_CHECKING:
    from .journal import Journal

__all__ = ["RunRecorder", "recorded_error"]

logger = library_logger()


class RunRecorder:
    """The journal's side of one run's durable calls: replays recorded calls, writes new ones,
    and keeps what this attempt recorded so that a retry replays it too.

    A call is matched to a record by its position (its slot: the order of the run's calls)
    and, when that record is another call's, by its function and arguments: concurrent
    requests (chat requests fanned out, each going through tool rounds) make their later
    calls in whatever order answers arrive, and a call that was journaled must be replayed
    whichever position it comes at. Each record is replayed once. A call that matches no
    record runs; if the record at its position is unreplayed and different, that is a
    divergence (a warning, or ``NonDeterminismError`` in strict mode).

    New records never overwrite unreplayed ones: they go to storage slots after the recorded
    ones (``call.record_slot``). Without records, storage slots are positions.
    """

    __slots__ = (
        "_by_content",
        "consumed",
        "divergences",
        "journal",
        "key",
        "next_record_slot",
        "recorded",
        "run",
        "seq",
        "written",
    )

    def __init__(
        self, journal: Journal, seq: int, key: Hashable, run: int, recorded: dict[int, bytes]
    ) -> None:
        self.journal = journal
        self.seq = seq
        self.key = key
        self.run = run
        self.recorded = recorded  # storage slot -> packed CallRecord
        self.consumed: set[int] = set()  # records replayed (or taken over) by this attempt
        self._by_content: dict[tuple[str, bytes], list[int]] | None = None  # made when needed
        self.next_record_slot = max(recorded) + 1 if recorded else 0
        self.written: dict[int, CallRecord] = {}  # what this attempt recorded, by storage slot
        # Positions where a call met another call's unreplayed record (warn mode): reported
        # when the run ends, for the records that were never replayed.
        self.divergences: dict[int, dict[str, Any]] = {}

    @property
    def slots_used(self) -> int:
        """How many storage slots the run's records take (for commit and failure records)."""
        return self.next_record_slot

    def _digest(self, call: DurableCall) -> bytes:
        if call.digest is None:
            call.digest = self.journal.codec.call_digest(call.args, call.kwargs)
        return call.digest

    def replay(self, call: DurableCall) -> Outcome | Reconcile | None:
        """The recorded outcome of ``call``, ``RECONCILE``, or None (run it); sets the storage
        slot its record goes to. Raises ``NonDeterminismError`` (strict divergence) or
        ``JournalError`` (a record that cannot be read here) for the run to keep its input for
        a fixed restart."""
        if not self.recorded:
            call.record_slot = call.slot
            self.next_record_slot = call.slot + 1
            return None
        digest = self._digest(call)
        slot: int | None = call.slot
        fields = None
        if slot in self.recorded and slot not in self.consumed:
            fields = CallRecord.fields(slot, self.recorded[slot])
            if fields[0] != call.function_id or fields[1] != digest:
                slot = self._same_call(call.function_id, digest)
        else:
            slot = self._same_call(call.function_id, digest)
        if slot is None:
            if fields is not None:  # its position holds another, unreplayed call
                self._diverge(call, fields[0], fields[1], digest)
            call.record_slot = self.next_record_slot
            self.next_record_slot += 1
            return None
        if fields is None or slot != call.slot:
            fields = CallRecord.fields(slot, self.recorded[slot])
        self.consumed.add(slot)
        call.record_slot = slot  # a PENDING record is completed in place
        return self._outcome(call, slot, fields)

    def _same_call(self, function_id: str, digest: bytes) -> int | None:
        """The first unreplayed record of the same function with the same arguments."""
        index = self._by_content
        if index is None:
            index = self._by_content = {}
            for slot in sorted(self.recorded):
                recorded_id, recorded_digest, *_ = CallRecord.fields(slot, self.recorded[slot])
                index.setdefault((recorded_id, recorded_digest), []).append(slot)
        for slot in index.get((function_id, digest), ()):
            if slot not in self.consumed:
                return slot
        return None

    def _outcome(
        self, call: DurableCall, slot: int, fields: list[Any]
    ) -> Outcome | Reconcile | None:
        _, _, status, ok, payload = fields
        if status == PENDING:
            return RECONCILE if call.reconciler is not None else None
        value = self.journal.codec.decode(
            payload,
            "the recorded outcome of slot {} of run {} of key {!r}",
            slot,
            self.run,
            self.key,
        )
        if ok:
            return Outcome(value)
        if not isinstance(value, BaseException):
            value = ReplayedError(type(value).__name__, repr(value))
        return Outcome(error=value)

    def _diverge(
        self, call: DurableCall, function_id: str, recorded_digest: bytes, digest: bytes
    ) -> None:
        diff = {
            "key": self.key,
            "run": self.run,
            "action": call.action,
            "slot": call.slot,
            "expected": {"function": function_id, "args_digest": recorded_digest.hex()},
            "actual": {"function": call.function_id, "args_digest": digest.hex()},
        }
        if self.journal.strict:
            raise NonDeterminismError(
                f"durable call slot {call.slot} of run {self.run} of key {self.key!r} (action "
                f"{call.action!r}) called {call.function_id} with args digest {digest.hex()}, "
                f"but the journal recorded {function_id} with {recorded_digest.hex()}: run the "
                "code that made the journal to finish this input, or set durable.divergence: "
                "warn to run the changed call",
                diff=diff,
            )
        self.divergences.setdefault(call.slot, diff)

    def report_divergences(self) -> None:
        """The run ended: warn about each recorded call that was never replayed, with the call
        made at its position instead. (Reported now, not when met: with concurrent calls, the
        record at a position may just be replayed a little later, by another call.)"""
        for slot, diff in self.divergences.items():
            if slot in self.recorded and slot not in self.consumed:
                logger.warning(
                    "durable call differs from the journal; the changed call ran, recorded "
                    "calls that still matched were replayed",
                    key=self.key, run=self.run, action=diff["action"], slot=slot,
                    expected=diff["expected"], actual=diff["actual"],
                )  # fmt: skip
        self.divergences.clear()

    def started(self, call: DurableCall) -> Ack | None:
        if call.reconciler is None:
            return None  # only calls with a reconciler need their start on record
        record = CallRecord(call.record_slot, call.function_id, self._digest(call), PENDING)
        self.written[call.record_slot] = record
        ack = self.journal.write_call(self.seq, record)
        return None if self.journal.durability is Durability.NONE or ack.done else ack

    def finished(self, call: DurableCall, outcome: Outcome) -> Ack | None:
        codec = self.journal.codec
        encode_error: JournalEncodeError | None = None
        if outcome.error is None:
            try:
                payload = codec.encode(
                    outcome.value,
                    "the result of durable call {} (slot {}, action {!r}, key {!r})",
                    call.function_id,
                    call.slot,
                    call.action,
                    self.key,
                )
                ok = True
            except JournalEncodeError as error:
                encode_error = error
                payload, ok = codec.encode(error), False
        else:
            payload, ok = codec.encode(outcome.error), False
        if ok:
            try:
                self.journal._check_size(
                    len(payload),
                    "the result of durable call {} (slot {}, action {!r}, key {!r})",
                    call.function_id,
                    call.slot,
                    call.action,
                    self.key,
                )
            except JournalEncodeError as error:
                encode_error = error
                payload, ok = codec.encode(error), False
        record = CallRecord(
            call.record_slot, call.function_id, self._digest(call), COMPLETED, ok, payload
        )
        self.written[call.record_slot] = record
        ack = self.journal.write_call(self.seq, record)
        if encode_error is not None:
            raise encode_error
        return ack if self.journal.durability is Durability.SYNC and not ack.done else None

    def kept_for_retry(self) -> dict[int, bytes]:
        """The records a retry of this run replays: calls that returned a value and calls
        still PENDING (a reconciler decides those), from the journal and from this attempt.
        Calls that raised run again: a retry is there for transient failures."""
        kept = dict(self.recorded)
        for slot, record in self.written.items():
            kept[slot] = record.pack()
        return {slot: data for slot, data in kept.items() if _replayed_on_retry(slot, data)}


def _replayed_on_retry(slot: int, data: bytes) -> bool:
    try:
        _, _, status, ok, _ = CallRecord.fields(slot, data)
    except JournalError:
        return True  # unreadable: the retry meets it, and keeps the input for a fixed restart
    return status == PENDING or bool(ok)


def recorded_error(type_path: str, message: str) -> BaseException:
    """A failure recorded as ``module.QualName`` and its message, as that class again when this
    process has it loaded (so ``except ValueError:`` catches it after a restart as before), else
    a ``ReplayedError``. Made without running the class's ``__init__``."""
    module, _, name = type_path.rpartition(".")
    while module:
        cls = find_class(f"{module}:{name}")
        if cls is not None:
            if issubclass(cls, Exception):
                error = rebuild_exception(cls, [message], {})
                if error is not None:
                    return error
            break
        module, _, head = module.rpartition(".")
        name = f"{head}.{name}"
    return ReplayedError(type_path, message)
