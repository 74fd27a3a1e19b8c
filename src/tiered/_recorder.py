"""The run recorder: the one place that turns outcomes into results, events and journal lines.

Everything here is synchronous bookkeeping, so a cancellation can never leave a
subtask half-recorded: a result's status, its event and its journal record change
together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tiered._catalog import Tier
from tiered._escalation import Attempt, EscalationDecision, Failure
from tiered._events import (
    ModelStreamed,
    RunEvent,
    RunFinished,
    SubtaskEscalated,
    SubtaskFailed,
    SubtaskFinished,
    SubtaskRouted,
    SubtaskSkipped,
    SubtaskStarted,
    ToolCalled,
    ToolReturned,
)
from tiered._journal import Journal
from tiered._ledger import Charge, Ledger
from tiered._logging import get_logger, info_enabled
from tiered._messages import DeltaCallback, ModelDelta, TextDelta, ToolCall, ToolResultMessage
from tiered._result import RunResult, RunStatus, SubtaskResult, SubtaskStatus
from tiered._routing import RouteDecision

__all__ = ("RunRecorder",)


class RunRecorder:
    """Records one run: subtask outcomes, attempts, events to the sink, the journal."""

    __slots__ = (
        "_log",
        "journal",
        "ledger",
        "listening",
        "model_deltas",
        "run_id",
        "sink",
        "started",
    )

    def __init__(
        self,
        *,
        run_id: str,
        ledger: Ledger,
        sink: Callable[[RunEvent], Any] | None,
        journal: Journal | None,
        model_deltas: bool = False,
    ) -> None:
        self.run_id = run_id
        self.ledger = ledger
        self.sink = sink
        self.journal = journal
        self.started = time.perf_counter()
        self._log: Any = get_logger(run_id=run_id)
        self.listening = sink is not None or info_enabled()
        """False when no sink and no logging: events are then not even built."""
        self.model_deltas = model_deltas and sink is not None
        """Ask models to stream, for `model.delta` events."""

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    def emit(self, event: RunEvent) -> None:
        """Log `event` (only when logging is configured) and hand it to the sink."""
        if info_enabled():  # the default logger drops INFO: skip building fields
            self._log.info(event.name, **event.log_fields())
        if self.sink is not None:
            # events are frozen for consumers; the run totals are stamped once, here
            object.__setattr__(event, "run_usage", self.ledger.usage)
            object.__setattr__(event, "run_equivalent_cost", self.ledger.equivalent_cost)
            self.sink(event)

    def stamp(self) -> dict[str, Any]:
        """The fields every event starts with: the run id and seconds since the start."""
        return {"run_id": self.run_id, "elapsed_s": round(self.elapsed(), 4)}

    # --- one subtask ------------------------------------------------------------------

    def routed(self, record: SubtaskResult, sid: str, decision: RouteDecision) -> None:
        """The router chose the first tier."""
        record.route = decision
        if not self.listening:
            return
        self.emit(
            SubtaskRouted(
                **self.stamp(),
                subtask_id=sid,
                agent=record.subtask.agent,
                tier=decision.tier,
                reason=decision.reason,
            )
        )

    def started_attempt(self, record: SubtaskResult, sid: str, tier: Tier) -> None:
        """An attempt got its slot; the first one marks the subtask running."""
        if record.status is SubtaskStatus.PENDING:
            record.status = SubtaskStatus.RUNNING
            if not self.listening:
                return
            self.emit(
                SubtaskStarted(
                    **self.stamp(), subtask_id=sid, agent=record.subtask.agent, tier=tier
                )
            )

    def attempt(
        self,
        record: SubtaskResult,
        *,
        sid: str,
        tier: Tier,
        model: str,
        reason: str,
        started: float,
        outcome: str,
        error: str | None,
        charges: Sequence[Charge],
    ) -> Attempt:
        """Book one attempt; its totals are the sums of its own charges."""
        attempt = Attempt.from_charges(
            charges,
            number=len(record.attempts) + 1,
            tier=tier,
            model=model,
            reason=reason,
            duration_s=round(time.perf_counter() - started, 4),
            outcome=outcome,
            error=error,
        )
        record.attempts.append(attempt)
        if self.journal is not None:  # as it ends: a resumed subtask keeps what it paid for
            self.journal.record_attempts(sid, [attempt])
        return attempt

    def escalated(
        self, sid: str, failure: Failure, decision: EscalationDecision, to_tier: Tier | None
    ) -> None:
        """The policy chose the next step after a failed attempt."""
        if not self.listening:
            return
        self.emit(
            SubtaskEscalated(
                **self.stamp(),
                subtask_id=sid,
                action=decision.action.value,
                from_tier=failure.tier,
                to_tier=to_tier,
                failure=failure.kind.value,
                reason=decision.reason,
            )
        )

    def succeeded(
        self,
        record: SubtaskResult,
        sid: str,
        tier: Tier,
        output: Any,
        *,
        restored: bool = False,
        identity: str = "",
    ) -> None:
        """Record the output, journal it (with its attempts) unless it came from there, tell."""
        record.output = output
        record.status = SubtaskStatus.SUCCEEDED
        record.restored = restored
        if self.journal is not None and not restored:
            self.journal.record_output(sid, identity, output)
        if not self.listening:
            return
        self.emit(
            SubtaskFinished(
                **self.stamp(),
                subtask_id=sid,
                agent=record.subtask.agent,
                tier=tier,
                attempts=len(record.attempts),
                usage=record.usage,
                cost=record.cost,
                equivalent_cost=record.equivalent_cost,
                output=output,
                restored=restored,
            )
        )

    def failed(
        self, record: SubtaskResult, sid: str, error: str, *, reason: str | None = None
    ) -> None:
        """Mark the subtask failed; the event carries `reason` (or the error)."""
        record.status = SubtaskStatus.FAILED
        record.error = error
        if not self.listening:
            return
        self.emit(SubtaskFailed(**self.stamp(), subtask_id=sid, reason=reason or error))

    def skipped(self, record: SubtaskResult, sid: str, reason: str) -> None:
        """Mark a subtask that never ran skipped, with why."""
        record.status = SubtaskStatus.SKIPPED
        record.error = reason
        if not self.listening:
            return
        self.emit(SubtaskSkipped(**self.stamp(), subtask_id=sid, reason=reason))

    def skip_unfinished(
        self, results: Mapping[str, SubtaskResult], reason: str, prefix: str = ""
    ) -> None:
        """Every subtask still pending or running (sub-plans included) ends skipped."""
        for sid, r in results.items():
            if r.status in (SubtaskStatus.PENDING, SubtaskStatus.RUNNING):
                self.skipped(r, prefix + sid, reason)
            if r.children:
                children = {c.subtask.id: c for c in r.children}
                self.skip_unfinished(children, reason, f"{prefix}{sid}/")

    def deltas(self, sid: str | None, agent: str, tier: Tier) -> DeltaCallback | None:
        """A callback turning a model's streamed pieces into `model.delta` events (if anyone
        listens and asked for them: otherwise None, and the model is not asked to stream)."""
        return _delta_events(self, sid, agent, tier) if self.model_deltas else None

    def tools(self, sid: str | None, agent: str) -> _ToolEvents | None:
        """A tool observer that emits `tool.called` / `tool.returned`, if anyone listens."""
        return _ToolEvents(self, sid, agent) if self.listening else None

    # --- the run ----------------------------------------------------------------------

    def finish(
        self,
        result: RunResult,
        order: Sequence[Tier],
        status: RunStatus | None,
        error: str | None,
    ) -> None:
        """Stamp the totals (sums of the ledger's charges) and the status; emit run.finished."""
        ledger = self.ledger
        result.usage = ledger.usage
        result.cost = ledger.cost
        result.equivalent_cost = ledger.equivalent_cost
        result.counterfactual_cost = ledger.flagship_cost
        result.by_tier = ledger.by_tier(order)
        result.wall_time_s = round(self.elapsed(), 3)
        if status is None:
            status = _outcome(result)
        result.status = status
        if error is not None:
            result.error = error
        if self.journal is not None:
            self.journal.record_status(status.value)
        self.emit(
            RunFinished(
                **self.stamp(),
                status=status.value,
                usage=result.usage,
                cost=result.cost,
                equivalent_cost=result.equivalent_cost,
                counterfactual_cost=result.counterfactual_cost,
                result=result,
            )
        )


def _outcome(result: RunResult) -> RunStatus:
    """A run's status from its subtasks': all succeeded, some did, or none."""
    statuses = [r.status for r in result.subtasks.values()]
    if statuses and all(st is SubtaskStatus.SUCCEEDED for st in statuses):
        return RunStatus.SUCCEEDED
    if any(st is SubtaskStatus.SUCCEEDED for st in statuses):
        return RunStatus.PARTIAL
    return RunStatus.FAILED


def _delta_events(recorder: RunRecorder, sid: str | None, agent: str, tier: Tier) -> DeltaCallback:
    """`model.delta` events for one model call's streamed pieces."""
    chars = 0

    def on_delta(delta: ModelDelta) -> None:
        nonlocal chars
        text = delta.text if isinstance(delta, TextDelta) else delta.arguments
        chars += len(text)
        recorder.emit(
            ModelStreamed(
                **recorder.stamp(),
                subtask_id=sid,
                agent=agent,
                tier=tier,
                text=text,
                output_tokens=chars // 4 + (1 if chars else 0),
            )
        )

    return on_delta


class _ToolEvents:
    """`ToolObserver` for one subtask's agent run."""

    __slots__ = ("agent", "recorder", "sid")

    def __init__(self, recorder: RunRecorder, sid: str | None, agent: str) -> None:
        self.recorder, self.sid, self.agent = recorder, sid, agent

    def tool_called(self, call: ToolCall) -> None:
        """Emit `tool.called`."""
        self.recorder.emit(
            ToolCalled(
                **self.recorder.stamp(),
                subtask_id=self.sid,
                agent=self.agent,
                tool=call.name,
                call_id=call.id,
                arguments=call.arguments[:2000],
            )
        )

    def tool_returned(self, call: ToolCall, result: ToolResultMessage, duration_s: float) -> None:
        """Emit `tool.returned`."""
        self.recorder.emit(
            ToolReturned(
                **self.recorder.stamp(),
                subtask_id=self.sid,
                agent=self.agent,
                tool=call.name,
                call_id=call.id,
                is_error=result.is_error,
                duration_s=duration_s,
            )
        )
