"""The router's metrics lines (issue 12): one datagram per request to mtail's socket, its labels
bounded by the stack: the pool, the model the body named when it is served, the pool's own model
on a fixed route, "other" for a model the gateway does not serve, "-" for none; the key or trusted
client's name, and the engine's token counts from its answer's usage (issue 21)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import harness as h
import pytest
from harness import POLICY_KEYS, TRUSTED, Stack

LINE = re.compile(r"^<\d+>\w{3} [ \d]\d \d\d:\d\d:\d\d memoryx_gateway: pool=(\S+) model=(\S+) status=(\d+) "
                  r"key=(?P<key>\S+) prompt_tokens=(?P<prompt>\S+) completion_tokens=(?P<completion>\S+) "
                  r"upstream_time=(?P<upstream>\S+) request_time=(\S+)\n$")


class Socket:
    """mtail's side: a datagram socket where the router sends one line per request."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        path.chmod(0o666)  # nginx's workers write it (gateway_mtail: mtail's UMask=0000)
        self.sock.settimeout(0.2)
        self.lines: list[str] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.closed.is_set():
            try:
                self.lines.append(self.sock.recv(65536).decode())
            except TimeoutError:
                continue

    def close(self) -> None:
        self.closed.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def metrics(stack: Stack) -> Iterator[Socket]:
    runtime_dir = Path(str(stack.variants["base"].extra["nginx_unified_metrics_socket_dir"]))
    listener = Socket(runtime_dir / "mtail.sock")
    yield listener
    listener.close()


def labels_of(listener: Socket, before: int, send: int) -> list[tuple[str, str, str]]:
    """(pool, model, status) of the lines of the `send` requests sent after line `before`."""
    try:
        h.wait_until(lambda: len(listener.lines) >= before + send, 5, "the metrics lines")
    except TimeoutError:
        raise AssertionError(listener.lines[before:]) from None
    found = []
    for line in listener.lines[before:before + send]:
        match = LINE.match(line)
        assert match, line
        found.append((match.group(1), match.group(2), match.group(3)))
    return found


def test_every_request_is_one_newline_ended_line_with_bounded_labels(stack: Stack, metrics: Socket) -> None:
    port = stack.port("base")
    before = len(metrics.lines)
    assert h.request(port, "POST", "/v1/chat/completions", h.chat("llama3.1-8b")).status == 200
    assert h.request(port, "POST", "/qwen/v1/chat/completions", h.chat("qwen2.5-14b")).status == 200
    assert h.request(port, "POST", "/embed/api/embed", {"model": "bge-m3", "input": "x"}).status == 200
    assert h.request(port, "POST", "/v1/chat/completions", h.chat("gpt-4o")).status == 404
    assert h.request(port, "GET", "/v1/no-such-route").status == 404
    assert labels_of(metrics, before, 5) == [("llama", "llama3.1-8b", "200"), ("qwen", "qwen2.5-14b", "200"),
                                     ("bge", "bge-m3", "200"), ("-", "other", "404"), ("-", "-", "404")]
    upstream = LINE.match(metrics.lines[before])
    assert upstream is not None and float(upstream["upstream"]) >= 0


def usage_of(listener: Socket, before: int, send: int) -> list[tuple[str, str, str]]:
    """(key, prompt_tokens, completion_tokens) of the lines of the `send` requests after `before`."""
    h.wait_until(lambda: len(listener.lines) >= before + send, 5, "the metrics lines")
    found = []
    for line in listener.lines[before:before + send]:
        match = LINE.match(line)
        assert match, line
        found.append((match["key"], match["prompt"], match["completion"]))
    return found


def test_each_line_carries_the_engines_token_counts(stack: Stack, metrics: Socket) -> None:
    """From the answer's usage, streamed or not; "-" when a stream did not ask for it."""
    port = stack.port("base")
    before = len(metrics.lines)
    whole = h.request(port, "POST", "/v1/chat/completions", h.chat("llama3.1-8b", "count me", 7))
    used = json.loads(whole.body)["usage"]
    streamed = h.request(port, "POST", "/v1/chat/completions", {
        **h.chat("qwen2.5-14b", "count me too", 9, stream=True), "stream_options": {"include_usage": True}})
    final = [json.loads(line[6:]) for line in streamed.body.decode().splitlines()
             if line.startswith("data: {")][-1]["usage"]
    h.request(port, "POST", "/v1/chat/completions", h.chat("llama3.1-8b", "no usage", 5, stream=True))
    embedded = h.request(port, "POST", "/api/embed", {"model": "bge-m3", "input": "x"})
    assert usage_of(metrics, before, 4) == [
        ("-", str(used["prompt_tokens"]), str(used["completion_tokens"])),
        ("-", str(final["prompt_tokens"]), str(final["completion_tokens"])),
        ("-", "-", "-"),
        ("-", str(json.loads(embedded.body)["prompt_eval_count"]), "-")]


@pytest.fixture(scope="module")
def policy_metrics(stack: Stack) -> Iterator[Socket]:
    listener = Socket(Path(str(stack.variants["policy"].extra["nginx_unified_metrics_socket_dir"])) / "mtail.sock")
    yield listener
    listener.close()


def test_each_line_names_the_key_or_trusted_client(stack: Stack, policy_metrics: Socket) -> None:
    port = stack.port("policy")
    before = len(policy_metrics.lines)
    chat_key = {"Authorization": f"Bearer {POLICY_KEYS[1]['key']}"}
    chat = h.request(port, "POST", "/v1/chat/completions", h.chat("llama3.1-8b", "hi", 3), headers=chat_key)
    assert chat.status == 200
    assert h.request(port, "POST", "/v1/embeddings", {"model": "bge-m3", "input": "x"},
                     source=TRUSTED[0]["networks"][0].split("/")[0]).status == 200
    assert h.request(port, "GET", "/v1/models").status == 401
    assert [key for key, _, _ in usage_of(policy_metrics, before, 3)] == ["chat", "lan-embedder", "-"]
