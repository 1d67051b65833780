"""The JSON access log: every line parses and names upstream, status, model, pool and key."""

from __future__ import annotations

from typing import Any

import harness as h
from harness import API_KEYS, Stack


def new_lines(stack: Stack, gateway: str, send: Any) -> list[dict[str, Any]]:
    """The access log lines written for what `send()` sends (the log is shared by tests)."""
    before = len(stack.gateways[gateway].access_log())
    count = send()
    h.wait_until(lambda: len(stack.gateways[gateway].access_log()) >= before + count, 5,
                 "the access log lines")
    return stack.gateways[gateway].access_log()[before:]


def test_access_log_lines_are_json_with_routing_fields(stack: Stack) -> None:
    def send() -> int:
        reply = h.request(stack.port("base"), "POST", "/v1/chat/completions", h.chat("qwen2.5-14b"))
        assert reply.status == 200
        return 1

    line = [entry for entry in new_lines(stack, "base", send)
            if entry["uri"] == "/v1/chat/completions"][-1]
    assert line["status"] == 200
    assert line["method"] == "POST"
    assert line["model"] == "qwen2.5-14b"
    assert line["pool"] == "qwen"
    assert line["key"] == ""
    assert line["upstream_addr"] == f"127.0.0.1:{stack.sims['qwen-a'].port}"
    assert line["upstream_status"] == "200"
    assert float(line["upstream_response_time"]) >= 0
    assert line["bytes_sent"] > 0
    assert {"time", "remote_addr", "request_time"} <= line.keys()


def test_fixed_routes_log_their_pool(stack: Stack) -> None:
    def send() -> int:
        reply = h.request(stack.port("base"), "POST", "/embed/api/embed",
                          {"model": "bge-m3", "input": "x"})
        assert reply.status == 200
        return 1

    line = [entry for entry in new_lines(stack, "base", send)
            if entry["uri"] == "/embed/api/embed"][-1]
    bge_ports = {stack.sims["bge-a"].port, stack.sims["bge-b"].port}
    assert line["pool"] == "bge"
    assert int(line["upstream_addr"].rsplit(":", 1)[1]) in bge_ports


def test_the_key_name_is_logged_never_the_key(stack: Stack) -> None:
    def send() -> int:
        for key in API_KEYS:
            reply = h.request(stack.port("auth"), "GET", "/v1/models",
                              headers={"Authorization": f"Bearer {key['key']}"})
            assert reply.status == 200
        return len(API_KEYS)

    lines = new_lines(stack, "auth", send)
    assert sorted(line["key"] for line in lines) == sorted(key["name"] for key in API_KEYS)


def test_no_secret_reaches_any_log(stack: Stack) -> None:
    """A key sent where it does not belong (query string, path, wrong header) is never logged,
    neither in the access log nor in nginx's error log (which quotes the request line), even
    when the metrics socket refuses the request's line (a warning quoting the request line)."""
    secret = "sk-" + "f00dfeed" * 8
    port = stack.port("auth")
    sent = [
        ("GET", f"/v1/models?api_key={secret}", {}),
        ("POST", f"/v1/chat/completions?key={secret}", {"Authorization": f"Bearer {secret}"}),
        ("POST", f"/llama/v1/chat/completions?api_key={secret}", {}),
        ("POST", f"/embed/api/embed?x=1&api_key={secret}", {}),
        ("GET", f"/nowhere?api_key={secret}", {}),
        ("POST", "/v1/embeddings", {"Authorization": f"Bearer {secret}"}),
    ]
    for method, path, headers in sent:
        reply = h.request(port, method, path, h.chat("llama3.1-8b"), headers=headers)
        assert reply.status in (400, 401), (path, reply.status)
        assert secret not in reply.body.decode()
    # a body over every limit: refused by the client side before the router sees it, an error
    # nginx logs with the request line
    over = h.request(port, "POST", f"/v1/chat/completions?api_key={secret}", b"",
                     headers={"Content-Length": str(1 << 30)})
    assert over.status == 413
    runtime = stack.variants["auth"].runtime
    h.wait_until(lambda: len(stack.gateways["auth"].access_log()) > 0, 5, "the access log")
    for log in ("access.log", "error.log"):
        assert secret not in (runtime / log).read_text(errors="replace"), log
    # the metrics socket is down: the other requests' failed sends were logged with their line
    assert "send() to syslog failed" in (runtime / "error.log").read_text(errors="replace")


def test_the_path_the_client_sent_is_logged_without_its_query(stack: Stack) -> None:
    """An error page is an internal redirect: the line still names the client's path (an unknown
    path's 404, a refused query string's 400), never the error location or the query."""
    unknown, refused = "/v1/no-such-api", "/v1/chat/completions"

    def send() -> int:
        assert h.request(stack.port("base"), "GET", unknown).status == 404
        assert h.request(stack.port("base"), "POST", f"{refused}?debug=1",
                         h.chat("llama3.1-8b")).status == 400
        return 2

    lines = new_lines(stack, "base", send)
    assert [(line["uri"], line["status"]) for line in lines[-2:]] == [(unknown, 404), (refused, 400)]
    assert not [line for line in lines if line["uri"].startswith("/_mx/")]
