"""memoryx_deploy.runner_events: task results out of ansible-runner's events, whatever else the
run printed (a plain output line is an event without event_data)."""

from __future__ import annotations

from typing import Any

import pytest

from memoryx_deploy.operate.runner_events import plays_started, task_results
from memoryx_deploy.operate.status import report_from_events

WARNING_LINE = {"event": "verbose", "uuid": "1", "counter": 1,
                "stdout": "CryptographyDeprecationWarning: DSA is deprecated"}


def result(kind: str, task: str, res: dict[str, Any], host: str = "mx-llm-01", **data: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": {"host": host, "task": task, "play": "Services", "res": res, **data}}


EVENTS: list[dict[str, Any]] = [
    {"event": "playbook_on_start", "event_data": {}},
    WARNING_LINE,
    {"event": "playbook_on_play_start", "event_data": {"play": "Preflight"}},
    result("runner_on_ok", "Build", {"changed": False, "ansible_facts": {"x": 1}}),
    result("runner_item_on_ok", "Pull", {"changed": True, "_ansible_item_label": "nginx"}),
    result("runner_item_on_ok", "Pull", {"changed": False, "item": "ollama"}, host="mx-embed-01"),
    {"event": "verbose", "stdout": ""},
    result("runner_on_failed", "Login", {"msg": "refused"}, ignore_errors=True),
    {"event": "playbook_on_play_start", "event_data": {"play": "Services on the LLM hosts"}},
]


def test_plain_output_lines_are_skipped_not_read() -> None:
    assert [r.task for r in task_results(EVENTS)] == ["Build"]
    assert plays_started(EVENTS) == ["Preflight", "Services on the LLM hosts"]


def test_items_carry_their_label_or_item_and_changed() -> None:
    items = task_results(EVENTS, ("runner_item_on_ok",), "Pull")
    assert [(r.host, r.item_label, r.changed) for r in items] == [
        ("mx-llm-01", "nginx", True), ("mx-embed-01", "ollama", False)]


def test_failures_keep_ignore_errors() -> None:
    [failed] = task_results(EVENTS, ("runner_on_failed", "runner_on_unreachable"))
    assert (failed.task, failed.res["msg"], failed.ignore_errors) == ("Login", "refused", True)


def test_a_kind_without_task_results_is_refused() -> None:
    with pytest.raises(ValueError, match=r"task_results: \['verbose'\] are not task result events"):
        task_results(EVENTS, ("verbose",))


def test_status_finds_its_report_past_warning_lines() -> None:
    report = {"healthy": True}
    events = [WARNING_LINE, result("runner_on_ok", "Report", {"ansible_facts": {"memoryx_status": report}})]
    assert report_from_events(events) == report
    assert report_from_events([WARNING_LINE]) is None
