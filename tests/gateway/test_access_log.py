"""The JSON access log: every line parses and names upstream, status, model and pool."""

from __future__ import annotations

from typing import Any

import harness as h
from harness import Stack


def _lines_for(stack: Stack, uri: str) -> list[dict[str, Any]]:
    return [line for line in stack.gateways["base"].access_log() if line["uri"] == uri]


def test_access_log_lines_are_json_with_routing_fields(stack: Stack) -> None:
    uri = "/v1/chat/completions?trace=access-log"
    reply = h.request(stack.port("base"), "POST", uri, h.chat("qwen2.5-14b"))
    assert reply.status == 200
    h.wait_until(lambda: bool(_lines_for(stack, uri)), 5, "the access log line")
    [line] = _lines_for(stack, uri)
    assert line["status"] == 200
    assert line["method"] == "POST"
    assert line["model"] == "qwen2.5-14b"
    assert line["pool"] == "qwen"
    assert line["upstream_addr"] == f"127.0.0.1:{stack.sims['qwen-a'].port}"
    assert line["upstream_status"] == "200"
    assert float(line["upstream_response_time"]) >= 0
    assert line["bytes_sent"] > 0
    assert {"time", "remote_addr", "request_time"} <= line.keys()


def test_fixed_routes_log_their_pool(stack: Stack) -> None:
    uri = "/embed/api/embed?trace=fixed"
    reply = h.request(stack.port("base"), "POST", uri, {"model": "bge-m3", "input": "x"})
    assert reply.status == 200
    h.wait_until(lambda: bool(_lines_for(stack, uri)), 5, "the access log line")
    [line] = _lines_for(stack, uri)
    bge_ports = {stack.sims["bge-a"].port, stack.sims["bge-b"].port}
    assert line["pool"] == "bge"
    assert int(line["upstream_addr"].rsplit(":", 1)[1]) in bge_ports
