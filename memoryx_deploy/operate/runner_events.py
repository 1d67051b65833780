"""ansible-runner's events, read as ansible-runner documents them.

Every line a playbook run prints becomes an event, but only the callback events carry
`event_data`: a plain output line (`verbose`, e.g. a Python warning on stderr) has `stdout` and
no `event_data`. So a reader selects the kinds it wants first and reads `event_data` of those
alone. Every reader of runner events in the project (status, the lab tests, the benchmarks)
goes through these two functions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The callback events of one host's task result; each has event_data with host, task, play, res.
TASK_RESULT_KINDS = frozenset({
    "runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable",
    "runner_item_on_ok", "runner_item_on_failed", "runner_item_on_skipped",
})


@dataclass(frozen=True)
class TaskResult:
    """One host's result of one task (or of one loop item), from a task result event."""

    kind: str
    host: str
    task: str
    play: str
    res: Mapping[str, Any] = field(repr=False)
    ignore_errors: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.res.get("changed"))

    @property
    def item_label(self) -> str:
        """The loop item as Ansible labels it (`loop_control.label`, else the item)."""
        return str(self.res.get("_ansible_item_label", self.res.get("item")))


def task_results(events: Iterable[Mapping[str, Any]], kinds: Collection[str] = ("runner_on_ok",),
                 task: str | None = None) -> list[TaskResult]:
    """The task results of `kinds` (all of them task result kinds), of `task` when given."""
    unknown = set(kinds) - TASK_RESULT_KINDS
    if unknown:
        raise ValueError(f"task_results: {sorted(unknown)} are not task result events")
    results = []
    for event in events:
        if event.get("event") not in kinds:
            continue
        data = event["event_data"]  # every task result event has it (ansible-runner's docs)
        if task is not None and data.get("task") != task:
            continue
        results.append(TaskResult(
            kind=event["event"], host=str(data.get("host", "")), task=str(data.get("task", "")),
            play=str(data.get("play", "")), res=data.get("res") or {},
            ignore_errors=bool(data.get("ignore_errors"))))
    return results


def plays_started(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names of the plays the run started, in order (`playbook_on_play_start`)."""
    return [str(event["event_data"].get("play", "")) for event in events
            if event.get("event") == "playbook_on_play_start"]
