"""The gateway on a hostile LAN (issue 9): bounded resources, inference-only routes,
JSON errors everywhere. Keys and logs: test_api.py and test_access_log.py."""

from __future__ import annotations

import http.client
import itertools
import json
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import harness as h
import ollama
import pytest
from harness import Stack

OTHER_CLIENT = "127.0.0.2"  # loopback is a /8: a second client address on this machine


def raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, return the gateway's answer: up to its Content-Length (client keep-alive
    keeps the connection open after it), or everything until it closes."""
    with socket.create_connection((h.LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while not _complete(answer) and (chunk := sock.recv(65536)):
                answer += chunk
        except ConnectionResetError:  # reset_timedout_connection, or an unread body
            pass
    return answer


def _complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *([0-9]+)\r?$", head)
    return bool(found) and length is not None and len(body) >= int(length.group(1))


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_openai_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> None:
    assert status == expected, body[:300]
    assert headers["content-type"] == "application/json"
    error = json.loads(body.decode("utf-8"))["error"]  # valid UTF-8 JSON, OpenAI's shape
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]


def assert_ollama_error(reply: h.Reply, expected: int) -> None:
    assert reply.status == expected, reply.body[:300]
    body = json.loads(reply.body.decode("utf-8"))
    assert set(body) == {"error"} and isinstance(body["error"], str)


@contextmanager
def held_stream(port: int, source: str = h.LOOPBACK) -> Iterator[http.client.HTTPResponse]:
    """A streamed chat held open (40 tokens, 25 ms apart) from `source`."""
    conn = http.client.HTTPConnection(h.LOOPBACK, port, timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", "/v1/chat/completions",
                     json.dumps(h.chat("llama3.1-8b", "hold", 40, stream=True)),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.readline()
        yield resp
    finally:
        conn.close()


@contextmanager
def stalled_body(port: int, path: str, length: int, sent: int) -> Iterator[socket.socket]:
    """A request announcing `length` body bytes that sends `sent` of them and stalls."""
    sock = socket.create_connection((h.LOOPBACK, port), timeout=10)
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode() + b"{" * sent)
        yield sock
    finally:
        sock.close()


# ---- bounded resources


@pytest.mark.parametrize("path", ["/health", "/ready", "/v1/models"])
def test_bodyless_paths_take_get_and_head_only_and_no_body(stack: Stack, path: str) -> None:
    port = stack.port("base")
    assert_openai_error(*parse(raw(port, f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                                         "Content-Length: 0\r\n\r\n".encode())), 405)
    # a 99 MB body is refused from its Content-Length, at once, without reading it
    with stalled_body(port, path, 99 * 1024 * 1024, 10) as sock:
        status, headers, body = parse(sock.recv(65536))
    assert_openai_error(status, headers, body, 413)
    chunked = f"GET {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert_openai_error(*parse(raw(port, chunked.encode())), 413)
    assert h.request(port, "HEAD", path).status in (200, 503)


def test_body_limits_are_per_route(stack: Stack) -> None:
    """limits: embeddings (Ollama) take 1 MB, chat 8 MB; each answer is a JSON 413."""
    port = stack.port("limits")
    text = "w " * 700_000  # 1.4 MB
    reply = h.request(port, "POST", "/v1/embeddings", {"model": "bge-m3", "input": text})
    assert_openai_error(reply.status, reply.headers, reply.body, 413)
    reply = h.request(port, "POST", "/api/embed", {"model": "bge-m3", "input": text})
    assert_ollama_error(reply, 413)
    reply = h.request(port, "POST", "/v1/completions",
                      {"model": "llama3.1-8b", "prompt": text, "max_tokens": 1})
    assert reply.status == 200, reply.body[:300]
    reply = h.request(port, "POST", "/v1/completions", b"x" * (8 * 1024 * 1024 + 1), timeout=60)
    assert_openai_error(reply.status, reply.headers, reply.body, 413)


def test_large_bodies_share_a_fixed_number_of_slots(stack: Stack) -> None:
    """limits: 2 slots for bodies over 1 MB. Two stalled 5 MB uploads hold both; a third large
    body gets a JSON 429 at once; small requests still pass."""
    port = stack.port("limits")
    with ExitStack() as held:
        for _ in range(2):
            held.enter_context(stalled_body(port, "/v1/chat/completions", 5_000_000, 1000))
        h.wait_until(lambda: _large_refused(port), 5, "the large-body slots to fill")
        reply = h.request(port, "POST", "/v1/chat/completions", h.chat("qwen2.5-14b"),
                          source=next(FRESH_CLIENTS))
        assert reply.status == 200
    h.wait_until(lambda: not _large_refused(port), 5, "the slots to free")


# A new loopback address per request where a test must see the large-body slots alone: the
# per-client rate limit (same stack) counts each address, and must not answer for the slots.
FRESH_CLIENTS = (f"127.0.{n // 250 + 1}.{n % 250 + 1}" for n in itertools.count())


def _large_refused(port: int) -> bool:
    body = json.dumps({"model": "qwen2.5-14b", "prompt": "x" * 1_100_000, "max_tokens": 1})
    reply = h.request(port, "POST", "/v1/completions", body.encode(), timeout=30,
                      source=next(FRESH_CLIENTS))
    if reply.status == 429:
        assert_openai_error(reply.status, reply.headers, reply.body, 429)
        return True
    assert reply.status == 200, reply.body[:300]
    return False


def test_connections_per_client_are_limited(stack: Stack) -> None:
    """limits: 6 requests in progress per client address; the 7th gets a JSON 429, another
    client is served meanwhile."""
    port = stack.port("limits")
    with ExitStack() as held:
        for _ in range(6):
            held.enter_context(held_stream(port))
        reply = h.request(port, "GET", "/v1/models")
        assert_openai_error(reply.status, reply.headers, reply.body, 429)
        conn = http.client.HTTPConnection(h.LOOPBACK, port, timeout=10,
                                          source_address=(OTHER_CLIENT, 0))
        conn.request("GET", "/v1/models")
        assert conn.getresponse().status == 200
        conn.close()


def test_request_rate_per_client_is_limited(stack: Stack) -> None:
    """limits: 20 r/s with a burst of 20: 200 requests as fast as one client sends them cannot
    all pass (a client address no other test used: its budget is whole)."""
    port = stack.port("limits")
    client = next(FRESH_CLIENTS)
    statuses = [h.request(port, "GET", "/v1/models", source=client).status for _ in range(200)]
    assert statuses.count(429) >= 20, statuses
    assert statuses.count(200) >= 1, statuses


def test_a_stalled_header_or_body_is_dropped_within_its_timeout(stack: Stack) -> None:
    """limits: 1 s header and body timeouts (defaults 10 s); nginx's own default is 60 s."""
    port = stack.port("limits")
    for stalled in (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n",
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"):
        start = time.monotonic()
        raw(port, stalled, timeout=10)  # returns when the gateway closes
        assert time.monotonic() - start < 5


def test_idle_connections_of_one_client_do_not_take_the_gateway(stack: Stack) -> None:
    """One client holding 4,200 idle connections (more than the old 2 x 2048 connection
    slots of the test gateway) leaves /health answering another client."""
    port = stack.port("base")
    with ExitStack() as held:
        for _ in range(4200):
            sock = held.enter_context(socket.socket())
            sock.settimeout(10)
            sock.connect((h.LOOPBACK, port))
        conn = http.client.HTTPConnection(h.LOOPBACK, port, timeout=10,
                                          source_address=(OTHER_CLIENT, 0))
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        conn.close()


# ---- inference-only routes

MANAGEMENT = [
    ("DELETE", "/embed/api/delete"), ("POST", "/embed/api/pull"), ("POST", "/embed/api/create"),
    ("POST", "/embed/api/copy"), ("POST", "/embed/api/push"), ("POST", "/embed/api/blobs/x"),
    ("DELETE", "/api/delete"), ("POST", "/api/pull"), ("POST", "/api/create"),
    ("POST", "/llama/v1/load_lora_adapter"), ("POST", "/llama/v1/unload_lora_adapter"),
    ("POST", "/qwen/reset_prefix_cache"), ("POST", "/qwen/sleep"), ("GET", "/llama/metrics"),
    ("POST", "/llama/start_profile"), ("GET", "/llama/health"), ("POST", "/qwen/tokenize"),
    ("GET", "/embed/"), ("GET", "/llama/%2e%2e/metrics"), ("POST", "/llama/v1/../reset_prefix_cache"),
]


@pytest.mark.parametrize(("method", "path"), MANAGEMENT, ids=[f"{m} {p}" for m, p in MANAGEMENT])
def test_management_endpoints_never_reach_an_engine(stack: Stack, method: str, path: str) -> None:
    before = stack.llama_total() + stack.qwen_total()
    tags = h.request(stack.sims["bge-a"].port, "GET", "/api/tags").body
    reply = h.request(stack.port("base"), method, path, {"model": "bge-m3", "name": "x"})
    assert reply.status in (403, 404), reply.body[:300]
    assert reply.json()["error"]["code"] in ("unknown_url", "forbidden")
    assert stack.llama_total() + stack.qwen_total() == before
    assert h.request(stack.sims["bge-a"].port, "GET", "/api/tags").body == tags


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/chat/completions"), ("DELETE", "/v1/embeddings"), ("PUT", "/llama/v1/completions"),
    ("POST", "/llama/v1/models"),
])
def test_a_wrong_method_is_a_json_405(stack: Stack, method: str, path: str) -> None:
    reply = h.request(stack.port("base"), method, path, {"model": "llama3.1-8b"})
    assert_openai_error(reply.status, reply.headers, reply.body, 405)
    assert reply.headers["allow"] in ("POST", "GET, HEAD")


def test_the_ollama_client_works_at_the_root(stack: Stack) -> None:
    client = ollama.Client(host=f"http://{h.LOOPBACK}:{stack.port('base')}")
    assert len(client.embed(model="bge-m3", input=["a", "b"]).embeddings) == 2
    assert len(client.embeddings(model="bge-m3", prompt="a").embedding) == 1024
    assert [m.model for m in client.list().models] == ["bge-m3:latest"]
    assert client.show("bge-m3").details is not None
    assert client.ps() is not None
    with pytest.raises(ollama.ResponseError) as refused:
        client.pull("bge-m3")
    assert refused.value.status_code == 404
    with pytest.raises(ollama.ResponseError):
        client.delete("bge-m3")


# ---- errors: JSON, valid UTF-8, the right status


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 400),
    (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", 413),
    (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404),
], ids=["bad-header", "uri-too-long", "header-too-large", "transfer-encoding", "too-large",
        "unknown-path"])
def test_nginx_own_errors_are_openai_json(stack: Stack, request_bytes: bytes, status: int) -> None:
    assert_openai_error(*parse(raw(stack.port("base"), request_bytes)), status)


def test_a_dead_backend_is_a_json_502(stack: Stack) -> None:
    reply = h.request(stack.port("dead"), "POST", "/v1/chat/completions", h.chat("llama3.1-8b"))
    assert_openai_error(reply.status, reply.headers, reply.body, 502)


def test_a_mute_backend_is_a_json_504(stack: Stack) -> None:
    reply = h.request(stack.port("dead"), "POST", "/qwen/v1/completions",
                      {"model": "qwen2.5-14b", "prompt": "x"})
    assert_openai_error(reply.status, reply.headers, reply.body, 504)


def test_ollama_paths_answer_errors_in_ollama_shape(stack: Stack) -> None:
    assert_ollama_error(h.request(stack.port("base"), "GET", "/api/embed"), 405)
    assert_ollama_error(h.request(stack.port("dead"), "POST", "/embed/api/embed",
                                  b"x" * (5 * 1024 * 1024)), 413)


def test_an_invalid_utf8_model_is_not_reflected(stack: Stack) -> None:
    body = b'{"model": "gpt-\xff\xfe-4", "messages": []}'
    reply = h.request(stack.port("base"), "POST", "/v1/chat/completions", body)
    assert_openai_error(reply.status, reply.headers, reply.body, 404)
    assert reply.json()["error"]["code"] == "model_not_found"
    for line in (stack.variants["base"].runtime / "access.log").read_bytes().splitlines():
        json.loads(line.decode("utf-8"))


def _counted(stack: Stack, total: float) -> bool:
    return stack.qwen_total() == total


def test_a_large_body_is_routed_without_parsing_it_whole(stack: Stack) -> None:
    """Over json_parse_limit the body is scanned for "model": many small objects route."""
    messages = [{"role": "user", "content": "x"}] * 50_000
    for body in ({"messages": messages, "model": "qwen2.5-14b", "max_tokens": 1},
                 {"model": "qwen2.5-14b", "messages": messages, "max_tokens": 1}):
        before = stack.qwen_total()
        reply = h.request(stack.port("base"), "POST", "/v1/chat/completions", body)
        assert reply.status == 200, reply.body[:300]
        # the simulator counts a request once its answer is written
        h.wait_until(partial(_counted, stack, before + 1), 5, "qwen to count the request")
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"model": {"type": "string"}}}}}
    reply = h.request(stack.port("base"), "POST", "/v1/chat/completions",
                      {"model": "qwen2.5-14b", "response_format": schema, "messages": messages})
    assert reply.status == 200, reply.body[:300]
    nested = {"model": "qwen2.5-14b", "metadata": {"model": "llama3.1-8b"}, "messages": messages}
    reply = h.request(stack.port("base"), "POST", "/v1/chat/completions", nested)
    assert_openai_error(reply.status, reply.headers, reply.body, 400)


# ---- keys: the role's own checks


def test_auth_required_without_keys_refuses_to_render(
    stack: Stack, tmp_path: Path
) -> None:
    variant = h.Variant("nokeys", 1, tmp_path / "nokeys", tmp_path / "nokeys",
                        stack.variants["base"].pools,
                        extra={"nginx_unified_auth": "required"})
    with pytest.raises(RuntimeError, match="nginx_unified_auth is 'required'"):
        h.render([variant], tmp_path)
    assert not (tmp_path / "nokeys" / "nginx.conf").exists()


def test_a_bad_key_is_refused_by_name_without_showing_it(stack: Stack, tmp_path: Path) -> None:
    secret = "short key with spaces"
    variant = h.Variant("badkey", 1, tmp_path / "badkey", tmp_path / "badkey",
                        stack.variants["base"].pools,
                        api_keys=[{"name": "memoryx", "key": secret}])
    with pytest.raises(RuntimeError) as refused:
        h.render([variant], tmp_path)
    assert "keys not acceptable: memoryx" in str(refused.value)
    assert secret not in str(refused.value)


# ---- hung backends


def test_a_hung_member_is_out_of_its_pool_within_the_bound(stack: Stack) -> None:
    """hang: llama = llama-a + a member that accepts connections and never answers (its
    /health probe times out after 1 s here). The first request probes; from then on no request
    goes to the hung member: 8 concurrent chats all answer (before: half waited 300 s)."""
    port, gateway = stack.port("hang"), stack.gateways["hang"]
    health = stack.variants["hang"].runtime / "health.json"
    start = time.monotonic()
    reply = h.request(port, "POST", "/v1/chat/completions", h.chat("llama3.1-8b"), timeout=10)
    assert reply.status == 200
    # interval 1 s + probe timeout 1 s here (defaults: 1 s + 2 s)
    h.wait_until(lambda: health.exists() and "hung" in json.loads(health.read_text())["down"],
                 3, "the hung member marked down")
    assert time.monotonic() - start < 3
    before = len(gateway.access_log())
    paths = ["/v1/chat/completions", "/llama/v1/chat/completions"] * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(
            lambda path: h.request(port, "POST", path, h.chat("llama3.1-8b"), timeout=10), paths))
    assert [r.status for r in replies] == [200] * 8
    hung = f"127.0.0.1:{stack.variants['hang'].pools['llama']['members'][1]['port']}"
    assert all(hung not in line["upstream_addr"] for line in gateway.access_log()[before:])
